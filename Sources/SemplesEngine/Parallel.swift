import Dispatch
import Foundation

/// Thread configuration for the engine's own loops (BLAS threads are set separately).
public enum Parallel {
    /// Starts at $SEMPLES_THREADS when set to a positive number, else the machine's core count.
    /// BLAS keeps its own setting (OPENBLAS_NUM_THREADS) until `configure` is called.
    nonisolated(unsafe) public static var threads: Int = defaultThreads()

    /// $SEMPLES_THREADS when it is a positive number, else the number of active cores.
    public static func defaultThreads() -> Int {
        if let text = ProcessInfo.processInfo.environment["SEMPLES_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Sets the engine's worker count and BLAS's thread count together.
    public static func configure(threads n: Int) {
        threads = max(1, n)
        BLAS.setThreads(threads)
    }

    /// Runs body(i) for i in 0..<count, spread over `threads` workers in contiguous chunks.
    /// While the loop runs, BLAS is kept single-threaded so that nested GEMMs do not oversubscribe.
    /// With more than one worker the closure's context is heap-allocated on every call: loops in
    /// training steps pass an `IndexKernel` instead.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        let blasThreads = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(blasThreads) }
        WorkerPool.shared.run(width: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            for i in lo..<hi { body(i) }
        }
    }
}

extension Parallel {
    /// Splits 0..<count into at most `threads` contiguous ranges of at least `grain` elements and
    /// runs body on each, concurrently. For element-wise kernels that make no BLAS calls, so BLAS's
    /// thread setting is left alone. With more than one worker the closure's context is
    /// heap-allocated on every call: loops in training steps pass a `RangeKernel` instead.
    public static func forRanges(_ count: Int, grain: Int = 16_384, _ body: (Range<Int>) -> Void) {
        let workers = max(1, min(threads, count / max(grain, 1)))
        if workers <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        WorkerPool.shared.run(width: workers) { w in
            // Chunk bounds rounded to multiples of 8 so that SIMD bodies stay aligned to rows.
            let lo = (count * w / workers) & ~7
            let hi = w == workers - 1 ? count : (count * (w + 1) / workers) & ~7
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Like `forEach`, but leaves BLAS's thread count alone (the body must not call BLAS).
    public static func forEachWithoutBLAS(_ count: Int, _ body: (Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        WorkerPool.shared.run(width: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            for i in lo..<hi { body(i) }
        }
    }
}
