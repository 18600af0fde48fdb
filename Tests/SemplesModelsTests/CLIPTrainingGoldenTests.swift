import Foundation
import SemplesEngine
import SemplesFormats
import XCTest
@testable import SemplesModels

/// CLIP contrastive training against PyTorch (scripts/fixtures/clip_training.py): the tiny model
/// of clip.py, the symmetric InfoNCE loss and the gradient of every parameter, the reference run
/// in float64 from the same float32 weights.
///
/// Tolerance: the Swift side runs in float32 (unit round-off u ≈ 6e-8). Each of the ~10 layers
/// a gradient passes through (two blocks, LayerNorms, softmaxes, the normalisation and the N×N
/// softmax of the loss) adds a relative error of a few u times its condition, and the
/// accumulations run over at most 3·8·8 = 192 terms (√192·u ≈ 1e-6). The largest measured
/// error is 1.9e-6 (of each tensor's largest reference magnitude); 1e-4 leaves a 50× margin
/// while any missing or mis-scaled term (an O(1) relative error) still fails.
final class CLIPTrainingGoldenTests: XCTestCase {
    func testLossAndEveryGradientMatchPyTorch() throws {
        let (config, _) = try CLIPModelTests.tiny()
        let model = CLIPModel(config: config, trainable: true)
        var weights: [String: Tensor] = [:]
        for t in try SafeTensors.read(CLIPTestPaths.fixture("tiny_training_weights.safetensors")).tensors {
            weights[t.name] = t.tensor
        }
        try model.load(stateDict: weights, path: "tiny_training_weights.safetensors")
        var golden: [String: Tensor] = [:]
        for t in try SafeTensors.read(CLIPTestPaths.fixture("tiny_training_golden.safetensors")).tensors {
            golden[t.name] = t.tensor
        }
        let images = golden["images"]!, idsTensor = golden["text_ids"]!
        let B = images.shape[0], ctx = idsTensor.shape[1]
        let ids = (0..<B).map { b in (0..<ctx).map { Int32(idsTensor.data[b * ctx + $0]) } }
        let step = CLIPTrainingStep(model: model, batch: B, maximumTokens: ctx)
        model.store.zeroGradients()
        let result = step.run(images: images.view, ids: ids)
        XCTAssertEqual(result.loss, golden["loss"]!.data[0], accuracy: 1e-5)
        var checked = 0
        for p in model.store.parameters {
            guard let reference = golden["grad." + p.name] else {
                XCTFail("no reference gradient for '\(p.name)'")
                continue
            }
            let error = CLIPModelTests.relativeError(p.grad!, reference.view)
            XCTAssertLessThan(error, 1e-4, "gradient of '\(p.name)'")
            checked += 1
        }
        XCTAssertEqual(checked, config.parameterShapes.count)
    }
}
