import XCTest
@testable import SemplesEngine

/// bfloat16 GEMMs (`precision: bf16`): rounding, the products, and the refusal where the CPU
/// cannot run them.
final class BF16Tests: XCTestCase {
    override func tearDown() {
        unsetenv("SEMPLES_BF16")
        try? BLAS.setPrecision(.fp32)
    }

    func testRoundingIsToNearestEven() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),   // 1
            (0x3F80_8000, 0x3F80),   // 1 + 2⁻⁸: a tie, to the even 1
            (0x3F81_8000, 0x3F82),   // 1 + 3·2⁻⁸: a tie, to the even 1 + 2⁻⁶
            (0x3F80_8001, 0x3F81),   // just above the tie
            (0x3F80_7FFF, 0x3F80),   // just below
            (0x8000_0000, 0x8000),   // −0
            (0x7F80_0000, 0x7F80),   // +∞
            (0x7F7F_FFFF, 0x7F80),   // the largest float rounds up to +∞
            (0xC040_0000, 0xC040),   // −3
        ]
        for (bits, want) in cases {
            XCTAssertEqual(BLAS.bf16Bits(Float(bitPattern: bits)), want, String(bits, radix: 16))
        }
        XCTAssertTrue(BLAS.roundedToBF16(.nan).isNaN)
        // Every rounded value is within half a bf16 step (2⁻⁸ relative) of the input.
        var g = SeededGenerator(seed: 3)
        for _ in 0..<10_000 {
            let x = g.nextNormal() * 100
            XCTAssertLessThanOrEqual(abs(BLAS.roundedToBF16(x) - x), abs(x) * 0x1p-8)
        }
    }

    /// The emulated products against float64 sums of the bf16-rounded operands, for every
    /// transpose and as engine panels; and they must differ from the float32 GEMM by about the
    /// bf16 rounding (a GEMM that skipped the rounding would fail here).
    func testEmulatedGEMMMultipliesRoundedOperands() throws {
        setenv("SEMPLES_BF16", "emulate", 1)
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        var g = SeededGenerator(seed: 5)
        let m = 150, n = 70, k = 300
        for threads in [1, 2] {
            Parallel.configure(threads: threads)
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in g.nextNormal() }
                    let b = (0..<(k * n)).map { _ in g.nextNormal() }
                    let lda = transA ? m : k, ldb = transB ? k : n
                    func product(_ p: Precision) throws -> [Float] {
                        try BLAS.setPrecision(p)
                        var c = [Float](repeating: 0, count: m * n)
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                                  c: &c, ldc: n)
                        return c
                    }
                    let bf16 = try product(.bf16), fp32 = try product(.fp32)
                    XCTAssertEqual(BLAS.bf16Mode, nil)
                    var worstReference = 0.0, meanShift = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var exact = 0.0, magnitude = 0.0
                            for p in 0..<k {
                                let x = Double(BLAS.roundedToBF16(transA ? a[p * lda + i] : a[i * lda + p]))
                                let y = Double(BLAS.roundedToBF16(transB ? b[j * ldb + p] : b[p * ldb + j]))
                                exact += x * y
                                magnitude += abs(x * y)
                            }
                            // float32 summation of k exact products: at most k·ε32·Σ|xy| (ε32 = 2⁻²⁴).
                            let bound = Double(k) * 0x1p-24 * magnitude
                            worstReference = max(worstReference, abs(Double(bf16[i * n + j]) - exact) / bound)
                            meanShift += abs(Double(bf16[i * n + j] - fp32[i * n + j]))
                        }
                    }
                    XCTAssertLessThanOrEqual(worstReference, 1, "threads \(threads) tA \(transA) tB \(transB)")
                    // Rounding each operand moves it by up to 2⁻⁹ relative (about 2⁻¹⁰ on average); a
                    // dot product of k unit normals then moves by about √k·2⁻⁹·… ≈ 0.02 on average,
                    // while float32 alone would move it by about √k·2⁻²⁴ ≈ 1e-6.
                    meanShift /= Double(m * n)
                    XCTAssertGreaterThan(meanShift, 1e-3, "bf16 results equal float32 ones: nothing was rounded")
                }
            }
        }
    }

    func testBF16IsRefusedWithTheReasonWhereTheCPUCannot() throws {
        unsetenv("SEMPLES_BF16")
        if CPUInfo.current.flags.contains("avx512_bf16") {
            // This CPU has the instructions: the hardware path must run and agree with the
            // emulated one to float32 summation (the same products, summed in another order).
            guard BLAS.bf16Unavailable() == nil else {
                throw XCTSkip("AVX-512 BF16 present but oneDNN's bf16 GEMM is not: \(BLAS.bf16Unavailable()!)")
            }
            var g = SeededGenerator(seed: 9)
            let m = 64, n = 48, k = 200
            let a = (0..<(m * k)).map { _ in g.nextNormal() }, b = (0..<(k * n)).map { _ in g.nextNormal() }
            try BLAS.setPrecision(.bf16)
            XCTAssertEqual(BLAS.bf16Mode, .hardware)
            var hw = [Float](repeating: 0, count: m * n)
            BLAS.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &hw, ldc: n)
            setenv("SEMPLES_BF16", "emulate", 1)
            try BLAS.setPrecision(.bf16)
            var em = [Float](repeating: 0, count: m * n)
            BLAS.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &em, ldc: n)
            // Two float32 sums of the same k products (|product| ≲ 10): within 2·k·ε32·Σ|xy| ≈ 2·200·6e-8·160.
            for i in 0..<(m * n) { XCTAssertEqual(hw[i], em[i], accuracy: 4e-3) }
        } else {
            XCTAssertThrowsError(try BLAS.setPrecision(.bf16)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("AVX-512 BF16"), text)
                XCTAssertTrue(text.contains(CPUInfo.current.model), text)
                XCTAssertTrue(text.contains("precision: fp32"), text)
            }
            XCTAssertEqual(BLAS.precision, .fp32)
        }
    }
}
