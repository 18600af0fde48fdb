import Foundation
import SemplesEngine
import SemplesFormats

/// The part of WeakTr that SemPLeS stages (a) and (c) train: the 3×3 conv head and the AAF
/// module (spec §3.5), on top of detached backbone features (spec §2.1.6, SemPLeS's variant:
/// the patch tokens are detached before the head, `coarse` is not). Forward gives the fine CAM;
/// backward takes ∂L/∂fine and accumulates the head and AAF gradients.
///
/// Parameters carry their state-dict names (spec §7.1), so `stateDict()` drops into a WeakTr
/// checkpoint as is.
public final class WeakTrHeadAAF {
    public let config: WeakTrConfig
    public let store: ParameterStore
    let headWeight: Parameter        // head.weight [C, D, 3, 3]
    let headBias: Parameter          // head.bias [C]
    let channelDown: Parameter       // attn_head_ffn.0.weight [h, L·H]
    let channelUp: Parameter         // attn_head_ffn.2.weight [L·H, h]
    let featureDown: Parameter       // attn_feat_ffn.0.weight [f, hd]
    let featureDownBias: Parameter   // attn_feat_ffn.0.bias [f]
    let featureOut: Parameter        // attn_feat_ffn.1.weight [1, f]
    let featureOutBias: Parameter    // attn_feat_ffn.1.bias [1]

    public static let headKeys = ["head.weight", "head.bias"]
    public static let fusionPrefix = "adaptive_attention_fusion."

    public init(config c: WeakTrConfig) {
        config = c
        store = ParameterStore(gradients: true)
        let p = Self.fusionPrefix
        headWeight = store.declare("head.weight", [c.classCount, c.embedDimension, 3, 3])
        headBias = store.declare("head.bias", [c.classCount])
        channelDown = store.declare(p + "attn_head_ffn.0.weight", [c.channelHidden, c.channelCount])
        channelUp = store.declare(p + "attn_head_ffn.2.weight", [c.channelCount, c.channelHidden])
        featureDown = store.declare(p + "attn_feat_ffn.0.weight", [c.featureHidden, c.headDimension])
        featureDownBias = store.declare(p + "attn_feat_ffn.0.bias", [c.featureHidden])
        featureOut = store.declare(p + "attn_feat_ffn.1.weight", [1, c.featureHidden])
        featureOutBias = store.declare(p + "attn_feat_ffn.1.bias", [1])
        store.materialise()
    }

    /// Copies the head and AAF tensors in from a state dict (other keys are ignored). Throws,
    /// naming `path`, when one is missing or has another shape.
    public func load(stateDict: [String: Tensor], path: String) throws {
        var problems: [String] = []
        for p in store.parameters {
            guard let t = stateDict[p.name] else { problems.append("'\(p.name)' missing in file"); continue }
            if t.count != p.count { problems.append("'\(p.name)': \(t.shape) in file, \(p.shape) in model") }
        }
        guard problems.isEmpty else {
            throw FormatError(path, "head/AAF tensors do not fit a WeakTr with \(config.classCount) classes and "
                + "reduction \(config.reduction): " + problems.joined(separator: "; "))
        }
        for p in store.parameters { p.value.copy(from: stateDict[p.name]!.view.reshaped(p.shape.dims)) }
    }

    /// The trained tensors under their state-dict names (copies).
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in store.parameters {
            let t = Tensor(p.shape.dims)
            t.view.copy(from: p.value)
            out[p.name] = t
        }
        return out
    }

    /// Everything forward keeps for backward (one image).
    public final class Cache {
        public internal(set) var fine = Tensor([1])       // [C, hp, wp] fine CAM
        public internal(set) var fusionWeights = Tensor([1])  // [L·H] w
        var pooledChannels = Tensor([1])   // [L·H, hd] f
        var featureHidden = Tensor([1])    // [L·H, f] z
        var scores = Tensor([1])           // [L·H] s
        var channelHiddenPre = Tensor([1]) // [h] U1·s
        var fused = Tensor([1])            // [N, P] M[:, C:]
        var columns = Tensor([1])          // [P, D·9] im2col of the patch grid
        var logits = Tensor([1])           // [C, P]
        var cams = Tensor([1])             // [C, P]
        var shapeKey: [Int] = []

        public init() {}

        func prepare(_ c: WeakTrConfig, hp: Int, wp: Int) {
            let key = [c.classCount, hp, wp, c.channelCount, c.embedDimension]
            if key == shapeKey { return }
            shapeKey = key
            let C = c.classCount, P = hp * wp, N = C + P, ch = c.channelCount
            fine = Tensor([C, hp, wp])
            fusionWeights = Tensor([ch])
            pooledChannels = Tensor([ch, c.headDimension])
            featureHidden = Tensor([ch, c.featureHidden])
            scores = Tensor([ch])
            channelHiddenPre = Tensor([c.channelHidden])
            fused = Tensor([N, P])
            columns = Tensor([P, c.embedDimension * 9])
            logits = Tensor([C, P])
            cams = Tensor([C, P])
        }
    }

    /// features (spec Appendix A steps 3–4) → cache.fine [C, hp, wp].
    public func forward(_ features: WeakTrBackboneFeatures, cache: Cache) {
        let c = config, C = c.classCount, D = c.embedDimension, L = c.depth, NH = c.headCount, hd = c.headDimension
        let ch = c.channelCount, fh = c.featureHidden, hidden = c.channelHidden
        let hp = features.patchRows, wp = features.patchColumns, P = hp * wp, N = C + P
        precondition(features.classCount == C && features.pooled.shape == Shape([L, D]), "backbone features do not fit the head")
        cache.prepare(c, hp: hp, wp: wp)

        // AAF (spec §2.1.4): channel j = g·L + l reads o_l[:, d·H + g] (trap 23).
        let f = cache.pooledChannels.data, z = cache.featureHidden.data, s = cache.scores.data
        for g in 0..<NH {
            for l in 0..<L {
                let j = g * L + l
                for d in 0..<hd { f[j * hd + d] = features.pooled.data[l * D + d * NH + g] }
            }
        }
        // z = f·V1ᵀ + c1; s = z·V2ᵀ + c2 (no activation in between).
        WeakTrKernels.broadcastRows(featureDownBias.value.data, into: z, rows: ch, d: fh)
        BLAS.gemm(transB: true, m: ch, n: fh, k: hd, a: f, lda: hd, b: featureDown.value.data, ldb: hd, beta: 1, c: z, ldc: fh)
        for j in 0..<ch {
            var acc = featureOutBias.value.data[0]
            for k in 0..<fh { acc += featureOut.value.data[k] * z[j * fh + k] }
            s[j] = acc
        }
        // w = sigmoid(U2 · ReLU(U1 · s)).
        let pre = cache.channelHiddenPre.data, w = cache.fusionWeights.data
        BLAS.gemv(m: hidden, n: ch, a: channelDown.value.data, lda: ch, x: s, y: pre)
        var u = [Float](repeating: 0, count: hidden)
        for k in 0..<hidden { u[k] = max(pre[k], 0) }
        BLAS.gemv(m: ch, n: hidden, a: channelUp.value.data, lda: hidden, x: u, y: w)
        for j in 0..<ch { w[j] = 1 / (1 + Foundation.exp(-w[j])) }

        // M[:, C:] = (1/LH) Σ_j w_j A_j[:, C:].
        let fused = cache.fused
        fused.view.zero()
        for j in 0..<ch {
            BLAS.axpy(count: N * P, alpha: w[j] / Float(ch), x: features.attention.data + j * N * P, y: fused.data)
        }

        // Head on the (detached) patch tokens: logits [C, P] = W [C, D·9] · columnsᵀ + b.
        im2col(features.patchTokens.data, hp: hp, wp: wp, into: cache.columns.data)
        let logits = cache.logits.data
        for k in 0..<C { for p in 0..<P { logits[k * P + p] = headBias.value.data[k] } }
        BLAS.gemm(transB: true, m: C, n: P, k: D * 9, a: headWeight.value.data, lda: D * 9,
                  b: cache.columns.data, ldb: D * 9, beta: 1, c: logits, ldc: P)
        // cams = cross ⊙ ReLU(logits); fine = cams · patch_attnᵀ.
        let cams = cache.cams.data
        for i in 0..<(C * P) { cams[i] = fused.data[i] * max(logits[i], 0) }
        BLAS.gemm(transB: true, m: C, n: P, k: P, a: cams, lda: P, b: fused.data + C * P, ldb: P,
                  c: cache.fine.data, ldc: P)
    }

    /// dFine: [C, hp, wp] → head and AAF gradients (+=). The backbone features get none (detached).
    public func backward(_ dFine: TensorView, features: WeakTrBackboneFeatures, cache: Cache) {
        let c = config, C = c.classCount, D = c.embedDimension, hd = c.headDimension
        let ch = c.channelCount, fh = c.featureHidden, hidden = c.channelHidden
        let P = features.patchCount, N = C + P
        precondition(dFine.count == C * P, "fine CAM gradient \(dFine.shape) for \(C)×\(P)")
        let fused = cache.fused.data, cams = cache.cams.data, logits = cache.logits.data
        let dFused = Tensor([N, P]), dCams = Tensor([C, P])
        // fine = cams·PAᵀ ⇒ dcams = dfine·PA, dPA = dfineᵀ·cams.
        BLAS.gemm(m: C, n: P, k: P, a: dFine.data, lda: P, b: fused + C * P, ldb: P, c: dCams.data, ldc: P)
        BLAS.gemm(transA: true, m: P, n: P, k: C, a: dFine.data, lda: P, b: cams, ldb: P,
                  c: dFused.data + C * P, ldc: P)
        // cams = cross ⊙ ReLU(logits): ∂cross = dcams ⊙ ReLU(logits), ∂logits = dcams ⊙ cross ⊙ [logits > 0].
        let dLogits = Tensor([C, P])
        for i in 0..<(C * P) {
            dFused.data[i] = dCams.data[i] * max(logits[i], 0)
            dLogits.data[i] = logits[i] > 0 ? dCams.data[i] * fused[i] : 0
        }
        if let g = headWeight.activeGrad {
            BLAS.gemm(m: C, n: D * 9, k: P, a: dLogits.data, lda: P, b: cache.columns.data, ldb: D * 9, beta: 1,
                      c: g.data, ldc: D * 9)
        }
        if let g = headBias.activeGrad {
            for k in 0..<C { for p in 0..<P { g.data[k] += dLogits.data[k * P + p] } }
        }

        // ∂w_j = (1/LH) ⟨dM, A_j⟩ over the kept columns.
        let w = cache.fusionWeights.data
        var dPre = [Float](repeating: 0, count: ch)   // through the sigmoid
        for j in 0..<ch {
            let dw = BLAS.dot(count: N * P, dFused.data, features.attention.data + j * N * P) / Float(ch)
            dPre[j] = dw * w[j] * (1 - w[j])
        }
        let pre = cache.channelHiddenPre.data
        var u = [Float](repeating: 0, count: hidden)
        for k in 0..<hidden { u[k] = max(pre[k], 0) }
        if let g = channelUp.activeGrad {   // [ch, h] += dPre ⊗ u
            for j in 0..<ch { for k in 0..<hidden { g.data[j * hidden + k] += dPre[j] * u[k] } }
        }
        var du = [Float](repeating: 0, count: hidden)
        BLAS.gemv(transA: true, m: ch, n: hidden, a: channelUp.value.data, lda: hidden, x: dPre, y: &du)
        for k in 0..<hidden where pre[k] <= 0 { du[k] = 0 }
        let s = cache.scores.data
        if let g = channelDown.activeGrad {   // [h, ch] += du ⊗ s
            for k in 0..<hidden { for j in 0..<ch { g.data[k * ch + j] += du[k] * s[j] } }
        }
        var ds = [Float](repeating: 0, count: ch)
        BLAS.gemv(transA: true, m: hidden, n: ch, a: channelDown.value.data, lda: ch, x: du, y: &ds)
        // s_j = V2·z_j + c2, z_j = V1·f_j + c1.
        let z = cache.featureHidden.data, f = cache.pooledChannels.data
        let dz = Tensor([ch, fh])
        for j in 0..<ch {
            for k in 0..<fh {
                featureOut.activeGrad?.data[k] += ds[j] * z[j * fh + k]
                dz.data[j * fh + k] = ds[j] * featureOut.value.data[k]
            }
            featureOutBias.activeGrad?.data[0] += ds[j]
        }
        if let g = featureDown.activeGrad {   // [fh, hd] += dzᵀ · f
            BLAS.gemm(transA: true, m: fh, n: hd, k: ch, a: dz.data, lda: fh, b: f, ldb: hd, beta: 1, c: g.data, ldc: hd)
        }
        if let g = featureDownBias.activeGrad {
            for j in 0..<ch { for k in 0..<fh { g.data[k] += dz.data[j * fh + k] } }
        }
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
