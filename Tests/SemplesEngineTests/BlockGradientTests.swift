import XCTest
@testable import SemplesEngine

final class BlockGradientTests: XCTestCase {
    func makeBlock(activation: Activation, causal: Bool, dropPath: Float = 0,
                   gradients: Bool = true) -> (TransformerBlock, ParameterStore) {
        let store = ParameterStore(gradients: gradients)
        let config = TransformerBlock.Configuration(dimension: 8, headCount: 2, hiddenDimension: 16, eps: 1e-5,
                                                    activation: activation, causal: causal, dropPathRate: dropPath)
        let block = TransformerBlock(store, prefix: "blocks.0.", config)
        store.materialise()
        var rng = SeededGenerator(seed: 11)
        for p in store.parameters {
            randomize(p.value, &rng, scale: p.name.hasSuffix("norm1.weight") || p.name.hasSuffix("norm2.weight") ? 0.2 : 0.3,
                      offset: p.name.contains("norm") && p.name.hasSuffix("weight") ? 1 : 0)
        }
        return (block, store)
    }

    func checkBlock(activation: Activation, causal: Bool) {
        let (block, store) = makeBlock(activation: activation, causal: causal)
        let B = 2, T = 5, D = 8
        let arena = Arena(capacity: 1 << 16)
        let cache = block.makeCache(arena, batch: B, tokens: T)
        let scratch = block.makeScratch(arena, batch: B, tokens: T)
        var rng = SeededGenerator(seed: 3)
        let x = randomTensor([B, T, D], &rng)
        let w = randomTensor([B, T, D], &rng)
        let y = Tensor([B, T, D]), dx = Tensor([B, T, D])
        block.forward(x.view, into: y.view, cache: cache)
        store.zeroGradients()
        block.backward(w.view, x: x.view, cache: cache, scratch: scratch, dx: dx.view)
        var checked: [(String, TensorView, TensorView)] = [("x", x.view, dx.view)]
        for p in store.parameters { checked.append((p.name, p.value, p.grad!)) }
        GradientCheck().assertGradients(checked: checked) {
            block.forward(x.view, into: y.view, cache: cache)
            return weightedSum(y.view, w.view)
        }
    }

    func testGELUBlockGradients() { checkBlock(activation: .gelu, causal: false) }
    func testQuickGELUCausalBlockGradients() { checkBlock(activation: .quickGELU, causal: true) }
}
