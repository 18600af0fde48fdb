import Foundation
import XCTest
@testable import SemplesEngine
@testable import SemplesModels

/// Finite-difference checks of CLIP's weight gradients through the symmetric InfoNCE loss: every
/// kind of parameter of both encoders (the class-token-only last image block included) and
/// `logit_scale`, on a tiny model. `GradientCheck.swift` is the engine tests' helper, linked here.
final class CLIPTrainingGradientTests: XCTestCase {
    static let config = CLIPConfig(imageResolution: 8, patchSize: 4, visionWidth: 16, visionLayers: 2, visionHeads: 2,
                                   embedDimension: 8, contextLength: 12, vocabularySize: 40, textWidth: 16,
                                   textLayers: 2, textHeads: 2)

    /// A randomly initialised trainable tiny CLIP, three images and three token rows (EOT = 39).
    static func tiny() -> (CLIPModel, Tensor, [[Int32]]) {
        let model = CLIPModel(config: config, trainable: true)
        var g = SeededGenerator(seed: 11)
        for p in model.store.parameters {
            let isNormWeight = p.name.hasSuffix("ln_1.weight") || p.name.hasSuffix("ln_2.weight")
                || p.name.contains("ln_pre.weight") || p.name.contains("ln_post.weight") || p.name.contains("ln_final.weight")
            let fanIn = p.shape.rank >= 2 ? p.count / p.shape[0] : 1
            for i in 0..<p.count {
                p.value.data[i] = isNormWeight ? 1 + 0.1 * g.nextNormal()
                    : g.nextNormal() * (p.shape.rank >= 2 ? 0.8 / Float(fanIn).squareRoot() : 0.2)
            }
        }
        model.logitScale.value.data[0] = 1.2
        let images = Tensor([3, 3, 8, 8])
        for i in 0..<images.count { images.data[i] = g.nextNormal() }
        let ids: [[Int32]] = [[38, 5, 7, 39, 0, 0, 0, 0, 0, 0, 0, 0],
                              [38, 9, 39, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                              [38, 5, 12, 14, 3, 39, 0, 0, 0, 0, 0, 0]]
        return (model, images, ids)
    }

    static func checked(_ model: CLIPModel) -> [(String, TensorView, TensorView)] {
        let names = ["visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
                     "visual.ln_pre.weight", "visual.ln_pre.bias",
                     "visual.transformer.resblocks.0.attn.in_proj_weight", "visual.transformer.resblocks.0.attn.in_proj_bias",
                     "visual.transformer.resblocks.0.mlp.c_fc.weight", "visual.transformer.resblocks.0.ln_2.weight",
                     "visual.transformer.resblocks.1.attn.in_proj_weight", "visual.transformer.resblocks.1.attn.out_proj.weight",
                     "visual.transformer.resblocks.1.ln_1.weight", "visual.transformer.resblocks.1.mlp.c_proj.weight",
                     "visual.transformer.resblocks.1.mlp.c_fc.bias", "visual.ln_post.weight", "visual.proj",
                     "positional_embedding", "transformer.resblocks.0.attn.in_proj_weight",
                     "transformer.resblocks.1.attn.out_proj.bias", "transformer.resblocks.1.mlp.c_fc.weight",
                     "transformer.resblocks.1.ln_2.bias", "ln_final.weight", "text_projection", "logit_scale"]
        var out = names.map { n -> (String, TensorView, TensorView) in
            let p = model.store[n]!
            return (n, p.value, p.grad!)
        }
        // Token-table rows that the texts use (the others have no gradient, and none is expected).
        let table = model.store["token_embedding.weight"]!
        for id in [5, 9, 39] { out.append(("token_embedding.weight[\(id)]", table.value[id], table.grad![id])) }
        return out
    }

    func testWeightGradientsMatchFiniteDifferences() {
        let (model, images, ids) = Self.tiny()
        let step = CLIPTrainingStep(model: model, batch: 3, maximumTokens: 12)
        model.store.zeroGradients()
        let result = step.run(images: images.view, ids: ids)
        XCTAssertTrue(result.loss.isFinite)
        var check = GradientCheck()
        check.samples = 4
        check.assertGradients(checked: Self.checked(model)) { Double(step.loss(images: images.view, ids: ids)) }
    }

    /// The check fails when one backward term is dropped (here: the text projection's gradient).
    func testCheckNoticesAMissingTerm() {
        let (model, images, ids) = Self.tiny()
        let step = CLIPTrainingStep(model: model, batch: 3, maximumTokens: 12)
        model.store.zeroGradients()
        _ = step.run(images: images.view, ids: ids)
        model.store["text_projection"]!.grad!.zero()
        let failures = GradientCheck().run(checked: Self.checked(model).filter { $0.0 == "text_projection" }) {
            Double(step.loss(images: images.view, ids: ids))
        }
        XCTAssertFalse(failures.isEmpty)
    }
}
