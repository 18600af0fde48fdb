import Foundation
import SemplesEngine
import SemplesFormats

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
    /// keep gradients (`WeakTr(stateDict:…, gradients: true)`).
    public init(model: WeakTr) {
        precondition(model.store.keepsGradients, "the head stage needs a WeakTr built with gradients")
        self.model = model
        parameters = [model.head.weight, model.head.bias!] + model.fusion.parameters
        model.store.setRequiresGradient(false)
        for p in parameters { p.requiresGradient = true }
    }

    /// Zeros the head and AAF gradients.
    public func zeroGradients() {
        for p in parameters { p.grad!.zero() }
    }

    /// The trained tensors under their state-dict names (copies).
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in parameters {
            let t = Tensor(p.shape.dims)
            t.view.copy(from: p.value)
            out[p.name] = t
        }
        return out
    }

    /// Everything forward keeps for backward (one image), and backward's temporaries.
    public final class Cache {
        public internal(set) var fine = Tensor([1])     // [C, hp, wp] fine CAM
        var fused = Tensor([1])            // [N, P] M[:, C:]
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
        private var shapeKey: [Int] = []

        public init() {}

        /// [L·H] the AAF weights w of the last forward.
        public var fusionWeights: TensorView { fusion!.weights.reshaped([fusion!.weights.count]) }

        func prepare(_ model: WeakTr, hp: Int, wp: Int) {
            let c = model.config
            let key = [c.classCount, hp, wp, c.channelCount, c.embedDimension, c.channelHidden, c.featureHidden]
            if key == shapeKey { return }
            shapeKey = key
            let C = c.classCount, P = hp * wp, N = C + P
            fine = Tensor([C, hp, wp])
            fused = Tensor([N, P])
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
        precondition(features.classCount == C && features.pooled.shape == Shape([L, D]), "backbone features do not fit the head")
        cache.prepare(model, hp: hp, wp: wp)
        let aaf = cache.fusion!
        model.fusion.forward(pooled: features.pooled.view.reshaped([1, L, D]), cache: aaf)
        let w = aaf.weights.data

        // M[:, C:] = (1/LH) Σ_j w_j A_j[:, C:].
        let fused = cache.fused
        fused.view.zero()
        for j in 0..<ch {
            BLAS.axpy(count: N * P, alpha: w[j] / Float(ch), x: features.attention.data + j * N * P, y: fused.data)
        }

        // Head on the (detached) patch tokens: logits [C, P] = W [C, D·9] · columnsᵀ + b.
        im2col(features.patchTokens.data, hp: hp, wp: wp, into: cache.columns.data)
        let logits = cache.logits.data, bias = model.head.bias!.value.data
        for k in 0..<C { (logits + k * P).update(repeating: bias[k], count: P) }
        BLAS.gemm(transB: true, m: C, n: P, k: D * 9, a: model.head.weight.value.data, lda: D * 9,
                  b: cache.columns.data, ldb: D * 9, beta: 1, c: logits, ldc: P)
        // cams = cross ⊙ ReLU(logits); fine = cams · patch_attnᵀ.
        let cams = cache.cams.data
        for i in 0..<(C * P) { cams[i] = fused.data[i] * max(logits[i], 0) }
        BLAS.gemm(transB: true, m: C, n: P, k: P, a: cams, lda: P, b: fused.data + C * P, ldb: P,
                  c: cache.fine.data, ldc: P)
    }

    /// dFine: [C, hp, wp] → head and AAF gradients (+=). The backbone features get none (detached).
    public func backward(_ dFine: TensorView, features: WeakTrBackboneFeatures, cache: Cache) {
        let c = config, C = c.classCount, D = c.embedDimension, ch = c.channelCount
        let P = features.patchCount, N = C + P
        precondition(dFine.count == C * P, "fine CAM gradient \(dFine.shape) for \(C)×\(P)")
        let fused = cache.fused.data, cams = cache.cams.data, logits = cache.logits.data
        let dFused = cache.fusedGradient.data, dCams = cache.camGradient.data, dLogits = cache.logitGradient.data
        // fine = cams·PAᵀ ⇒ dcams = dfine·PA, dPA = dfineᵀ·cams.
        BLAS.gemm(m: C, n: P, k: P, a: dFine.data, lda: P, b: fused + C * P, ldb: P, c: dCams, ldc: P)
        BLAS.gemm(transA: true, m: P, n: P, k: C, a: dFine.data, lda: P, b: cams, ldb: P, c: dFused + C * P, ldc: P)
        // cams = cross ⊙ ReLU(logits): ∂cross = dcams ⊙ ReLU(logits), ∂logits = dcams ⊙ cross ⊙ [logits > 0].
        for i in 0..<(C * P) {
            dFused[i] = dCams[i] * max(logits[i], 0)
            dLogits[i] = logits[i] > 0 ? dCams[i] * fused[i] : 0
        }
        if let g = model.head.weight.activeGrad {
            BLAS.gemm(m: C, n: D * 9, k: P, a: dLogits, lda: P, b: cache.columns.data, ldb: D * 9, beta: 1,
                      c: g.data, ldc: D * 9)
        }
        if let g = model.head.bias!.activeGrad {
            for k in 0..<C { for p in 0..<P { g.data[k] += dLogits[k * P + p] } }
        }
        // ∂w_j = (1/LH) ⟨dM, A_j⟩ over the kept columns, then through the AAF.
        let dW = cache.weightGradient.data
        for j in 0..<ch { dW[j] = BLAS.dot(count: N * P, dFused, features.attention.data + j * N * P) / Float(ch) }
        model.fusion.backward(cache.weightGradient.view, cache: cache.fusion!, scratch: cache.fusionScratch!)
    }

    /// columns[p = y·wp + x, d·9 + ky·3 + kx] = tokens[(y + ky − 1)·wp + x + kx − 1, d], 0 outside.
    private func im2col(_ tokens: UnsafePointer<Float>, hp: Int, wp: Int, into columns: UnsafeMutablePointer<Float>) {
        let D = config.embedDimension, K = D * 9
        columns.update(repeating: 0, count: hp * wp * K)
        for y in 0..<hp {
            for x in 0..<wp {
                let row = columns + (y * wp + x) * K
                for ky in 0..<3 {
                    let sy = y + ky - 1
                    if sy < 0 || sy >= hp { continue }
                    for kx in 0..<3 {
                        let sx = x + kx - 1
                        if sx < 0 || sx >= wp { continue }
                        let src = tokens + (sy * wp + sx) * D
                        let tap = ky * 3 + kx
                        for d in 0..<D { row[d * 9 + tap] = src[d] }
                    }
                }
            }
        }
    }
}
