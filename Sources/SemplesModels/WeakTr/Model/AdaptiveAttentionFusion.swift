import Foundation
import SemplesEngine

/// WeakTr's Adaptive Attention Fusion (spec §2.1.4, WeakTr:`AAF.py`): per image, one weight for
/// each of the L·H attention maps, from the token pooling of every block's attention output:
///
///     f[b, j] = pooled[b, l, d·H + g] for d < hd, channel j = g·L + l   (interleave, trap 23)
///     s[b, j] = featureOut(featureDown(f[b, j]))                        (no activation between)
///     w[b, :] = sigmoid(channelUp(ReLU(channelDown(s[b, :]))))
///
/// Its inputs are detached in every use (spec §2.1.4), so backward stops at the parameters.
/// B = images, ch = L·H channels, hd head width, fh = hd/8, hidden = ch/r.
public struct AdaptiveAttentionFusion: Sendable {
    public let featureDown: Linear   // attn_feat_ffn.0: [fh, hd] + bias
    public let featureOut: Linear    // attn_feat_ffn.1: [1, fh] + bias
    public let channelDown: Linear   // attn_head_ffn.0: [hidden, ch], no bias
    public let channelUp: Linear     // attn_head_ffn.2: [ch, hidden], no bias
    public let depth: Int
    public let headCount: Int
    public let pooling: WeakTrPooling

    /// State-dict prefix of the AAF tensors.
    static let prefix = "adaptive_attention_fusion."

    /// Declares the four linears under `adaptive_attention_fusion.` (the checkpoint's names).
    init(_ store: ParameterStore, config c: WeakTrConfig) {
        let p = Self.prefix
        featureDown = Linear(store, p + "attn_feat_ffn.0", inFeatures: c.headDimension, outFeatures: c.featureHidden)
        featureOut = Linear(store, p + "attn_feat_ffn.1", inFeatures: c.featureHidden, outFeatures: 1)
        channelDown = Linear(store, p + "attn_head_ffn.0", inFeatures: c.channelCount, outFeatures: c.channelHidden,
                             bias: false)
        channelUp = Linear(store, p + "attn_head_ffn.2", inFeatures: c.channelHidden, outFeatures: c.channelCount,
                           bias: false)
        depth = c.depth
        headCount = c.headCount
        pooling = c.pooling
    }

    /// The six parameter tensors, in the reference's state-dict order (spec §7.1).
    public var parameters: [Parameter] {
        [channelDown.weight, channelUp.weight, featureDown.weight, featureDown.bias!, featureOut.weight, featureOut.bias!]
    }

    var channels: Int { depth * headCount }

    /// What forward keeps for backward.
    public struct Cache: Sendable {
        let features: TensorView        // [B·ch, hd]  f
        let featureHidden: TensorView   // [B·ch, fh]
        let scores: TensorView          // [B, ch]     s
        let channelPre: TensorView      // [B, hidden]
        let channelHidden: TensorView   // [B, hidden] ReLU
        let channelOut: TensorView      // [B, ch]     before the sigmoid
        /// [B, ch] the fusion weights w, channel j = g·L + l.
        public let weights: TensorView
    }

    /// Backward temporaries.
    public struct Scratch: Sendable {
        let channelHiddenGradient: TensorView  // [B, hidden]
        let scoreGradient: TensorView          // [B, ch]
        let featureHiddenGradient: TensorView  // [B·ch, fh]
    }

    /// Floats of arena a cache (and, with `backward`, a scratch) for `batch` images take.
    static func floats(config c: WeakTrConfig, batch B: Int, backward: Bool) -> Int {
        func r(_ n: Int) -> Int { (n + 15) & ~15 }
        let ch = c.channelCount, hidden = c.channelHidden
        let cache = r(B * ch * c.headDimension) + r(B * ch * c.featureHidden) + 3 * r(B * ch) + 2 * r(B * hidden)
        return cache + (backward ? r(B * hidden) + r(B * ch) + r(B * ch * c.featureHidden) : 0)
    }

    func makeCache(_ a: Arena, batch B: Int) -> Cache {
        let ch = channels, hidden = channelDown.outFeatures
        return Cache(features: a.allocate(Shape(B * ch, featureDown.inFeatures)),
                     featureHidden: a.allocate(Shape(B * ch, featureDown.outFeatures)),
                     scores: a.allocate(Shape(B, ch)), channelPre: a.allocate(Shape(B, hidden)),
                     channelHidden: a.allocate(Shape(B, hidden)), channelOut: a.allocate(Shape(B, ch)),
                     weights: a.allocate(Shape(B, ch)))
    }

    func makeScratch(_ a: Arena, batch B: Int) -> Scratch {
        Scratch(channelHiddenGradient: a.allocate(Shape(B, channelDown.outFeatures)), scoreGradient: a.allocate(Shape(B, channels)),
                featureHiddenGradient: a.allocate(Shape(B * channels, featureDown.outFeatures)))
    }

    /// pooled: [B, L, D] token pooling of each block's attention output → cache.weights [B, ch].
    public func forward(pooled: TensorView, cache: Cache) {
        let B = pooled.shape[0], L = depth, NH = headCount, hd = featureDown.inFeatures, ch = channels
        let D = NH * hd
        precondition(pooled.shape == Shape(B, L, D) && cache.weights.count == B * ch,
                     "AAF forward: pooled \(pooled.shape), cache for \(cache.weights.shape)")
        let f = cache.features.data, src = pooled.data
        for b in 0..<B {
            for g in 0..<NH {
                for l in 0..<L {
                    let row = f + (b * ch + g * L + l) * hd, o = src + (b * L + l) * D
                    for d in 0..<hd { row[d] = o[d * NH + g] }
                }
            }
        }
        featureDown.forward(cache.features, into: cache.featureHidden)
        featureOut.forward(cache.featureHidden, into: cache.scores.reshaped(Shape(B * ch, 1)))
        channelDown.forward(cache.scores, into: cache.channelPre)
        Activation.relu.forward(cache.channelPre, into: cache.channelHidden)
        channelUp.forward(cache.channelHidden, into: cache.channelOut)
        Activation.sigmoid.forward(cache.channelOut, into: cache.weights)
    }

    /// dWeights: [B, ch] = ∂L/∂w, overwritten with ∂L/∂(pre-sigmoid). Parameter gradients
    /// accumulate (+=); the pooled features get none (detached).
    public func backward(_ dWeights: TensorView, cache: Cache, scratch: Scratch) {
        let B = dWeights.shape[0], ch = channels
        precondition(dWeights.count == B * ch && cache.weights.count == B * ch, "AAF backward \(dWeights.shape)")
        let dw = dWeights.data, w = cache.weights.data
        for i in 0..<(B * ch) { dw[i] *= w[i] * (1 - w[i]) }
        channelUp.backward(dWeights, x: cache.channelHidden, dx: scratch.channelHiddenGradient, accumulate: false)
        Activation.relu.backward(scratch.channelHiddenGradient, x: cache.channelPre, dx: scratch.channelHiddenGradient,
                                 accumulate: false)
        channelDown.backward(scratch.channelHiddenGradient, x: cache.scores, dx: scratch.scoreGradient, accumulate: false)
        featureOut.backward(scratch.scoreGradient.reshaped(Shape(B * ch, 1)), x: cache.featureHidden,
                            dx: scratch.featureHiddenGradient, accumulate: false)
        featureDown.backward(scratch.featureHiddenGradient, x: cache.features, dx: nil)
    }

    // MARK: Token pooling

    /// out: [D] = max or mean over the token rows of o: [N, D] (spec §2.1.4; class tokens included).
    static func pool(_ o: TensorView, pooling: WeakTrPooling, into out: TensorView) {
        poolRows(o, pooling: pooling, into: out)
        if pooling == .avg { BLAS.scale(count: out.count, alpha: 1 / Float(o.shape[0]), x: out.data) }
    }

    /// out: [D] = max or sum over the rows of o: [n, D] (part of the spec §2.1.4 pooling; class
    /// tokens included). With no rows, the identity of the reduction.
    static func poolRows(_ o: TensorView, pooling: WeakTrPooling, into out: TensorView) {
        let n = o.shape[0], D = out.count, op = o.data, dst = out.data
        precondition(o.count == n * D, "pool \(o.shape) into \(out.shape)")
        guard n > 0 else { out.fill(pooling == .max ? -.infinity : 0); return }
        dst.update(from: op, count: D)
        for i in 1..<n {
            let row = op + i * D
            if pooling == .max {
                for d in 0..<D { dst[d] = max(dst[d], row[d]) }
            } else {
                for d in 0..<D { dst[d] += row[d] }
            }
        }
    }

    /// out: [D] from the partial pools [parts, D] of `tokens` rows: the max of the maxima, or the
    /// mean (sum of the sums / tokens).
    static func combinePools(_ partial: TensorView, tokens: Int, pooling: WeakTrPooling, into out: TensorView) {
        let D = out.count, parts = partial.count / max(D, 1), p = partial.data, dst = out.data
        dst.update(from: p, count: D)
        for k in 1..<max(parts, 1) {
            let row = p + k * D
            for d in 0..<D { dst[d] = pooling == .max ? max(dst[d], row[d]) : dst[d] + row[d] }
        }
        if pooling == .avg { for d in 0..<D { dst[d] /= Float(tokens) } }
    }
}
