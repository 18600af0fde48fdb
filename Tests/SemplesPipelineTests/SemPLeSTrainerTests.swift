import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// Batches from the fixture's two images: batch k of epoch e is image (e + k) mod 2, so epochs differ.
final class FixtureBatches: SemPLeSBatchSource {
    let images: Tensor, labels: Tensor
    let batchesPerEpoch = 2
    init(_ stages: [String: Tensor]) {
        images = stages["images"]!
        labels = stages["labels"]!
    }
    var epoch = 0, batch = 0
    func start(epoch: Int, fromBatch: Int) { self.epoch = epoch; batch = fromBatch }
    func next(images out: TensorView, targets: TensorView) throws {
        let n = (epoch + batch) % 2
        out[0].copy(from: images.view[n])
        targets[0].copy(from: labels.view[n])
        batch += 1
    }
    func stop() {}
}

struct StopAfter: Error {}

final class SemPLeSTrainerTests: XCTestCase {
    typealias F = SemPLeSFixtures

    private func folder(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("semples-trainer-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func trainer(_ stage: SemPLeSStage, into url: URL) throws -> SemPLeSTrainer {
        let stages = try F.tensors("stages.safetensors")
        let clip = try F.clip()
        var settings = SemPLeSSettings(stage: stage, batchSize: 1, learningRate: stage == .b ? 5 : 0.5,
                                       hypers: F.hypers[stage.rawValue]!.map(Double.init))
        settings.epochs = 2
        settings.promptLength = F.promptLength
        settings.seed = 9
        return try SemPLeSTrainer(settings: settings, source: FixtureBatches(stages), weakTrStateDict: F.weakTrStateDict(),
                                  classCount: F.classCount, reduction: 2, pooling: .max, clip: clip,
                                  classText: F.classText(clip, stages), prompts: stage == .c ? stages["prompts"]! : nil,
                                  template: F.template, outputFolder: url)
    }

    /// An interrupted and resumed run ends exactly where an uninterrupted one does.
    private func checkResume(_ stage: SemPLeSStage, stopAfter: Int) throws {
        let whole = try folder("whole"), parts = try folder("parts")
        let reference = try trainer(stage, into: whole)
        let finalState = try reference.run()
        XCTAssertEqual(finalState.history.count, 2)
        XCTAssertTrue(finalState.finished)

        let first = try trainer(stage, into: parts)
        var calls = 0
        first.checkStop = { calls += 1; if calls > stopAfter { throw StopAfter() } }
        XCTAssertThrowsError(try first.run()) { XCTAssertTrue($0 is StopAfter) }
        let second = try trainer(stage, into: parts)
        let resumed = try second.run()
        XCTAssertEqual(resumed.history, finalState.history, "stage \(stage) epoch records")
        XCTAssertEqual(resumed.steps, finalState.steps)
        for (a, b) in zip(reference.trainedParameters, second.trainedParameters) {
            XCTAssertEqual(a.value.toArray(), b.value.toArray(), "stage \(stage) \(a.name) after resume")
        }
        // Training moved the parameters.
        let untouched = try trainer(stage, into: try folder("fresh"))
        let moved = zip(untouched.trainedParameters, reference.trainedParameters).contains { $0.value.toArray() != $1.value.toArray() }
        XCTAssertTrue(moved, "stage \(stage) did not change its parameters")
    }

    func testStageAResumesExactly() throws {
        try checkResume(.a, stopAfter: 3)
    }

    func testStageBResumesExactlyAndExportsPrompts() throws {
        try checkResume(.b, stopAfter: 1)
        let url = try folder("btp")
        let t = try trainer(.b, into: url)
        try t.run()
        let saved = try Pth.stateDict(url.appendingPathComponent("btp.pth").path, key: nil)
        let prompts = saved["prompts"]!.tensor
        XCTAssertEqual(prompts.shape.dims, [F.classCount, F.promptLength, 32])
        XCTAssertEqual(prompts.toArray(), t.trainedParameters[0].value.toArray())
    }

    func testStageCExportsALoadableCheckpoint() throws {
        let url = try folder("c")
        let t = try trainer(.c, into: url)
        t.evaluate = { dict in
            // A stand-in selection score that depends on the weights.
            (Double(abs(dict["head.bias"]!.data[0])), 0.4)
        }
        let state = try t.run()
        XCTAssertNotNil(state.bestEpoch)
        let path = url.appendingPathComponent("checkpoint_best_mIoU.pth").path
        let model = try Checkpoints.loadWeakTr(path, classCount: F.classCount, reduction: 2, pooling: .max)
        XCTAssertEqual(model.config.classCount, F.classCount)
        let archive = try Pth.load(path)
        let keys = archive.dictEntries?.compactMap { $0.key.stringValue } ?? []
        XCTAssertEqual(Set(keys), ["model", "epoch", "miou"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("checkpoint.pth").path))
    }

    func testStageCWithoutPromptsIsRefused() throws {
        let stages = try F.tensors("stages.safetensors")
        let clip = try F.clip()
        let settings = SemPLeSSettings(stage: .c, batchSize: 1, learningRate: 1, hypers: [1, 1])
        XCTAssertThrowsError(try SemPLeSTrainer(settings: settings, source: FixtureBatches(stages),
                                                weakTrStateDict: F.weakTrStateDict(), classCount: 3, reduction: 2,
                                                pooling: .max, clip: clip, classText: F.classText(clip, stages),
                                                outputFolder: try folder("nobtp")))
    }

    func testCheckpointOfOtherSettingsIsRefused() throws {
        let url = try folder("other")
        let first = try trainer(.b, into: url)
        first.checkStop = { throw StopAfter() }
        XCTAssertThrowsError(try first.run())
        let stages = try F.tensors("stages.safetensors")
        let clip = try F.clip()
        var settings = first.settings
        settings.learningRate *= 2
        let second = try SemPLeSTrainer(settings: settings, source: FixtureBatches(stages), weakTrStateDict: F.weakTrStateDict(),
                                        classCount: F.classCount, reduction: 2, pooling: .max, clip: clip,
                                        classText: F.classText(clip, stages), template: F.template, outputFolder: url)
        XCTAssertThrowsError(try second.run()) { XCTAssertTrue("\($0)".contains("other settings"), "\($0)") }
        settings = first.settings
        settings.checkpointMinutes = 1
        let third = try SemPLeSTrainer(settings: settings, source: FixtureBatches(stages), weakTrStateDict: F.weakTrStateDict(),
                                       classCount: F.classCount, reduction: 2, pooling: .max, clip: clip,
                                       classText: F.classText(clip, stages), template: F.template, outputFolder: url)
        XCTAssertNoThrow(try third.run(), "a different checkpoint cadence resumes")
    }
}
