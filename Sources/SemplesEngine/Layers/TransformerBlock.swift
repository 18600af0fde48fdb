/// Pre-norm ViT block (DeiT `Block`, CLIP `ResidualAttentionBlock`):
///
///     h = x + DropPath(attention(LN1(x)))
///     y = h + DropPath(fc2(act(fc1(LN2(h)))))
///
/// GELU (erf) for DeiT/WeakTr, QuickGELU for CLIP; causal attention for the CLIP text encoder.
/// The attention probabilities and the attention output o (before DropPath) stay in the cache.
public struct TransformerBlock: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var dimension: Int
        public var headCount: Int
        public var hiddenDimension: Int
        public var eps: Float
        public var activation: Activation
        public var causal: Bool
        public var dropPathRate: Float

        public init(dimension: Int, headCount: Int, hiddenDimension: Int, eps: Float,
                    activation: Activation, causal: Bool = false, dropPathRate: Float = 0) {
            self.dimension = dimension
            self.headCount = headCount
            self.hiddenDimension = hiddenDimension
            self.eps = eps
            self.activation = activation
            self.causal = causal
            self.dropPathRate = dropPathRate
        }
    }

    public let configuration: Configuration
    public let norm1: LayerNorm
    public let attention: MultiHeadAttention
    public let norm2: LayerNorm
    public let fc1: Linear  // [hidden, D]
    public let fc2: Linear  // [D, hidden]
    public let dropPath: DropPath

    /// Declares, under `prefix` (e.g. "blocks.3."): norm1.{weight,bias}, attention.qkv.{weight,bias},
    /// attention.projection.{weight,bias}, norm2.{weight,bias}, mlp.fc1.{weight,bias}, mlp.fc2.{weight,bias}.
    public init(_ store: ParameterStore, prefix: String, _ configuration: Configuration) {
        let c = configuration
        self.configuration = c
        norm1 = LayerNorm(store, prefix + "norm1", channels: c.dimension, eps: c.eps)
        attention = MultiHeadAttention(store, prefix + "attention", dimension: c.dimension,
                                       headCount: c.headCount, causal: c.causal)
        norm2 = LayerNorm(store, prefix + "norm2", channels: c.dimension, eps: c.eps)
        fc1 = Linear(store, prefix + "mlp.fc1", inFeatures: c.dimension, outFeatures: c.hiddenDimension)
        fc2 = Linear(store, prefix + "mlp.fc2", inFeatures: c.hiddenDimension, outFeatures: c.dimension)
        dropPath = DropPath(rate: c.dropPathRate)
    }

    /// Everything forward saves for backward (and for callers: probabilities, attentionOutput).
    public struct Cache: Sendable {
        public let norm1Output: TensorView      // [B, T, D]
        public let mean1: TensorView            // [B·T]
        public let rstd1: TensorView            // [B·T]
        public let attention: MultiHeadAttention.Cache
        public let attentionOutput: TensorView  // [B, T, D]  o, before DropPath
        public let residual: TensorView         // [B, T, D]  h = x + DropPath(o)
        public let norm2Output: TensorView      // [B, T, D]
        public let mean2: TensorView            // [B·T]
        public let rstd2: TensorView            // [B·T]
        public let hiddenPre: TensorView        // [B, T, hidden]  fc1 output (pre-activation)
        public let hidden: TensorView           // [B, T, hidden]  act(fc1 output)
        public let attentionScales: TensorView  // [B]  DropPath scales of the attention branch
        public let mlpScales: TensorView        // [B]  DropPath scales of the MLP branch

        /// Attention probabilities [B, H, T, T].
        public var probabilities: TensorView { attention.probabilities }
    }

    /// Backward temporaries (can be shared by all blocks of a model).
    public struct Scratch: Sendable {
        public let attention: MultiHeadAttention.Scratch
        public let residualGradient: TensorView  // [B, T, D]  ∂L/∂h
        public let branchGradient: TensorView    // [B, T, D]
        public let normGradient: TensorView      // [B, T, D]
        public let hiddenGradient: TensorView    // [B, T, hidden]
    }

    public func makeCache(_ arena: Arena, batch: Int, tokens: Int) -> Cache {
        let D = configuration.dimension, Hd = configuration.hiddenDimension, n = batch * tokens
        let cache = Cache(norm1Output: arena.allocate(Shape(batch, tokens, D)),
                          mean1: arena.allocate(Shape(n)), rstd1: arena.allocate(Shape(n)),
                          attention: attention.makeCache(arena, batch: batch, tokens: tokens),
                          attentionOutput: arena.allocate(Shape(batch, tokens, D)),
                          residual: arena.allocate(Shape(batch, tokens, D)),
                          norm2Output: arena.allocate(Shape(batch, tokens, D)),
                          mean2: arena.allocate(Shape(n)), rstd2: arena.allocate(Shape(n)),
                          hiddenPre: arena.allocate(Shape(batch, tokens, Hd)),
                          hidden: arena.allocate(Shape(batch, tokens, Hd)),
                          attentionScales: arena.allocate(Shape(batch)), mlpScales: arena.allocate(Shape(batch)))
        cache.attentionScales.fill(1)
        cache.mlpScales.fill(1)
        return cache
    }

    public func makeScratch(_ arena: Arena, batch: Int, tokens: Int) -> Scratch {
        let D = configuration.dimension, Hd = configuration.hiddenDimension
        return Scratch(attention: attention.makeScratch(arena, batch: batch, tokens: tokens),
                       residualGradient: arena.allocate(Shape(batch, tokens, D)),
                       branchGradient: arena.allocate(Shape(batch, tokens, D)),
                       normGradient: arena.allocate(Shape(batch, tokens, D)),
                       hiddenGradient: arena.allocate(Shape(batch, tokens, Hd)))
    }

    /// Evaluation forward (DropPath is the identity). x: [B, T, D] → y: [B, T, D]; y must not alias x.
    public func forward(_ x: TensorView, into y: TensorView, cache: Cache) {
        cache.attentionScales.fill(1)
        cache.mlpScales.fill(1)
        forwardWithCachedScales(x, into: y, cache: cache)
    }

    /// Training forward: DropPath scales for both branches are drawn from `generator`.
    public func forward(_ x: TensorView, into y: TensorView, cache: Cache, generator: inout SeededGenerator) {
        dropPath.sample(into: cache.attentionScales, generator: &generator)
        dropPath.sample(into: cache.mlpScales, generator: &generator)
        forwardWithCachedScales(x, into: y, cache: cache)
    }

    /// Forward with the DropPath scales already set in cache.attentionScales / cache.mlpScales.
    public func forwardWithCachedScales(_ x: TensorView, into y: TensorView, cache: Cache) {
        let D = configuration.dimension
        precondition(x.shape.rank == 3 && x.shape[2] == D && y.shape == x.shape && x.data != y.data,
                     "block forward: x \(x.shape), y \(y.shape) (y must be a separate buffer)")
        let B = x.shape[0], T = x.shape[1]
        let flat = Shape(B * T, D)
        norm1.forward(x.reshaped(flat), into: cache.norm1Output.reshaped(flat), mean: cache.mean1, rstd: cache.rstd1)
        attention.forward(cache.norm1Output, into: cache.attentionOutput, cache: cache.attention)
        DropPath.addScaled(cache.attentionOutput, scales: cache.attentionScales, to: x, into: cache.residual)
        norm2.forward(cache.residual.reshaped(flat), into: cache.norm2Output.reshaped(flat),
                      mean: cache.mean2, rstd: cache.rstd2)
        fc1.forward(cache.norm2Output, into: cache.hiddenPre)
        configuration.activation.forward(cache.hiddenPre, into: cache.hidden)
        if DropPath.allOnes(cache.mlpScales) {
            // y = h + fc2(·): the residual and bias are laid into y and the GEMM adds onto them.
            fc2.forward(cache.hidden, addingTo: cache.residual, into: y)
        } else {
            fc2.forward(cache.hidden, into: y)
            DropPath.addScaled(y, scales: cache.mlpScales, to: cache.residual, into: y)
        }
    }

    /// dy: [B, T, D]; x: the forward input. dx (+)= ∂L/∂x (nil: skip); parameter gradients accumulate
    /// unless `parameterGradients` is false or they are frozen.
    public func backward(_ dy: TensorView, x: TensorView, cache: Cache, scratch: Scratch, dx: TensorView?,
                         accumulate: Bool = true, parameterGradients: Bool = true) {
        let D = configuration.dimension
        let B = x.shape[0], T = x.shape[1]
        let flat = Shape(B * T, D)
        precondition(dy.shape == x.shape, "block backward: dy \(dy.shape), x \(x.shape)")
        let dh = scratch.residualGradient, branch = scratch.branchGradient, dnorm = scratch.normGradient
        // MLP branch: ∂/∂(fc2 output) = scale_b · dy (dy itself when no sample was dropped or scaled).
        let mlpBranch = DropPath.allOnes(cache.mlpScales) ? dy : branch
        if mlpBranch.data != dy.data { DropPath.scale(dy, scales: cache.mlpScales, into: branch) }
        fc2.backward(mlpBranch, x: cache.hidden, dx: scratch.hiddenGradient, accumulate: false,
                     parameterGradients: parameterGradients)
        configuration.activation.backward(scratch.hiddenGradient, x: cache.hiddenPre, dx: scratch.hiddenGradient,
                                          accumulate: false)
        fc1.backward(scratch.hiddenGradient, x: cache.norm2Output, dx: dnorm, accumulate: false,
                     parameterGradients: parameterGradients)
        // ∂L/∂h = dy (residual) + LN2 backward.
        dh.copy(from: dy)
        norm2.backward(dnorm.reshaped(flat), x: cache.residual.reshaped(flat), mean: cache.mean2, rstd: cache.rstd2,
                       dx: dh.reshaped(flat), accumulate: true, parameterGradients: parameterGradients)
        // Attention branch.
        let attentionBranch = DropPath.allOnes(cache.attentionScales) ? dh : branch
        if attentionBranch.data != dh.data { DropPath.scale(dh, scales: cache.attentionScales, into: branch) }
        attention.backward(attentionBranch, x: cache.norm1Output, cache: cache.attention, scratch: scratch.attention,
                           dx: dnorm, accumulate: false, parameterGradients: parameterGradients)
        norm1.backward(dnorm.reshaped(flat), x: x.reshaped(flat), mean: cache.mean1, rstd: cache.rstd1,
                       dx: dx?.reshaped(flat), accumulate: accumulate, parameterGradients: parameterGradients)
        // Residual path into x.
        if let dx = dx {
            Parallel.forRanges(dx.count, AddResidualGradient(dx: dx, dh: dh))
        }
    }
}

/// dx += dh over a range: the residual path at the end of `TransformerBlock.backward`.
private struct AddResidualGradient: RangeKernel {
    let dx: TensorView, dh: TensorView

    func run(_ r: Range<Int>) {
        let a = dx.data + r.lowerBound, b = dh.data + r.lowerBound
        map8(r.count) { j, lanes in storePartial(loadPartial(a + j, lanes) + loadPartial(b + j, lanes), a + j, lanes) }
    }
}
