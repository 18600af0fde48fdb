import Foundation
import XCTest
@testable import SemplesEngine

/// The element-wise kernels in each compiled variant this CPU can run (always the x86-64 baseline;
/// AVX2 + FMA where the CPU has them), against float64 references. Every bound is derived from the
/// polynomials' own errors (exp: relative 3e-7, erf: absolute 5e-7, both checked first) plus a few
/// float32 roundings (2⁻²⁴ ≈ 6e-8 relative each), so a variant that computed something else, or
/// lost the tail of a row, fails whichever CPU runs it.
final class KernelVariantTests: XCTestCase {
    private var initial = ElementwiseKernels.active

    override func setUp() { initial = ElementwiseKernels.active }
    override func tearDown() { ElementwiseKernels.select(initial) }

    private func eachVariant(_ body: (ElementwiseKernels.Variant) throws -> Void) rethrows {
        let variants = ElementwiseKernels.available
        XCTAssertTrue(variants.contains(.generic), "the baseline variant runs everywhere")
        for v in variants {
            XCTAssertTrue(ElementwiseKernels.select(v))
            XCTAssertEqual(ElementwiseKernels.active, v)
            try body(v)
        }
    }

    func testVariantFollowsTheCPUFlags() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }
            .map { Set($0.split(separator: " ").map(String.init)) } ?? []
        guard !flags.isEmpty else { throw XCTSkip("no /proc/cpuinfo flags here") }
        let canAVX2 = flags.contains("avx2") && flags.contains("fma")
        XCTAssertEqual(ElementwiseKernels.available.contains(.avx2FMA), canAVX2)
        if ProcessInfo.processInfo.environment["SEMPLES_SIMD"] == "generic" {
            XCTAssertEqual(initial, .generic)
        } else {
            XCTAssertEqual(initial, canAVX2 ? .avx2FMA : .generic, "the best variant is chosen by default")
        }
    }

    func testExpAndErfAgreeWithLibm() {
        var xs: [Float] = []
        var x: Float = -80
        while x < 80 { xs.append(x); x += 0.0137 }
        xs += [-200, 200, 9, -9, 0]
        eachVariant { v in
            let e = ElementwiseKernels.exp(xs), r = ElementwiseKernels.erf(xs)
            var worstExp = 0.0, worstErf = 0.0
            for (i, x) in xs.enumerated() where abs(x) < 80 {
                let ref = Foundation.exp(Double(x))
                worstExp = max(worstExp, abs(Double(e[i]) - ref) / ref)
                if abs(x) < 6 { worstErf = max(worstErf, abs(Double(r[i]) - Foundation.erf(Double(x)))) }
            }
            XCTAssertLessThan(worstExp, 3e-7, "\(v)")
            XCTAssertLessThan(worstErf, 5e-7, "\(v)")
            XCTAssertLessThan(e[xs.count - 5], 1e-37, "\(v): exp(−200) underflows to ~0")
            XCTAssertEqual(r[xs.count - 3], 1, accuracy: 1e-7, "\(v)")
            XCTAssertEqual(r[xs.count - 2], -1, accuracy: 1e-7, "\(v)")
        }
    }

    /// f and f′ in float64 for each activation.
    private func reference(_ act: Activation, _ x: Double) -> (value: Double, derivative: Double) {
        switch act {
        case .gelu:
            let cdf = 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot()))
            let pdf = Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot()
            return (x * cdf, cdf + x * pdf)
        case .quickGELU:
            let s = 1 / (1 + Foundation.exp(-1.702 * x))
            return (x * s, s + 1.702 * x * s * (1 - s))
        case .relu:
            return (max(x, 0), x > 0 ? 1 : 0)
        case .sigmoid:
            let s = 1 / (1 + Foundation.exp(-x))
            return (s, s * (1 - s))
        case .identity:
            return (x, 1)
        }
    }

    /// Error bound of the float32 kernels at x for the value (v) and derivative (d): the erf error
    /// enters GELU as 0.5·|x|·5e-7 (value) and 0.5·5e-7 (derivative); exp's 3e-7 enters the
    /// logistic forms relatively; 8 float32 roundings (5e-7 relative) cover the remaining arithmetic.
    private func bounds(_ act: Activation, _ x: Double, _ ref: (value: Double, derivative: Double)) -> (Double, Double) {
        let rounding = 5e-7
        switch act {
        case .gelu:
            let pdf = Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot()
            return (2.5e-7 * abs(x) + rounding * abs(ref.value) + 1e-37,
                    2.5e-7 + 3e-7 * abs(x * pdf) + rounding * (1 + abs(x * pdf)) + 1e-37)
        case .quickGELU, .sigmoid:
            return ((3e-7 + rounding) * abs(ref.value) + 1e-37,
                    (3e-7 + rounding) * (1 + 1.702 * abs(x)) + 1e-37)
        case .relu, .identity:
            return (0, 0)
        }
    }

    func testActivationsAgainstFloat64InEachVariant() {
        var g = SeededGenerator(seed: 41)
        let rows = 5, cols = 37  // 4 full lanes and a tail of 5 per row
        let n = rows * cols
        let x = Tensor([rows, cols]), bias = Tensor([cols]), dy = Tensor([rows, cols])
        for i in 0..<n { x.data[i] = 3 * g.nextNormal(); dy.data[i] = g.nextNormal() }
        for j in 0..<cols { bias.data[j] = g.nextNormal() }
        x.data[3] = 0
        eachVariant { v in
            for act in [Activation.gelu, .quickGELU, .relu, .sigmoid, .identity] {
                // forward(x) and backward at x.
                let y = Tensor([rows, cols]), dx = Tensor([rows, cols])
                act.forward(x.view, into: y.view)
                for i in 0..<n { dx.data[i] = 0.25 }
                act.backward(dy.view, x: x.view, dx: dx.view, accumulate: true)
                for i in 0..<n {
                    let xi = Double(x.data[i])
                    let ref = reference(act, xi), (bv, bd) = bounds(act, xi, ref)
                    XCTAssertEqual(Double(y.data[i]), ref.value, accuracy: bv, "\(v) \(act) f(\(xi))")
                    // Plus the roundings of g·f′ and of the accumulated sum: 2⁻²³ of the result.
                    let expected = 0.25 + Double(dy.data[i]) * ref.derivative
                    XCTAssertEqual(Double(dx.data[i]), expected,
                                   accuracy: bd * abs(Double(dy.data[i])) + 1.2e-7 * (abs(expected) + 0.25),
                                   "\(v) \(act) f′(\(xi))")
                }
                // Fused bias: pre becomes x + bias, out f(x + bias).
                let pre = Tensor([rows, cols]), out = Tensor([rows, cols])
                pre.data.update(from: x.data, count: n)
                act.forwardAddingBias(pre.view, bias: bias.view, into: out.view)
                for i in 0..<n {
                    let z = x.data[i] + bias.data[i % cols]
                    XCTAssertEqual(pre.data[i], z, "\(v) \(act): pre keeps x + bias")
                    let ref = reference(act, Double(z))
                    XCTAssertEqual(Double(out.data[i]), ref.value, accuracy: bounds(act, Double(z), ref).0,
                                   "\(v) \(act) f(x + b)")
                }
            }
        }
    }

    func testSoftmaxRowsCausalAndBackwardInEachVariant() {
        var g = SeededGenerator(seed: 42)
        let rows = 6, cols = 19, ld = 24
        let s = Tensor([rows * ld]), dp = Tensor([rows * ld])
        for i in 0..<s.count { s.data[i] = 5 * g.nextNormal(); dp.data[i] = g.nextNormal() }
        eachVariant { v in
            for causal in [false, true] {
                let p = Tensor([rows * ld])
                p.data.update(from: s.data, count: s.count)
                Softmax.rows(p.data, rows: rows, columns: cols, leadingDimension: ld, causal: causal)
                let dx = Tensor([rows * ld])
                for i in 0..<dx.count { dx.data[i] = 0.5 }
                Softmax.rowsBackward(dp.data, p.data, dx.data, rows: rows, columns: cols, leadingDimension: ld,
                                     scale: 0.125, accumulate: true)
                for r in 0..<rows {
                    let len = causal ? r + 1 : cols
                    let row = (0..<len).map { Double(s.data[r * ld + $0]) }
                    let m = row.max()!
                    let z = row.map { Foundation.exp($0 - m) }.reduce(0, +)
                    let q = (0..<cols).map { $0 < len ? Foundation.exp(row[$0] - m) / z : 0 }
                    let dot = (0..<cols).map { q[$0] * Double(dp.data[r * ld + $0]) }.reduce(0, +)
                    for j in 0..<cols {
                        // exp's 3e-7 and the sum's c·2⁻²⁴ relative error, times p ≤ 1.
                        XCTAssertEqual(Double(p.data[r * ld + j]), q[j], accuracy: (3e-7 + Double(cols) * 6e-8) * q[j] + 1e-30,
                                       "\(v) causal \(causal) p[\(r), \(j)]")
                        let ref = 0.5 + 0.125 * q[j] * (Double(dp.data[r * ld + j]) - dot)
                        XCTAssertEqual(Double(dx.data[r * ld + j]), ref, accuracy: 1e-6, "\(v) causal \(causal) dx[\(r), \(j)]")
                    }
                    for j in cols..<ld {
                        XCTAssertEqual(p.data[r * ld + j], s.data[r * ld + j], "\(v): padding past the columns untouched")
                        XCTAssertEqual(dx.data[r * ld + j], 0.5, "\(v): padding past the columns untouched")
                    }
                }
            }
        }
    }

    /// Bias gradients (column sums) and LayerNorm's parameter gradients over column counts that
    /// leave partial 32-, 16- and 8-column blocks, at 1 and 2 workers, in each variant. Bound: a sum
    /// of n float32 terms is off by at most n·2⁻²⁴·Σ|terms| (plus the product's rounding).
    func testColumnReductionsInEachVariant() {
        var g = SeededGenerator(seed: 43)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for c in [7, 37, 70, 131] {
            let n = 29
            let dy = Tensor([n, c]), x = Tensor([n, c]), mean = Tensor([n]), rstd = Tensor([n])
            for i in 0..<dy.count { dy.data[i] = g.nextNormal(); x.data[i] = 2 * g.nextNormal() + 0.5 }
            for i in 0..<n { mean.data[i] = g.nextNormal() * 0.1; rstd.data[i] = 0.5 + abs(g.nextNormal()) }
            eachVariant { v in
                for threads in [1, 2] {
                    Parallel.threads = threads
                    let sums = Tensor([c])
                    for j in 0..<c { sums.data[j] = Float(j) * 0.01 }
                    sumRows(dy.view, into: sums.view)
                    let store = ParameterStore()
                    let norm = LayerNorm(store, "n", channels: c, eps: 1e-6)
                    store.materialise()
                    for j in 0..<c { norm.weight.value.data[j] = 1; norm.weight.grad!.data[j] = 0.25; norm.bias.grad!.data[j] = -0.5 }
                    norm.backward(dy.view, x: x.view, mean: mean.view, rstd: rstd.view, dx: nil)
                    for j in 0..<c {
                        var s = 0.0, sw = 0.0, sa = 0.0, swa = 0.0
                        for i in 0..<n {
                            let d = Double(dy.data[i * c + j])
                            let xh = (Double(x.data[i * c + j]) - Double(mean.data[i])) * Double(rstd.data[i])
                            s += d; sa += abs(d); sw += d * xh; swa += abs(d * xh)
                        }
                        let bound = Double(n + 2) * 6e-8
                        XCTAssertEqual(Double(sums.data[j]), Double(j) * 0.01 + s, accuracy: bound * (sa + 1),
                                       "\(v) threads \(threads) c \(c): column \(j) sum")
                        XCTAssertEqual(Double(norm.bias.grad!.data[j]), -0.5 + s, accuracy: bound * (sa + 1),
                                       "\(v) threads \(threads) c \(c): bias gradient \(j)")
                        XCTAssertEqual(Double(norm.weight.grad!.data[j]), 0.25 + sw, accuracy: (bound + 2.4e-7) * (swa + 1),
                                       "\(v) threads \(threads) c \(c): weight gradient \(j)")
                    }
                }
            }
        }
    }

    /// Linear with the bias (and a residual) laid into y before the GEMM accumulates: against
    /// float64, with and without bias; bound k·2⁻²⁴·Σ|terms| for a k-term float32 dot product.
    func testLinearForwardWithBiasAndResidual() {
        var g = SeededGenerator(seed: 44)
        let n = 9, inF = 13, outF = 11
        for hasBias in [true, false] {
            let store = ParameterStore()
            let layer = Linear(store, "l", inFeatures: inF, outFeatures: outF, bias: hasBias)
            store.materialise()
            for p in store.parameters { for i in 0..<p.count { p.value.data[i] = g.nextNormal() } }
            let x = Tensor([n, inF]), residual = Tensor([n, outF]), y = Tensor([n, outF]), y2 = Tensor([n, outF])
            for i in 0..<x.count { x.data[i] = g.nextNormal() }
            for i in 0..<residual.count { residual.data[i] = g.nextNormal(); y.data[i] = .nan; y2.data[i] = .nan }
            layer.forward(x.view, into: y.view)
            layer.forward(x.view, addingTo: residual.view, into: y2.view)
            for i in 0..<n {
                for o in 0..<outF {
                    var s = hasBias ? Double(layer.bias!.value.data[o]) : 0, a = abs(s)
                    for k in 0..<inF {
                        let t = Double(x.data[i * inF + k]) * Double(layer.weight.value.data[o * inF + k])
                        s += t; a += abs(t)
                    }
                    let bound = Double(inF + 2) * 6e-8 * (a + abs(Double(residual.data[i * outF + o])))
                    XCTAssertEqual(Double(y.data[i * outF + o]), s, accuracy: bound, "bias \(hasBias) y[\(i), \(o)]")
                    XCTAssertEqual(Double(y2.data[i * outF + o]), s + Double(residual.data[i * outF + o]), accuracy: bound,
                                   "bias \(hasBias) residual y[\(i), \(o)]")
                }
            }
        }
    }
}
