#!/usr/bin/env bash
# The numeric test targets under several OpenBLAS kernels and thread counts (make test-matrix).
# One line per combination: kernel asked for / kernel used, who threads the GEMMs (the engine's
# panels, or OpenBLAS itself), engine threads, then the element-wise kernels for the x86-64
# baseline (SEMPLES_SIMD=generic) and the oneDNN backend, and the
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
# run_case LABEL VAR=VALUE...: the filtered suites with these variables, one summary line.
run_case() {
    local label="$1"; shift
    local log="$logs/$(tr ' /' '__' <<<"$label").log"
    env "$@" swift test --skip-build --filter "$filter" >"$log" 2>&1
    local code=$?
    # The last XCTest summary line: "Executed N tests, with S tests skipped and F failures ..."
    local summary total skipped failing_tests passed status
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
    printf '%-58s %d passed, %d failed, %d skipped  %s\n' "$label:" "$passed" "$failing_tests" "$skipped" "$status"
}
for core in $cores; do
    used="$(OPENBLAS_CORETYPE="$core" "$probe" 2>/dev/null | cut -d' ' -f1)"
    if [ -z "$used" ]; then
        printf '%-12s not available on this CPU (the kernel stops with an illegal instruction), skipped\n' "$core"
        continue
    fi
    for engine in $threads; do
        # GEMMs cut into panels by the engine (the default; OpenBLAS itself single-threaded).
        run_case "$core (kernel $used), engine GEMM panels, engine $engine" \
            OPENBLAS_CORETYPE="$core" SEMPLES_THREADS="$engine"
        # GEMMs threaded by OpenBLAS itself (SEMPLES_GEMM_THREADING=library), 2 library threads.
        run_case "$core (kernel $used), OpenBLAS-threaded GEMMs 2, engine $engine" \
            OPENBLAS_CORETYPE="$core" SEMPLES_GEMM_THREADING=library OPENBLAS_NUM_THREADS=2 SEMPLES_THREADS="$engine"
    done
done
# The element-wise kernels compiled for the x86-64 baseline (what a CPU without AVX2/FMA runs;
# the default above is the AVX2+FMA variant where the CPU has it).
for engine in $threads; do
    run_case "baseline x86-64 element-wise kernels, engine $engine" SEMPLES_SIMD=generic SEMPLES_THREADS="$engine"
done
# The oneDNN backend, where libdnnl.so.2 is installed.
if ldconfig -p 2>/dev/null | grep -q 'libdnnl.so.2 '; then
    for engine in $threads; do
        run_case "oneDNN GEMMs, engine $engine" SEMPLES_BLAS=onednn SEMPLES_THREADS="$engine"
    done
else
    echo "oneDNN       not installed (libdnnl.so.2), skipped"
fi
if [ "$failed_runs" -ne 0 ]; then
    echo "test-matrix: $failed_runs combination(s) failed"
    exit 1
fi
echo "test-matrix: every combination passed"
