import CKernels

/// Layer normalisation over the last axis, as torch.nn.LayerNorm(C, eps).
public struct LayerNorm: Sendable {
    public let weight: Parameter  // [C]
    public let bias: Parameter    // [C]
    /// DeiT/WeakTr 1e-6, CLIP 1e-5: always from the model configuration.
    public let eps: Float

    public var channels: Int { weight.count }

    public init(weight: Parameter, bias: Parameter, eps: Float) {
        precondition(weight.shape.rank == 1 && bias.shape == weight.shape, "LayerNorm parameters \(weight.shape), \(bias.shape)")
        self.weight = weight
        self.bias = bias
        self.eps = eps
    }

    /// Declares `name.weight` and `name.bias` [channels].
    public init(_ store: ParameterStore, _ name: String, channels: Int, eps: Float) {
        self.init(weight: store.declare(name + ".weight", [channels]),
                  bias: store.declare(name + ".bias", [channels]), eps: eps)
    }

    /// x, y: [N, C]; mean, rstd: [N] saved for backward, or nil in inference. Overwrites y (y may
    /// alias x). Rows are spread over the workers; called inside a parallel loop, it runs serially.
    public func forward(_ x: TensorView, into y: TensorView, mean: TensorView? = nil, rstd: TensorView? = nil) {
        let c = channels
        let n = x.count / c
        precondition(x.count == n * c && y.count == x.count && (mean?.count ?? n) == n && (rstd?.count ?? n) == n,
                     "LayerNorm(\(c)): x \(x.shape), y \(y.shape), mean \(mean?.shape.description ?? "nil"), rstd \(rstd?.shape.description ?? "nil")")
        let xp = x.data, yp = y.data, mp = mean?.data, rp = rstd?.data
        let wp = weight.value.data, bp = bias.value.data
        Parallel.forRanges(n, grain: max(1, 8192 / c),
                           ForwardRows(xp: xp, yp: yp, mp: mp, rp: rp, wp: wp, bp: bp, c: c, eps: eps))
    }

    /// dx (+)= rstd·(g − mean(g) − x̂·mean(g⊙x̂)) with g = dy⊙γ; weight.grad += Σ dy⊙x̂; bias.grad += Σ dy.
    /// dx may be nil (only parameter gradients). accumulate false overwrites dx.
    public func backward(_ dy: TensorView, x: TensorView, mean: TensorView, rstd: TensorView, dx: TensorView?,
                         accumulate: Bool = true, parameterGradients: Bool = true) {
        let c = channels
        let n = x.count / c
        precondition(dy.count == x.count && mean.count == n && rstd.count == n && (dx == nil || dx!.count == x.count),
                     "LayerNorm backward shapes dy \(dy.shape), x \(x.shape)")
        let dyp = dy.data, xp = x.data, mp = mean.data, rp = rstd.data
        let wp = weight.value.data
        if let dx = dx {
            let dxp = dx.data
            Parallel.forRanges(n, grain: max(1, 8192 / c),
                               BackwardRows(dyp: dyp, xp: xp, mp: mp, rp: rp, wp: wp, dxp: dxp, c: c,
                                            accumulate: accumulate))
        }
        guard parameterGradients else { return }
        let gw = weight.activeGrad, gb = bias.activeGrad
        if gw == nil && gb == nil { return }
        forEachColumnBlock(c, ParameterGradientColumns(dyp: dyp, xp: xp, mp: mp, rp: rp, gw: gw?.data, gb: gb?.data, n: n, c: c))
    }
}

extension LayerNorm {
    /// The rows of `forward`.
    private struct ForwardRows: RangeKernel {
        let xp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
        let mp: UnsafeMutablePointer<Float>?, rp: UnsafeMutablePointer<Float>?
        let wp: UnsafeMutablePointer<Float>, bp: UnsafeMutablePointer<Float>
        let c: Int
        let eps: Float

        func run(_ rows: Range<Int>) {
            for i in rows {
                let xr = xp + i * c, yr = yp + i * c
                var s8 = Float8(repeating: 0)
                map8(c) { j, lanes in s8 += loadPartial(xr + j, lanes) }
                let m = s8.sum() / Float(c)
                var v8 = Float8(repeating: 0)
                map8(c) { j, lanes in
                    let d = loadPartial(xr + j, lanes) - m
                    v8 += lanes == 8 ? d * d : (d * d).replacing(with: 0, where: SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= Int32(lanes))
                }
                let r = 1 / (v8.sum() / Float(c) + eps).squareRoot()
                mp?[i] = m
                rp?[i] = r
                map8(c) { j, lanes in
                    let xh = (loadPartial(xr + j, lanes) - m) * r
                    storePartial(xh * loadPartial(wp + j, lanes) + loadPartial(bp + j, lanes), yr + j, lanes)
                }
            }
        }
    }

    /// The rows of the input gradient in `backward`.
    private struct BackwardRows: RangeKernel {
        let dyp: UnsafeMutablePointer<Float>, xp: UnsafeMutablePointer<Float>
        let mp: UnsafeMutablePointer<Float>, rp: UnsafeMutablePointer<Float>
        let wp: UnsafeMutablePointer<Float>, dxp: UnsafeMutablePointer<Float>
        let c: Int
        let accumulate: Bool

        func run(_ rows: Range<Int>) {
            for i in rows {
                let xr = xp + i * c, gr = dyp + i * c, dr = dxp + i * c
                let m = mp[i], r = rp[i]
                var a8 = Float8(repeating: 0), b8 = Float8(repeating: 0)
                map8(c) { j, lanes in
                    let g = loadPartial(gr + j, lanes) * loadPartial(wp + j, lanes)
                    let xh = (loadPartial(xr + j, lanes) - m) * r
                    a8 += g
                    b8 += g * xh   // padded lanes are 0 in g, so they add nothing
                }
                let meanG = a8.sum() / Float(c), meanGX = b8.sum() / Float(c)
                map8(c) { j, lanes in
                    let g = loadPartial(gr + j, lanes) * loadPartial(wp + j, lanes)
                    let xh = (loadPartial(xr + j, lanes) - m) * r
                    var d = (g - meanG - xh * meanGX) * r
                    if accumulate { d += loadPartial(dr + j, lanes) }
                    storePartial(d, dr + j, lanes)
                }
            }
        }
    }

    /// The weight and bias gradients of `backward`, by column blocks (a C kernel: 16 columns per
    /// sweep down the rows, each row read as whole cache lines).
    private struct ParameterGradientColumns: ColumnBlockKernel {
        let dyp: UnsafeMutablePointer<Float>, xp: UnsafeMutablePointer<Float>
        let mp: UnsafeMutablePointer<Float>, rp: UnsafeMutablePointer<Float>
        let gw: UnsafeMutablePointer<Float>?, gb: UnsafeMutablePointer<Float>?
        let n: Int, c: Int

        func run(columns: Range<Int>) {
            semples_layernorm_parameter_gradients(dyp, xp, mp, rp, n, c, gw, gb, columns.lowerBound, columns.upperBound)
        }
    }
}
