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
        if classCount != C || patchRows != hp || patchColumns != wp || pooled.shape != Shape([config.depth, D]) {
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
    /// DropPath rates of the blocks: linspace(0, rate, depth) (spec §2.1.1).
    public func dropPathRates(maximum rate: Float = 0.1) -> [Float] {
        let L = config.depth
        return (0..<L).map { L > 1 ? rate * Float($0) / Float(L - 1) : 0 }
    }

    /// Per-sample DropPath scales of one image: [2·L] (attention branch, MLP branch of each block),
    /// each 0 or 1/(1 − p) with probability p of 0, drawn from the generator in block order.
    public func sampleDropPathScales(maximum rate: Float = 0.1, generator: inout SeededGenerator) -> [Float] {
        var scales: [Float] = []
        scales.reserveCapacity(2 * config.depth)
        for p in dropPathRates(maximum: rate) {
            let path = DropPath(rate: p)
            for _ in 0..<2 {
                var s: Float = 1
                withUnsafeMutablePointer(to: &s) { path.sample(into: TensorView($0, [1]), generator: &generator) }
                scales.append(s)
            }
        }
        return scales
    }

    /// Backbone forward of one normalised image `image: [3, H, W]` without autograd (spec
    /// Appendix A step 2). `dropPathScales` ([2·L], from `sampleDropPathScales`) puts the model in
    /// train mode; nil is eval mode (DropPath the identity).
    public func backboneFeatures(_ image: TensorView, into out: WeakTrBackboneFeatures, dropPathScales: [Float]? = nil) {
        precondition(image.shape.rank == 3 && image.shape[0] == 3, "WeakTr input must be [3, H, W], got \(image.shape)")
        let c = config, C = c.classCount, D = c.embedDimension, L = c.depth, NH = c.headCount
        let hd = c.headDimension, F = c.mlpHidden, eps = c.layerNormEpsilon
        let H = image.shape[1], W = image.shape[2], hp = H / c.patchSize, wp = W / c.patchSize
        precondition(hp >= 1 && wp >= 1, "image \(W)×\(H) is smaller than one patch")
        precondition(dropPathScales == nil || dropPathScales!.count == 2 * L, "DropPath scales: \(2 * L) expected")
        out.prepare(config: c, hp: hp, wp: wp)
        let P = hp * wp, N = C + P
        let workers = max(1, min(Parallel.threads, NH))
        let x = Tensor([N, D]), a = Tensor([N, D]), o = Tensor([N, D]), branch = Tensor([N, D])
        let qkv = Tensor([N, 3 * D]), hidden = Tensor([N, F])
        let scores = Tensor([workers, N, N])
        embedTokens(image, hp: hp, wp: wp, into: x.view)

        let scale = 1 / Float(hd).squareRoot()
        for l in 0..<L {
            let blk = weights.blocks[l]
            WeakTrKernels.layerNorm(x.data, a.data, rows: N, d: D, gamma: blk.norm1Weight.data,
                                    beta: blk.norm1Bias.data, eps: eps)
            dense(a.data, rows: N, inFeatures: D, weight: blk.qkvWeight, bias: blk.qkvBias, into: qkv.data,
                  outFeatures: 3 * D)
            Parallel.forEach(workers) { w in
                let s = scores.data + w * N * N
                for h in stride(from: w, to: NH, by: workers) {
                    BLAS.gemm(transB: true, m: N, n: N, k: hd, alpha: scale, a: qkv.data + h * hd, lda: 3 * D,
                              b: qkv.data + D + h * hd, ldb: 3 * D, c: s, ldc: N)
                    WeakTrKernels.softmaxRows(s, rows: N, n: N, stride: N)
                    // Keep the key columns of the patches (all the fusion of §2.1.4–2.1.5 reads).
                    let kept = out.attention.data + (h * L + l) * N * P
                    for r in 0..<N { (kept + r * P).update(from: s + r * N + C, count: P) }
                    BLAS.gemm(m: N, n: hd, k: N, a: s, lda: N, b: qkv.data + 2 * D + h * hd, ldb: 3 * D,
                              c: a.data + h * hd, ldc: D)
                }
            }
            dense(a.data, rows: N, inFeatures: D, weight: blk.projWeight, bias: blk.projBias, into: o.data, outFeatures: D)
            pool(o.data, tokens: N, into: out.pooled.data + l * D)
            BLAS.axpy(count: N * D, alpha: dropPathScales?[2 * l] ?? 1, x: o.data, y: x.data)
            WeakTrKernels.layerNorm(x.data, a.data, rows: N, d: D, gamma: blk.norm2Weight.data,
                                    beta: blk.norm2Bias.data, eps: eps)
            dense(a.data, rows: N, inFeatures: D, weight: blk.fc1Weight, bias: blk.fc1Bias, into: hidden.data, outFeatures: F)
            WeakTrKernels.geluInPlace(hidden.data, count: N * F)
            dense(hidden.data, rows: N, inFeatures: F, weight: blk.fc2Weight, bias: blk.fc2Bias, into: branch.data,
                  outFeatures: D)
            BLAS.axpy(count: N * D, alpha: dropPathScales?[2 * l + 1] ?? 1, x: branch.data, y: x.data)
        }
        out.patchTokens.data.update(from: x.data + C * D, count: P * D)
    }

    /// y[rows, out] = x · Wᵀ + b (PyTorch layout).
    private func dense(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: Tensor, bias: Tensor,
                       into y: UnsafeMutablePointer<Float>, outFeatures: Int) {
        WeakTrKernels.broadcastRows(bias.data, into: y, rows: rows, d: outFeatures)
        BLAS.gemm(transB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
                  b: weight.data, ldb: inFeatures, beta: 1, c: y, ldc: outFeatures)
    }

    /// Max or mean over the token rows, per channel (spec §2.1.4: class tokens included).
    private func pool(_ o: UnsafePointer<Float>, tokens N: Int, into out: UnsafeMutablePointer<Float>) {
        let D = config.embedDimension
        out.update(from: o, count: D)
        for n in 1..<max(N, 1) {
            let row = o + n * D
            if config.pooling == .max {
                for d in 0..<D { out[d] = max(out[d], row[d]) }
            } else {
                for d in 0..<D { out[d] += row[d] }
            }
        }
        if config.pooling == .avg { for d in 0..<D { out[d] /= Float(N) } }
    }

    /// Patch embedding, class tokens and position embedding (spec §2.1.3) into x: [N, D].
    private func embedTokens(_ image: TensorView, hp: Int, wp: Int, into x: TensorView) {
        let C = config.classCount, D = config.embedDimension, P = hp * wp
        let H = image.shape[1], W = image.shape[2], K = 3 * 16 * 16
        let cols = Tensor([P, K])
        for py in 0..<hp {
            for px in 0..<wp {
                let dst = cols.data + (py * wp + px) * K
                for ch in 0..<3 {
                    for ky in 0..<16 {
                        (dst + ch * 256 + ky * 16).update(from: image.data + (ch * H + py * 16 + ky) * W + px * 16, count: 16)
                    }
                }
            }
        }
        let patchRows = x.data + C * D
        dense(cols.data, rows: P, inFeatures: K, weight: weights.patchWeight, bias: weights.patchBias,
              into: patchRows, outFeatures: D)
        x.data.update(from: weights.classToken.data, count: C * D)
        let pos = weights.positionEmbedding.data
        BLAS.axpy(count: C * D, alpha: 1, x: pos, y: x.data)
        let g = config.gridSide
        if P == g * g && H == W {
            BLAS.axpy(count: P * D, alpha: 1, x: pos + C * D, y: patchRows)
            return
        }
        let planes = Tensor([D, g * g]), resized = Tensor([D, P])
        for t in 0..<(g * g) {
            for d in 0..<D { planes.data[d * g * g + t] = pos[(C + t) * D + d] }
        }
        WeakTrKernels.bicubicTorch(planes.data, channels: D, inH: g, inW: g, resized.data, outH: hp, outW: wp,
                                   scaleH: (Double(hp) + 0.1) / Double(g), scaleW: (Double(wp) + 0.1) / Double(g))
        for p in 0..<P {
            for d in 0..<D { patchRows[p * D + d] += resized.data[d * P + p] }
        }
    }

    /// The head and AAF tensors of the loaded checkpoint under their state-dict names, to start a
    /// trainable `WeakTrHeadAAF` from.
    public func headAndFusionStateDict() -> [String: Tensor] {
        let C = config.classCount, D = config.embedDimension
        let head = Tensor([C, D, 3, 3])
        // headTaps is [9, C, D]; head.weight is [C, D, ky, kx].
        for t in 0..<9 {
            for ch in 0..<C {
                for d in 0..<D { head.data[(ch * D + d) * 9 + t] = weights.headTaps.data[(t * C + ch) * D + d] }
            }
        }
        func copy(_ t: Tensor) -> Tensor {
            let n = Tensor(t.shape.dims)
            n.data.update(from: t.data, count: t.count)
            return n
        }
        let prefix = "adaptive_attention_fusion."
        return [
            "head.weight": head, "head.bias": copy(weights.headBias),
            prefix + "attn_head_ffn.0.weight": copy(weights.channelDown),
            prefix + "attn_head_ffn.2.weight": copy(weights.channelUp),
            prefix + "attn_feat_ffn.0.weight": copy(weights.featureDown),
            prefix + "attn_feat_ffn.0.bias": copy(weights.featureDownBias),
            prefix + "attn_feat_ffn.1.weight": copy(weights.featureOut),
            prefix + "attn_feat_ffn.1.bias": copy(weights.featureOutBias),
        ]
    }
}
