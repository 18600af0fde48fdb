import Foundation
import XCTest
@testable import SemplesEngine

/// Every layer against PyTorch outputs and gradients (fixtures/engine, scripts/fixtures/engine.py).
final class GoldenLayerTests: XCTestCase {
    func testLinear() throws {
        let f = try Fixture("linear")
        let lin = Linear(weight: Parameter(name: "w", dims: [5, 7]), bias: Parameter(name: "b", dims: [5]))
        lin.weight.value.copy(from: f["weight"].view); lin.bias!.value.copy(from: f["bias"].view)
        let y = Tensor([4, 5]), dx = Tensor([4, 7])
        lin.forward(f["x"].view, into: y.view)
        lin.backward(f["dy"].view, x: f["x"].view, dx: dx.view)
        assertClose(y.view, f["y"].view, "y")
        assertClose(dx.view, f["dx"].view, "dx")
        assertClose(lin.weight.grad!, f["dweight"].view, "dweight")
        assertClose(lin.bias!.grad!, f["dbias"].view, "dbias")
    }

    func testLayerNorm() throws {
        let f = try Fixture("layernorm")
        XCTAssertEqual(f.metadata["eps"], "1e-6")
        let ln = LayerNorm(weight: Parameter(name: "g", dims: [12]), bias: Parameter(name: "b", dims: [12]), eps: 1e-6)
        ln.weight.value.copy(from: f["weight"].view); ln.bias.value.copy(from: f["bias"].view)
        let y = Tensor([4, 12]), dx = Tensor([4, 12]), m = Tensor([4]), r = Tensor([4])
        ln.forward(f["x"].view, into: y.view, mean: m.view, rstd: r.view)
        ln.backward(f["dy"].view, x: f["x"].view, mean: m.view, rstd: r.view, dx: dx.view)
        assertClose(y.view, f["y"].view, "y")
        assertClose(dx.view, f["dx"].view, "dx")
        assertClose(ln.weight.grad!, f["dweight"].view, "dweight")
        assertClose(ln.bias.grad!, f["dbias"].view, "dbias")
    }

    func testActivations() throws {
        let f = try Fixture("activations")
        let x = f["x"].view, dy = f["dy"].view
        for (name, act) in [("gelu", Activation.gelu), ("quickgelu", .quickGELU), ("relu", .relu), ("sigmoid", .sigmoid)] {
            let y = Tensor(x.shape.dims), dx = Tensor(x.shape.dims)
            act.forward(x, into: y.view)
            act.backward(dy, x: x, dx: dx.view)
            assertClose(y.view, f[name + ".y"].view, name + " y")
            assertClose(dx.view, f[name + ".dx"].view, name + " dx")
        }
    }

    func testSoftmax() throws {
        let f = try Fixture("softmax")
        let p = Tensor([3, 10]), dx = Tensor([3, 10])
        Softmax.forward(f["x"].view, into: p.view)
        Softmax.backward(f["dy"].view, p: p.view, dx: dx.view)
        assertClose(p.view, f["p"].view, "p")
        assertClose(dx.view, f["dx"].view, "dx")
    }

    func checkAttention(_ file: String, causal: Bool) throws {
        let f = try Fixture(file)
        let x = f["x"].view
        let B = x.shape[0], T = x.shape[1], D = x.shape[2]
        let store = ParameterStore()
        let att = MultiHeadAttention(store, "a", dimension: D, headCount: Int(f.metadata["heads"]!)!, causal: causal)
        store.materialise()
        for n in ["qkv.weight", "qkv.bias", "projection.weight", "projection.bias"] { store["a." + n]!.value.copy(from: f[n].view) }
        let arena = Arena(capacity: 1 << 16)
        let cache = att.makeCache(arena, batch: B, tokens: T), scratch = att.makeScratch(arena, batch: B, tokens: T)
        let y = Tensor([B, T, D]), dx = Tensor([B, T, D])
        att.forward(x, into: y.view, cache: cache)
        att.backward(f["dy"].view, x: x, cache: cache, scratch: scratch, dx: dx.view)
        assertClose(y.view, f["y"].view, "\(file) y")
        assertClose(cache.probabilities, f["probabilities"].view, "\(file) probabilities")
        assertClose(dx.view, f["dx"].view, "\(file) dx")
        for n in ["qkv.weight", "qkv.bias", "projection.weight", "projection.bias"] {
            assertClose(store["a." + n]!.grad!, f[n + ".grad"].view, "\(file) \(n).grad")
        }
    }

    func testAttention() throws { try checkAttention("attention", causal: false) }
    func testCausalAttentionInFusedInProjectionLayout() throws { try checkAttention("attention_causal", causal: true) }

    func testConvPatchEmbedding() throws {
        let f = try Fixture("conv_patch")
        let conv = Conv2d(weight: Parameter(name: "w", dims: [6, 3, 4, 4]), bias: nil, stride: 4, padding: 0)
        conv.weight.value.copy(from: f["weight"].view)
        let x = f["x"].view
        let cols = Tensor(conv.columnsShape(batch: 2, height: 9, width: 10)), dcols = Tensor(cols.shape.dims)
        let y = Tensor([2, 6, 2, 2]), dx = Tensor([2, 3, 9, 10])
        conv.forward(x, into: y.view, columns: cols.view)
        conv.backward(f["dy"].view, x: x, columns: cols.view, columnGradient: dcols.view, dx: dx.view)
        assertClose(y.view, f["y"].view, "y")
        assertClose(dx.view, f["dx"].view, "dx")
        assertClose(conv.weight.grad!, f["dweight"].view, "dweight")
        // Token layout gives the transposed result.
        let yt = Tensor([2, 4, 6])
        conv.forwardTokens(x, into: yt.view, columns: cols.view)
        for b in 0..<2 { for l in 0..<4 { for o in 0..<6 {
            XCTAssertEqual(yt.data[(b * 4 + l) * 6 + o], y.data[(b * 6 + o) * 4 + l], accuracy: 1e-5)
        } } }
    }

    func testConv3x3() throws {
        let f = try Fixture("conv3x3")
        let conv = Conv2d(weight: Parameter(name: "w", dims: [3, 4, 3, 3]), bias: Parameter(name: "b", dims: [3]),
                          stride: 1, padding: 1)
        conv.weight.value.copy(from: f["weight"].view); conv.bias!.value.copy(from: f["bias"].view)
        let x = f["x"].view
        let cols = Tensor(conv.columnsShape(batch: 2, height: 5, width: 6)), dcols = Tensor(cols.shape.dims)
        let y = Tensor([2, 3, 5, 6]), dx = Tensor([2, 4, 5, 6])
        conv.forward(x, into: y.view, columns: cols.view)
        conv.backward(f["dy"].view, x: x, columns: cols.view, columnGradient: dcols.view, dx: dx.view)
        assertClose(y.view, f["y"].view, "y")
        assertClose(dx.view, f["dx"].view, "dx")
        assertClose(conv.weight.grad!, f["dweight"].view, "dweight")
        assertClose(conv.bias!.grad!, f["dbias"].view, "dbias")
    }

    func testBilinear() throws {
        let f = try Fixture("resize")
        for tag in ["up", "down"] {
            for align in [true, false] {
                let key = "bilinear.\(tag).\(align ? "align" : "noalign")"
                let x = f[key + ".x"].view, ye = f[key + ".y"].view
                let y = Tensor(ye.shape.dims), dx = Tensor(x.shape.dims)
                Resize.bilinear(x, into: y.view, alignCorners: align)
                Resize.bilinearBackward(f[key + ".dy"].view, dx: dx.view, alignCorners: align)
                assertClose(y.view, ye, key + " y")
                assertClose(dx.view, f[key + ".dx"].view, key + " dx")
            }
        }
    }

    func testBicubicScaleFactorSemantics() throws {
        let f = try Fixture("resize")
        let grid = f["bicubic.x"].view
        for (hp, wp) in [(10, 17), (14, 14), (14, 9), (31, 23)] {
            let y = Tensor([1, 4, hp, wp])
            Resize.bicubic(grid, into: y.view, scaleFactors: ((Double(hp) + 0.1) / 14, (Double(wp) + 0.1) / 14))
            assertClose(y.view, f["bicubic.\(hp)x\(wp)"].view, "bicubic \(hp)x\(wp)")
        }
        let y = Tensor([1, 4, 20, 7])
        Resize.bicubic(grid, into: y.view)
        assertClose(y.view, f["bicubic.size20x7"].view, "bicubic size 20x7")
    }

    func testMinMaxNormalizationRoutesGradientLikeTorch() throws {
        let f = try Fixture("minmax")
        let x = f["x"].view
        for (tag, eps) in [("eps0.1", Float(0.1)), ("eps0.0001", Float(1e-4))] {
            let y = Tensor(x.shape.dims), dx = Tensor(x.shape.dims), st = Tensor([4, 4])
            MinMaxNormalization.forward(x, into: y.view, eps: eps, statistics: st.view)
            MinMaxNormalization.backward(f[tag + ".dy"].view, x: x, eps: eps, statistics: st.view, dx: dx.view)
            assertClose(y.view, f[tag + ".y"].view, tag + " y")
            assertClose(dx.view, f[tag + ".dx"].view, tag + " dx", rtol: 1e-4)
        }
    }

    func testCosineSimilarity() throws {
        let f = try Fixture("cosine")
        let s = Tensor([4]), du = Tensor([4, 16]), dv = Tensor([4, 16])
        CosineSimilarity.forward(f["u"].view, f["v"].view, into: s.view)
        CosineSimilarity.backward(f["ds"].view, f["u"].view, f["v"].view, du: du.view, dv: dv.view)
        assertClose(s.view, f["s"].view, "s")
        assertClose(du.view, f["du"].view, "du")
        assertClose(dv.view, f["dv"].view, "dv")
    }

    func testSimilarityLossesAndMLSM() throws {
        let f = try Fixture("losses")
        for (name, kind) in [("negative_log", SimilarityLoss.Kind.negativeLog),
                             ("negative_log_one_minus", .negativeLogOneMinus), ("positive_log", .positiveLog)] {
            let ds = Tensor([8])
            let loss = SimilarityLoss.evaluate(kind, f["s"].view, gradient: ds.view)
            XCTAssertEqual(loss, f[name + ".loss"].data[0], accuracy: 1e-5 * max(1, abs(loss)), name)
            assertClose(ds.view, f[name + ".ds"].view, name + " ds")
        }
        let g = Tensor([3, 5])
        let loss = MultiLabelSoftMarginLoss.evaluate(f["mlsm.logits"].view, targets: f["mlsm.targets"].view, gradient: g.view)
        XCTAssertEqual(loss, f["mlsm.loss"].data[0], accuracy: 1e-6)
        assertClose(g.view, f["mlsm.dlogits"].view, "mlsm dlogits")
    }

    func testCosineScheduleMatchesTimm() throws {
        let data = try Data(contentsOf: Fixture.directory.appendingPathComponent("schedule.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let cases = json["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let schedule = CosineSchedule(baseLearningRate: c["base"] as! Double, minimumLearningRate: c["minimum"] as! Double,
                                          epochs: c["epochs"] as! Int, warmupEpochs: c["warmup"] as! Int)
            let expected = c["epoch_lr"] as! [Double]
            for (e, lr) in expected.enumerated() {
                XCTAssertEqual(schedule.learningRate(forEpoch: e), lr, accuracy: 1e-12 + 1e-9 * lr, "epoch \(e) of \(c)")
            }
        }
    }
}
