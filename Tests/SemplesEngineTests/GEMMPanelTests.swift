import XCTest
@testable import SemplesEngine

/// The engine cuts large GEMMs into panels over its own workers. Each panel must see the right
/// slices of A, B and C for every transpose combination, leading dimension and panel edge.
final class GEMMPanelTests: XCTestCase {
    /// Reference in float64: C = alpha·op(A)·op(B) + beta·C.
    private func reference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Double] {
        var out = c.map(Double.init)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let x = transA ? a[p * lda + i] : a[i * lda + p]
                    let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(x) * Double(y)
                }
                out[i * ldc + j] = Double(alpha) * s + Double(beta) * Double(c[i * ldc + j])
            }
        }
        return out
    }

    func testPanelsMatchAFloat64ReferenceForEveryLayout() {
        let saved = Parallel.threads, savedBackend = BLAS.backend
        defer { Parallel.configure(threads: saved); try? BLAS.select(savedBackend) }
        var rng = SeededGenerator(seed: 71)
        // Every backend this machine can load (OpenBLAS always; oneDNN where libdnnl.so.2 is
        // installed, as .ci/run does), each alone and cut into panels.
        for backend in BLAS.Backend.allCases {
            if let reason = BLAS.availability(backend) {
                print("GEMMPanelTests: \(backend.rawValue) not checked: \(reason)")
                continue
            }
            try? BLAS.select(backend)
        // Shapes chosen so that panels are cut (work ≥ 2 MFLOP), along rows (m ≥ n) and along
        // columns (n > m), with sizes that are not multiples of 16 and a last panel shorter than the rest.
        let shapes: [(m: Int, n: Int, k: Int)] = [(197, 64, 197), (61, 333, 129), (1001, 97, 40), (35, 1030, 70)]
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            for (m, n, k) in shapes {
                for transA in [false, true] {
                    for transB in [false, true] {
                        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
                        let a = (0..<((transA ? k : m) * lda)).map { _ in rng.nextNormal() }
                        let b = (0..<((transB ? n : k) * ldb)).map { _ in rng.nextNormal() }
                        var c = (0..<(m * ldc)).map { _ in rng.nextNormal() }
                        let want = reference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7,
                                             a: a, lda: lda, b: b, ldb: ldb, beta: 0.5, c: c, ldc: ldc)
                        let before = c
                        a.withUnsafeBufferPointer { pa in
                            b.withUnsafeBufferPointer { pb in
                                c.withUnsafeMutableBufferPointer { pc in
                                    BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7,
                                              a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                                              beta: 0.5, c: pc.baseAddress!, ldc: ldc)
                                }
                            }
                        }
                        // Each entry is a k-term float32 dot product of unit normals: its rounding error
                        // is below k·ε·Σ|a||b| ≈ k·ε·k (|a||b| ≤ ~1 on average) = 1e-7·k² at k = 333,
                        // far tighter in practice; a wrong slice is off by O(√k) ≥ 6.
                        let bound = 1.2e-7 * Double(k) * Double(k).squareRoot() + 1e-5
                        for i in 0..<m {
                            for j in 0..<ldc {
                                let got = Double(c[i * ldc + j])
                                if j >= n {
                                    XCTAssertEqual(c[i * ldc + j], before[i * ldc + j], "padding column written")
                                    continue
                                }
                                let err = abs(got - want[i * ldc + j])
                                if err > bound {
                                    XCTFail("\(backend) threads \(threads) m\(m) n\(n) k\(k) tA \(transA) tB \(transB): C[\(i),\(j)] off by \(err)")
                                    return
                                }
                            }
                        }
                    }
                }
            }
        }
        }
    }

    func testSmallGEMMsAreNotCut() {
        XCTAssertEqual(BLAS.panels(m: 16, n: 16, k: 16), 1)
        XCTAssertGreaterThan(BLAS.panels(m: 1736, n: 384, k: 384), 1)
    }
}
