import Dispatch
import Foundation

/// Thread configuration for the engine's own loops (BLAS threads are set separately).
public enum Parallel {
    nonisolated(unsafe) public static var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Sets the engine's worker count and BLAS's thread count together.
    public static func configure(threads n: Int) {
        threads = max(1, n)
        BLAS.setThreads(threads)
    }

    /// Runs body(i) for i in 0..<count, spread over `threads` workers in contiguous chunks.
    /// While the loop runs, BLAS is kept single-threaded so that nested GEMMs do not oversubscribe.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        let blasThreads = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(blasThreads) }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = count * w / workers
                let hi = count * (w + 1) / workers
                for i in lo..<hi { body(i) }
            }
        }
    }
}
