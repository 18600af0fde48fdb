import Foundation
import SemplesEngine
import SemplesFormats
import XCTest
@testable import SemplesModels

/// Golden tests of the CLIP encoders against the tiny PyTorch reference in fixtures/clip
/// (scripts/fixtures/clip.py): features within 1e-4 and input gradients within 1e-3, relative to
/// the largest reference magnitude.
final class CLIPModelTests: XCTestCase {
    struct TinyFile: Decodable {
        struct Config: Decodable {
            let embed_dim, image_resolution, vision_patch_size, vision_width, vision_layers, vision_heads: Int
            let context_length, vocab_size, transformer_width, transformer_heads, transformer_layers: Int
        }
        struct Template: Decodable { let start: Int32; let prefix: [Int32]; let period: Int32; let end: Int32 }
        let config: Config
        let template: Template
    }

    static func tiny() throws -> (CLIPConfig, CLIPPromptTemplate) {
        let data = try Data(contentsOf: URL(fileURLWithPath: CLIPTestPaths.fixture("tiny_config.json")))
        let f = try JSONDecoder().decode(TinyFile.self, from: data)
        let c = f.config
        return (CLIPConfig(imageResolution: c.image_resolution, patchSize: c.vision_patch_size,
                           visionWidth: c.vision_width, visionLayers: c.vision_layers, visionHeads: c.vision_heads,
                           embedDimension: c.embed_dim, contextLength: c.context_length,
                           vocabularySize: c.vocab_size, textWidth: c.transformer_width,
                           textLayers: c.transformer_layers, textHeads: c.transformer_heads),
                CLIPPromptTemplate(start: f.template.start, prefix: f.template.prefix,
                                   period: f.template.period, end: f.template.end))
    }

    static func golden() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for t in try SafeTensors.read(CLIPTestPaths.fixture("tiny_golden.safetensors")).tensors { out[t.name] = t.tensor }
        return out
    }

    static func tinyModel(file: String = "tiny_weights.safetensors") throws -> CLIPModel {
        let (config, _) = try tiny()
        return try CLIPModel.load(CLIPTestPaths.fixture(file), config: config)
    }

    /// max |a − b| / max |b|.
    static func relativeError(_ a: TensorView, _ b: TensorView) -> Float {
        precondition(a.count == b.count, "compare \(a.shape) with \(b.shape)")
        var diff: Float = 0, scale: Float = 0
        for i in 0..<a.count {
            diff = max(diff, abs(a.data[i] - b.data[i]))
            scale = max(scale, abs(b.data[i]))
        }
        return diff / max(scale, 1e-30)
    }

    /// Image features and pixel gradient against `g`; returns (feature error, gradient error).
    static func checkImage(_ model: CLIPModel, _ g: [String: Tensor]) -> (Float, Float) {
        let images = g["images"]!, B = images.shape[0]
        let arena = Arena(capacity: model.image.arenaSize(batch: B, backward: true))
        let features = Tensor([B, model.config.embedDimension])
        let pass = model.image.forward(images.view, into: features.view, arena: arena, keepActivations: true)
        let dImages = Tensor(images.shape.dims)
        model.image.backward(g["image_probe"]!.view, pass: pass, imagesGradient: dImages.view, arena: arena)
        return (relativeError(features.view, g["image_features"]!.view),
                relativeError(dImages.view, g["image_gradient"]!.view))
    }

    /// Text features (through `encode` and through `forward`) and the embedding gradient.
    static func checkText(_ model: CLIPModel, _ g: [String: Tensor]) -> (Float, Float) {
        let idsTensor = g["text_ids"]!, B = idsTensor.shape[0], ctx = idsTensor.shape[1]
        let ids = (0..<B).map { b in (0..<ctx).map { Int32(idsTensor.data[b * ctx + $0]) } }
        let W = model.config.textWidth, E = model.config.embedDimension
        let ends = CLIPTextEncoder.endPositions(ids)
        let T = ends.max()! + 1
        let arena = Arena(capacity: model.text.arenaSize(batch: B, tokens: T, backward: true) + B * T * W)
        let encoded = Tensor([B, E])
        model.text.encode(ids, into: encoded.view, arena: arena)
        let x = arena.allocate([B, T, W])
        model.text.embed(ids, tokens: T, into: x)
        let features = Tensor([B, E])
        let pass = model.text.forward(embeddings: x, endPositions: ends, into: features.view, arena: arena,
                                      keepActivations: true)
        XCTAssertEqual(features.toArray(), encoded.toArray())
        let dx = Tensor([B, T, W])
        model.text.backward(g["text_probe"]!.view, pass: pass, embeddingsGradient: dx.view, arena: arena)
        // The reference gradient covers all positions; those after the last EOT are zero.
        let reference = g["text_embedding_gradient"]!
        let head = Tensor([B, T, W])
        for b in 0..<B { head.view[b].copy(from: reference.view[b].rows(0, T)) }
        for b in 0..<B {
            for t in T..<ctx { XCTAssert(reference.view[b][t].toArray().allSatisfy { $0 == 0 }) }
        }
        return (relativeError(encoded.view, g["text_features"]!.view), relativeError(dx.view, head.view))
    }

    /// Background-prompt features and the prompt gradient.
    static func checkPrompts(_ model: CLIPModel, _ g: [String: Tensor], _ template: CLIPPromptTemplate) -> (Float, Float) {
        let prompts = g["prompts"]!, C = prompts.shape[0], L = prompts.shape[1]
        let T = template.endPosition(length: L) + 1
        let arena = Arena(capacity: model.text.arenaSize(batch: C, tokens: T, backward: true))
        let features = Tensor([C, model.config.embedDimension])
        let pass = model.text.encodeBackgroundPrompts(prompts.view, template: template, into: features.view,
                                                      arena: arena, keepActivations: true)
        let dPrompts = Tensor(prompts.shape.dims)
        model.text.backwardBackgroundPrompts(g["prompt_probe"]!.view, pass: pass, promptsGradient: dPrompts.view,
                                             arena: arena)
        return (relativeError(features.view, g["prompt_features"]!.view),
                relativeError(dPrompts.view, g["prompt_gradient"]!.view))
    }

    func testImageFeaturesAndPixelGradient() throws {
        let model = try Self.tinyModel(), g = try Self.golden()
        let (features, gradient) = Self.checkImage(model, g)
        XCTAssertLessThan(features, 1e-4)
        XCTAssertLessThan(gradient, 1e-3)

        // Inference without kept activations gives the same features.
        let images = g["images"]!, B = images.shape[0]
        let small = Arena(capacity: model.image.arenaSize(batch: B, backward: false))
        let again = Tensor([B, model.config.embedDimension])
        model.image.forward(images.view, into: again.view, arena: small)
        XCTAssertLessThan(Self.relativeError(again.view, g["image_features"]!.view), 1e-4)
    }

    func testTextFeaturesAndEmbeddingGradient() throws {
        let (features, gradient) = Self.checkText(try Self.tinyModel(), try Self.golden())
        XCTAssertLessThan(features, 1e-4)
        XCTAssertLessThan(gradient, 1e-3)
    }

    func testBackgroundPromptFeaturesAndGradient() throws {
        let (_, template) = try Self.tiny()
        let (features, gradient) = Self.checkPrompts(try Self.tinyModel(), try Self.golden(), template)
        XCTAssertLessThan(features, 1e-4)
        XCTAssertLessThan(gradient, 1e-3)
    }

    func testSemplesPromptLayout() {
        let t = CLIPPromptTemplate.semples
        let layout = t.layout(length: 30)
        XCTAssertEqual(layout.count, 77)
        XCTAssertEqual(Array(layout.prefix(4)), [49406, 320, 1125, 539])
        XCTAssert(layout[4..<34].allSatisfy { $0 == nil })
        XCTAssertEqual(layout[34], 13)
        XCTAssertEqual(layout[35], 49407)
        XCTAssert(layout[36...].allSatisfy { $0 == 0 })
        XCTAssertEqual(t.endPosition(length: 30), 35)
        XCTAssertEqual(t.endPosition(length: 10), 15)
    }

    func testTorchFilesGiveTheSameParametersAsSafetensors() throws {
        let reference = try CLIPWeights.read(CLIPTestPaths.fixture("tiny_weights.safetensors"))
        XCTAssertEqual(reference.count, try Self.tiny().0.parameterShapes.count)
        // tiny_weights.pth: torch.save(state_dict); tiny_torchscript.pt: torch.jit.save of the
        // traced model in fp16, as OpenAI ships ViT-B-32.pt.
        for file in ["tiny_weights.pth", "tiny_torchscript.pt"] {
            let other = try CLIPWeights.read(CLIPTestPaths.fixture(file))
            XCTAssertEqual(Set(other.keys), Set(reference.keys), file)
            for (key, t) in reference {
                guard let o = other[key] else { continue }
                XCTAssertEqual(o.shape, t.shape, "\(file) '\(key)'")
                XCTAssertEqual(o.toArray(), t.toArray(), "\(file) '\(key)'")
            }
        }
        // A training checkpoint keeps the state dict under "model".
        let path = NSTemporaryDirectory() + "clip-under-model-\(getpid()).pth"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Pth.save(stateDict: reference.map { ($0.key, $0.value.view) }, key: "model", to: path)
        let nested = try CLIPWeights.read(path)
        XCTAssertEqual(nested["visual.proj"]?.toArray(), reference["visual.proj"]?.toArray())
        XCTAssertEqual(nested.count, reference.count)
    }

    func testTorchScriptArchiveGivesTheGoldenFeatures() throws {
        let model = try Self.tinyModel(file: "tiny_torchscript.pt"), g = try Self.golden()
        let images = g["images"]!, B = images.shape[0]
        let arena = Arena(capacity: model.image.arenaSize(batch: B, backward: false))
        let features = Tensor([B, model.config.embedDimension])
        model.image.forward(images.view, into: features.view, arena: arena)
        XCTAssertLessThan(Self.relativeError(features.view, g["image_features"]!.view), 1e-4)
    }

    func testUnreadableWeightFilesSayWhy() throws {
        let dir = NSTemporaryDirectory() + "clip-weights-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try CLIPModel.load(dir + "/absent.pt")) { XCTAssert("\($0)".contains("absent.pt"), "\($0)") }
        let junk = dir + "/junk.safetensors"
        try Data("definitely not weights".utf8).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try CLIPModel.load(junk)) { XCTAssert("\($0)".contains("junk.safetensors"), "\($0)") }
        // A checkpoint of another model: the configuration cannot be read from it.
        let other = dir + "/other.safetensors"
        try SafeTensors.write([("head.weight", Tensor([2, 3]).view)], to: other)
        XCTAssertThrowsError(try CLIPModel.load(other)) { error in
            XCTAssert("\(error)".contains("visual.conv1.weight") && "\(error)".contains("other.safetensors"), "\(error)")
        }
        // A .pth whose root is neither a state dict nor holds one.
        let wrapped = dir + "/wrapped.pth"
        try Pth.save(stateDict: [("visual.proj", Tensor([2, 2]).view)], key: "weights", to: wrapped)
        XCTAssertThrowsError(try CLIPModel.load(wrapped)) { error in
            XCTAssert("\(error)".contains("'weights'") && "\(error)".contains("wrapped.pth"), "\(error)")
        }
    }

    func testStrictLoadingReportsEveryProblemAtOnce() throws {
        let (config, _) = try Self.tiny()
        var dict = try CLIPWeights.read(CLIPTestPaths.fixture("tiny_weights.safetensors"))
        dict["visual.proj"] = nil
        dict["ln_final.bias"] = nil
        dict["visual.extra_head.weight"] = Tensor([3])
        dict["text_projection"] = Tensor([config.textWidth, config.embedDimension + 1])
        let model = CLIPModel(config: config)
        XCTAssertThrowsError(try model.load(stateDict: dict, path: "weights.safetensors")) { error in
            let text = "\(error)"
            XCTAssertEqual((error as? FormatError)?.path, "weights.safetensors")
            for needle in ["'visual.proj'", "'ln_final.bias'", "'visual.extra_head.weight'", "'text_projection'",
                           "in model but not in file", "in file but not in model", "[32, 25] in file"] {
                XCTAssert(text.contains(needle), "missing \(needle) in: \(text)")
            }
        }
    }

    func testConfigurationInferredFromShapes() throws {
        let (config, _) = try Self.tiny()
        let shapes = try CLIPWeights.read(CLIPTestPaths.fixture("tiny_weights.safetensors")).mapValues { $0.shape.dims }
        var inferred = try CLIPConfig.inferred(from: shapes, path: "tiny")
        // Head counts are not in the shapes; OpenAI's loader takes width / 64.
        XCTAssertEqual(inferred.visionHeads, 1)
        inferred.visionHeads = config.visionHeads
        inferred.textHeads = config.textHeads
        XCTAssertEqual(inferred, config)
        XCTAssertThrowsError(try CLIPConfig.inferred(from: ["visual.conv1.weight": [8, 3, 2, 2]], path: "x.safetensors")) {
            XCTAssert("\($0)".contains("x.safetensors"), "\($0)")
        }
    }

    func testViTB32ParameterCountsMatchTheSpec() {
        let shapes = CLIPConfig.vitB32.parameterShapes
        let visual = shapes.filter { $0.key.hasPrefix("visual.") }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let all = shapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        XCTAssertEqual(visual, 87_849_216)
        XCTAssertEqual(all - visual, 63_428_097)
        XCTAssertEqual(shapes.count, Set(shapes.map(\.key)).count)
    }
}
