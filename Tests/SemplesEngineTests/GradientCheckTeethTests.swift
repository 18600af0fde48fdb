import XCTest
@testable import SemplesEngine

/// The gradient check must fail when a backward term is missing.
final class GradientCheckTeethTests: XCTestCase {
    func testRemovedTermIsCaught() {
        var rng = SeededGenerator(seed: 9)
        let ln = LayerNorm(weight: Parameter(name: "g", dims: [6]), bias: Parameter(name: "b", dims: [6]), eps: 1e-5)
        randomize(ln.weight.value, &rng, scale: 0.3, offset: 1)
        let x = randomTensor([3, 6], &rng), w = randomTensor([3, 6], &rng)
        let y = Tensor([3, 6]), m = Tensor([3]), r = Tensor([3])
        ln.forward(x.view, into: y.view, mean: m.view, rstd: r.view)

        // A LayerNorm input gradient with the x̂·mean(g⊙x̂) term removed.
        let broken = Tensor([3, 6])
        for i in 0..<3 {
            var meanG: Float = 0
            for j in 0..<6 { meanG += w.data[i * 6 + j] * ln.weight.value.data[j] }
            meanG /= 6
            for j in 0..<6 {
                broken.data[i * 6 + j] = (w.data[i * 6 + j] * ln.weight.value.data[j] - meanG) * r.data[i]
            }
        }
        var check = GradientCheck(); check.samples = 18
        let loss = { () -> Double in
            ln.forward(x.view, into: y.view, mean: m.view, rstd: r.view); return weightedSum(y.view, w.view)
        }
        XCTAssertFalse(check.run(checked: [("x", x.view, broken.view)], loss: loss).isEmpty,
                       "the check accepted a backward with a term removed")

        // The same check accepts the real backward.
        let good = Tensor([3, 6])
        ln.backward(w.view, x: x.view, mean: m.view, rstd: r.view, dx: good.view, parameterGradients: false)
        XCTAssertTrue(check.run(checked: [("x", x.view, good.view)], loss: loss).isEmpty)
    }

    func testBlockWithoutResidualGradientIsCaught() {
        // A block backward that forgets the residual path (dx without + dy) must fail the check.
        let store = ParameterStore()
        let block = TransformerBlock(store, prefix: "", .init(dimension: 8, headCount: 2, hiddenDimension: 16, eps: 1e-6,
                                                                activation: .gelu))
        store.materialise()
        var rng = SeededGenerator(seed: 1)
        for p in store.parameters { randomize(p.value, &rng, scale: 0.3, offset: p.name.hasSuffix("norm1.weight") || p.name.hasSuffix("norm2.weight") ? 1 : 0) }
        let arena = Arena(capacity: 1 << 15)
        let cache = block.makeCache(arena, batch: 1, tokens: 3), scratch = block.makeScratch(arena, batch: 1, tokens: 3)
        let x = randomTensor([1, 3, 8], &rng), w = randomTensor([1, 3, 8], &rng), y = Tensor([1, 3, 8])
        let dx = Tensor([1, 3, 8])
        block.forward(x.view, into: y.view, cache: cache)
        block.backward(w.view, x: x.view, cache: cache, scratch: scratch, dx: dx.view)
        for i in 0..<dx.count { dx.data[i] -= w.data[i] }
        let failures = GradientCheck().run(checked: [("x", x.view, dx.view)]) {
            block.forward(x.view, into: y.view, cache: cache); return weightedSum(y.view, w.view)
        }
        XCTAssertFalse(failures.isEmpty)
    }
}
