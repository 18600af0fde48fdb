import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
@testable import SemplesModels

/// WeakTr training step against the PyTorch reference of scripts/fixtures/weaktr_train.py:
/// predictions, the three loss terms, the gradient of every parameter, and the weights after
/// three AdamW steps on the same batch.
final class WeakTrTrainingGoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/weaktr_train")

    struct Case {
        let tensors: [String: Tensor]
        let meta: [String: Any]
        let config: WeakTrConfig
    }

    static func load(_ name: String) throws -> Case {
        let (list, _) = try SafeTensors.read(fixtures.appendingPathComponent("case_\(name).safetensors").path)
        var dict: [String: Tensor] = [:]
        for t in list { dict[t.name] = t.tensor }
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("meta.json"))) as! [String: Any]
        let meta = all[name] as! [String: Any]
        let D = meta["dim"] as! Int, H = meta["heads"] as! Int
        let config = WeakTrConfig(classCount: meta["classes"] as! Int, embedDimension: D, depth: meta["depth"] as! Int,
                                  headCount: H, mlpHidden: 4 * D, reduction: meta["reduction"] as! Int,
                                  pooling: WeakTrPooling(rawValue: meta["pool"] as! String)!,
                                  featureHidden: D / H / 8, gridSide: meta["grid"] as! Int)
        return Case(tensors: dict, meta: meta, config: config)
    }

    /// A model holding the fixture's initial weights, with its inputs and DropPath scales set.
    static func prepare(_ c: Case) throws -> (WeakTr, WeakTrTrainingWorkspace) {
        let model = WeakTr(config: c.config, dropPathRate: 0)
        var sd: [String: Tensor] = [:]
        for (k, v) in c.tensors where k.hasPrefix("w.") { sd[String(k.dropFirst(2))] = v }
        try model.load(stateDict: sd, source: "fixture")
        let ws = model.prepare(batch: c.meta["batch"] as! Int)
        ws.imageBuffer.copy(from: c.tensors["images"]!.view)
        ws.targetBuffer.copy(from: c.tensors["targets"]!.view)
        for l in 0..<c.config.depth {
            let s = ws.dropPathScales(block: l)
            s.attention.copy(from: c.tensors["drop.\(l).attn"]!.view)
            s.mlp.copy(from: c.tensors["drop.\(l).mlp"]!.view)
        }
        return (model, ws)
    }

    func assertClose(_ got: TensorView, _ want: Tensor, tolerance: Float, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, "\(what): \(got.shape) vs \(want.shape)", file: file, line: line)
        guard got.count == want.count else { return }
        let g = got.toArray(), w = want.toArray()
        let scale = max(w.map(abs).max() ?? 0, 1e-12)
        var worst: Float = 0
        for i in 0..<g.count { worst = max(worst, abs(g[i] - w[i])) }
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what): max error \(worst) (scale \(scale))",
                                 file: file, line: line)
    }

    func checkGradients(_ name: String) throws {
        let c = try Self.load(name)
        let (model, ws) = try Self.prepare(c)
        model.store.zeroGradients()
        model.forward(ws, keepScales: true)
        let terms = model.lossAndBackward(ws)
        let losses = (c.meta["losses"] as! [[Double]])[0]
        XCTAssertEqual(Double(terms.classToken), losses[0], accuracy: 1e-5 * max(1, losses[0]))
        XCTAssertEqual(Double(terms.coarse), losses[1], accuracy: 1e-5 * max(1, losses[1]))
        XCTAssertEqual(Double(terms.fine), losses[2], accuracy: 1e-5 * max(1, losses[2]))
        assertClose(ws.classTokenPrediction, c.tensors["pred.cls"]!, tolerance: 1e-5, "cls_token_pred")
        assertClose(ws.coarsePrediction, c.tensors["pred.coarse"]!, tolerance: 1e-5, "coarse_cam_pred")
        assertClose(ws.finePrediction, c.tensors["pred.fine"]!, tolerance: 1e-5, "fine_cam_pred")
        assertClose(ws.fusionWeights, c.tensors["aaf_weights"]!, tolerance: 1e-5, "AAF weights")
        var checked = 0
        for p in model.store.parameters {
            let key = WeakTr.referenceKey(p.name)
            if let want = c.tensors["g." + key] {
                assertClose(p.grad!, want, tolerance: 1e-4, "gradient of '\(key)'")
                checked += 1
            } else {
                XCTAssertFalse(p.requiresGradient, "'\(key)' has no reference gradient but trains")
            }
        }
        XCTAssertEqual(checked, c.config.expectedShapes.count - 2, "every parameter but the final norm has a gradient")
    }

    func testGradientsMaxPooling() throws { try checkGradients("max") }
    func testGradientsAveragePoolingWithDropPathMask() throws { try checkGradients("avg_mask") }

    /// Three engine AdamW steps (uniform weight decay, the never-used final norm skipped).
    func testThreeAdamWSteps() throws {
        for name in ["max", "avg_mask"] {
            let c = try Self.load(name)
            let (model, ws) = try Self.prepare(c)
            let optimizer = AdamW(parameters: model.store.parameters, learningRate: c.meta["lr"] as! Double,
                                  weightDecay: c.meta["weight_decay"] as! Double)
            for _ in 0..<3 {
                model.store.zeroGradients()
                model.forward(ws, keepScales: true)
                model.lossAndBackward(ws)
                optimizer.step()
            }
            let lr = Float(c.meta["lr"] as! Double)
            var loose = 0, total = 0
            for (key, value) in model.stateDict() {
                let want = c.tensors["w3." + key]!
                // Adam divides by √v: where the true gradient is zero up to rounding (the key part
                // of qkv.bias: softmax ignores a shift shared by all keys), both sides step by up
                // to lr on noise. Those coordinates may differ by 3 steps of 2·lr; all others by 2e-4.
                let g = c.tensors["g." + key]
                let gScale = g.map { t in (0..<t.count).reduce(Float(0)) { max($0, abs(t.data[$1])) } } ?? 0
                let wScale = max((0..<want.count).reduce(Float(0)) { max($0, abs(want.data[$1])) }, 1e-6)
                var worst: Float = 0
                for i in 0..<want.count {
                    let err = abs(value.data[i] - want.data[i])
                    total += 1
                    if let g, abs(g.data[i]) < 1e-5 * gScale {
                        loose += 1
                        XCTAssertLessThanOrEqual(err, 6 * lr, "\(name): '\(key)'[\(i)] (zero gradient)")
                    } else {
                        worst = max(worst, err)
                    }
                }
                XCTAssertLessThanOrEqual(worst / wScale, 2e-4, "\(name): '\(key)' after 3 steps: max error \(worst)")
            }
            XCTAssertLessThan(loose * 20, total, "\(name): most coordinates are checked tightly")
        }
    }

    /// The fixture's gradients are not all alike: dropping the fine term's path must be caught.
    func testGoldenComparisonHasTeeth() throws {
        let c = try Self.load("max")
        let (model, ws) = try Self.prepare(c)
        model.store.zeroGradients()
        model.forward(ws, keepScales: true)
        model.lossAndBackward(ws)
        let key = "adaptive_attention_fusion.attn_feat_ffn.0.weight"
        let g = model.parametersByReferenceKey[key]!.grad!
        let want = c.tensors["g." + key]!
        var maxAbs: Float = 0
        for i in 0..<want.count { maxAbs = max(maxAbs, abs(want.data[i])) }
        XCTAssertGreaterThan(maxAbs, 1e-6, "the AAF gradient of the fixture is not trivially zero")
        g.scale(0.999)
        var worst: Float = 0
        for i in 0..<want.count { worst = max(worst, abs(g.data[i] - want.data[i])) }
        XCTAssertGreaterThan(worst / maxAbs, 1e-4, "a 0.1% error would be detected")
    }
}

private extension TensorView {
    func scale(_ a: Float) { for i in 0..<count { data[i] *= a } }
}
