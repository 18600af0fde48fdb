/// Element-wise activations as forward/backward pairs, with fused bias variants used after GEMMs.
///
/// - gelu: x·Φ(x) with the erf form (DeiT / WeakTr MLP).
/// - quickGELU: x·σ(1.702x) (CLIP MLP).
/// - relu: max(x, 0); gradient 0 at x = 0 (as torch).
/// - sigmoid: 1 / (1 + e^−x).
public enum Activation: Sendable, Equatable {
    case gelu, quickGELU, relu, sigmoid, identity

    /// x: [...] → y: [...] (same count). Overwrites y; y may alias x.
    public func forward(_ x: TensorView, into y: TensorView) {
        precondition(x.count == y.count, "activation \(x.shape) → \(y.shape)")
        let xp = x.data, yp = y.data
        let act = self
        Parallel.forRanges(x.count) { r in
            act.apply(xp + r.lowerBound, bias: nil, biasCount: 0, count: r.count, pre: nil, out: yp + r.lowerBound)
        }
    }

    /// Accumulates dx += dy ⊙ f′(x) (or overwrites dx when accumulate is false). x is the input of forward.
    public func backward(_ dy: TensorView, x: TensorView, dx: TensorView, accumulate: Bool = true) {
        precondition(dy.count == x.count && dx.count == x.count, "activation backward \(dy.shape), \(x.shape), \(dx.shape)")
        let dyp = dy.data, xp = x.data, dxp = dx.data
        let act = self
        Parallel.forRanges(x.count) { r in
            let o = r.lowerBound
            act.derivative(dyp + o, xp + o, dxp + o, count: r.count, accumulate: accumulate)
        }
    }

    /// Fused bias + activation over rows: pre[i, j] += bias[j] (in place), out = f(pre).
    /// pre, out: [N, C]; bias: [C] or nil. out may alias pre only for `identity`.
    public func forwardAddingBias(_ pre: TensorView, bias: TensorView?, into out: TensorView) {
        let c = pre.shape[pre.shape.rank - 1]
        let n = pre.count / max(c, 1)
        precondition(out.count == pre.count && (bias == nil || bias!.count == c),
                     "fused bias activation \(pre.shape), bias \(bias?.shape.description ?? "nil"), out \(out.shape)")
        let pp = pre.data, op = out.data, bp = bias?.data
        let act = self
        Parallel.forRanges(n, grain: max(1, 16_384 / max(c, 1))) { rows in
            for i in rows {
                act.apply(pp + i * c, bias: bp.map { UnsafePointer($0) }, biasCount: c, count: c,
                          pre: pp + i * c, out: op + i * c)
            }
        }
    }

    /// out[i] = f(x[i] + bias[i mod biasCount]); when `pre` is given, x + bias is also stored there.
    @inline(__always)
    func apply(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, biasCount: Int, count: Int,
               pre: UnsafeMutablePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        map8(count) { i, lanes in
            var v = loadPartial(x + i, lanes)
            if let b = bias { v += loadPartial(b + i, lanes) }
            if let p = pre { storePartial(v, p + i, lanes) }
            storePartial(Activation.value(self, v), out + i, lanes)
        }
    }

    @inline(__always)
    static func value(_ act: Activation, _ v: Float8) -> Float8 {
        switch act {
        case .gelu:
            return v * 0.5 * (1 + erf8(v * 0.707_106_781_186_547_6))
        case .quickGELU:
            return v / (1 + exp8(v * -1.702))
        case .relu:
            return v.replacing(with: 0, where: v .< 0)
        case .sigmoid:
            return 1 / (1 + exp8(-v))
        case .identity:
            return v
        }
    }

    @inline(__always)
    func derivative(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                    count: Int, accumulate: Bool) {
        let act = self
        map8(count) { i, lanes in
            let v = loadPartial(x + i, lanes)
            let g = loadPartial(dy + i, lanes)
            var d: Float8
            switch act {
            case .gelu:
                // d/dx x·Φ(x) = Φ(x) + x·φ(x)
                let cdf = 0.5 * (1 + erf8(v * 0.707_106_781_186_547_6))
                let pdf = exp8(v * v * -0.5) * 0.398_942_280_401_432_7
                d = g * (cdf + v * pdf)
            case .quickGELU:
                // y = x·s, s = σ(1.702x): y′ = s + 1.702·x·s·(1 − s)
                let s = 1 / (1 + exp8(v * -1.702))
                d = g * (s + 1.702 * v * s * (1 - s))
            case .relu:
                d = g.replacing(with: 0, where: v .<= 0)
            case .sigmoid:
                let s = 1 / (1 + exp8(-v))
                d = g * s * (1 - s)
            case .identity:
                d = g
            }
            if accumulate { d += loadPartial(dx + i, lanes) }
            storePartial(d, dx + i, lanes)
        }
    }
}

/// Row softmax: x, p: [R, C] → p[r, :] = softmax(x[r, :]).
public enum Softmax {
    /// Overwrites p (p may alias x).
    public static func forward(_ x: TensorView, into p: TensorView) {
        let c = x.shape[x.shape.rank - 1]
        let rows = x.count / max(c, 1)
        precondition(p.count == x.count, "softmax \(x.shape) → \(p.shape)")
        let xp = x.data, pp = p.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for i in r { row(xp + i * c, pp + i * c, c) }
        }
    }

    /// Unnormalised softmax of each row of s: [R, C], in place: s ← exp(s − rowmax) and
    /// inverseSums[r] = 1 / Σ_c s[r, c]. For callers that fold the normalisation into what they
    /// compute from the rows (WeakTr's attention scales the A·V rows), which saves a pass over s.
    public static func exponentiate(_ s: TensorView, inverseSums: TensorView) {
        let c = s.shape[s.shape.rank - 1]
        let rows = s.count / max(c, 1)
        precondition(inverseSums.count == rows, "exponentiate \(s.shape): inverse sums \(inverseSums.shape)")
        let sp = s.data, ip = inverseSums.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for i in r { ip[i] = exponentiateRow(sp + i * c, sp + i * c, c) }
        }
    }

    /// Softmax of one row of length c (p may alias x).
    @inline(__always)
    public static func row(_ x: UnsafePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ c: Int) {
        let inv = exponentiateRow(x, p, c)
        map8(c) { j, lanes in storePartial(loadPartial(p + j, lanes) * inv, p + j, lanes) }
    }

    /// p = exp(x − max x) over one row of length c (p may alias x); returns 1 / Σ p.
    @inline(__always)
    static func exponentiateRow(_ x: UnsafePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ c: Int) -> Float {
        var m8 = Float8(repeating: -.infinity)
        map8(c) { j, lanes in
            let v = loadPartial(x + j, lanes, pad: -.infinity)
            m8.replace(with: v, where: v .> m8)
        }
        let m = m8.max()
        var sum8 = Float8(repeating: 0)
        map8(c) { j, lanes in
            let e = exp8(loadPartial(x + j, lanes, pad: -.infinity) - m)
            let z = lanes == 8 ? e : e.replacing(with: 0, where: SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= Int32(lanes))
            sum8 += z
            storePartial(z, p + j, lanes)
        }
        return 1 / sum8.sum()
    }

    /// dx (+)= p ⊙ (dp − rowsum(dp ⊙ p)). dx may alias dp when accumulate is false.
    public static func backward(_ dp: TensorView, p: TensorView, dx: TensorView, accumulate: Bool = true) {
        let c = p.shape[p.shape.rank - 1]
        let rows = p.count / max(c, 1)
        precondition(dp.count == p.count && dx.count == p.count, "softmax backward shapes")
        let dpp = dp.data, pp = p.data, dxp = dx.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for i in r { rowBackward(dpp + i * c, pp + i * c, dxp + i * c, c, scale: 1, accumulate: accumulate) }
        }
    }

    /// One row: dx = scale · p ⊙ (dp − Σ dp⊙p) (+ dx when accumulating).
    @inline(__always)
    static func rowBackward(_ dp: UnsafePointer<Float>, _ p: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                            _ c: Int, scale: Float, accumulate: Bool) {
        var s8 = Float8(repeating: 0)
        map8(c) { j, lanes in s8 += loadPartial(dp + j, lanes) * loadPartial(p + j, lanes) }
        let s = s8.sum()
        map8(c) { j, lanes in
            var d = loadPartial(p + j, lanes) * (loadPartial(dp + j, lanes) - s) * scale
            if accumulate { d += loadPartial(dx + j, lanes) }
            storePartial(d, dx + j, lanes)
        }
    }
}
