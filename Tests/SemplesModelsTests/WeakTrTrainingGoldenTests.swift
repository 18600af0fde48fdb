import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
@testable import SemplesModels

/// WeakTr training step against the float64 PyTorch reference of scripts/fixtures/weaktr_train.py:
/// predictions, the three loss terms, the gradient of every parameter, AdamW on its own given the
/// reference's gradients, and the weights after three whole steps on the same batch.
///
/// Error budget. float32 unit roundoff is ε = 2⁻²⁴ ≈ 6e-8. A forward and backward pass of these
/// models chains about 40 operations per block pair, the longest dot products have K ≤ 4·D = 192
/// terms; rounding errors grow like √K·ε per dot product relative to the sum of |terms|, so the
/// gradient of a tensor is off by about 40·√192·ε ≈ 3e-5 of its largest entry. The bound used for
/// gradients is `gradientBound` = 1e-4 of the tensor's largest reference entry (3× that estimate).
/// Every other bound below follows from it.
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
                assertClose(p.grad!, want, tolerance: Self.gradientBound, "gradient of '\(key)'")
                checked += 1
            } else {
                XCTAssertFalse(p.requiresGradient, "'\(key)' has no reference gradient but trains")
            }
        }
        XCTAssertEqual(checked, c.config.expectedShapes.count - 2, "every parameter but the final norm has a gradient")
    }

    /// The gradient bound shared by the gradient test and the whole-step test (see the type's comment).
    static let gradientBound: Float = 1e-4
    static let epsilon = Float.ulpOfOne / 2

    func testGradientsMaxPooling() throws { try checkGradients("max") }
    func testGradientsAveragePoolingWithDropPathMask() throws { try checkGradients("avg_mask") }

    /// The engine's AdamW on its own: three steps from the fixture's weights given exactly the
    /// reference's float32 gradients, against float64 AdamW fed the same gradients. Each step
    /// computes m, v, √v, one division and the update in float32 (about 8 roundings of the step
    /// direction m̂/(√v̂ + eps), whose size is at most 1 in the first steps) and rounds the new
    /// weight (decay and subtraction: 2ε|w|); the stored reference is rounded once more (ε|w|).
    /// Bound per coordinate: 3·(lr·8ε + 2ε|w|) + ε|w|, doubled for safety.
    func testAdamWOnItsOwnGivenTheReferenceGradients() throws {
        for name in ["max", "avg_mask"] {
            let c = try Self.load(name)
            let (model, _) = try Self.prepare(c)
            let lr = Float(c.meta["lr"] as! Double)
            let optimizer = AdamW(parameters: model.store.parameters, learningRate: Double(lr),
                                  weightDecay: c.meta["weight_decay"] as! Double)
            for prefix in ["g.", "g1.", "g2."] {
                for p in model.store.parameters {
                    guard let want = c.tensors[prefix + WeakTr.referenceKey(p.name)], let g = p.grad else { continue }
                    g.copy(from: want.view.reshaped(g.shape.dims))
                }
                optimizer.step()
            }
            let e = Self.epsilon
            var checked = 0
            for (key, value) in model.stateDict() {
                let want = c.tensors["wa3." + key]!
                for i in 0..<want.count {
                    let w = abs(want.data[i])
                    let bound = 2 * (3 * (lr * 8 * e + 2 * e * w) + e * w)
                    if abs(value.data[i] - want.data[i]) > bound {
                        XCTFail("\(name): '\(key)'[\(i)] \(value.data[i]) vs \(want.data[i]), bound \(bound)")
                        break
                    }
                    checked += 1
                }
            }
            XCTAssertGreaterThan(checked, 1000)
        }
    }

    /// Three whole steps (forward, backward, AdamW) against the float64 reference. A coordinate's
    /// gradient is known to within δ = gradientBound · (largest |g| of its tensor over the three
    /// steps). AdamW's step direction m̂/(√v̂ + eps) has size ≤ 1 and moves by at most 2·δ/|g|
    /// relative when the gradient moves by δ (numerator and denominator), so each step's update
    /// differs by at most lr·min(2, 2δ/|g|), with |g| the smallest of the coordinate's three
    /// gradients; that is where near-zero gradients get their lr-sized freedom. Over 3 steps, with
    /// a factor 2 for the coupling through the changed weights, plus the rounding of 3 weight
    /// updates and of the stored reference (7ε|w|): 2·3·lr·min(2, 2δ/|g|) + 7ε|w|.
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
            let lr = Float(c.meta["lr"] as! Double), e = Self.epsilon
            var tight = 0, total = 0
            for (key, value) in model.stateDict() {
                let want = c.tensors["w3." + key]!
                let grads = ["g.", "g1.", "g2."].compactMap { c.tensors[$0 + key] }
                let largest = grads.map { g in (0..<g.count).reduce(Float(0)) { max($0, abs(g.data[$1])) } }.max() ?? 0
                let delta = Self.gradientBound * largest
                for i in 0..<want.count {
                    let w = abs(want.data[i])
                    var bound = 7 * e * w
                    if !grads.isEmpty {
                        let smallest = grads.map { abs($0.data[i]) }.min()!
                        let relative = smallest > 0 ? min(2, 2 * delta / smallest) : 2
                        bound += 2 * 3 * lr * relative
                        if relative < 0.1 { tight += 1 }
                    }
                    total += 1
                    let err = abs(value.data[i] - want.data[i])
                    if err > bound {
                        XCTFail("\(name): '\(key)'[\(i)] \(value.data[i]) vs \(want.data[i]): error \(err), bound \(bound)")
                        break
                    }
                }
            }
            // The bound has teeth where it matters: most coordinates are held to under 0.6·lr, far below
            // what a wrong step (a missing bias correction moves the first step by 10·lr) would give.
            XCTAssertGreaterThan(tight * 2, total, "\(name): \(tight) of \(total) coordinates checked tightly")
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
