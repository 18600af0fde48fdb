import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
import SemplesManifest
@testable import SemplesPipeline

/// `job: train` and `job: pipeline` through the job runner on a synthetic VOC-layout dataset, a
/// tiny WeakTr (20 classes, 64 px grid) and a tiny CLIP with the full BPE vocabulary (so the real
/// class prompts tokenise), built from the committed fixture at test time.
final class SemPLeSJobTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("semples-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    static let vocabulary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/clip/bpe_simple_vocab_16e6.txt.gz")

    /// data/ (synthetic VOC), weaktr.pth (20 classes), clip/ (weights + vocabulary).
    func prepare(train: Int = 4, evaluation: Int = 2) throws {
        guard FileManager.default.fileExists(atPath: Self.vocabulary.path) else {
            throw XCTSkip("CLIP vocabulary not found at '\(Self.vocabulary.path)' (shared data absent)")
        }
        _ = try SyntheticDataset.write(to: folder.appendingPathComponent("data").path, trainCount: train,
                                       evalCount: evaluation, seed: 5)
        let config = WeakTrConfig(classCount: 20, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 64,
                                  reduction: 2, pooling: .max, featureHidden: 2, gridSide: 4)
        let dict = WeakTrInitializer.stateDict(config: config, seed: 7)
        try Pth.save(stateDict: dict.map { ($0.0, $0.1.view) }, key: "model", extras: [("epoch", .int(59))],
                     to: folder.appendingPathComponent("weaktr.pth").path)
        // The fixture CLIP with a token table of OpenAI's size.
        let clipFolder = folder.appendingPathComponent("clip")
        try FileManager.default.createDirectory(at: clipFolder, withIntermediateDirectories: true)
        var tensors = try SemPLeSFixtures.tensors("clip.safetensors")
        let table = Tensor([49408, 32])
        var g = SeededGenerator(seed: 3)
        for i in 0..<table.count { table.data[i] = 0.02 * g.nextNormal() }
        tensors["token_embedding.weight"] = table
        try SafeTensors.write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value.view) },
                              to: clipFolder.appendingPathComponent("clip.safetensors").path)
        try FileManager.default.copyItem(at: Self.vocabulary, to: clipFolder.appendingPathComponent("bpe_simple_vocab_16e6.txt.gz"))
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func result(_ out: URL) throws -> JobResult {
        try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
    }

    static let common = """
    data_set: VOC12
    data_path: data
    img_list: data/voc12/train_aug_id.txt
    clip: clip/clip.safetensors
    reduction: 2
    epochs: 1
    eval_start: 0
    seed: 3
    btp_length: 4
    """

    func testPipelineRunsAllStepsAndSkipsFinishedOnes() throws {
        try prepare(train: 2, evaluation: 1)
        let manifest = try write("pipeline.yaml", Self.common + """

        job: pipeline
        resume: weaktr.pth
        scales: [1.0]
        stage_a: {batch_size: 2, lr: 0.05}
        stage_b: {batch_size: 2, lr: 1.0, hypers: [0.1]}
        stage_c: {batch_size: 2, lr: 0.05}
        """)
        let out = folder.appendingPathComponent("out")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .succeeded,
                       (try? String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)) ?? "")
        let first = try result(out)
        XCTAssertEqual(first.state, "succeeded")
        for file in ["a/checkpoint_best_mIoU.pth", "a/loss_curve.png", "a/miou_per_epoch.png", "b/btp.pth",
                     "c/checkpoint_best_mIoU.pth", "cam/cams", "evaluate/metrics.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let prompts = try StageJob.readPrompts(out.appendingPathComponent("b/btp.pth").path, classCount: 20)
        XCTAssertEqual(prompts.shape.dims, [20, 4, 32])
        let miou = try XCTUnwrap(first.metrics["miou"])
        XCTAssertGreaterThan(miou, 0)

        // Finished steps are skipped; a step without its record reruns (stage c resumes from its
        // finished training checkpoint) and the result is the same.
        for name in ["c/step.json", "cam", "evaluate"] {
            try FileManager.default.removeItem(at: out.appendingPathComponent(name))
        }
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .succeeded)
        XCTAssertEqual(try result(out).metrics["miou"], miou)
        let log = try String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(log.contains("'a' already done"), log)
        XCTAssertTrue(log.contains("'b' already done"), log)
    }

    func testPipelineReportComparesBaseAndSemPLeSOnHeldOutImages() throws {
        try prepare(train: 2, evaluation: 2)
        let manifest = try write("pipeline.yaml", Self.common + """

        job: pipeline
        resume: weaktr.pth
        scales: [1.0]
        test_list: data/voc12/val_id.txt
        mask_epsilon: 0.0001
        stage_a: {batch_size: 2, lr: 0.05}
        stage_b: {batch_size: 2, lr: 1.0, hypers: [0.1]}
        stage_c: {batch_size: 2, lr: 0.05}
        """)
        let out = folder.appendingPathComponent("out")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false), .succeeded,
                       (try? String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)) ?? "")
        let report = try JSONDecoder().decode(SemPLeSReport.self,
                                              from: Data(contentsOf: out.appendingPathComponent("report/report.json")))
        XCTAssertEqual(report.models.map(\.name), ["WeakTr base", "stage (a)", "SemPLeS (c)"])
        XCTAssertEqual(report.testImages, 2)
        // Every class of the prompts is one of the synthetic objects, its nearest word a background word.
        XCTAssertFalse(report.prompts.isEmpty)
        for p in report.prompts { XCTAssertTrue(["sky", "water", "grass", "road"].contains(p.nearest)) }
        let table = try String(contentsOf: out.appendingPathComponent("report/report.txt"), encoding: .utf8)
        XCTAssertTrue(table.contains("SemPLeS CAM mIoU"), table)
        let record = try XCTUnwrap(OutboxSummary.record(out.path))
        XCTAssertEqual(record.miou?["weaktr"], (report.models[0].miou * 10_000).rounded() / 100)
        XCTAssertEqual(record.miou?["semples"], (report.models[2].miou * 10_000).rounded() / 100)
        XCTAssertTrue(try OutboxSummary.json([out.path]).contains("\"miou\""))
        let overlays = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("report/overlays").path)
        XCTAssertTrue(overlays.contains { $0.hasSuffix("_base_vs_semples.png") }, "\(overlays)")
        for step in ["a", "b", "c"] {
            let events = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent(step + "/tensorboard").path)
            XCTAssertTrue(events.contains { $0.hasPrefix("events.out.tfevents.") }, step)
        }
    }

    func testStageJobStopsAndResumes() throws {
        try prepare(train: 2, evaluation: 1)
        let manifest = try write("b.yaml", Self.common + """

        job: train
        stage: b
        resume: weaktr.pth
        batch_size: 1
        lr: 1.0
        """)
        let whole = folder.appendingPathComponent("whole"), parts = folder.appendingPathComponent("parts")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: whole.path, echo: false), .succeeded)
        // A stop requested before the first iteration: the job saves and reports "stopped".
        let m = try Manifest.load(path: manifest)
        let flag = StopFlag()
        flag.set("SIGTERM")
        let context = try JobContext(outputFolder: parts, echo: false, stop: flag)
        XCTAssertThrowsError(try StageJob(manifest: m).run(in: context)) { XCTAssertTrue($0 is JobStopped, "\($0)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: parts.appendingPathComponent(SemPLeSTrainer.checkpointName).path))
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: parts.path, echo: false), .succeeded)
        let a = try StageJob.readPrompts(whole.appendingPathComponent("btp.pth").path, classCount: 20)
        let b = try StageJob.readPrompts(parts.appendingPathComponent("btp.pth").path, classCount: 20)
        XCTAssertEqual(a.toArray(), b.toArray())
    }

    func testExampleManifestsParse() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples")
        for name in ["pipeline-voc.yaml", "train-stage-c-voc.yaml"] {
            let path = examples.appendingPathComponent(name).path
            let m = try Manifest.parse(String(contentsOfFile: path, encoding: .utf8), file: path, checkFiles: false)
            XCTAssertNotNil(m.semples, name)
            if m.job == .pipeline {
                let step = StageJob.settings(m, stage: .c)
                XCTAssertEqual(step.hypers, [2.4, 0.05])
                XCTAssertEqual(step.schedule.baseLearningRate, 6.4e-5, accuracy: 1e-12)
                XCTAssertEqual(StageJob.settings(m, stage: .b).batchSize, 128)
            } else {
                XCTAssertEqual(m.semples?.stage, "c")
                XCTAssertEqual(m.semples?.btpPath, "/runs/semples2/btp.pth")
            }
        }
    }

    func testBadManifestsAreRefusedBeforeWork() throws {
        try prepare(train: 2, evaluation: 1)
        func refused(_ name: String, _ extra: String, mentions: String) throws {
            let path = try write(name, Self.common + "\n" + extra)
            let out = folder.appendingPathComponent("out-" + name)
            XCTAssertEqual(JobRunner.run(manifestPath: path, outputFolder: out.path, echo: false), .badManifest, name)
            let r = try result(out)
            XCTAssertTrue(r.error?.contains(mentions) == true, "\(name): \(r.error ?? "no error")")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(SemPLeSTrainer.checkpointName).path))
        }
        try refused("stage.yaml", "job: train\nstage: d\nresume: weaktr.pth\n", mentions: "'d' is not a stage")
        try refused("btp.yaml", "job: train\nstage: c\nresume: weaktr.pth\n", mentions: "btp_path")
        try refused("hypers.yaml", "job: train\nstage: c\nresume: weaktr.pth\nbtp_path: weaktr.pth\nhypers: [2.4]\n",
                    mentions: "2 hyper-parameters")
        // A 3-class checkpoint for the 20 VOC classes.
        let threeClasses = SemPLeSFixtures.folder.appendingPathComponent("weaktr.safetensors").path
        try refused("classes.yaml", "job: train\nstage: a\nbatch_size: 1\nresume: \(threeClasses)\n", mentions: "cls_token")
    }
}
