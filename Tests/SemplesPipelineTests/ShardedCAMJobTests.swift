import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// The sharded CAM step of `job: pipeline` and the runner's `--shard` / `--merge-shards` parts, on a
/// synthetic dataset with a tiny random WeakTr. Shard processes are the built `semples` binary.
final class ShardedCAMJobTests: XCTestCase {
    var folder: URL!
    var previousThreads = Parallel.threads

    override func setUpWithError() throws {
        previousThreads = Parallel.threads
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("sharded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        Parallel.configure(threads: previousThreads)
        try? FileManager.default.removeItem(at: folder)
    }

    /// The built `semples` beside the test bundle (.build/debug), or in $SEMPLES_BIN_DIR.
    func semples() throws -> String {
        var candidates: [String] = []
        if let dir = ProcessInfo.processInfo.environment["SEMPLES_BIN_DIR"], !dir.isEmpty { candidates.append(dir + "/semples") }
        var url = Bundle.main.bundleURL
        for _ in 0..<4 { candidates.append(url.appendingPathComponent("semples").path); url.deleteLastPathComponent() }
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/semples").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("the semples binary is not built (looked in \(candidates)); run 'swift build'")
        }
        return found
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func cams(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            files[name] = try Data(contentsOf: folder.appendingPathComponent(name))
        }
        return files
    }

    func testPipelineCAMStepRunsShardedAndEqualsUnshardedCAMs() throws {
        let command = [try semples(), "run"]
        _ = try SyntheticDataset.write(to: folder.appendingPathComponent("data").path, trainCount: 0, evalCount: 5, seed: 11)
        let config = WeakTrConfig(classCount: 20, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 64,
                                  reduction: 2, pooling: .max, featureHidden: 2, gridSide: 14)
        let dict = WeakTrInitializer.stateDict(config: config, seed: 7)
        let model = folder.appendingPathComponent("model.pth").path
        try Pth.save(stateDict: dict.map { ($0.0, $0.1.view) }, key: "model", extras: [("epoch", .int(3))], to: model)
        _ = try write("clip.safetensors", "not read: stages a to c are recorded as done")
        let common = """
        data_set: VOC12
        data_path: data
        img_list: data/voc12/train_id.txt
        reduction: 2
        scales: [1.0, 0.5]

        """
        let reference = folder.appendingPathComponent("reference")
        let camManifest = try write("cam.yaml", common + "job: cam\nresume: \(model)\n")
        XCTAssertEqual(JobRunner.run(manifestPath: camManifest, outputFolder: reference.path, threads: 1, echo: false), .succeeded)

        // A pipeline whose stages a, b and c are done (c's model is the tiny WeakTr): cam runs in 3 shards, then evaluate.
        let out = folder.appendingPathComponent("pipeline")
        for step in ["a", "b", "c"] {
            let stepFolder = out.appendingPathComponent(step)
            try FileManager.default.createDirectory(at: stepFolder, withIntermediateDirectories: true)
            let record = PipelineJob.StepRecord(step: step, metrics: [:], outputs: [], finished: Date())
            try JSONCoding.encoder.encode(record).write(to: stepFolder.appendingPathComponent("step.json"))
        }
        try FileManager.default.copyItem(atPath: model, toPath: out.appendingPathComponent("c/checkpoint.pth").path)
        let pipeline = try write("pipeline.yaml", common + "job: pipeline\nresume: \(model)\nclip: clip.safetensors\nshards: 3\n")
        XCTAssertEqual(JobRunner.run(manifestPath: pipeline, outputFolder: out.path, threads: 3, echo: false, shardCommand: command),
                       .succeeded, (try? String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)) ?? "")
        let camFolder = out.appendingPathComponent("cam")
        let want = try cams(reference.appendingPathComponent("cams"))
        XCTAssertEqual(want.count, 5)
        XCTAssertEqual(try cams(camFolder.appendingPathComponent("cams")), want, "the sharded CAM step's files equal an unsharded run's")
        for k in 0..<3 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: camFolder.appendingPathComponent("shards/\(k).json").path))
            XCTAssertTrue(FileManager.default.fileExists(atPath: camFolder.appendingPathComponent("log-shard-\(k).txt").path))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("evaluate/metrics.json").path))
        let result = try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
        XCTAssertEqual(result.metrics["cam.shards"], 3)
        XCTAssertNotNil(result.metrics["miou"])
    }

    /// `--shard K/N` by hand, then `--merge-shards`: the merge refuses while a shard is missing and
    /// names it, and succeeds once all are there; a shard that does not fit the manifest is refused.
    func testShardsByHandThenMerge() throws {
        _ = try SyntheticDataset.write(to: folder.appendingPathComponent("data").path, trainCount: 0, evalCount: 4, seed: 12)
        let config = WeakTrConfig(classCount: 20, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 64,
                                  reduction: 2, pooling: .max, featureHidden: 2, gridSide: 14)
        let model = folder.appendingPathComponent("model.pth").path
        try Pth.save(stateDict: WeakTrInitializer.stateDict(config: config, seed: 8).map { ($0.0, $0.1.view) }, key: "model",
                     extras: [], to: model)
        let manifest = try write("cam.yaml", """
        job: cam
        data_path: data
        img_list: data/voc12/train_id.txt
        resume: \(model)
        reduction: 2
        scales: [0.5]
        shards: 2

        """)
        let out = folder.appendingPathComponent("out")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false, part: .shard(index: 1, count: 3)), .badManifest)
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, threads: 1, echo: false, part: .shard(index: 0, count: 2)), .succeeded)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("result.json").path), "a shard writes no result.json")
        XCTAssertEqual(try cams(out.appendingPathComponent("cams")).count, 2)
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false, part: .merge), .failed)
        let failed = try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
        XCTAssertTrue(failed.error?.contains("shard 1/2 has not finished") == true, failed.error ?? "")
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, threads: 1, echo: false, part: .shard(index: 1, count: 2)), .succeeded)
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, echo: false, part: .merge), .succeeded)
        let merged = try JSONCoding.decoder.decode(JobResult.self, from: Data(contentsOf: out.appendingPathComponent("result.json")))
        XCTAssertEqual(merged.metrics["shards"], 2)
        XCTAssertEqual(try cams(out.appendingPathComponent("cams")).count, 4)
    }
}
