#!/usr/bin/env bash
# Fuzzes the SemplesFormats parsers with libFuzzer (the Swift toolchain ships it on Linux).
#
#   scripts/fuzz.sh build                  build .build/fuzz/semples-fuzz (ASan + libFuzzer, -O)
#   scripts/fuzz.sh run TARGET [SECONDS]   fuzz one parser (default 60 s), corpus in .build/fuzz/corpus/TARGET
#   scripts/fuzz.sh all [SECONDS]          every parser in turn (default 10 s each): the short CI run
#   scripts/fuzz.sh targets                list the parsers
#
# Targets: pickle npy zip pth safetensors png jpeg labels inflate. Seeds come from fixtures/formats.
# The library sources are compiled straight into one fuzzer binary together with Fuzz/FuzzMain.swift
# (SemplesEngine as a separate module, the C codecs with -fsanitize=fuzzer-no-link,address).
# Crashes are written to .build/fuzz/crashes/TARGET/; reproduce one with
#   SEMPLES_FUZZ_TARGET=TARGET .build/fuzz/semples-fuzz FILE
# Exit status is non-zero when a run finds a crash, a leak or a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/.build/fuzz
BIN=$OUT/semples-fuzz
TARGETS="pickle npy zip pth safetensors png jpeg labels inflate"
export SWIFT_BACKTRACE=enable=no

build() {
    mkdir -p "$OUT/ccodecs" "$OUT/engine"
    cat > "$OUT/ccodecs/module.modulemap" <<MAP
module CCodecs {
    header "$ROOT/Sources/CCodecs/include/codecs.h"
    export *
}
MAP
    clang -O1 -g -fsanitize=fuzzer-no-link,address -I "$ROOT/Sources/CCodecs/include" \
        -c "$ROOT/Sources/CCodecs/codecs.c" -o "$OUT/codecs.o"
    swiftc -O -g -sanitize=address -parse-as-library \
        -module-name SemplesEngine -emit-module -emit-module-path "$OUT/engine/SemplesEngine.swiftmodule" \
        -emit-library -static -o "$OUT/libSemplesEngine.a" \
        -I "$ROOT/Sources/CBLAS" "$ROOT"/Sources/SemplesEngine/*.swift
    swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name SemplesFormats \
        -I "$OUT/engine" -I "$OUT/ccodecs" -I "$ROOT/Sources/CBLAS" \
        "$ROOT"/Sources/SemplesFormats/*.swift "$ROOT/Fuzz/FuzzMain.swift" "$OUT/codecs.o" \
        -L "$OUT" -lSemplesEngine -ljpeg -lpng16 -lopenblas -o "$BIN" 2> "$OUT/link.log" \
        || { cat "$OUT/link.log"; exit 1; }
    echo "built $BIN"
}

seeds() {  # target → fixture files that start its corpus
    case "$1" in
        pickle) echo fixtures/formats/bad/evil.pkl ;;
        npy) ls fixtures/formats/npy/*.npy fixtures/formats/bad/*.npy ;;
        zip|pth) ls fixtures/formats/torch/*.pth fixtures/formats/torch/*.pt fixtures/formats/bad/*.pth ;;
        safetensors) ls fixtures/formats/torch/*.safetensors ;;
        png) ls fixtures/formats/images/*.png ;;
        labels) ls fixtures/formats/images/labels*.png ;;
        jpeg) ls fixtures/formats/images/*.jpg ;;
        inflate) ;;
    esac
}

run() {
    local target=$1 seconds=${2:-60}
    [ -x "$BIN" ] || build
    local corpus=$OUT/corpus/$target crashes=$OUT/crashes/$target
    mkdir -p "$corpus" "$crashes"
    for f in $(seeds "$target"); do cp -n "$f" "$corpus/" 2>/dev/null || true; done
    if [ "$target" = pickle ]; then
        # Pickles extracted from the checkpoints seed the pickle corpus.
        python3 - "$corpus" <<'PY' || true
import sys, zipfile, glob, os
for p in glob.glob("fixtures/formats/torch/*.p*") + glob.glob("fixtures/formats/bad/*.pth"):
    try:
        z = zipfile.ZipFile(p)
    except Exception:
        continue
    for n in z.namelist():
        if n.endswith(".pkl"):
            open(os.path.join(sys.argv[1], os.path.basename(p) + "." + n.replace("/", "_")), "wb").write(z.read(n))
for p in glob.glob("fixtures/formats/npy/*.npy"):
    data = open(p, "rb").read()
    if b"'|O'" in data[:128]:
        open(os.path.join(sys.argv[1], os.path.basename(p) + ".pkl"), "wb").write(data[data.index(b"\n") + 1:])
PY
    fi
    if [ "$target" = inflate ]; then
        # Raw deflate streams prefixed by their 16-bit big-endian inflated size.
        python3 - "$corpus" <<'PY' || true
import sys, zlib, os
texts = [open(f, "rb").read()[:20000] for f in ["scripts/fuzz.sh", "scripts/fixtures/formats.py"]] + [bytes(range(256)) * 8, b"a" * 5000]
for i, t in enumerate(texts):
    for level in (1, 9):
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        raw = c.compress(t) + c.flush()
        open(os.path.join(sys.argv[1], f"seed{i}_{level}"), "wb").write(len(t).to_bytes(2, "big") + raw)
PY
    fi
    echo "== $target: ${seconds}s"
    SEMPLES_FUZZ_TARGET=$target "$BIN" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="$crashes/" -print_final_stats=1 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Test unit written|Done [0-9]+ runs" || true
    local found
    found=$(ls "$crashes" | wc -l)
    if [ "$found" -gt 0 ]; then echo "$target: $found crash/leak/timeout files in $crashes"; return 1; fi
}

case "${1:-all}" in
    build) build ;;
    targets) echo $TARGETS ;;
    run) run "$2" "${3:-60}" ;;
    all)
        build
        status=0
        for t in $TARGETS; do run "$t" "${2:-10}" || status=1; done
        exit $status ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
