import Foundation
import SemplesEngine

/// The part of WeakTr that SemPLeS stages (a) and (c) train: the model's own 3×3 conv `head` and
/// `fusion` (AAF) (spec §3.5), on top of detached backbone features (spec §2.1.6, SemPLeS's
/// variant: the patch tokens are detached before the head, `coarse` is not). Forward gives the fine
/// CAM; backward takes ∂L/∂fine and accumulates the head and AAF gradients in the model's store.
public final class WeakTrHeadAAF {
    public let model: WeakTr
    public var config: WeakTrConfig { model.config }
    /// head.weight, head.bias and the AAF tensors, under their state-dict names (spec §7.1).
    public let parameters: [Parameter]

    /// Trains `model`'s head and AAF; every other parameter of the model is frozen. The model must
    /// keep their gradients (`WeakTr(stateDict:…, gradients: .headAndFusion)`).
    public init(model: WeakTr) {
        self.model = model
        parameters = [model.head.weight, model.head.bias!] + model.fusion.parameters
        precondition(parameters.allSatisfy { $0.grad != nil }, "the head stage needs a WeakTr with head and AAF gradients")
        model.store.setRequiresGradient(false)
        for p in parameters { p.requiresGradient = true }
    }

    /// Zeros the head and AAF gradients.
    public func zeroGradients() {
        for p in parameters { p.grad!.zero() }
    }

    /// Everything forward keeps for backward (one image), and backward's temporaries.
    public final class Cache {
        public internal(set) var fine = Tensor([1])     // [C, hp, wp] fine CAM
        var fused = Tensor([1])            // [N, P] M[:, C:]
        var headInput = Tensor([1])        // [1, D, hp, wp] the patch tokens as NCHW
        var columns = Tensor([1])          // [P, D·9] im2col of the patch grid
        var logits = Tensor([1])           // [C, P]
        var cams = Tensor([1])             // [C, P]
        var fusedGradient = Tensor([1])    // [N, P]
        var camGradient = Tensor([1])      // [C, P]
        var logitGradient = Tensor([1])    // [C, P]
        var weightGradient = Tensor([1])   // [1, L·H]
        private var arena = Arena(capacity: 0)
        private(set) var fusion: AdaptiveAttentionFusion.Cache?
        private(set) var fusionScratch: AdaptiveAttentionFusion.Scratch?
        /// The sizes the buffers were made for (a struct, not an array: `prepare` runs per image).
        private struct Geometry: Equatable {
            var classCount, hp, wp, channels, embedDimension, channelHidden, featureHidden: Int
        }
        private var geometry: Geometry?

        public init() {}

        /// [L·H] the AAF weights w of the last forward.
        public var fusionWeights: TensorView { fusion!.weights.reshaped(Shape(fusion!.weights.count)) }

        func prepare(_ model: WeakTr, hp: Int, wp: Int) {
            let c = model.config
            let key = Geometry(classCount: c.classCount, hp: hp, wp: wp, channels: c.channelCount,
                               embedDimension: c.embedDimension, channelHidden: c.channelHidden,
                               featureHidden: c.featureHidden)
            if key == geometry { return }
            geometry = key
            let C = c.classCount, P = hp * wp, N = C + P
            fine = Tensor([C, hp, wp])
            fused = Tensor([N, P])
            headInput = Tensor([1, c.embedDimension, hp, wp])
            columns = Tensor([P, c.embedDimension * 9])
            logits = Tensor([C, P])
            cams = Tensor([C, P])
            fusedGradient = Tensor([N, P])
            camGradient = Tensor([C, P])
            logitGradient = Tensor([C, P])
            weightGradient = Tensor([1, c.channelCount])
            arena = Arena(capacity: AdaptiveAttentionFusion.floats(config: c, batch: 1, backward: true))
            fusion = model.fusion.makeCache(arena, batch: 1)
            fusionScratch = model.fusion.makeScratch(arena, batch: 1)
        }
    }

    /// features (spec Appendix A steps 3–4) → cache.fine [C, hp, wp].
    public func forward(_ features: WeakTrBackboneFeatures, cache: Cache) {
        let c = config, C = c.classCount, D = c.embedDimension, L = c.depth, ch = c.channelCount
        let hp = features.patchRows, wp = features.patchColumns, P = hp * wp, N = C + P
        precondition(features.classCount == C && features.pooled.shape == Shape(L, D), "backbone features do not fit the head")
        cache.prepare(model, hp: hp, wp: wp)
        let aaf = cache.fusion!
        model.fusion.forward(pooled: features.pooled.view.reshaped(Shape(1, L, D)), cache: aaf)

        // M[:, C:] = (1/LH) Σ_j w_j A_j[:, C:].
        CAMFusion.fuse(weights: aaf.weights.data, channels: ch, count: N * P,
                       map: { UnsafePointer(features.attention.data + $0 * N * P) }, into: cache.fused.data)

        // Head on the (detached) patch tokens, as NCHW: logits [C, P].
        transpose(features.patchTokens.view, into: cache.headInput.view.reshaped(Shape(D, P)))
        model.head.forward(cache.headInput.view, into: cache.logits.view.reshaped(Shape(1, C, hp, wp)), columns: cache.columns.view)
        CAMFusion.forward(fused: cache.fused.view, keyOffset: 0, logits: cache.logits.view, cams: cache.cams.view,
                          fine: cache.fine.view)
    }

    /// dFine: [C, hp, wp] → head and AAF gradients (+=). The backbone features get none (detached).
    public func backward(_ dFine: TensorView, features: WeakTrBackboneFeatures, cache: Cache) {
        let c = config, C = c.classCount, ch = c.channelCount
        let P = features.patchCount, N = C + P
        precondition(dFine.count == C * P, "fine CAM gradient \(dFine.shape) for \(C)×\(P)")
        CAMFusion.backward(dFine, fused: cache.fused.view, keyOffset: 0, logits: cache.logits.view, cams: cache.cams.view,
                           dCams: cache.camGradient.view, dFused: cache.fusedGradient.view,
                           dLogits: cache.logitGradient.view)
        model.head.backward(cache.logitGradient.view.reshaped(Shape(1, C, features.patchRows, features.patchColumns)),
                            x: cache.headInput.view, columns: cache.columns.view, columnGradient: nil, dx: nil)
        // ∂w_j = (1/LH) ⟨dM, A_j⟩ over the kept columns, then through the AAF.
        CAMFusion.weightGradients(cache.fusedGradient.data, channels: ch, count: N * P,
                                  map: { UnsafePointer(features.attention.data + $0 * N * P) }, into: cache.weightGradient.data)
        model.fusion.backward(cache.weightGradient.view, cache: cache.fusion!, scratch: cache.fusionScratch!)
    }
}
