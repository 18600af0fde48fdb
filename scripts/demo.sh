#!/usr/bin/env bash
# The main job: the daemon on the repository's spool with a demo job, start to finish.
#   1. a synthetic VOC-layout dataset (data/synthetic, made once, deterministic),
#   2. semplesd started on spool/ with etc/semplesd.yaml,
#   3. the demo pipeline submitted (WeakTr trained from scratch → CAMs → evaluation),
#   4. progress shown until the job ends, then the outbox: mIoU beside trivial baselines, the
#      threshold curve, heat-map overlays.
# Run through `make demo` (which installs and builds first). DEMO_MANIFEST picks another manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
manifest="${DEMO_MANIFEST:-examples/demo-pipeline.yaml}"
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

say "submitting $manifest"
submitted=$("$bin/semples" submit --spool "$spool" --json --wait 30 "$manifest")
echo "$submitted"
id=$(printf '%s' "$submitted" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d.get("id") or d.get("job",{}).get("id",""))' 2>/dev/null || true)
[ -n "$id" ] || { echo "demo: could not read the job id from 'semples submit'" >&2; exit 1; }

say "job $id: progress (Ctrl-C leaves it queued)"
start=$(date +%s)
while :; do
    state=$("$bin/semples" show --spool "$spool" --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"].get("state",""))')
    case "$state" in
        succeeded|failed|cancelled) break ;;
    esac
    line=$("$bin/semples" status --spool "$spool" 2>/dev/null | grep -F "$id" | head -n 1 || true)
    printf '\r\033[K[%4ds] %s' "$(( $(date +%s) - start ))" "${line:-$state}"
    sleep 5
done
echo
elapsed=$(( $(date +%s) - start ))

outbox=$("$bin/semples" show --spool "$spool" --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"].get("outbox",""))')
say "job $id $state in ${elapsed}s; outbox: $outbox"
if [ "$state" != succeeded ]; then
    "$bin/semples" logs --spool "$spool" "$id" | tail -n 30
    exit 1
fi
python3 - "$outbox" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
def load(p):
    with open(p) as f:
        return json.load(f)
metrics = sorted(glob.glob(os.path.join(out, "**", "metrics.json"), recursive=True))
base = sorted(glob.glob(os.path.join(out, "**", "baselines.json"), recursive=True))
if metrics:
    m = load(metrics[-1])
    print(f"CAM mIoU: {100 * m['bestMeanIoU']:.2f}% at background threshold {m['bestThreshold']:.2f} over {m['imageCount']} images")
    for c in m.get("perClass", []):
        if c.get("iou") is not None:
            print(f"  {c['name']:>12}: {100 * c['iou']:.2f}%")
if base:
    b = load(base[-1])
    print(f"baselines: all background {100 * b['all_background_miou']:.2f}%, labelled class everywhere {100 * b['label_everywhere_miou']:.2f}%")
for pattern, what in (("**/miou_curve.png", "threshold curve"), ("**/*loss*.png", "training curve"), ("**/overlays", "heat-map overlays")):
    for p in sorted(glob.glob(os.path.join(out, pattern), recursive=True))[:2]:
        print(f"{what}: {p}")
PY
