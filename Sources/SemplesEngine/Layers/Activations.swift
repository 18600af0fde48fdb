import CKernels

/// Element-wise activations as forward/backward pairs, with fused bias variants used after GEMMs.
///
/// - gelu: x·Φ(x) with the erf form (DeiT / WeakTr MLP).
/// - quickGELU: x·σ(1.702x) (CLIP MLP).
/// - relu: max(x, 0); gradient 0 at x = 0 (as torch).
/// - sigmoid: 1 / (1 + e^−x).
public enum Activation: Sendable, Equatable {
    case gelu, quickGELU, relu, sigmoid, identity

    /// The kind's number in the C kernels.
    var kernelKind: Int32 {
        switch self {
        case .gelu: return Int32(SEMPLES_ACT_GELU)
        case .quickGELU: return Int32(SEMPLES_ACT_QUICK_GELU)
        case .relu: return Int32(SEMPLES_ACT_RELU)
        case .sigmoid: return Int32(SEMPLES_ACT_SIGMOID)
        case .identity: return Int32(SEMPLES_ACT_IDENTITY)
        }
    }

    /// x: [...] → y: [...] (same count). Overwrites y; y may alias x.
    public func forward(_ x: TensorView, into y: TensorView) {
        precondition(x.count == y.count, "activation \(x.shape) → \(y.shape)")
        Parallel.forRanges(x.count, ForwardSpan(kind: kernelKind, xp: x.data, yp: y.data))
    }

    /// Accumulates dx += dy ⊙ f′(x) (or overwrites dx when accumulate is false). x is the input of forward.
    public func backward(_ dy: TensorView, x: TensorView, dx: TensorView, accumulate: Bool = true) {
        precondition(dy.count == x.count && dx.count == x.count, "activation backward \(dy.shape), \(x.shape), \(dx.shape)")
        Parallel.forRanges(x.count, BackwardSpan(kind: kernelKind, dyp: dy.data, xp: x.data, dxp: dx.data,
                                                 accumulate: accumulate ? 1 : 0))
    }

    /// Fused bias + activation over rows: pre[i, j] += bias[j] (in place), out = f(pre).
    /// pre, out: [N, C]; bias: [C] or nil. out may alias pre only for `identity`.
    public func forwardAddingBias(_ pre: TensorView, bias: TensorView?, into out: TensorView) {
        let c = pre.shape[pre.shape.rank - 1]
        let n = pre.count / max(c, 1)
        precondition(out.count == pre.count && (bias == nil || bias!.count == c),
                     "fused bias activation \(pre.shape), bias \(bias?.shape.description ?? "nil"), out \(out.shape)")
        Parallel.forRanges(n, grain: max(1, 16_384 / max(c, 1)),
                           BiasRows(kind: kernelKind, pp: pre.data, bp: bias?.data, op: out.data, c: c))
    }
}

/// Row softmax: x, p: [R, C] → p[r, :] = softmax(x[r, :]).
public enum Softmax {
    /// Overwrites p (p may alias x).
    public static func forward(_ x: TensorView, into p: TensorView) {
        let c = x.shape[x.shape.rank - 1]
        let rows = x.count / max(c, 1)
        precondition(p.count == x.count, "softmax \(x.shape) → \(p.shape)")
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1)), ForwardRows(xp: x.data, pp: p.data, c: c))
    }

    /// Unnormalised softmax of each row of s: [R, C], in place: s ← exp(s − rowmax) and
    /// inverseSums[r] = 1 / Σ_c s[r, c]. For callers that fold the normalisation into what they
    /// compute from the rows (WeakTr's attention scales the A·V rows), which saves a pass over s.
    public static func exponentiate(_ s: TensorView, inverseSums: TensorView) {
        let c = s.shape[s.shape.rank - 1]
        let rows = s.count / max(c, 1)
        precondition(inverseSums.count == rows, "exponentiate \(s.shape): inverse sums \(inverseSums.shape)")
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1)),
                           ExponentiateRows(sp: s.data, ip: inverseSums.data, c: c))
    }

    /// Softmax of one row of length c (p may alias x).
    @inline(__always)
    public static func row(_ x: UnsafePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ c: Int) {
        semples_softmax_row(x, p, c)
    }

    /// Softmax of `rows` rows (leading dimension ld) in place; with `causal`, row r keeps its first
    /// r + 1 entries and the rest become 0 (the text encoder's mask).
    @inline(__always)
    public static func rows(_ s: UnsafeMutablePointer<Float>, rows: Int, columns: Int, leadingDimension ld: Int,
                            causal: Bool = false) {
        semples_softmax_rows(s, rows, columns, ld, causal ? 1 : 0, 0)
    }

    /// dx (+)= p ⊙ (dp − rowsum(dp ⊙ p)). dx may alias dp when accumulate is false.
    public static func backward(_ dp: TensorView, p: TensorView, dx: TensorView, accumulate: Bool = true) {
        let c = p.shape[p.shape.rank - 1]
        let rows = p.count / max(c, 1)
        precondition(dp.count == p.count && dx.count == p.count, "softmax backward shapes")
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1)),
                           BackwardRows(dpp: dp.data, pp: p.data, dxp: dx.data, c: c, accumulate: accumulate ? 1 : 0))
    }

    /// Rows of length c, leading dimension ld: dx = scale · p ⊙ (dp − Σ dp⊙p) (+ dx when accumulating).
    @inline(__always)
    static func rowsBackward(_ dp: UnsafePointer<Float>, _ p: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                             rows: Int, columns c: Int, leadingDimension ld: Int, scale: Float, accumulate: Bool) {
        semples_softmax_rows_backward(dp, p, dx, rows, c, ld, scale, accumulate ? 1 : 0)
    }
}

// The parallel loops' bodies as kernels (no heap allocation per run; see `RangeKernel`).

extension Activation {
    private struct ForwardSpan: RangeKernel {
        let kind: Int32, xp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
        func run(_ r: Range<Int>) {
            semples_activation_forward(kind, xp + r.lowerBound, nil, yp + r.lowerBound, 1, r.count, 0)
        }
    }

    private struct BackwardSpan: RangeKernel {
        let kind: Int32, dyp: UnsafeMutablePointer<Float>, xp: UnsafeMutablePointer<Float>
        let dxp: UnsafeMutablePointer<Float>, accumulate: Int32
        func run(_ r: Range<Int>) {
            let o = r.lowerBound
            semples_activation_backward(kind, dyp + o, xp + o, dxp + o, r.count, accumulate)
        }
    }

    private struct BiasRows: RangeKernel {
        let kind: Int32, pp: UnsafeMutablePointer<Float>, bp: UnsafeMutablePointer<Float>?
        let op: UnsafeMutablePointer<Float>, c: Int
        func run(_ rows: Range<Int>) {
            let o = rows.lowerBound * c
            semples_activation_forward(kind, pp + o, bp, op + o, rows.count, c, 1)
        }
    }
}

extension Softmax {
    private struct ForwardRows: RangeKernel {
        let xp: UnsafeMutablePointer<Float>, pp: UnsafeMutablePointer<Float>, c: Int
        func run(_ r: Range<Int>) {
            let o = r.lowerBound * c
            if xp != pp { (pp + o).update(from: xp + o, count: r.count * c) }
            semples_softmax_rows(pp + o, r.count, c, c, 0, 0)
        }
    }

    private struct ExponentiateRows: RangeKernel {
        let sp: UnsafeMutablePointer<Float>, ip: UnsafeMutablePointer<Float>, c: Int
        func run(_ r: Range<Int>) {
            for i in r { ip[i] = semples_exponentiate_row(sp + i * c, sp + i * c, c) }
        }
    }

    private struct BackwardRows: RangeKernel {
        let dpp: UnsafeMutablePointer<Float>, pp: UnsafeMutablePointer<Float>, dxp: UnsafeMutablePointer<Float>
        let c: Int, accumulate: Int32
        func run(_ r: Range<Int>) {
            let o = r.lowerBound * c
            semples_softmax_rows_backward(dpp + o, pp + o, dxp + o, r.count, c, c, 1, accumulate)
        }
    }
}
