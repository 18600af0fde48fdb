#!/usr/bin/env bash
# The main job: the daemon on the repository's spool with a demo job, start to finish.
#   1. a synthetic VOC-layout dataset (data/synthetic, made once, deterministic),
#   2. semplesd started on spool/ with etc/semplesd.yaml,
#   3. three jobs submitted one after the other: WeakTr trained from scratch, CAMs of the
#      evaluation images with its best checkpoint, evaluation of those CAMs,
#   4. progress shown while each runs, then the outboxes: mIoU beside trivial baselines, the
#      threshold curve, training curves, heat-map overlays.
# Run through `make demo` (which installs and builds first). DEMO_EPOCHS, DEMO_EMBED_DIM, DEMO_DEPTH,
# DEMO_HEADS, DEMO_INPUT_SIZE and DEMO_LR change the model and training length.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
data=data/synthetic
spool=spool

say() { printf '\n== %s\n' "$*"; }

for b in semples semplesd; do
    [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run 'make demo' (it builds first)" >&2; exit 1; }
done

if [ ! -f "$data/voc12/cls_labels.npy" ]; then
    say "making the synthetic dataset in $data"
    "$bin/semples" make-dataset synthetic --out "$data" --train 480 --eval 120 --seed 504
fi

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

# 1. WeakTr trained from scratch on the synthetic training images (CAM mIoU measured each epoch).
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
seed: 504
YAML
run_job "$work/demo-weaktr.yaml" "1/3 train WeakTr"
weaktr_outbox=$outbox

# 2. CAMs of the evaluation images with the best checkpoint, with heat-map overlays.
cat > "$work/demo-cam.yaml" <<YAML
job: cam
name: demo-cam
data_set: VOC12
data_path: $root/$data
img_list: $root/$data/voc12/train_id.txt
resume: $weaktr_outbox/checkpoint_best_mIoU.pth
reduction: 4
scales: [1.0, 1.2]
overlays: true
YAML
run_job "$work/demo-cam.yaml" "2/3 CAMs"
cam_outbox=$outbox

# 3. mIoU with the greedy threshold sweep, beside the trivial baselines.
cat > "$work/demo-evaluate.yaml" <<YAML
job: evaluate
name: demo-evaluate
data_set: VOC12
data_path: $root/$data
img_list: $root/$data/voc12/train_id.txt
predict_dir: $cam_outbox/cams
curve: true
start: 5
YAML
run_job "$work/demo-evaluate.yaml" "3/3 evaluate"
eval_outbox=$outbox
say "demo finished in $(( $(date +%s) - demo_start ))s"
"$bin/semples" summary "$weaktr_outbox" "$cam_outbox" "$eval_outbox"
