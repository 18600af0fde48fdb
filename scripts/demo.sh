#!/usr/bin/env bash
# The main job: the daemon on the repository's spool with the whole SemPLeS chain, start to finish.
#   1. a synthetic VOC-layout dataset (data/synthetic, made once, deterministic): training,
#      validation (what epochs and thresholds are chosen on) and held-out evaluation images,
#      captions, and a captioned corpus for CLIP,
#   2. semplesd started on spool/ with etc/semplesd.yaml,
#   3. three jobs submitted one after the other: WeakTr trained from scratch, a small CLIP trained
#      contrastively on the captions, and the SemPLeS pipeline: stage (a) → (b) → (c) → CAMs →
#      evaluation → the report comparing the WeakTr base, (a) and (c) on the held-out images,
#   4. progress shown while each runs, then the summaries and the report table; the last line
#      is "SemPLeS CAM mIoU X% vs WeakTr base Y% (±Z points)".
# Run through `make demo` (which installs and builds first). DEMO_SEED (504) seeds every job;
# DEMO_EPOCHS, DEMO_EMBED_DIM, DEMO_DEPTH, DEMO_HEADS, DEMO_INPUT_SIZE and DEMO_LR change the
# WeakTr base, DEMO_CLIP_EPOCHS and DEMO_STAGE_EPOCHS the CLIP and the SemPLeS stages,
# DEMO_STAGE_LR the (a)/(c) learning rate and DEMO_SIMILARITY_SHIFT the (a)/(c) similarity rescaling
# (s + a)/(1 + a) (0: the reference's raw cosine; docs/semples-demo.md has the figures);
# DEMO_PRECISION=bf16 trains everything with bf16 GEMMs (CPUs with AVX-512 BF16, or anywhere with
# SEMPLES_BF16=emulate to see what it does to the results).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
data=data/synthetic
spool=spool

say() { printf '\n== %s\n' "$*"; }

for b in semples semplesd; do
    [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run 'make demo' (it builds first)" >&2; exit 1; }
done

if [ ! -f "$data/voc12/clip_train_id.txt" ]; then
    say "making the synthetic dataset in $data"
    rm -rf "$data"
    "$bin/semples" make-dataset synthetic --out "$data" --train 480 --validation 60 --eval 120 --clip 1200 --seed 504
fi
vocabulary=${SEMPLES_CLIP_VOCAB:-$(cd .. && pwd)/shared/data/clip/bpe_simple_vocab_16e6.txt.gz}
[ -f "$vocabulary" ] || { echo "demo: the CLIP vocabulary '$vocabulary' is missing; set SEMPLES_CLIP_VOCAB" >&2; exit 1; }
seed=${DEMO_SEED:-504}

say "starting semplesd on $spool/ (etc/semplesd.yaml)"
mkdir -p "$spool/incoming" "$spool/outbox" "$spool/rejected"
"$bin/semplesd" --config etc/semplesd.yaml 2> >(sed -u 's/^<[0-9]>/semplesd: /' >&2) &
daemon=$!
stop_daemon() {
    if kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
}
trap stop_daemon EXIT
trap 'echo; echo "demo: interrupted; the job stays queued and continues the next time semplesd runs"; exit 130' INT TERM
# Wait until the daemon reports itself running (it writes its status once it watches the spool).
for _ in $(seq 1 60); do
    "$bin/semples" status --spool "$spool" 2>/dev/null | grep -q "^daemon: running" && break
    kill -0 "$daemon" 2>/dev/null || { echo "demo: semplesd exited; see the lines above" >&2; exit 1; }
    sleep 0.5
done

# Submits one manifest and waits for it to end; sets $id, $state and $outbox.
run_job() {
    local manifest=$1 label=$2
    say "$label: submitting $manifest"
    local submitted
    submitted=$("$bin/semples" submit --spool "$spool" --json --wait 30 "$manifest")
    id=$(printf '%s' "$submitted" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' | head -n 1)
    [ -n "$id" ] || { echo "demo: 'semples submit' did not report a job id:"; echo "$submitted"; exit 1; } >&2
    local start
    start=$(date +%s)
    while :; do
        state=$("$bin/semples" show --spool "$spool" --json "$id" | sed -n 's/^    "state" *: *"\([^"]*\)".*/\1/p' | head -n 1)
        case "$state" in succeeded|failed|cancelled) break ;; esac
        local line
        line=$("$bin/semples" status --spool "$spool" 2>/dev/null | grep -F "$id" | head -n 1 || true)
        printf '\r\033[K[%4ds] %s' "$(( $(date +%s) - start ))" "${line:-$state}"
        sleep 3
    done
    echo
    outbox=$("$bin/semples" show --spool "$spool" --json "$id" | sed -n 's/^    "outbox" *: *"\([^"]*\)".*/\1/p' | head -n 1 | sed 's|\\/|/|g')
    say "$label: job $id $state in $(( $(date +%s) - start ))s; outbox $outbox"
    if [ "$state" != succeeded ]; then
        "$bin/semples" logs --spool "$spool" "$id" | tail -n 30
        exit 1
    fi
}

demo_start=$(date +%s)
root=$(pwd)
work="$root/data/demo-manifests"
mkdir -p "$work"

# 1. WeakTr trained from scratch on the synthetic training images (CAM mIoU on the validation
#    images each epoch picks the checkpoint).
cat > "$work/demo-weaktr.yaml" <<YAML
job: weaktr
name: demo-weaktr
data_set: VOC12
data_path: $root/$data
img_list: $root/$data/voc12/train_aug_id.txt
img_ms_list: $root/$data/voc12/train_id.txt
embed_dim: ${DEMO_EMBED_DIM:-128}
depth: ${DEMO_DEPTH:-4}
num_heads: ${DEMO_HEADS:-4}
input_size: ${DEMO_INPUT_SIZE:-112}
epochs: ${DEMO_EPOCHS:-10}
batch_size: 16
lr: ${DEMO_LR:-0.01}
min_lr: 0.00001
warmup_epochs: 1
drop_path: 0.0
aa: none
reprob: 0
eval_start: 5
reduction: 4
seed: $seed
precision: ${DEMO_PRECISION:-fp32}
YAML
run_job "$work/demo-weaktr.yaml" "1/3 train WeakTr"
weaktr_outbox=$outbox

# 2. A small CLIP trained on the captioned corpus (zero-shot accuracy on held-out images).
cat > "$work/demo-clip.yaml" <<YAML
job: clip
name: demo-clip
data_set: VOC12
data_path: $root/$data
vocabulary: $vocabulary
input_size: ${DEMO_INPUT_SIZE:-112}
epochs: ${DEMO_CLIP_EPOCHS:-8}
batch_size: 32
seed: $seed
precision: ${DEMO_PRECISION:-fp32}
YAML
run_job "$work/demo-clip.yaml" "2/3 train CLIP"
clip_outbox=$outbox

# 3. SemPLeS: (a) → (b) → (c) → CAMs → evaluation → the report on the held-out images.
cat > "$work/demo-pipeline.yaml" <<YAML
job: pipeline
name: demo-pipeline
data_set: VOC12
data_path: $root/$data
img_list: $root/$data/voc12/train_aug_id.txt
img_ms_list: $root/$data/voc12/train_id.txt
test_list: $root/$data/voc12/val_id.txt
resume: $weaktr_outbox/checkpoint_best_mIoU.pth
clip: $clip_outbox/clip.safetensors
reduction: 4
epochs: ${DEMO_STAGE_EPOCHS:-5}
btp_length: 10
mask_epsilon: 0.0001
similarity_shift: ${DEMO_SIMILARITY_SHIFT:-1}
eval_start: 5
start: 5
scales: [1.0, 1.2]
stage_a: {batch_size: 16, lr: ${DEMO_STAGE_LR:-0.002}}
stage_b: {batch_size: 16, lr: 0.8}
stage_c: {batch_size: 16, lr: ${DEMO_STAGE_LR:-0.002}}
seed: $seed
precision: ${DEMO_PRECISION:-fp32}
YAML
run_job "$work/demo-pipeline.yaml" "3/3 SemPLeS (a) → (b) → (c) → CAMs → evaluation → report"
pipeline_outbox=$outbox
say "demo finished in $(( $(date +%s) - demo_start ))s"
# The daemon stops first, so that the report's headline stays the last line.
stop_daemon
sleep 0.5
"$bin/semples" summary "$weaktr_outbox" "$clip_outbox" "$pipeline_outbox"
say "the SemPLeS report ($pipeline_outbox/report/report.txt)"
cat "$pipeline_outbox/report/report.txt"
