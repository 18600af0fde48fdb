import XCTest
@testable import SemplesEngine

/// Finite-difference checks of every backward in the engine, through `GradientCheck`.
final class LayerGradientTests: XCTestCase {
    var rng = SeededGenerator(seed: 42)

    func testLinear() {
        let lin = Linear(weight: Parameter(name: "w", dims: [5, 7]), bias: Parameter(name: "b", dims: [5]))
        randomize(lin.weight.value, &rng); randomize(lin.bias!.value, &rng)
        let x = randomTensor([3, 7], &rng), w = randomTensor([3, 5], &rng)
        let y = Tensor([3, 5]), dx = Tensor([3, 7])
        lin.forward(x.view, into: y.view)
        lin.backward(w.view, x: x.view, dx: dx.view)
        GradientCheck().assertGradients(checked: [("x", x.view, dx.view), ("w", lin.weight.value, lin.weight.grad!),
                                                  ("b", lin.bias!.value, lin.bias!.grad!)]) {
            lin.forward(x.view, into: y.view); return weightedSum(y.view, w.view)
        }
    }

    func testLinearSkipsFrozenParameters() {
        let lin = Linear(weight: Parameter(name: "w", dims: [2, 3]), bias: Parameter(name: "b", dims: [2]))
        randomize(lin.weight.value, &rng)
        lin.weight.requiresGradient = false
        let x = randomTensor([4, 3], &rng), dy = randomTensor([4, 2], &rng), dx = Tensor([4, 3])
        lin.backward(dy.view, x: x.view, dx: dx.view)
        XCTAssertEqual(lin.weight.grad!.toArray(), [Float](repeating: 0, count: 6))
        XCTAssertNotEqual(lin.bias!.grad!.toArray(), [0, 0])
        lin.backward(dy.view, x: x.view, dx: dx.view, parameterGradients: false)
        XCTAssertNotEqual(dx.toArray(), [Float](repeating: 0, count: 12))
    }

    func testLayerNorm() {
        let ln = LayerNorm(weight: Parameter(name: "g", dims: [6]), bias: Parameter(name: "b", dims: [6]), eps: 1e-5)
        randomize(ln.weight.value, &rng, scale: 0.3, offset: 1); randomize(ln.bias.value, &rng)
        let x = randomTensor([4, 6], &rng), w = randomTensor([4, 6], &rng)
        let y = Tensor([4, 6]), dx = Tensor([4, 6]), m = Tensor([4]), r = Tensor([4])
        ln.forward(x.view, into: y.view, mean: m.view, rstd: r.view)
        ln.backward(w.view, x: x.view, mean: m.view, rstd: r.view, dx: dx.view)
        GradientCheck().assertGradients(checked: [("x", x.view, dx.view), ("g", ln.weight.value, ln.weight.grad!),
                                                  ("b", ln.bias.value, ln.bias.grad!)]) {
            ln.forward(x.view, into: y.view, mean: m.view, rstd: r.view); return weightedSum(y.view, w.view)
        }
    }

    func testActivations() {
        for act in [Activation.gelu, .quickGELU, .relu, .sigmoid] {
            let x = randomTensor([37], &rng, scale: 2), w = randomTensor([37], &rng)
            for i in 0..<37 where abs(x.data[i]) < 0.05 { x.data[i] += 0.2 }  // keep ReLU's kink away
            let y = Tensor([37]), dx = Tensor([37])
            act.backward(w.view, x: x.view, dx: dx.view)
            var check = GradientCheck(); check.step = 1e-2; check.samples = 37
            let failures = check.run(checked: [("x", x.view, dx.view)]) {
                act.forward(x.view, into: y.view); return weightedSum(y.view, w.view)
            }
            XCTAssertTrue(failures.isEmpty, "\(act): \(failures)")
        }
    }

    func testSoftmax() {
        let x = randomTensor([3, 11], &rng), w = randomTensor([3, 11], &rng)
        let p = Tensor([3, 11]), dx = Tensor([3, 11])
        Softmax.forward(x.view, into: p.view)
        Softmax.backward(w.view, p: p.view, dx: dx.view)
        GradientCheck().assertGradients(checked: [("x", x.view, dx.view)]) {
            Softmax.forward(x.view, into: p.view); return weightedSum(p.view, w.view)
        }
    }

    func testAttention() {
        for causal in [false, true] {
            let store = ParameterStore()
            let att = MultiHeadAttention(store, "attn", dimension: 8, headCount: 2, causal: causal)
            store.materialise()
            for p in store.parameters { randomize(p.value, &rng, scale: 0.4) }
            let arena = Arena(capacity: 1 << 14)
            let cache = att.makeCache(arena, batch: 2, tokens: 4), scratch = att.makeScratch(arena, batch: 2, tokens: 4)
            let x = randomTensor([2, 4, 8], &rng), w = randomTensor([2, 4, 8], &rng)
            let y = Tensor([2, 4, 8]), dx = Tensor([2, 4, 8])
            att.forward(x.view, into: y.view, cache: cache)
            att.backward(w.view, x: x.view, cache: cache, scratch: scratch, dx: dx.view)
            var checked = [("x", x.view, dx.view)]
            for p in store.parameters { checked.append((p.name, p.value, p.grad!)) }
            GradientCheck().assertGradients(checked: checked) {
                att.forward(x.view, into: y.view, cache: cache); return weightedSum(y.view, w.view)
            }
        }
    }

    func testConv2dBothLayouts() {
        for (k, s, p) in [(3, 1, 1), (2, 2, 0)] {
            let conv = Conv2d(weight: Parameter(name: "w", dims: [3, 2, k, k]), bias: Parameter(name: "b", dims: [3]),
                              stride: s, padding: p)
            randomize(conv.weight.value, &rng); randomize(conv.bias!.value, &rng)
            let x = randomTensor([2, 2, 5, 4], &rng)
            let (ho, wo) = conv.outputSize(height: 5, width: 4)
            let cols = Tensor(conv.columnsShape(batch: 2, height: 5, width: 4))
            let dcols = Tensor(conv.columnsShape(batch: 2, height: 5, width: 4))
            // NCHW output
            let w = randomTensor([2, 3, ho, wo], &rng), y = Tensor([2, 3, ho, wo]), dx = Tensor([2, 2, 5, 4])
            conv.forward(x.view, into: y.view, columns: cols.view)
            conv.backward(w.view, x: x.view, columns: cols.view, columnGradient: dcols.view, dx: dx.view)
            GradientCheck().assertGradients(checked: [("x", x.view, dx.view), ("w", conv.weight.value, conv.weight.grad!),
                                                      ("b", conv.bias!.value, conv.bias!.grad!)]) {
                conv.forward(x.view, into: y.view, columns: cols.view); return weightedSum(y.view, w.view)
            }
            // token output
            conv.weight.grad!.zero(); conv.bias!.grad!.zero()
            let wt = randomTensor([2, ho * wo, 3], &rng), yt = Tensor([2, ho * wo, 3]), dxt = Tensor([2, 2, 5, 4])
            conv.forwardTokens(x.view, into: yt.view, columns: cols.view)
            conv.backwardTokens(wt.view, x: x.view, columns: cols.view, columnGradient: dcols.view, dx: dxt.view)
            GradientCheck().assertGradients(checked: [("x", x.view, dxt.view), ("w", conv.weight.value, conv.weight.grad!),
                                                      ("b", conv.bias!.value, conv.bias!.grad!)]) {
                conv.forwardTokens(x.view, into: yt.view, columns: cols.view); return weightedSum(yt.view, wt.view)
            }
        }
    }

    func testBilinearBackward() {
        for align in [true, false] {
            let x = randomTensor([2, 3, 4], &rng), w = randomTensor([2, 7, 9], &rng)
            let y = Tensor([2, 7, 9]), dx = Tensor([2, 3, 4])
            Resize.bilinearBackward(w.view, dx: dx.view, alignCorners: align)
            var check = GradientCheck(); check.samples = 24
            let failures = check.run(checked: [("x", x.view, dx.view)]) {
                Resize.bilinear(x.view, into: y.view, alignCorners: align); return weightedSum(y.view, w.view)
            }
            XCTAssertTrue(failures.isEmpty, "align \(align): \(failures)")
        }
    }

    func testMinMaxNormalization() {
        let x = randomTensor([2, 4, 5], &rng), w = randomTensor([2, 4, 5], &rng)
        let y = Tensor([2, 4, 5]), dx = Tensor([2, 4, 5]), st = Tensor([2, 4])
        MinMaxNormalization.forward(x.view, into: y.view, eps: 0.1, statistics: st.view)
        MinMaxNormalization.backward(w.view, x: x.view, eps: 0.1, statistics: st.view, dx: dx.view)
        var check = GradientCheck(); check.samples = 40; check.step = 1e-3
        let failures = check.run(checked: [("x", x.view, dx.view)]) {
            MinMaxNormalization.forward(x.view, into: y.view, eps: 0.1, statistics: st.view); return weightedSum(y.view, w.view)
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
    }

    func testCosineSimilarity() {
        let u = randomTensor([3, 6], &rng), v = randomTensor([3, 6], &rng), w = randomTensor([3], &rng)
        let s = Tensor([3]), du = Tensor([3, 6]), dv = Tensor([3, 6])
        CosineSimilarity.backward(w.view, u.view, v.view, du: du.view, dv: dv.view)
        GradientCheck().assertGradients(checked: [("u", u.view, du.view), ("v", v.view, dv.view)]) {
            CosineSimilarity.forward(u.view, v.view, into: s.view); return weightedSum(s.view, w.view)
        }
    }

    func testSimilarityLossesAndClampGradient() {
        let s = Tensor([5], values: [0.3, -0.2, 0.5, 1.05, 0.7])
        for kind in [SimilarityLoss.Kind.negativeLog, .negativeLogOneMinus, .positiveLog] {
            let ds = Tensor([5])
            SimilarityLoss.evaluate(kind, s.view, gradient: ds.view)
            var check = GradientCheck(); check.samples = 5; check.step = 1e-3
            let failures = check.run(checked: [("s", s.view, ds.view)]) {
                Double(SimilarityLoss.evaluate(kind, s.view))
            }
            XCTAssertTrue(failures.isEmpty, "\(kind): \(failures)")
            XCTAssertEqual(ds.data[1], 0, "below the clamp the gradient is zero")
            XCTAssertEqual(ds.data[3], 0, "above the clamp the gradient is zero")
        }
    }

    func testMultiLabelSoftMarginLoss() {
        let z = randomTensor([2, 5], &rng, scale: 2)
        let y = Tensor([2, 5], values: [1, 0, 0, 1, 0, 0, 0, 1, 1, 1])
        let g = Tensor([2, 5])
        MultiLabelSoftMarginLoss.evaluate(z.view, targets: y.view, gradient: g.view)
        GradientCheck().assertGradients(checked: [("z", z.view, g.view)]) {
            Double(MultiLabelSoftMarginLoss.evaluate(z.view, targets: y.view))
        }
    }

    func testDropPathScalesAndBackward() {
        var gen = SeededGenerator(seed: 5)
        let scales = Tensor([1000])
        DropPath(rate: 0.25).sample(into: scales.view, generator: &gen)
        let kept = scales.toArray().filter { $0 != 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 })
        XCTAssertEqual(Double(kept.count) / 1000, 0.75, accuracy: 0.05)
        let s = Tensor([2], values: [0, 2]), b = randomTensor([2, 3], &rng), r = randomTensor([2, 3], &rng)
        let y = Tensor([2, 3]), w = randomTensor([2, 3], &rng), db = Tensor([2, 3])
        DropPath.scale(w.view, scales: s.view, into: db.view)
        GradientCheck().assertGradients(checked: [("branch", b.view, db.view)]) {
            DropPath.addScaled(b.view, scales: s.view, to: r.view, into: y.view); return weightedSum(y.view, w.view)
        }
    }
}
