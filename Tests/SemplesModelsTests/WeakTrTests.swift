import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
@testable import SemplesModels

/// Golden tests against the PyTorch reference in scripts/fixtures/weaktr.py (tiny geometry:
/// D 48, depth 2, 3 heads, C 3, reduction 2, max pooling).
final class WeakTrTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/weaktr")

    static func tensors(_ name: String) throws -> [String: Tensor] {
        let (list, _) = try SafeTensors.read(fixtures.appendingPathComponent(name).path)
        var dict: [String: Tensor] = [:]
        for t in list { dict[t.name] = t.tensor }
        return dict
    }

    static func tinyModel() throws -> WeakTr {
        try WeakTr.load(safetensors: fixtures.appendingPathComponent("model.safetensors").path,
                        classCount: 3, reduction: 2, pooling: .max)
    }

    /// Normalised [3, H, W] input from a stored uint8 [H, W, 3] image.
    static func input(_ image: Tensor) -> Tensor {
        let h = image.shape[0], w = image.shape[1]
        let bytes = image.toArray().map { UInt8($0) }
        let out = Tensor([3, h, w])
        bytes.withUnsafeBufferPointer { ImageNetInput.normalize($0.baseAddress!, width: w, height: h, into: out.view) }
        return out
    }

    func assertClose(_ got: TensorView, _ want: Tensor, tolerance: Float, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape.count, want.count, "\(what): \(got.shape) vs \(want.shape)", file: file, line: line)
        guard got.shape.count == want.count else { return }
        let g = got.toArray(), w = want.toArray()
        let scale = max(w.map(abs).max() ?? 0, 1e-6)
        var worst: Float = 0
        for i in 0..<g.count { worst = max(worst, abs(g[i] - w[i])) }
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what): max error \(worst) (scale \(scale))",
                                 file: file, line: line)
    }

    func testConfigIsReadFromShapes() throws {
        let model = try Self.tinyModel()
        XCTAssertEqual(model.config.embedDimension, 48)
        XCTAssertEqual(model.config.depth, 2)
        XCTAssertEqual(model.config.headCount, 3)
        XCTAssertEqual(model.config.mlpHidden, 192)
        XCTAssertEqual(model.config.channelHidden, 3)
        XCTAssertEqual(model.config.featureHidden, 2)
        XCTAssertEqual(model.config.gridSide, 14)
    }

    func checkForward(memory: WeakTrAttentionMemory) throws {
        let model = try Self.tinyModel()
        model.attentionMemory = memory
        let expected = try Self.tensors("forward.safetensors")
        for f in ["f0", "f1"] {
            let x = Self.input(expected["\(f).image"]!)
            let out = withExtendedLifetime(x) { model.forward(x.view, patchAttention: true) }
            let tag = "\(f) \(memory)"
            assertClose(out.fusionWeights, expected["\(f).aaf_weights"]!, tolerance: 1e-5, "\(tag) AAF weights")
            assertClose(out.logits, expected["\(f).logits_map"]!, tolerance: 1e-5, "\(tag) logits")
            assertClose(out.cams, expected["\(f).cams"]!, tolerance: 1e-5, "\(tag) cams")
            assertClose(out.patchAttention!, expected["\(f).patch_attn"]!, tolerance: 1e-5, "\(tag) patch attention")
            assertClose(out.fineCAM, expected["\(f).fine_cam"]!, tolerance: 1e-5, "\(tag) fine CAM")
            assertClose(out.classTokenPrediction, expected["\(f).cls_token_pred"]!, tolerance: 1e-5, "\(tag) cls pred")
            assertClose(out.coarseCAMPrediction, expected["\(f).coarse_cam_pred"]!, tolerance: 1e-5, "\(tag) coarse pred")
            assertClose(out.fineCAMPrediction, expected["\(f).fine_cam_pred"]!, tolerance: 1e-5, "\(tag) fine pred")
            // Without the patch-attention output the parallel fine-CAM path must agree.
            let fast = withExtendedLifetime(x) { model.forward(x.view) }
            XCTAssertNil(fast.patchAttention)
            assertClose(fast.fineCAM, expected["\(f).fine_cam"]!, tolerance: 1e-5, "\(tag) fine CAM (parallel)")
        }
    }

    func testForwardMatchesReferenceRecomputing() throws { try checkForward(memory: .recompute) }
    func testForwardMatchesReferenceKeeping() throws { try checkForward(memory: .keep) }

    func testAveragePoolingMatchesReference() throws {
        let model = try WeakTr.load(safetensors: Self.fixtures.appendingPathComponent("model.safetensors").path,
                                    classCount: 3, reduction: 2, pooling: .avg)
        let expected = try Self.tensors("forward.safetensors")
        let input = Self.input(expected["f0.image"]!)
        let out = withExtendedLifetime(input) { model.forward(input.view) }
        assertClose(out.fusionWeights, expected["avg.aaf_weights"]!, tolerance: 1e-5, "avg AAF weights")
        assertClose(out.cams, expected["avg.cams"]!, tolerance: 1e-5, "avg cams")
        assertClose(out.fineCAM, expected["avg.fine_cam"]!, tolerance: 1e-5, "avg fine CAM")
        XCTAssertGreaterThan(zip(expected["avg.aaf_weights"]!.toArray(), expected["f0.aaf_weights"]!.toArray())
            .map { abs($0 - $1) }.max()!, 1e-3, "the fixture must tell max from avg pooling")
    }

    func testAttentionMemoryChoice() {
        // 72 maps of N² floats: N = 733 (500×375) is 155 MB, N = 1748 (768×576) is 880 MB.
        XCTAssertTrue(WeakTrAttentionMemory.standard.keeps(tokens: 733, maps: 72))
        XCTAssertFalse(WeakTrAttentionMemory.standard.keeps(tokens: 1748, maps: 72))
        XCTAssertTrue(WeakTrAttentionMemory.keep.keeps(tokens: 1748, maps: 72))
        XCTAssertFalse(WeakTrAttentionMemory.recompute.keeps(tokens: 10, maps: 72))
        let model = try? Self.tinyModel()
        XCTAssertEqual(model?.attentionMemory, .standard)
        // Recomputing needs less workspace than keeping once the maps dominate.
        model?.attentionMemory = .recompute
        let small = model?.workspaceFloats(patchRows: 30, patchColumns: 40) ?? 0
        model?.attentionMemory = .keep
        let large = model?.workspaceFloats(patchRows: 30, patchColumns: 40) ?? 0
        XCTAssertGreaterThan(large, small)
        XCTAssertGreaterThanOrEqual(large, 6 * 1203 * 1203)
        XCTAssertLessThan(small, 6 * 1203 * 1203)
    }

    func testStrictLoadingReportsEveryProblem() throws {
        var dict = try Self.tensors("model.safetensors")
        dict.removeValue(forKey: "blocks.1.mlp.fc2.bias")
        dict["blocks.0.attn.extra"] = Tensor([2])
        dict["head.bias"] = Tensor([4])
        XCTAssertThrowsError(try WeakTr(stateDict: dict, classCount: 3, reduction: 2, pooling: .max, source: "ck.pth")) { error in
            guard let e = error as? WeakTrLoadError else { return XCTFail("unexpected error \(error)") }
            XCTAssertEqual(e.path, "ck.pth")
            XCTAssertEqual(e.problems.count, 3, e.description)
            XCTAssertTrue(e.description.contains("missing in file: 'blocks.1.mlp.fc2.bias'"), e.description)
            XCTAssertTrue(e.description.contains("unexpected in file: 'blocks.0.attn.extra'"), e.description)
            XCTAssertTrue(e.description.contains("'head.bias': in file [4], in model [3]"), e.description)
        }
        // A wrong class count or reduction from the caller shows up as mis-shaped keys.
        let good = try Self.tensors("model.safetensors")
        XCTAssertThrowsError(try WeakTr(stateDict: good, classCount: 20, reduction: 4, pooling: .max, source: "x")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("'cls_token': in file [1, 3, 48], in model [1, 20, 48]"), text)
            XCTAssertTrue(text.contains("attn_head_ffn.0.weight': in file [3, 6], in model [1, 6]"), text)
        }
    }
}
