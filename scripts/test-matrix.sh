#!/usr/bin/env bash
# The numeric test targets under several OpenBLAS kernels and thread counts (make test-matrix).
# One line per combination: kernel asked for / kernel used, BLAS threads, engine threads, and the
# pass/fail count. A kernel this CPU cannot run (an AVX-512 kernel without AVX-512) is reported
# as not available and skipped. Not part of `make test`: 16 runs of the numeric suites take a while.
#
# Usage: scripts/test-matrix.sh [FILTER]   (default: the engine, models and pipeline test targets)
# Env:   MATRIX_CORES="Haswell SkylakeX Sandybridge Prescott"  MATRIX_THREADS="1 2"
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
filter="${1:-SemplesEngineTests|SemplesModelsTests|SemplesPipelineTests}"
cores="${MATRIX_CORES:-Haswell SkylakeX Sandybridge Prescott}"
threads="${MATRIX_THREADS:-1 2}"
logs=".build/test-matrix"
mkdir -p "$logs"

swift build --build-tests >/dev/null || { echo "test-matrix: the build failed" >&2; exit 1; }
probe="$logs/blas-probe"
cc_bin="$(command -v cc || command -v clang)"
"$cc_bin" scripts/matrix/blas-probe.c $(pkg-config --cflags --libs openblas) -o "$probe" \
    || { echo "test-matrix: cannot build the OpenBLAS probe" >&2; exit 1; }

failed_runs=0
for core in $cores; do
    used="$(OPENBLAS_CORETYPE="$core" "$probe" 2>/dev/null | cut -d' ' -f1)"
    if [ -z "$used" ]; then
        printf '%-12s not available on this CPU (the kernel stops with an illegal instruction), skipped\n' "$core"
        continue
    fi
    for blas in $threads; do
        for engine in $threads; do
            log="$logs/$core-blas$blas-engine$engine.log"
            OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS="$blas" SEMPLES_THREADS="$engine" \
                swift test --skip-build --filter "$filter" >"$log" 2>&1
            code=$?
            # The last XCTest summary line: "Executed N tests, with S tests skipped and F failures ..."
            summary="$(grep -E 'Executed [0-9]+ tests?' "$log" | tail -1)"
            total="$(sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p' <<<"$summary")"
            skipped="$(sed -nE 's/.* ([0-9]+) tests? skipped.*/\1/p' <<<"$summary")"
            total=${total:-0}; skipped=${skipped:-0}
            failing_tests="$(grep -cE "^Test Case .* failed" "$log")"
            passed=$((total - skipped - failing_tests))
            status="ok"
            if [ "$code" -ne 0 ] || [ "$failing_tests" -ne 0 ] || [ "$total" -eq 0 ]; then
                status="FAILED (exit $code, see $log)"
                failed_runs=$((failed_runs + 1))
            fi
            printf '%-12s kernel %-12s blas %s engine %s: %d passed, %d failed, %d skipped  %s\n' \
                "$core" "$used" "$blas" "$engine" "$passed" "$failing_tests" "$skipped" "$status"
        done
    done
done
if [ "$failed_runs" -ne 0 ]; then
    echo "test-matrix: $failed_runs combination(s) failed"
    exit 1
fi
echo "test-matrix: every combination passed"
