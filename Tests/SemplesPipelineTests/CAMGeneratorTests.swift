import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// Multi-scale CAM generation (spec §5) against the PyTorch reference of scripts/fixtures/weaktr.py:
/// two non-square images, scales 1.0 and 1.2 with flips, PIL-bicubic rescaled inputs taken from
/// the fixture.
final class CAMGeneratorTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/weaktr")

    static func tensors(_ name: String) throws -> [String: Tensor] {
        let (list, _) = try SafeTensors.read(fixtures.appendingPathComponent(name).path)
        var dict: [String: Tensor] = [:]
        for t in list { dict[t.name] = t.tensor }
        return dict
    }

    static func model() throws -> WeakTr {
        try WeakTr.load(safetensors: fixtures.appendingPathComponent("model.safetensors").path,
                        classCount: 3, reduction: 2, pooling: .max)
    }

    static func rgb(_ t: Tensor) -> Image8 {
        Image8(width: t.shape[1], height: t.shape[0], channels: 3, pixels: t.toArray().map { UInt8($0) })
    }

    static let labels: [[Float]] = [[1, 0, 1], [0, 1, 0]]

    func testMultiScaleCAMsMatchReference() throws {
        let expected = try Self.tensors("cams.safetensors")
        for memory in [WeakTrAttentionMemory.recompute, .keep] {
            let model = try Self.model()
            model.attentionMemory = memory
            let generator = CAMGenerator(model: model, scales: [1.0, 1.2])
            for (i, labels) in Self.labels.enumerated() {
                let inputs = [Self.rgb(expected["i\(i).scaled0"]!), Self.rgb(expected["i\(i).scaled1"]!)]
                let image = expected["i\(i).image"]!
                let size = CAMGenerator.scaledSize(width: image.shape[1], height: image.shape[0], scale: 1.2)
                XCTAssertEqual([size.height, size.width, 3], expected["i\(i).scaled1"]!.shape.dims)
                let cams = generator.cams(scaledImages: inputs, labels: labels)
                let positives = (0..<3).filter { labels[$0] > 0 }
                XCTAssertEqual(cams.keys.sorted(), positives)
                for k in positives {
                    let want = expected["i\(i).cam\(k)"]!
                    let got = cams[k]!
                    XCTAssertEqual(got.shape, want.shape)
                    let g = got.toArray(), w = want.toArray()
                    var worst: Float = 0
                    for j in 0..<g.count { worst = max(worst, abs(g[j] - w[j])) }
                    XCTAssertLessThanOrEqual(worst, 1e-4, "image \(i) class \(k) (\(memory)): max error \(worst)")
                    XCTAssertEqual(g.max()!, 1, accuracy: 1e-5)
                    XCTAssertEqual(g.min()!, 0, accuracy: 1e-5)
                }
            }
        }
    }

    /// The whole path from the original image, PIL-bicubic rescale included.
    func testCAMsFromOriginalImagesMatchReference() throws {
        let expected = try Self.tensors("cams.safetensors")
        let generator = CAMGenerator(model: try Self.model(), scales: [1.0, 1.2])
        for (i, labels) in Self.labels.enumerated() {
            let image = Self.rgb(expected["i\(i).image"]!)
            let rescaled = PILResize.bicubic(image, width: expected["i\(i).scaled1"]!.shape[1],
                                             height: expected["i\(i).scaled1"]!.shape[0])
            XCTAssertEqual(rescaled, Self.rgb(expected["i\(i).scaled1"]!), "PIL bicubic rescale of image \(i)")
            let cams = generator.cams(for: image, labels: labels)
            XCTAssertEqual(cams.keys.sorted(), (0..<3).filter { labels[$0] > 0 })
            for (k, got) in cams {
                let g = got.toArray(), w = expected["i\(i).cam\(k)"]!.toArray()
                var worst: Float = 0
                for j in 0..<g.count { worst = max(worst, abs(g[j] - w[j])) }
                XCTAssertLessThanOrEqual(worst, 1e-4, "image \(i) class \(k): max error \(worst)")
            }
        }
    }

    /// Each entry of the sum: resized, label-masked, flipped back (image 0 in the fixture).
    func testBilinearUpsampleAndFlipMatchReference() throws {
        let expected = try Self.tensors("cams.safetensors")
        let model = try Self.model()
        let scratch = Tensor([2, 100])
        defer { withExtendedLifetime(scratch) {} }
        for (entry, scaled, flipped) in [(0, "scaled0", false), (1, "scaled0", true), (2, "scaled1", false), (3, "scaled1", true)] {
            let input = Self.rgb(expected["i0.\(scaled)"]!)
            let x = Tensor([3, input.height, input.width])
            input.pixels.withUnsafeBufferPointer {
                ImageNetInput.normalize($0.baseAddress!, width: input.width, height: input.height, flipped: flipped, into: x.view)
            }
            let out = withExtendedLifetime(x) { model.forward(x.view) }
            let want = expected["i0.entry\(entry)"]!          // [3, 70, 100]
            for k in 0..<3 {
                let dst = Tensor([70, 100])
                CAMResize.bilinearAdd(out.fineCAM.data + k * out.patchRows * out.patchColumns,
                                      height: out.patchRows, width: out.patchColumns, into: dst.data,
                                      outHeight: 70, outWidth: 100, weight: Self.labels[0][k], mirrored: flipped,
                                      scratch: scratch.view)
                let w = Array(want.toArray()[(k * 7000)..<((k + 1) * 7000)])
                let g = dst.toArray()
                let scale = max(w.map(abs).max()!, 1e-6)
                var worst: Float = 0
                for j in 0..<g.count { worst = max(worst, abs(g[j] - w[j])) }
                XCTAssertLessThanOrEqual(worst / scale, 5e-5, "entry \(entry) class \(k): max error \(worst)")
            }
        }
    }

    /// The committed `.pth` ({'model': state_dict, 'epoch', 'miou'}) loads strictly and gives the
    /// reference CAMs.
    func testPthCheckpointGivesReferenceCAMs() throws {
        let path = Self.fixtures.appendingPathComponent("model.pth").path
        let model = try Checkpoints.loadWeakTr(path, classCount: 3, reduction: 2, pooling: .max)
        XCTAssertEqual(model.config, try Self.model().config)
        let expected = try Self.tensors("cams.safetensors")
        let cams = CAMGenerator(model: model, scales: [1.0, 1.2])
            .cams(for: Self.rgb(expected["i0.image"]!), labels: Self.labels[0])
        for (k, got) in cams {
            let g = got.toArray(), w = expected["i0.cam\(k)"]!.toArray()
            XCTAssertLessThanOrEqual(zip(g, w).map { abs($0 - $1) }.max()!, 1e-4, "class \(k)")
        }
        XCTAssertThrowsError(try Checkpoints.loadWeakTr(path, classCount: 20, reduction: 8, pooling: .max)) { error in
            XCTAssertTrue("\(error)".contains("model.pth"), "\(error)")
            XCTAssertTrue("\(error)".contains("'head.bias': in file [3], in model [20]"), "\(error)")
        }
    }

    func testTooSmallOrGreyImagesAreRejected() throws {
        let generator = CAMGenerator(model: try Self.model(), scales: [1.0, 0.5])
        XCTAssertNoThrow(try generator.checkInput(Image8(width: 40, height: 32, channels: 3), source: "a.jpg"))
        XCTAssertThrowsError(try generator.checkInput(Image8(width: 40, height: 20, channels: 3), source: "b.jpg")) {
            XCTAssertTrue("\($0)".contains("'b.jpg'") && "\($0)".contains("at scale 0.5"), "\($0)")
        }
        XCTAssertThrowsError(try generator.checkInput(Image8(width: 40, height: 40, channels: 1), source: "c.png")) {
            XCTAssertTrue("\($0)".contains("expected RGB"), "\($0)")
        }
    }

    func testNoPositiveLabelGivesNoCAMs() throws {
        let expected = try Self.tensors("cams.safetensors")
        let generator = CAMGenerator(model: try Self.model(), scales: [1.0, 1.2])
        let inputs = [Self.rgb(expected["i0.scaled0"]!), Self.rgb(expected["i0.scaled1"]!)]
        XCTAssertTrue(generator.cams(scaledImages: inputs, labels: [0, 0, 0]).isEmpty)
    }

    func testScaledSizeRoundsHalfToEven() {
        XCTAssertTrue(CAMGenerator.scaledSize(width: 500, height: 375, scale: 1.2) == (600, 450))
        XCTAssertTrue(CAMGenerator.scaledSize(width: 5, height: 7, scale: 0.5) == (2, 4))   // 2.5 → 2, 3.5 → 4
    }
}
