/// Multi-head self-attention with one fused input projection, as DeiT's `Attention` (qkv) and
/// torch.nn.MultiheadAttention (in_proj_weight): both store [Wq; Wk; Wv] as one [3D, D] weight.
///
/// Per (batch, head) the small GEMMs run on one BLAS thread each, spread over the workers by
/// Parallel.forEach (head-parallel; never nested inside a threaded sgemm). The attention
/// probabilities (B, H, T, T) stay in the cache: WeakTr's AAF reads them (spec §2.1.2, §2.1.4).
public struct MultiHeadAttention: Sendable {
    public let qkv: Linear         // weight [3D, D], bias [3D]
    public let projection: Linear  // weight [D, D], bias [D]
    public let headCount: Int
    /// Additive −∞ above the diagonal (CLIP text encoder).
    public let causal: Bool

    public var dimension: Int { projection.outFeatures }
    public var headDimension: Int { dimension / headCount }

    public init(qkv: Linear, projection: Linear, headCount: Int, causal: Bool = false) {
        let d = projection.outFeatures
        precondition(qkv.inFeatures == d && qkv.outFeatures == 3 * d && projection.inFeatures == d,
                     "attention projections \(qkv.weight.shape), \(projection.weight.shape)")
        precondition(d % headCount == 0, "dimension \(d) not divisible by \(headCount) heads")
        self.qkv = qkv
        self.projection = projection
        self.headCount = headCount
        self.causal = causal
    }

    /// Declares `name.qkv.{weight,bias}` [3D, D], [3D] and `name.projection.{weight,bias}` [D, D], [D].
    public init(_ store: ParameterStore, _ name: String, dimension: Int, headCount: Int, causal: Bool = false) {
        self.init(qkv: Linear(store, name + ".qkv", inFeatures: dimension, outFeatures: 3 * dimension),
                  projection: Linear(store, name + ".projection", inFeatures: dimension, outFeatures: dimension),
                  headCount: headCount, causal: causal)
    }

    /// Saved forward state.
    public struct Cache: Sendable {
        public let qkv: TensorView            // [B, T, 3D]
        public let probabilities: TensorView  // [B, H, T, T]
        public let context: TensorView        // [B, T, D]  concatenated heads of A·V
    }

    /// Backward temporaries.
    public struct Scratch: Sendable {
        public let qkvGradient: TensorView          // [B, T, 3D]
        public let contextGradient: TensorView      // [B, T, D]
        public let probabilityGradient: TensorView  // [B, H, T, T]
    }

    public func makeCache(_ arena: Arena, batch: Int, tokens: Int) -> Cache {
        Cache(qkv: arena.allocate(Shape(batch, tokens, 3 * dimension)),
              probabilities: arena.allocate(Shape(batch, headCount, tokens, tokens)),
              context: arena.allocate(Shape(batch, tokens, dimension)))
    }

    public func makeScratch(_ arena: Arena, batch: Int, tokens: Int) -> Scratch {
        Scratch(qkvGradient: arena.allocate(Shape(batch, tokens, 3 * dimension)),
                contextGradient: arena.allocate(Shape(batch, tokens, dimension)),
                probabilityGradient: arena.allocate(Shape(batch, headCount, tokens, tokens)))
    }

    /// x: [B, T, D] → y: [B, T, D] (projected output, before any residual). Overwrites y.
    public func forward(_ x: TensorView, into y: TensorView, cache: Cache) {
        let B = x.shape[0], T = x.shape[1], D = dimension, H = headCount, hd = headDimension
        precondition(x.shape == Shape(B, T, D) && y.shape == x.shape && cache.qkv.count == B * T * 3 * D
                     && cache.probabilities.count == B * H * T * T && cache.context.count == B * T * D,
                     "attention forward: x \(x.shape), y \(y.shape), cache for \(cache.qkv.shape)")
        qkv.forward(x, into: cache.qkv)
        Parallel.forEach(B * H, ForwardHeads(qkvp: cache.qkv.data, pp: cache.probabilities.data,
                                             cp: cache.context.data, T: T, D: D, H: H, hd: hd,
                                             scale: 1 / Float(hd).squareRoot(), causal: causal))
        projection.forward(cache.context, into: y)
    }

    /// dy: [B, T, D]; x: the forward input. dx (+)= ∂L/∂x (skipped when nil); parameter gradients
    /// accumulate unless `parameterGradients` is false or they are frozen.
    public func backward(_ dy: TensorView, x: TensorView, cache: Cache, scratch: Scratch, dx: TensorView?,
                         accumulate: Bool = true, parameterGradients: Bool = true) {
        let B = x.shape[0], T = x.shape[1], D = dimension, H = headCount, hd = headDimension
        precondition(dy.shape == x.shape && scratch.qkvGradient.count == B * T * 3 * D
                     && scratch.probabilityGradient.count == B * H * T * T,
                     "attention backward: dy \(dy.shape), x \(x.shape)")
        projection.backward(dy, x: cache.context, dx: scratch.contextGradient, accumulate: false,
                            parameterGradients: parameterGradients)
        Parallel.forEach(B * H, BackwardHeads(qkvp: cache.qkv.data, pp: cache.probabilities.data,
                                              dqkvp: scratch.qkvGradient.data, dcp: scratch.contextGradient.data,
                                              dpp: scratch.probabilityGradient.data, T: T, D: D, H: H, hd: hd,
                                              scale: 1 / Float(hd).squareRoot()))
        qkv.backward(scratch.qkvGradient, x: x, dx: dx, accumulate: accumulate, parameterGradients: parameterGradients)
    }

    /// One (batch, head) of the forward: S = scale·Q·Kᵀ, P = softmax(S) (causal: masked above the
    /// diagonal), context = P·V. A kernel, so that a run allocates nothing (see `IndexKernel`).
    private struct ForwardHeads: IndexKernel {
        let qkvp: UnsafeMutablePointer<Float>, pp: UnsafeMutablePointer<Float>, cp: UnsafeMutablePointer<Float>
        let T: Int, D: Int, H: Int, hd: Int
        let scale: Float, causal: Bool

        func run(_ bh: Int) {
            let b = bh / H, h = bh % H
            let q = qkvp + b * T * 3 * D + h * hd
            let k = q + D, v = q + 2 * D
            let p = pp + bh * T * T
            BLAS.gemm(transB: true, m: T, n: T, k: hd, alpha: scale, a: q, lda: 3 * D, b: k, ldb: 3 * D,
                      beta: 0, c: p, ldc: T)
            Softmax.rows(p, rows: T, columns: T, leadingDimension: T, causal: causal)
            BLAS.gemm(m: T, n: hd, k: T, a: p, lda: T, b: v, ldb: 3 * D, beta: 0,
                      c: cp + b * T * D + h * hd, ldc: D)
        }
    }

    /// One (batch, head) of the backward.
    private struct BackwardHeads: IndexKernel {
        let qkvp: UnsafeMutablePointer<Float>, pp: UnsafeMutablePointer<Float>
        let dqkvp: UnsafeMutablePointer<Float>, dcp: UnsafeMutablePointer<Float>, dpp: UnsafeMutablePointer<Float>
        let T: Int, D: Int, H: Int, hd: Int
        let scale: Float

        func run(_ bh: Int) {
            let b = bh / H, h = bh % H
            let off = b * T * 3 * D + h * hd
            let q = qkvp + off, k = q + D, v = q + 2 * D
            let dq = dqkvp + off, dk = dq + D, dv = dq + 2 * D
            let p = pp + bh * T * T, dp = dpp + bh * T * T
            let dctx = dcp + b * T * D + h * hd
            // dP = dctx·Vᵀ ; dV = Pᵀ·dctx
            BLAS.gemm(transB: true, m: T, n: T, k: hd, a: dctx, lda: D, b: v, ldb: 3 * D, beta: 0, c: dp, ldc: T)
            BLAS.gemm(transA: true, m: T, n: hd, k: T, a: p, lda: T, b: dctx, ldb: D, beta: 0, c: dv, ldc: 3 * D)
            // dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)); masked entries have P = 0, so dS = 0 there.
            Softmax.rowsBackward(dp, p, dp, rows: T, columns: T, leadingDimension: T, scale: scale, accumulate: false)
            // dQ = dS·K ; dK = dSᵀ·Q
            BLAS.gemm(m: T, n: hd, k: T, a: dp, lda: T, b: k, ldb: 3 * D, beta: 0, c: dq, ldc: 3 * D)
            BLAS.gemm(transA: true, m: T, n: hd, k: T, a: dp, lda: T, b: q, ldb: 3 * D, beta: 0, c: dk, ldc: 3 * D)
        }
    }
}
