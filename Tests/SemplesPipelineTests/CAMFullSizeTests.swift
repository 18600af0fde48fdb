import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// Optional check at full DeiT-S size (C 20, reduction 8, max pooling) against fixtures made by
/// `python scripts/fixtures/weaktr.py --full --out DIR` (about 240 MB, not committed). Runs when
/// SEMPLES_WEAKTR_FULL_FIXTURES=DIR is set; best in a release build:
///   SEMPLES_WEAKTR_FULL_FIXTURES=/tmp/weaktr-full swift test -c release --filter CAMFullSizeTests
final class CAMFullSizeTests: XCTestCase {
    func testFullSizeForwardAndCAMsMatchReference() throws {
        guard let folder = ProcessInfo.processInfo.environment["SEMPLES_WEAKTR_FULL_FIXTURES"] else {
            throw XCTSkip("SEMPLES_WEAKTR_FULL_FIXTURES is not set (make the fixtures with scripts/fixtures/weaktr.py --full)")
        }
        let dir = URL(fileURLWithPath: folder)
        func tensors(_ name: String) throws -> [String: Tensor] {
            var dict: [String: Tensor] = [:]
            for t in try SafeTensors.read(dir.appendingPathComponent(name).path).tensors { dict[t.name] = t.tensor }
            return dict
        }
        func maxError(_ got: [Float], _ want: [Float]) -> Float {
            let scale = max(want.map(abs).max() ?? 0, 1e-12)
            return zip(got, want).map { abs($0 - $1) }.max()! / scale
        }
        func rgb(_ t: Tensor) -> Image8 {
            Image8(width: t.shape[1], height: t.shape[0], channels: 3, pixels: t.toArray().map { UInt8($0) })
        }
        let model = try Checkpoints.loadWeakTr(dir.appendingPathComponent("model.pth").path, classCount: 20,
                                               reduction: 8, pooling: .max)
        XCTAssertEqual(model.config, WeakTrConfig.deitSmall(classCount: 20))

        let forward = try tensors("forward.safetensors")
        for memory in [WeakTrAttentionMemory.keep, .recompute] {
            model.attentionMemory = memory
            for f in ["f0", "f1"] {
                let image = rgb(forward["\(f).image"]!)
                let x = Tensor([3, image.height, image.width])
                image.pixels.withUnsafeBufferPointer {
                    ImageNetInput.normalize($0.baseAddress!, width: image.width, height: image.height, into: x.view)
                }
                let out = withExtendedLifetime(x) { model.forward(x.view, patchAttention: true) }
                for (name, got) in [("cams", out.cams), ("fine_cam", out.fineCAM), ("patch_attn", out.patchAttention!),
                                    ("aaf_weights", out.fusionWeights), ("logits_map", out.logits)] {
                    let err = maxError(got.toArray(), forward["\(f).\(name)"]!.toArray())
                    XCTAssertLessThanOrEqual(err, 1e-4, "\(f) \(name) (\(memory))")
                }
            }
        }

        model.attentionMemory = .standard
        let cams = try tensors("cams.safetensors")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
        let images = meta["images"] as! [[String: Any]]
        let generator = CAMGenerator(model: model, scales: [1.0, 1.2])
        for (i, info) in images.enumerated() {
            let labels = (info["labels"] as! [Double]).map(Float.init)
            let result = generator.cams(for: rgb(cams["i\(i).image"]!), labels: labels)
            XCTAssertEqual(result.keys.sorted(), (0..<20).filter { labels[$0] > 0 })
            for (k, got) in result {
                let want = cams["i\(i).cam\(k)"]!.toArray()
                let err = zip(got.toArray(), want).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(err, 1e-4, "image \(i) class \(k)")
            }
        }
    }
}
