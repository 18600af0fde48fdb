import Foundation
import XCTest
import SemplesEngine
@testable import SemplesModels

/// Finite-difference checks of the WeakTr-specific backward pieces: the AAF weights through the
/// fine CAM (fine term alone), the 3×3 head and the class tokens / backbone through the class-token
/// and coarse terms. The fine term's own detaches (ReLU(head) copy, attention maps) make its true
/// derivative with respect to the head differ from the training gradient; a test shows that too.
final class WeakTrTrainingGradientTests: XCTestCase {
    static func tinyModel(pooling: WeakTrPooling) -> (WeakTr, WeakTrTrainingWorkspace) {
        let config = WeakTrConfig(classCount: 3, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 64,
                                  reduction: 2, pooling: pooling, featureHidden: 2, gridSide: 2)
        let model = WeakTr(config: config, dropPathRate: 0)
        var g = SeededGenerator(seed: 5)
        for p in model.store.parameters {
            let std: Float = p.name.contains("norm") && p.name.hasSuffix("weight") ? 0.1 : (p.shape.rank == 1 ? 0.1 : 0.3)
            let base: Float = p.name.contains("norm") && p.name.hasSuffix("weight") ? 1 : 0
            for i in 0..<p.count {
                let fanIn = p.shape.rank > 1 ? p.count / p.shape[0] : 1
                p.value.data[i] = base + std * g.nextNormal() / (p.shape.rank > 1 ? Float(fanIn).squareRoot() * 0.3 : 1)
            }
        }
        let ws = model.prepare(batch: 2)
        for i in 0..<ws.imageBuffer.count { ws.imageBuffer.data[i] = g.nextNormal() }
        let t: [Float] = [1, 0, 1, 1, 1, 0]
        for i in 0..<6 { ws.targetBuffer.data[i] = t[i] }
        return (model, ws)
    }

    /// Σ of the weighted terms, recomputed from scratch.
    static func loss(_ model: WeakTr, _ ws: WeakTrTrainingWorkspace, _ w: (Float, Float, Float)) -> Double {
        model.forward(ws)
        let t = model.lossAndBackward(ws, gradients: false)
        return Double(w.0 * t.classToken + w.1 * t.coarse + w.2 * t.fine)
    }

    /// Coordinates of `names` where analytic and numeric derivatives disagree.
    func mismatches(_ model: WeakTr, _ ws: WeakTrTrainingWorkspace, names: [String],
                    weights: (Float, Float, Float), samples: Int = 5, step: Float = 1e-2) -> [String] {
        model.store.zeroGradients()
        model.forward(ws)
        model.lossAndBackward(ws, termWeights: weights)
        var rng = SeededGenerator(seed: 9)
        var bad: [String] = []
        let byKey = model.parametersByReferenceKey
        for name in names {
            let p = byKey[name]!
            let analyticAll = p.grad!.toArray()
            for _ in 0..<samples {
                let i = Int(rng.next() % UInt64(p.count))
                let saved = p.value.data[i]
                p.value.data[i] = saved + step
                let plus = Self.loss(model, ws, weights)
                p.value.data[i] = saved - step
                let minus = Self.loss(model, ws, weights)
                p.value.data[i] = saved
                let numeric = (plus - minus) / (2 * Double(step))
                let analytic = Double(analyticAll[i])
                if abs(numeric - analytic) > 2e-3 + 3e-2 * max(abs(numeric), abs(analytic)) {
                    bad.append("\(name)[\(i)]: analytic \(analytic), numeric \(numeric)")
                }
            }
        }
        return bad
    }

    static let aafKeys = ["adaptive_attention_fusion.attn_head_ffn.0.weight", "adaptive_attention_fusion.attn_head_ffn.2.weight",
                          "adaptive_attention_fusion.attn_feat_ffn.0.weight", "adaptive_attention_fusion.attn_feat_ffn.0.bias",
                          "adaptive_attention_fusion.attn_feat_ffn.1.weight", "adaptive_attention_fusion.attn_feat_ffn.1.bias"]

    func testAAFThroughFineCAM() {
        for pooling in [WeakTrPooling.max, .avg] {
            let (model, ws) = Self.tinyModel(pooling: pooling)
            let bad = mismatches(model, ws, names: Self.aafKeys, weights: (0, 0, 1))
            XCTAssertTrue(bad.isEmpty, "\(pooling): \(bad)")
        }
    }

    func testHeadAndBackboneThroughClassTokenAndCoarseTerms() {
        let (model, ws) = Self.tinyModel(pooling: .max)
        let bad = mismatches(model, ws, names: ["head.weight", "head.bias", "cls_token", "pos_embed",
                                                "blocks.1.mlp.fc1.weight", "blocks.0.attn.qkv.weight",
                                                "patch_embed.proj.bias"],
                             weights: (1, 1, 0), step: 2e-2)
        XCTAssertTrue(bad.isEmpty, "\(bad)")
    }

    /// The fine term gives the head no training gradient, although the loss depends on it through
    /// the (detached) ReLU(head) copy: finite differences of the fine term see that dependence.
    func testFineTermIsDetachedFromHead() {
        let (model, ws) = Self.tinyModel(pooling: .max)
        model.store.zeroGradients()
        model.forward(ws)
        model.lossAndBackward(ws, termWeights: (0, 0, 1))
        let head = model.parametersByReferenceKey["head.weight"]!
        XCTAssertEqual(head.grad!.toArray().map(abs).max() ?? 1, 0, "no head gradient from the fine term")
        XCTAssertEqual(model.parametersByReferenceKey["cls_token"]!.grad!.toArray().map(abs).max() ?? 1, 0)
        let bad = mismatches(model, ws, names: ["head.weight"], weights: (0, 0, 1), samples: 12)
        XCTAssertFalse(bad.isEmpty, "the fine term does depend on the head numerically")
    }
}
