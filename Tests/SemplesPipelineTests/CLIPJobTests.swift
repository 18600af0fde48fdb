import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
import SemplesManifest
@testable import SemplesPipeline

/// `job: clip` through the job runner on a tiny captioned synthetic corpus: the checkpoint loads
/// with the CLIP loader, zero-shot accuracies land in result.json, TensorBoard events and plots are
/// written; bad manifests are refused with the key named. Captions of `make-dataset synthetic`.
final class CLIPJobTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("semples-clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testCaptionsDescribeEveryImageAndTheCorpusIsSplit() throws {
        let data = folder.appendingPathComponent("data").path
        let summary = try SyntheticDataset.write(to: data, trainCount: 4, evalCount: 3, validationCount: 2, clipCount: 30, seed: 9)
        XCTAssertEqual(summary.clip, 30)
        let index = try CaptionIndex.read(data + "/voc12/captions.json")
        XCTAssertEqual(index.images.count, 4 + 3 + 2 + 30)
        XCTAssertEqual(index.homes["cow"], "grass")
        let validation = try SegmentationDataset.readIDs(data + "/voc12/train_id.txt")
        let evaluation = try SegmentationDataset.readIDs(data + "/voc12/val_id.txt")
        XCTAssertEqual(validation.count, 2)
        XCTAssertEqual(evaluation.count, 3)
        XCTAssertTrue(Set(validation).isDisjoint(with: evaluation))
        let clipTrain = try SegmentationDataset.readIDs(data + "/voc12/clip_train_id.txt")
        let clipHeld = try SegmentationDataset.readIDs(data + "/voc12/clip_val_id.txt")
        XCTAssertEqual(clipTrain.count + clipHeld.count, 30)
        for id in evaluation {
            let e = try XCTUnwrap(index.images[id])
            XCTAssertEqual(e.kind, "scene")
            // Every object of the scene is named, and so is the background.
            XCTAssertTrue(e.captions[0].contains(e.background!), e.captions[0])
            for o in e.objects { XCTAssertTrue(e.captions[0].contains(o), e.captions[0]) }
        }
        let kinds = Set(clipTrain.compactMap { index.images[$0]?.kind })
        XCTAssertTrue(kinds.isSuperset(of: ["scene", "object", "background"]), "\(kinds)")
        // The segmentation images do not depend on the corpus.
        let other = folder.appendingPathComponent("other").path
        _ = try SyntheticDataset.write(to: other, trainCount: 4, evalCount: 3, validationCount: 2, seed: 9)
        for id in evaluation {
            let a = try Data(contentsOf: URL(fileURLWithPath: data + "/voc12/VOCdevkit/VOC2012/JPEGImages/\(id).jpg"))
            let b = try Data(contentsOf: URL(fileURLWithPath: other + "/voc12/VOCdevkit/VOC2012/JPEGImages/\(id).jpg"))
            XCTAssertEqual(a, b)
        }
    }

    func testCLIPJobTrainsAndWritesALoadableCheckpoint() throws {
        guard FileManager.default.fileExists(atPath: SemPLeSJobTests.vocabulary.path) else {
            throw XCTSkip("CLIP vocabulary not found at '\(SemPLeSJobTests.vocabulary.path)' (shared data absent)")
        }
        _ = try SyntheticDataset.write(to: folder.appendingPathComponent("data").path, trainCount: 0, evalCount: 1,
                                       clipCount: 36, seed: 4)
        let manifest = try write("clip.yaml", """
        job: clip
        data_path: data
        vocabulary: \(SemPLeSJobTests.vocabulary.path)
        input_size: 32
        patch_size: 16
        clip_width: 64
        clip_layers: 1
        text_width: 64
        text_layers: 1
        clip_embed_dim: 16
        epochs: 2
        batch_size: 4
        """)
        let out = folder.appendingPathComponent("out")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .succeeded,
                       (try? String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)) ?? "")
        let result = try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
        let zeroShot = result.metrics.filter { $0.key.hasPrefix("zero_shot_") }
        XCTAssertFalse(zeroShot.isEmpty, "\(result.metrics)")
        XCTAssertTrue(zeroShot.values.allSatisfy { (0...1).contains($0) })
        XCTAssertTrue(result.metrics["final_loss"]!.isFinite)
        let model = try CLIPModel.load(out.appendingPathComponent(CLIPJob.checkpointName).path)
        XCTAssertEqual(model.config, CLIPConfig(imageResolution: 32, patchSize: 16, visionWidth: 64, visionLayers: 1, visionHeads: 1,
                                                embedDimension: 16, contextLength: 77, vocabularySize: 49408, textWidth: 64,
                                                textLayers: 1, textHeads: 1))
        XCTAssertNotEqual(model.logitScale.value.data[0], 0)
        // The stages find the vocabulary beside the weights.
        _ = try CLIPTokenizer.load(modelFolder: out.path)
        for file in ["history.json", "loss_curve.png", "zero_shot.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let events = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("tensorboard").path)
        XCTAssertTrue(events.contains { $0.hasPrefix("events.out.tfevents.") }, "\(events)")
    }

    func testBadCLIPManifestsAreRefusedWithTheKey() throws {
        _ = try SyntheticDataset.write(to: folder.appendingPathComponent("data").path, trainCount: 0, evalCount: 1,
                                       clipCount: 6, seed: 4)
        let cases: [(String, String)] = [("clip_width: 100", "clip_width"), ("patch_size: 5", "patch_size"),
                                         ("batch_size: 1", "batch_size"), ("stage: a", "stage"),
                                         ("captions: nowhere.json", "captions")]
        for (line, key) in cases {
            let path = try write("bad.yaml", "job: clip\ndata_path: data\n\(line)\n")
            XCTAssertThrowsError(try Manifest.load(path: path), line) { error in
                XCTAssertEqual((error as? ManifestError)?.key, key, "\(error)")
            }
        }
        let path = try write("ok.yaml", "job: clip\ndata_path: data\n")
        let m = try Manifest.load(path: path)
        XCTAssertTrue(m.imgList.hasSuffix("voc12/clip_train_id.txt"))
        XCTAssertTrue(m.clip!.heldoutList!.hasSuffix("voc12/clip_val_id.txt"))
    }
}
