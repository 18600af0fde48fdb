import Foundation
import SemplesEngine

/// One contrastive step of a trainable CLIP: both encoders forward, the symmetric InfoNCE loss
/// (`CLIPContrastiveLoss`), and both encoders backward into the parameter gradients (+=).
/// The caller zeroes the gradients before and steps the optimizer after.
public final class CLIPTrainingStep {
    public let model: CLIPModel
    let arena: Arena
    let imageFeatures: Tensor   // [N, E]
    let textFeatures: Tensor    // [N, E]
    let imageGradient: Tensor   // [N, E]
    let textGradient: Tensor    // [N, E]
    public let batch: Int

    /// Losses and accuracies of one step.
    public struct Result {
        public var loss: Float
        /// In-batch retrieval accuracy, image → text and text → image.
        public var imageAccuracy: Float
        public var textAccuracy: Float
    }

    /// A step for batches of `batch` (image, caption) pairs whose captions end (EOT) before
    /// `maximumTokens` positions.
    public init(model: CLIPModel, batch N: Int, maximumTokens T: Int) {
        precondition(model.store.keepsGradients, "CLIPTrainingStep needs CLIPModel(config:trainable: true)")
        self.model = model
        batch = N
        let c = model.config
        arena = Arena(capacity: model.image.arenaSize(batch: N, backward: true)
                      + model.text.arenaSize(batch: N, tokens: T, backward: true) + N * T * c.textWidth + 16
                      + CLIPContrastiveLoss.arenaSize(pairs: N, width: c.embedDimension))
        imageFeatures = Tensor([N, c.embedDimension])
        textFeatures = Tensor([N, c.embedDimension])
        imageGradient = Tensor([N, c.embedDimension])
        textGradient = Tensor([N, c.embedDimension])
    }

    /// images: [N, 3, R, R]; ids: N rows of token ids. Returns the loss; gradients accumulate.
    public func run(images: TensorView, ids: [[Int32]]) -> Result {
        precondition(images.shape[0] == batch && ids.count == batch, "CLIP step of \(batch): images \(images.shape), \(ids.count) texts")
        arena.reset()
        let imagePass = model.image.forward(images, into: imageFeatures.view, arena: arena, keepActivations: true)
        let textPass = model.text.forward(ids: ids, into: textFeatures.view, arena: arena)
        let loss = CLIPContrastiveLoss.forward(images: imageFeatures.view, texts: textFeatures.view,
                                               logScale: model.logitScale.value.data[0], arena: arena)
        let dScale = CLIPContrastiveLoss.backward(loss, imagesGradient: imageGradient.view,
                                                  textsGradient: textGradient.view, arena: arena)
        if let g = model.logitScale.activeGrad { g.data[0] += dScale }
        model.text.backward(textGradient.view, pass: textPass, embeddingsGradient: nil, arena: arena)
        model.image.backward(imageGradient.view, pass: imagePass, imagesGradient: nil, arena: arena)
        return Result(loss: loss.loss, imageAccuracy: loss.imageAccuracy, textAccuracy: loss.textAccuracy)
    }

    /// The loss only (no activations kept, no gradient): validation and finite differences.
    public func loss(images: TensorView, ids: [[Int32]]) -> Float {
        arena.reset()
        model.image.forward(images, into: imageFeatures.view, arena: arena)
        model.text.encode(ids, into: textFeatures.view, arena: arena)
        return CLIPContrastiveLoss.forward(images: imageFeatures.view, texts: textFeatures.view,
                                           logScale: model.logitScale.value.data[0], arena: arena).loss
    }
}
