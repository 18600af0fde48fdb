#!/usr/bin/env bash
# The test suite under the sanitizers (make test-sanitize):
#   AddressSanitizer: the whole suite, debug and optimised (-O shortens lifetimes: a pointer used
#   after its owner's last use dangles sooner there), each in its own build folder;
#   ThreadSanitizer: the suites that run engine loops on several threads.
# Usage: scripts/sanitize.sh [address|address-O|thread]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
# Both threads in use so that the parallel loops really run in parallel.
export SEMPLES_THREADS="${SEMPLES_THREADS:-2}"
# Fail on the first report; leaks are not checked (the test process keeps caches on purpose).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

# Suites whose code runs on the engine's worker pool or OpenBLAS threads.
threaded='SemplesEngineTests|WeakTrTests|WeakTrTraining|CAMGeneratorTests|CAMJobIntegrityTests|CLIPModelTests|SemPLeSStageTests|TrainingTests'

run() {
    local what="$1"; shift
    echo "== sanitize: $what"
    local started=$SECONDS
    "$@"
    echo "== sanitize: $what clean ($((SECONDS - started)) s)"
}

modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(address address-O thread)
for mode in "${modes[@]}"; do
    case "$mode" in
    address)
        run "AddressSanitizer, debug, whole suite" bash -c \
            'swift build --build-tests --sanitize address --scratch-path .build-asan &&
             swift test --skip-build --sanitize address --scratch-path .build-asan' ;;
    address-O)
        run "AddressSanitizer, -O, whole suite" bash -c \
            'swift build -c release -Xswiftc -enable-testing --build-tests --sanitize address --scratch-path .build-asan-O &&
             swift test -c release -Xswiftc -enable-testing --skip-build --sanitize address --scratch-path .build-asan-O' ;;
    thread)
        run "ThreadSanitizer, threaded suites" bash -c \
            "swift build --build-tests --sanitize thread --scratch-path .build-tsan &&
             swift test --skip-build --sanitize thread --scratch-path .build-tsan --filter '$threaded'" ;;
    *) echo "sanitize: unknown mode '$mode' (address, address-O, thread)" >&2; exit 2 ;;
    esac
done
