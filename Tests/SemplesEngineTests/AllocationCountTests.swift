import XCTest
import SemplesEngine

final class AllocationCountTests: XCTestCase {
    func testTheCounterSeesAllocationsAndTheirAbsence() throws {
        try XCTSkipUnless(AllocationCount.isCounting, "a sanitizer owns malloc in this build")
        // Ten arrays that cannot be elided: each is a heap allocation the counter must see.
        var kept: [[Int]] = []
        let (_, made) = AllocationCount.counting {
            for i in 0..<10 { kept.append([Int](repeating: i, count: 1000 + i)) }
        }
        XCTAssertGreaterThanOrEqual(made, 10)
        XCTAssertEqual(kept.count, 10)
        // A GEMM into memory that already exists allocates nothing once the library has set up
        // its buffers (the first call does). On OpenBLAS: oneDNN's sgemm allocates its own
        // packing buffers on every call, which `semples bench` reports as they are.
        let savedBackend = BLAS.backend
        defer { try? BLAS.select(savedBackend) }
        try BLAS.select(.openblas)
        let a = Tensor([64, 64]), b = Tensor([64, 64]), c = Tensor([64, 64])
        BLAS.gemm(m: 64, n: 64, k: 64, a: a.data, lda: 64, b: b.data, ldb: 64, c: c.data, ldc: 64)
        let (_, none) = AllocationCount.counting {
            BLAS.gemm(m: 64, n: 64, k: 64, a: a.data, lda: 64, b: b.data, ldb: 64, c: c.data, ldc: 64)
        }
        XCTAssertEqual(none, 0)
    }

    /// Kernel runs hand the workers an address and a type, no closure: with two workers, after a
    /// warm-up (which starts the worker thread), neither form allocates. The closure form, run the
    /// same way, does (its context), which shows the counter sees what a run would allocate.
    func testKernelRunsAllocateNothingOnTwoWorkers() throws {
        try XCTSkipUnless(AllocationCount.isCounting, "a sanitizer owns malloc in this build")
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let n = 100_003
        let source = Tensor([n]), ranges = Tensor([n]), indices = Tensor([n])
        for i in 0..<n { source.data[i] = Float(i % 97) - 48 }
        let rangeKernel = AffineRanges(source: source.data, destination: ranges.data)
        let indexKernel = AffineIndices(source: source.data, destination: indices.data)
        Parallel.forRanges(n, rangeKernel)
        Parallel.forEach(n, indexKernel)
        Parallel.forEachWithoutBLAS(n, indexKernel)

        let (_, forRanges) = AllocationCount.counting { Parallel.forRanges(n, rangeKernel) }
        let (_, forEach) = AllocationCount.counting { Parallel.forEach(n, indexKernel) }
        let (_, withoutBLAS) = AllocationCount.counting { Parallel.forEachWithoutBLAS(n, indexKernel) }
        XCTAssertEqual(forRanges, 0, "Parallel.forRanges with a kernel")
        XCTAssertEqual(forEach, 0, "Parallel.forEach with a kernel")
        XCTAssertEqual(withoutBLAS, 0, "Parallel.forEachWithoutBLAS with a kernel")

        let sp = source.data, dp = ranges.data
        let closure = { Parallel.forRanges(n) { r in for i in r { dp[i] = 2 * sp[i] + 1 } } }
        closure()
        let (_, closureRun) = AllocationCount.counting(closure)
        XCTAssertGreaterThan(closureRun, 0, "the closure form of forRanges on two workers")
    }

    /// The kernel forms split the work exactly as the closure forms (the same chunks, bounds rounded
    /// to multiples of 8 for forRanges) and compute the same, on 1, 2 and 3 workers, over an odd
    /// count: every element records the bounds of the range that wrote it.
    func testKernelRunsSplitAndComputeAsTheClosureForms() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        let n = 100_003
        let source = Tensor([n])
        for i in 0..<n { source.data[i] = Float(i % 97) - 48 }
        let sp = source.data
        for workers in 1...3 {
            Parallel.threads = workers
            for grain in [16_384, 1000] {
                let kernel = (Tensor([n]), Tensor([n]), Tensor([n])), closure = (Tensor([n]), Tensor([n]), Tensor([n]))
                Parallel.forRanges(n, grain: grain, RecordRanges(source: sp, value: kernel.0.data, lower: kernel.1.data,
                                                                 upper: kernel.2.data))
                let (cv, cl, cu) = (closure.0.data, closure.1.data, closure.2.data)
                Parallel.forRanges(n, grain: grain) { r in
                    for i in r {
                        cv[i] = 2 * sp[i] + 1
                        cl[i] = Float(r.lowerBound)
                        cu[i] = Float(r.upperBound)
                    }
                }
                XCTAssertTrue(kernel.0.toArray() == closure.0.toArray(),
                              "forRanges values, \(workers) workers, grain \(grain)")
                XCTAssertTrue(kernel.1.toArray() == closure.1.toArray(),
                              "forRanges lower bounds, \(workers) workers, grain \(grain)")
                XCTAssertTrue(kernel.2.toArray() == closure.2.toArray(),
                              "forRanges upper bounds, \(workers) workers, grain \(grain)")
                if workers > 1 && grain == 1000 {
                    XCTAssertEqual(Set(kernel.1.toArray()).count, workers, "forRanges split into \(workers) ranges")
                }
            }
            let kernelEach = Tensor([n]), closureEach = Tensor([n])
            let kernelWithout = Tensor([n]), closureWithout = Tensor([n])
            Parallel.forEach(n, AffineIndices(source: sp, destination: kernelEach.data))
            let ce = closureEach.data, cw = closureWithout.data
            Parallel.forEach(n) { i in ce[i] = 2 * sp[i] + 1 }
            Parallel.forEachWithoutBLAS(n, AffineIndices(source: sp, destination: kernelWithout.data))
            Parallel.forEachWithoutBLAS(n) { i in cw[i] = 2 * sp[i] + 1 }
            XCTAssertTrue(kernelEach.toArray() == closureEach.toArray(), "forEach, \(workers) workers")
            XCTAssertTrue(kernelWithout.toArray() == closureWithout.toArray(), "forEachWithoutBLAS, \(workers) workers")
            XCTAssertEqual(kernelEach.data[n - 1], 2 * sp[n - 1] + 1)
            // forEach's chunks: worker w gets count·w/workers ..< count·(w + 1)/workers.
            let lower = Tensor([n])
            Parallel.forEachWithoutBLAS(n, RecordChunks(lower: lower.data))
            XCTAssertEqual(Set(lower.toArray()), Set((0..<workers).map { Float(n * $0 / workers) }),
                           "forEach chunks, \(workers) workers")
        }
    }
}

/// destination = 2·source + 1 over a range.
private struct AffineRanges: RangeKernel {
    let source: UnsafeMutablePointer<Float>, destination: UnsafeMutablePointer<Float>
    func run(_ range: Range<Int>) {
        for i in range { destination[i] = 2 * source[i] + 1 }
    }
}

/// destination = 2·source + 1 at one index.
private struct AffineIndices: IndexKernel {
    let source: UnsafeMutablePointer<Float>, destination: UnsafeMutablePointer<Float>
    func run(_ i: Int) { destination[i] = 2 * source[i] + 1 }
}

/// As `AffineRanges`, also recording each element's range bounds.
private struct RecordRanges: RangeKernel {
    let source: UnsafeMutablePointer<Float>
    let value: UnsafeMutablePointer<Float>, lower: UnsafeMutablePointer<Float>, upper: UnsafeMutablePointer<Float>
    func run(_ r: Range<Int>) {
        for i in r {
            value[i] = 2 * source[i] + 1
            lower[i] = Float(r.lowerBound)
            upper[i] = Float(r.upperBound)
        }
    }
}

/// Records, for every index, where the chunk that ran it starts (through its own `invoke`, which
/// the workers call with the chunk).
private struct RecordChunks: IndexKernel {
    let lower: UnsafeMutablePointer<Float>
    func run(_ i: Int) {}

    static func invoke(_ kernel: UnsafeRawPointer, _ indices: Range<Int>) {
        let k = kernel.assumingMemoryBound(to: RecordChunks.self).pointee
        for i in indices { k.lower[i] = Float(indices.lowerBound) }
    }
}
