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
}

