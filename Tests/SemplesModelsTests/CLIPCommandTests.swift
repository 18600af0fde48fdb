import Foundation
import SemplesEngine
import SemplesFormats
import XCTest
@testable import SemplesModels

/// Stand-alone scoring: preprocessing against PIL, and the `semples clip` commands as built.
final class CLIPCommandTests: XCTestCase {
    func testPreprocessingMatchesPIL() throws {
        var expected: [String: Tensor] = [:]
        for t in try SafeTensors.read(CLIPTestPaths.fixture("preprocess.safetensors")).tensors { expected[t.name] = t.tensor }
        for name in ["wide", "tall"] {
            let image = try ImageIO.read(CLIPTestPaths.fixture("preprocess_\(name).png"))
            let out = Tensor([3, 32, 32])
            CLIPPreprocess.pixels(image, resolution: 32, normalisation: .clip, into: out.view)
            let reference = expected[name]!
            var worst: Float = 0
            for i in 0..<out.count { worst = max(worst, abs(out.data[i] - reference.data[i])) }
            // One 8-bit level is 1/255/0.26 ≈ 0.015 after normalisation.
            XCTAssertLessThan(worst, 1e-4, name)
        }
    }

    /// The built `semples` executable, or a skip when it has not been built.
    func binary() throws -> String {
        // Beside the test bundle first (any build folder: .build, .build-asan, …), then the usual ones.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let candidates = [bundle + "/semples"] + ["debug", "release"].map {
            CLIPTestPaths.repositoryRoot.appendingPathComponent(".build/\($0)/semples").path
        }
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
        throw XCTSkip("the semples executable is not built")
    }

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary())
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SEMPLES_CLIP_VOCAB"] = nil
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testTokenizeCommand() throws {
        let vocabulary = try CLIPTestPaths.vocabulary()
        let (status, out, _) = try run(["clip", "tokenize", "--short", "a photo of dining table.", "player"],
                                       environment: ["SEMPLES_CLIP_VOCAB": vocabulary])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(out, "49406 320 1125 539 8658 2175 269 49407\n49406 2477 49407\n")
        let (missing, _, message) = try run(["clip", "tokenize", "cat"])
        XCTAssertNotEqual(missing, 0)
        XCTAssert(message.contains("SEMPLES_CLIP_VOCAB"), message)
    }

    func testScoreCommandAgreesWithTheLibrary() throws {
        let vocabulary = try CLIPTestPaths.vocabulary()
        let dir = NSTemporaryDirectory() + "clip-score-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Random weights with OpenAI's vocabulary size, written with the state-dict names.
        let model = CLIPTextFeaturesTests.smallModel()
        let weights = dir + "/weights.safetensors"
        try SafeTensors.write(model.store.parameters.map { ($0.name, $0.value) }, to: weights)
        let images = ["wide", "tall"].map { CLIPTestPaths.fixture("preprocess_\($0).png") }
        let texts = ["a photo of cat.", "a photo of tv monitor."]
        let (status, out, err) = try run(["clip", "score", "--weights", weights, "--vocab", vocabulary, "--json"]
                                         + images.flatMap { ["--image", $0] } + texts.flatMap { ["--text", $0] })
        XCTAssertEqual(status, 0, err)
        let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        let similarity = try XCTUnwrap(json?["similarity"] as? [[Double]])

        let tokenizer = try CLIPTokenizer(vocabularyPath: vocabulary)
        let textFeatures = try CLIPTextFeatures(texts: texts, model: model, tokenizer: tokenizer)
        let R = model.config.imageResolution, E = model.config.embedDimension
        let arena = Arena(capacity: model.image.arenaSize(batch: 1, backward: false))
        for (i, path) in images.enumerated() {
            let pixels = Tensor([1, 3, R, R]), feature = Tensor([1, E])
            CLIPPreprocess.pixels(try ImageIO.read(path), resolution: R, normalisation: .clip, into: pixels.view)
            arena.reset()
            model.image.forward(pixels.view, into: feature.view, arena: arena)
            normaliseRows(feature.view)
            for j in 0..<texts.count {
                let expected = BLAS.dot(count: E, feature.data, textFeatures.features.view[j].data)
                XCTAssertEqual(similarity[i][j], Double(expected), accuracy: 1e-5)
            }
        }
        // Weights that are not a CLIP checkpoint: a clear error naming the file.
        let (bad, _, message) = try run(["clip", "score", "--weights", images[0], "--vocab", vocabulary,
                                         "--image", images[0], "--text", "x"])
        XCTAssertNotEqual(bad, 0)
        XCTAssert(message.contains("preprocess_wide.png"), message)
    }
}
