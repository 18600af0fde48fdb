import Foundation
import SemplesEngine

/// What the frozen DeiT backbone hands to the trainable head and AAF in SemPLeS stages (a)/(c)
/// (spec Appendix A step 2): everything is detached (spec §2.1.6), so no activations are kept
/// for a backward pass through the backbone.
public final class WeakTrBackboneFeatures {
    public private(set) var classCount = 0
    public private(set) var patchRows = 0
    public private(set) var patchColumns = 0
    /// [L·H, N, P] columns C..<N of every attention map (keys = patches), channel j = head·L + layer.
    public private(set) var attention = Tensor([1])
    /// [L, D] token pooling (max or mean over all N tokens) of each layer's attention output o_l.
    public private(set) var pooled = Tensor([1])
    /// [P, D] final residual-stream rows of the patches (no final LayerNorm, spec §10 item 24).
    public private(set) var patchTokens = Tensor([1])

    public init() {}

    public var patchCount: Int { patchRows * patchColumns }
    public var tokenCount: Int { classCount + patchCount }

    func prepare(config: WeakTrConfig, hp: Int, wp: Int) {
        let C = config.classCount, P = hp * wp, N = C + P, D = config.embedDimension
        if classCount != C || patchRows != hp || patchColumns != wp || pooled.shape != Shape(config.depth, D) {
            classCount = C
            patchRows = hp
            patchColumns = wp
            attention = Tensor([config.channelCount, N, P])
            pooled = Tensor([config.depth, D])
            patchTokens = Tensor([P, D])
        }
    }
}

extension WeakTr {
    /// Backbone forward of one normalised image `image: [3, H, W]` without autograd (spec
    /// Appendix A step 2): the inference pass of CAM generation, keeping what the head stage reads.
    /// `dropPathScales` ([2·L], from `sampleDropPathScales`) puts the model in train mode; nil is
    /// eval mode (DropPath the identity).
    public func backboneFeatures(_ image: TensorView, into out: WeakTrBackboneFeatures, dropPathScales: [Float]? = nil) {
        precondition(image.shape.rank == 3 && image.shape[0] == 3, "WeakTr input must be [3, H, W], got \(image.shape)")
        let hp = image.shape[1] / config.patchSize, wp = image.shape[2] / config.patchSize
        precondition(hp >= 1 && wp >= 1, "image \(image.shape[2])×\(image.shape[1]) is smaller than one patch")
        out.prepare(config: config, hp: hp, wp: wp)
        let C = config.classCount, D = config.embedDimension, P = hp * wp, workers = inferenceWorkers
        // The maps go straight into `out.attention`; no second pass needs them.
        let arena = inferenceWorkspace(floats: WeakTrInferenceBuffers.floats(
            config: config, hp: hp, wp: wp, keep: false, secondPass: false, workers: workers))
        let b = WeakTrInferenceBuffers(arena, config: config, hp: hp, wp: wp, keep: false, secondPass: false,
                                       workers: workers)
        inferenceBackbone(image, b, dropPathScales: dropPathScales, patchColumns: out.attention.view)
        out.pooled.view.copy(from: b.pooled)
        out.patchTokens.data.update(from: b.x.data + C * D, count: P * D)
    }
}
