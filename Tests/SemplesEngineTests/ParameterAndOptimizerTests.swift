import Foundation
import XCTest
@testable import SemplesEngine

final class ParameterAndOptimizerTests: XCTestCase {
    func testStoreLaysParametersOutInOneBlock() {
        let store = ParameterStore()
        let a = store.declare("a", [3, 5])
        let b = store.declare("b", [7])
        store.materialise()
        XCTAssertEqual(store.scalarCount, 22)
        XCTAssertEqual(a.offset, 0)
        XCTAssertEqual(b.offset, 16, "each parameter starts 16-float aligned")
        XCTAssertEqual(b.value.data, store.values!.data + 16)
        XCTAssertTrue(store["a"] === a)
        a.grad!.fill(2); b.grad!.fill(3)
        store.zeroGradients()
        XCTAssertEqual(a.grad!.toArray() + b.grad!.toArray(), [Float](repeating: 0, count: 22))
        store.setRequiresGradient(false, prefix: "b")
        XCTAssertTrue(a.requiresGradient)
        XCTAssertFalse(b.requiresGradient)
        XCTAssertNil(b.activeGrad)
    }

    func testFrozenStoreHasNoGradients() {
        let store = ParameterStore(gradients: false)
        let p = store.declare("w", [4])
        store.materialise()
        XCTAssertNil(p.grad)
        XCTAssertFalse(p.requiresGradient)
    }

    /// One AdamW step by hand (torch's formulas) and the skipping of frozen parameters.
    /// A store that keeps gradients for some parameters only: the others have none and are frozen,
    /// and the gradient block holds just the kept ones.
    func testStoreKeepsGradientsOnlyWhereAsked() {
        let store = ParameterStore(gradients: true, only: { $0.hasPrefix("head.") })
        let a = store.declare("blocks.0.w", [40]), b = store.declare("head.w", [3, 5]), c = store.declare("head.b", [3])
        store.materialise()
        XCTAssertNil(a.grad)
        XCTAssertFalse(a.requiresGradient)
        XCTAssertNotNil(b.activeGrad)
        XCTAssertNotNil(c.activeGrad)
        XCTAssertEqual(store.gradients?.count, 32, "16-float slots for the two head tensors only")
        XCTAssertEqual(b.offset, 48, "values keep one slot per parameter")
        b.grad!.fill(2)
        store.zeroGradients()
        XCTAssertEqual(b.grad!.toArray(), [Float](repeating: 0, count: 15))
    }

    func testAdamWStepAndSkipping() {
        let p = Parameter(name: "p", dims: [2]), q = Parameter(name: "q", dims: [1])
        p.value.data[0] = 1; p.value.data[1] = -2
        p.grad!.data[0] = 0.5; p.grad!.data[1] = -0.25
        q.value.data[0] = 3; q.grad!.data[0] = 1
        q.requiresGradient = false
        let opt = AdamW(parameters: [p, q], learningRate: 0.1, weightDecay: 0.03)
        opt.step()
        // step 1: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g² → update = lr·g/(|g| + eps)
        for (i, (x, g)) in [(Float(1), Float(0.5)), (-2, -0.25)].enumerated() {
            let decayed = x * (1 - 0.1 * 0.03)
            let expected = decayed - 0.1 * g / (abs(g) + 1e-8)
            XCTAssertEqual(p.value.data[i], expected, accuracy: 1e-6)
        }
        XCTAssertEqual(q.value.data[0], 3, "a frozen parameter is neither decayed nor stepped")
        XCTAssertEqual(opt.steps, [1, 0])
    }

    func testDropPathIsIdentityInEvaluationAndSampledInTraining() {
        let store = ParameterStore()
        let block = TransformerBlock(store, prefix: "", .init(dimension: 8, headCount: 2, hiddenDimension: 16, eps: 1e-6,
                                                                activation: .gelu, dropPathRate: 0.5))
        store.materialise()
        var rng = SeededGenerator(seed: 4)
        for p in store.parameters { randomize(p.value, &rng, scale: 0.3) }
        let arena = Arena(capacity: 1 << 16)
        let cache = block.makeCache(arena, batch: 16, tokens: 3)
        let x = randomTensor([16, 3, 8], &rng), y = Tensor([16, 3, 8])
        var gen = SeededGenerator(seed: 8)
        block.forward(x.view, into: y.view, cache: cache, generator: &gen)
        let scales = cache.attentionScales.toArray() + cache.mlpScales.toArray()
        XCTAssertTrue(scales.contains(0) && scales.contains(2), "training draws both outcomes: \(scales)")
        // A sample whose two branches were both dropped passes x through unchanged.
        if let b = (0..<16).first(where: { cache.attentionScales.data[$0] == 0 && cache.mlpScales.data[$0] == 0 }) {
            for i in 0..<24 { XCTAssertEqual(y.data[b * 24 + i], x.data[b * 24 + i]) }
        }
        block.forward(x.view, into: y.view, cache: cache)
        XCTAssertEqual(cache.attentionScales.toArray(), [Float](repeating: 1, count: 16))
        // Same seed, same draw.
        var g1 = SeededGenerator(seed: 8), g2 = SeededGenerator(seed: 8)
        let s1 = Tensor([16]), s2 = Tensor([16])
        block.dropPath.sample(into: s1.view, generator: &g1)
        block.dropPath.sample(into: s2.view, generator: &g2)
        XCTAssertEqual(s1.toArray(), s2.toArray())
    }

    /// Views made again from an earlier position are the views first made there, and the arena's
    /// position is where it was afterwards (what CLIP's backward relies on for its block activations).
    func testArenaReallocatingGivesTheSameViewsAndKeepsThePosition() {
        let arena = Arena(capacity: 1024)
        _ = arena.allocate(Shape(5))
        let start = arena.mark
        let first = (arena.allocate(Shape(3, 7)), arena.allocate(Shape(40)))
        let middle = arena.mark
        let second = (arena.allocate(Shape(3, 7)), arena.allocate(Shape(40)))
        let end = arena.mark
        let again = arena.reallocating(from: middle) { (arena.allocate(Shape(3, 7)), arena.allocate(Shape(40))) }
        XCTAssertEqual(again.0.data, second.0.data)
        XCTAssertEqual(again.1.data, second.1.data)
        XCTAssertEqual(again.0.shape, Shape(3, 7))
        XCTAssertEqual(arena.reallocating(from: start) { arena.allocate(Shape(3, 7)) }.data, first.0.data)
        XCTAssertEqual(arena.mark, end)
        XCTAssertEqual(arena.allocate(Shape(1)).data, second.1.data + 48, "allocation goes on after the last view")
    }

    func testScheduleOffByOneAndWarmup() {
        let s = CosineSchedule(baseLearningRate: 1e-3, minimumLearningRate: 0, epochs: 60)
        XCTAssertEqual(s.learningRate(forEpoch: 0), 1e-3)
        XCTAssertEqual(s.learningRate(forEpoch: 1), 1e-3, "epochs 0 and 1 share the LR")
        XCTAssertEqual(s.learningRate(forEpoch: 59), 0.5e-3 * (1 + cos(Double.pi * 58 / 60)), accuracy: 1e-15)
        let w = CosineSchedule(baseLearningRate: 1e-3, epochs: 60, warmupEpochs: 5)
        XCTAssertEqual(w.learningRate(forEpoch: 0), 1e-6)
        XCTAssertEqual(w.learningRate(forEpoch: 3), 1e-6 + 2 * (1e-3 - 1e-6) / 5, accuracy: 1e-15)
        XCTAssertEqual(CosineSchedule.scaledLearningRate(4e-4, batchSize: 64), 5e-5, accuracy: 1e-15)
    }
}
