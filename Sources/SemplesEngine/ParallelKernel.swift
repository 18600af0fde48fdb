/// The body of a `Parallel.forRanges` loop as a value: a struct holding what the body reads
/// (pointers, sizes, flags), with the body itself in `run`.
///
/// A closure handed to the workers has to become an escaping value, and Swift heap-allocates its
/// context on every run. A kernel stays on the caller's stack: the workers get its address and
/// its type, and call `run` through the type's witness table, so a run allocates nothing however
/// much the kernel holds. Training steps make hundreds of parallel runs; this is how they stay
/// free of heap allocations at every thread count.
public protocol RangeKernel {
    /// The body on one worker's part of 0..<count.
    func run(_ range: Range<Int>)

    /// Calls `run` on the kernel stored at `kernel`. Conformers keep the default, which the
    /// workers reach through the kernel's type without knowing it.
    static func invoke(_ kernel: UnsafeRawPointer, _ range: Range<Int>)
}

extension RangeKernel {
    @inlinable
    public static func invoke(_ kernel: UnsafeRawPointer, _ range: Range<Int>) {
        kernel.assumingMemoryBound(to: Self.self).pointee.run(range)
    }
}

/// The body of a `Parallel.forEach` or `forEachWithoutBLAS` loop as a value: `run(i)` for one
/// index. See `RangeKernel` for why loops in training steps use kernels rather than closures.
public protocol IndexKernel {
    /// The body for index `index`.
    func run(_ index: Int)

    /// Calls `run` for every index of `indices`, in order, on the kernel stored at `kernel`.
    /// Conformers keep the default (a loop compiled for the conforming type).
    static func invoke(_ kernel: UnsafeRawPointer, _ indices: Range<Int>)
}

extension IndexKernel {
    @inlinable
    public static func invoke(_ kernel: UnsafeRawPointer, _ indices: Range<Int>) {
        let body = kernel.assumingMemoryBound(to: Self.self)
        for i in indices { body.pointee.run(i) }
    }
}

extension Parallel {
    /// `forRanges` with a kernel: the same split (at most `threads` contiguous ranges of at least
    /// `grain` elements, inner bounds rounded down to multiples of 8), the same serial path, and
    /// no heap allocation at any thread count.
    public static func forRanges<Kernel: RangeKernel>(_ count: Int, grain: Int = 16_384, _ kernel: Kernel) {
        let workers = max(1, min(threads, count / max(grain, 1)))
        if workers <= 1 {
            if count > 0 { kernel.run(0..<count) }
            return
        }
        withUnsafePointer(to: kernel) { address in
            var job = RangeJob(kernel: UnsafeRawPointer(address), type: Kernel.self, count: count, workers: workers)
            withUnsafePointer(to: &job) { job in
                WorkerPool.shared.run(width: workers, job: UnsafeRawPointer(job), entry: RangeJob.entry)
            }
        }
    }

    /// `forEach` with a kernel: the same contiguous chunks, BLAS held at one thread while the loop
    /// runs (the body may call BLAS), and no heap allocation at any thread count.
    public static func forEach<Kernel: IndexKernel>(_ count: Int, _ kernel: Kernel) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { kernel.run(i) }
            return
        }
        let blasThreads = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(blasThreads) }
        IndexJob.run(kernel, count: count, workers: workers)
    }

    /// `forEachWithoutBLAS` with a kernel: as `forEach`, leaving BLAS's thread count alone (the
    /// body must not call BLAS).
    public static func forEachWithoutBLAS<Kernel: IndexKernel>(_ count: Int, _ kernel: Kernel) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { kernel.run(i) }
            return
        }
        IndexJob.run(kernel, count: count, workers: workers)
    }
}

/// A kernel run of `forRanges` as the workers read it, on the caller's stack: the kernel's
/// address and type (an existential metatype: calling `invoke` through it needs no box), and the
/// split.
private struct RangeJob {
    let kernel: UnsafeRawPointer
    let type: any RangeKernel.Type
    let count: Int
    let workers: Int

    static let entry: @convention(c) (UnsafeRawPointer, Int) -> Void = { address, w in
        let job = address.assumingMemoryBound(to: RangeJob.self)
        let count = job.pointee.count, workers = job.pointee.workers
        // Chunk bounds rounded to multiples of 8 so that SIMD bodies stay aligned to rows (as the
        // closure form of `forRanges`).
        let lo = (count * w / workers) & ~7
        let hi = w == workers - 1 ? count : (count * (w + 1) / workers) & ~7
        if lo < hi { job.pointee.type.invoke(job.pointee.kernel, lo..<hi) }
    }
}

/// A kernel run of `forEach` / `forEachWithoutBLAS`, as `RangeJob`.
private struct IndexJob {
    let kernel: UnsafeRawPointer
    let type: any IndexKernel.Type
    let count: Int
    let workers: Int

    static func run<Kernel: IndexKernel>(_ kernel: Kernel, count: Int, workers: Int) {
        withUnsafePointer(to: kernel) { address in
            var job = IndexJob(kernel: UnsafeRawPointer(address), type: Kernel.self, count: count, workers: workers)
            withUnsafePointer(to: &job) { job in
                WorkerPool.shared.run(width: workers, job: UnsafeRawPointer(job), entry: IndexJob.entry)
            }
        }
    }

    static let entry: @convention(c) (UnsafeRawPointer, Int) -> Void = { address, w in
        let job = address.assumingMemoryBound(to: IndexJob.self)
        let count = job.pointee.count, workers = job.pointee.workers
        let lo = count * w / workers
        let hi = count * (w + 1) / workers
        if lo < hi { job.pointee.type.invoke(job.pointee.kernel, lo..<hi) }
    }
}
