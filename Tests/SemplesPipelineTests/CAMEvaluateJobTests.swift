import XCTest
@testable import SemplesPipeline
import SemplesEngine
import SemplesFormats
import SemplesModels

/// cam → evaluate through the job runner on a small synthetic VOC-layout dataset with a tiny
/// randomly initialised WeakTr: file layout, formats, resume, metrics.
final class CAMEvaluateJobTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func tinyCheckpoint() throws -> String {
        let config = WeakTrConfig(classCount: 20, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 64,
                                  reduction: 2, pooling: .max, featureHidden: 2, gridSide: 14)
        let dict = WeakTrInitializer.stateDict(config: config, seed: 7)
        let path = folder.appendingPathComponent("tiny.pth").path
        try Pth.save(stateDict: dict.map { ($0.0, $0.1.view) }, key: "model",
                     extras: [("epoch", .int(3)), ("miou", .float(0.5))], to: path)
        return path
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func result(_ out: URL) throws -> JobResult {
        try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
    }

    func testCAMThenEvaluateWithResume() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 0, evalCount: 3, seed: 11)
        let checkpoint = try tinyCheckpoint()
        let camManifest = try write("cam.yaml", """
        job: cam
        data_set: VOC12
        data_path: data
        img_list: data/voc12/train_id.txt
        resume: \(checkpoint)
        reduction: 2
        scales: [1.0, 0.5]
        overlays: true
        masks: true
        mask_threshold: 0.4
        """)
        let camOut = folder.appendingPathComponent("cam-out")
        XCTAssertEqual(JobRunner.run(manifestPath: camManifest, outputFolder: camOut.path, echo: false), .succeeded)
        XCTAssertEqual(try result(camOut).state, "succeeded")
        let ids = try SegmentationDataset.readIDs(data + "/voc12/train_id.txt")
        let labels = try Npy.readLabelDict(data + "/voc12/cls_labels.npy")
        for id in ids {
            let cams = try Npy.readCAMDict(camOut.path + "/cams/\(id).npy")
            let positives = labels[id]!.enumerated().filter { $0.element > 0 }.map(\.offset)
            XCTAssertEqual(cams.keys.sorted(), positives, id)
            let image = try ImageIO.read(data + "/voc12/VOCdevkit/VOC2012/JPEGImages/\(id).jpg")
            for cam in cams.values {
                XCTAssertEqual(cam.shape.dims, [image.height, image.width])
                let values = cam.toArray()
                XCTAssertEqual(values.min()!, 0, accuracy: 1e-6)
                // (max − min)/(max − min + 1e-8): just below 1 when a random model's CAMs are faint.
                XCTAssertLessThanOrEqual(values.max()!, 1)
                XCTAssertGreaterThan(values.max()!, 0.5)
            }
            let mask = try ImageIO.readLabels(camOut.path + "/masks/\(id).png")
            XCTAssertEqual(mask.width, image.width)
            XCTAssertTrue(Set(mask.pixels).isSubset(of: Set([0] + positives.map { UInt8($0 + 1) })))
        }
        let overlays = try FileManager.default.contentsOfDirectory(atPath: camOut.path + "/overlays")
        XCTAssertFalse(overlays.isEmpty)

        // Resume: remove one CAM; a second run recomputes only that one, identically.
        let victim = camOut.path + "/cams/\(ids[1]).npy"
        let before = try Npy.readCAMDict(victim)
        try FileManager.default.removeItem(atPath: victim)
        XCTAssertEqual(JobRunner.run(manifestPath: camManifest, outputFolder: camOut.path, echo: false), .succeeded)
        XCTAssertEqual(try result(camOut).metrics["images_this_run"], 1)
        let after = try Npy.readCAMDict(victim)
        for (k, t) in before { XCTAssertEqual(t.toArray(), after[k]!.toArray()) }

        // Evaluate those CAMs: the sweep starts at 0.40 and never goes past 0.59.
        let evalManifest = try write("eval.yaml", """
        job: evaluate
        data_set: VOC12
        data_path: data
        img_list: data/voc12/train_id.txt
        predict_dir: \(camOut.path)/cams
        curve: true
        start: 40
        """)
        let evalOut = folder.appendingPathComponent("eval-out")
        XCTAssertEqual(JobRunner.run(manifestPath: evalManifest, outputFolder: evalOut.path, echo: false), .succeeded)
        let r = try result(evalOut)
        XCTAssertEqual(r.state, "succeeded")
        let miou = try XCTUnwrap(r.metrics["miou"])
        XCTAssertTrue(miou > 0 && miou < 1, "mIoU \(miou)")
        let t = try XCTUnwrap(r.metrics["threshold"])
        XCTAssertTrue(t >= 0.40 && t <= 0.59)
        XCTAssertTrue(FileManager.default.fileExists(atPath: evalOut.path + "/metrics.json"))
        // All-background baseline, computed here from the ground truth: only the background class
        // scores (its pixels over all counted pixels); every other present class scores 0.
        var backgroundPixels = 0, countedPixels = 0
        var present = Set<UInt8>()
        for id in ids {
            let gt = try ImageIO.readLabels(data + "/voc12/VOCdevkit/VOC2012/SegmentationClassAug/\(id).png")
            for v in gt.pixels where v != 255 {
                countedPixels += 1
                if v == 0 { backgroundPixels += 1 }
                present.insert(v)
            }
        }
        let expected = Double(backgroundPixels) / Double(countedPixels) / Double(present.count)
        let background = try XCTUnwrap(r.metrics["baseline_all_background_miou"])
        XCTAssertEqual(background, expected, accuracy: 1e-12)
        let everywhere = try XCTUnwrap(r.metrics["baseline_label_everywhere_miou"])
        XCTAssertTrue(background > 0 && background < 1)
        XCTAssertTrue(everywhere > 0 && everywhere < 1)
        let plot = try ImageIO.read(evalOut.path + "/miou_curve.png")
        XCTAssertGreaterThan(plot.width, 100)
    }

    func testMissingImagesAreReportedBeforeAnyWork() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 0, evalCount: 2, seed: 3)
        let ids = try SegmentationDataset.readIDs(data + "/voc12/train_id.txt")
        try FileManager.default.removeItem(atPath: data + "/voc12/VOCdevkit/VOC2012/JPEGImages/\(ids[0]).jpg")
        let manifest = try write("cam.yaml", """
        job: cam
        data_path: data
        img_list: data/voc12/train_id.txt
        resume: \(try tinyCheckpoint())
        reduction: 2
        """)
        let out = folder.appendingPathComponent("out")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .badManifest)
        let r = try result(out)
        XCTAssertEqual(r.state, "failed")
        XCTAssertTrue(r.error?.contains("\(ids[0]).jpg") ?? false, r.error ?? "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path + "/cams/\(ids[1]).npy"))
    }

    func testCorruptCheckpointFailsWithTheFileNamed() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 0, evalCount: 1, seed: 3)
        let bad = try write("bad.pth", "PK\u{3}\u{4} this is not a checkpoint")
        let manifest = try write("cam.yaml", "job: cam\ndata_path: data\nimg_list: data/voc12/train_id.txt\nresume: bad.pth\n")
        let out = folder.appendingPathComponent("out")
        XCTAssertNotEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .succeeded)
        let r = try result(out)
        XCTAssertEqual(r.state, "failed")
        XCTAssertTrue(r.error?.contains(bad) ?? false, r.error ?? "")
    }
}
