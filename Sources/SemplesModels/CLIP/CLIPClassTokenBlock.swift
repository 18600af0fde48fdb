import SemplesEngine

/// The image encoder's last block computed for the class token only.
///
/// Only `ln_post(x[:, 0])` leaves the image encoder, so in the last block only the class row's
/// query, attention output and MLP are needed; keys and values still come from every token.
/// The result is the same as running the full block; about 80% of the block's work is skipped.
extension CLIPResidualBlock {
    struct ClassTokenActivations {
        let input: TensorView         // [B, T, D] block input
        let normed1: TensorView       // [B, T, D]
        let mean1, rstd1: TensorView  // [B·T]
        let qkv: TensorView           // [B, T, 3D]
        let probabilities: TensorView // [B, H, T] attention of the class query
        let context: TensorView       // [B, D]
        let middle: TensorView        // [B, D] class row after the attention residual
        let normed2: TensorView       // [B, D]
        let mean2, rstd2: TensorView  // [B]
        let hidden: TensorView        // [B, 4D]
        let activated: TensorView     // [B, 4D]
    }

    func makeClassTokenActivations(_ arena: Arena, batch B: Int, tokens T: Int) -> ClassTokenActivations {
        let D = ln1.channels, H = attention.headCount
        return ClassTokenActivations(
            input: arena.allocate(Shape(B, T, D)), normed1: arena.allocate(Shape(B, T, D)),
            mean1: arena.allocate(Shape(B * T)), rstd1: arena.allocate(Shape(B * T)), qkv: arena.allocate(Shape(B, T, 3 * D)),
            probabilities: arena.allocate(Shape(B, H, T)), context: arena.allocate(Shape(B, D)), middle: arena.allocate(Shape(B, D)),
            normed2: arena.allocate(Shape(B, D)), mean2: arena.allocate(Shape(B)), rstd2: arena.allocate(Shape(B)),
            hidden: arena.allocate(Shape(B, 4 * D)), activated: arena.allocate(Shape(B, 4 * D)))
    }

    /// x: [B, T, D] block input → out: [B, D], the block output at token 0.
    func forwardClassToken(_ x: TensorView, into out: TensorView, saved a: ClassTokenActivations) {
        let B = x.shape[0], T = x.shape[1], D = ln1.channels, H = attention.headCount, hd = D / H
        a.input.copy(from: x)
        ln1.forward(x, into: a.normed1, mean: a.mean1, rstd: a.rstd1)
        attention.qkv.forward(a.normed1, into: a.qkv)
        let qkv = a.qkv.data, probs = a.probabilities.data, ctx = a.context.data
        let scale = 1 / Float(hd).squareRoot()
        Parallel.forEach(B * H, ClassQueryHeads(qkv: qkv, probs: probs, ctx: ctx, T: T, D: D, H: H, hd: hd, scale: scale))
        attention.projection.forward(a.context, into: a.middle)
        for b in 0..<B { add(x[b][0], into: a.middle[b]) }
        ln2.forward(a.middle, into: a.normed2, mean: a.mean2, rstd: a.rstd2)
        fc.forwardWithoutBias(a.normed2, into: a.hidden)
        Activation.quickGELU.forwardAddingBias(a.hidden, bias: fc.bias!.value, into: a.activated)
        proj.forward(a.activated, into: out)
        add(a.middle, into: out)
    }

    /// Temporaries of the class-token backward.
    struct ClassTokenScratch {
        let rowGradient: TensorView     // [B, D]
        let hiddenGradient: TensorView  // [B, 4D]
        let contextGradient: TensorView // [B, D]
        let qkvGradient: TensorView     // [B, T, 3D]
        let scoreGradient: TensorView   // [B, H, T]
        let normedGradient: TensorView  // [B, T, D]
    }

    func makeClassTokenScratch(_ arena: Arena, batch B: Int, tokens T: Int) -> ClassTokenScratch {
        let D = ln1.channels, H = attention.headCount
        return ClassTokenScratch(rowGradient: arena.allocate(Shape(B, D)), hiddenGradient: arena.allocate(Shape(B, 4 * D)),
                                 contextGradient: arena.allocate(Shape(B, D)), qkvGradient: arena.allocate(Shape(B, T, 3 * D)),
                                 scoreGradient: arena.allocate(Shape(B, H, T)), normedGradient: arena.allocate(Shape(B, T, D)))
    }

    /// dOut: [B, D] (∂L/∂ output at token 0) → dx: [B, T, D] (overwritten) ∂L/∂ block input.
    /// Weight gradients accumulate when the store keeps them (as in `backward`).
    func backwardClassToken(_ dOut: TensorView, saved a: ClassTokenActivations, scratch s: ClassTokenScratch,
                            dx: TensorView) {
        let B = a.input.shape[0], T = a.input.shape[1], D = ln1.channels, H = attention.headCount, hd = D / H
        // out = middle + c_proj(quickGELU(c_fc(ln_2(middle)))): dMiddle = dOut + ln_2ᵀ(…)
        let dMiddle = s.rowGradient
        dMiddle.copy(from: dOut)
        proj.backward(dOut, x: a.activated, dx: s.hiddenGradient, accumulate: false, parameterGradients: true)
        Activation.quickGELU.backward(s.hiddenGradient, x: a.hidden, dx: s.hiddenGradient, accumulate: false)
        let dNormed2 = s.contextGradient  // reused below once consumed
        fc.backward(s.hiddenGradient, x: a.normed2, dx: dNormed2, accumulate: false, parameterGradients: true)
        ln2.backward(dNormed2, x: a.middle, mean: a.mean2, rstd: a.rstd2, dx: dMiddle, accumulate: true,
                     parameterGradients: true)
        // middle = x₀ + out_proj(context₀)
        attention.projection.backward(dMiddle, x: a.context, dx: s.contextGradient, accumulate: false,
                                      parameterGradients: true)
        s.qkvGradient.zero()
        let qkv = a.qkv.data, probs = a.probabilities.data, dctx = s.contextGradient.data
        let dqkv = s.qkvGradient.data, dscores = s.scoreGradient.data
        let scale = 1 / Float(hd).squareRoot()
        Parallel.forEach(B * H, ClassQueryHeadGradients(qkv: qkv, probs: probs, dctx: dctx, dqkv: dqkv, dscores: dscores,
                                                        T: T, D: D, H: H, hd: hd, scale: scale))
        attention.qkv.backward(s.qkvGradient, x: a.normed1, dx: s.normedGradient, accumulate: false,
                               parameterGradients: true)
        ln1.backward(s.normedGradient, x: a.input, mean: a.mean1, rstd: a.rstd1, dx: dx, accumulate: false,
                     parameterGradients: true)
        // The residual path reaches the class row only.
        for b in 0..<B { add(dMiddle[b], into: dx[b][0]) }
    }
}

extension CLIPResidualBlock {
    /// The (image, head) pairs of `forwardClassToken`'s attention.
    private struct ClassQueryHeads: IndexKernel {
        let qkv: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, ctx: UnsafeMutablePointer<Float>
        let T: Int, D: Int, H: Int, hd: Int
        let scale: Float

        func run(_ bh: Int) {
            let b = bh / H, h = bh % H
            let base = qkv + b * T * 3 * D + h * hd
            let q = base, k = base + D, v = base + 2 * D
            let p = probs + bh * T
            // p = softmax(q₀·Kᵀ · scale); context₀ = p·V
            BLAS.gemv(m: T, n: hd, alpha: scale, a: k, lda: 3 * D, x: q, beta: 0, y: p)
            Softmax.row(p, p, T)
            BLAS.gemv(transA: true, m: T, n: hd, a: v, lda: 3 * D, x: p, beta: 0, y: ctx + b * D + h * hd)
        }
    }

    /// The (image, head) pairs of `backwardClassToken`'s attention.
    private struct ClassQueryHeadGradients: IndexKernel {
        let qkv: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, dctx: UnsafeMutablePointer<Float>
        let dqkv: UnsafeMutablePointer<Float>, dscores: UnsafeMutablePointer<Float>
        let T: Int, D: Int, H: Int, hd: Int
        let scale: Float

        func run(_ bh: Int) {
            let b = bh / H, h = bh % H
            let off = b * T * 3 * D + h * hd
            let q = qkv + off, k = q + D, v = q + 2 * D
            let dq = dqkv + off, dk = dq + D, dv = dq + 2 * D
            let p = probs + bh * T, dp = dscores + bh * T
            let g = dctx + b * D + h * hd
            // dP = V·g ; dV[t] = p[t]·g
            BLAS.gemv(m: T, n: hd, a: v, lda: 3 * D, x: g, beta: 0, y: dp)
            for t in 0..<T { BLAS.axpy(count: hd, alpha: p[t], x: g, y: dv + t * 3 * D) }
            // dS = scale · p ⊙ (dP − Σ p·dP)
            var dot: Float = 0
            for t in 0..<T { dot += p[t] * dp[t] }
            for t in 0..<T { dp[t] = scale * p[t] * (dp[t] - dot) }
            // dq₀ = dS·K ; dK[t] = dS[t]·q₀
            BLAS.gemv(transA: true, m: T, n: hd, a: k, lda: 3 * D, x: dp, beta: 0, y: dq)
            for t in 0..<T { BLAS.axpy(count: hd, alpha: dp[t], x: q, y: dk + t * 3 * D) }
        }
    }
}
