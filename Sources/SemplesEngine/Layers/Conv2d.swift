/// 2-D convolution as im2col + GEMM, as torch.nn.Conv2d (weight [out, in, k, k], square kernel).
///
/// Used for patch embedding (kernel = stride, no padding; output as tokens [B, L, out]) and for
/// the 3×3, padding 1 CAM head (output NCHW [B, out, Ho, Wo]). The column matrix holds one row per
/// output position: columns[b·L + l, c·k·k + ky·k + kx] (row-major over Ho, Wo), matching the weight.
public struct Conv2d: Sendable {
    public let weight: Parameter  // [out, in, k, k]
    public let bias: Parameter?   // [out]
    public let stride: Int
    public let padding: Int

    public var outChannels: Int { weight.shape[0] }
    public var inChannels: Int { weight.shape[1] }
    public var kernel: Int { weight.shape[2] }
    var columnWidth: Int { inChannels * kernel * kernel }

    public init(weight: Parameter, bias: Parameter?, stride: Int, padding: Int) {
        precondition(weight.shape.rank == 4 && weight.shape[2] == weight.shape[3], "Conv2d weight \(weight.shape)")
        precondition(bias == nil || bias!.count == weight.shape[0], "Conv2d bias for \(weight.shape)")
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
    }

    /// Declares `name.weight` [out, in, k, k] and optionally `name.bias` [out].
    public init(_ store: ParameterStore, _ name: String, inChannels: Int, outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        self.init(weight: store.declare(name + ".weight", [outChannels, inChannels, kernel, kernel]),
                  bias: bias ? store.declare(name + ".bias", [outChannels]) : nil, stride: stride, padding: padding)
    }

    /// Output spatial size: ⌊(H + 2p − k)/s⌋ + 1 (remainder pixels dropped).
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
    }

    /// Shape of the column buffer forward needs: [B·Ho·Wo, in·k·k].
    public func columnsShape(batch: Int, height: Int, width: Int) -> [Int] {
        columnMatrixShape(batch: batch, height: height, width: width).dims
    }

    /// `columnsShape` as a `Shape`, which makes no array: for views of scratch memory taken per
    /// image inside timed loops.
    public func columnMatrixShape(batch: Int, height: Int, width: Int) -> Shape {
        let o = outputSize(height: height, width: width)
        return Shape(batch * o.height * o.width, columnWidth)
    }

    /// x: [B, in, H, W] → y: [B, out, Ho, Wo]. columns: columnsShape (kept for backward). Overwrites y.
    public func forward(_ x: TensorView, into y: TensorView, columns: TensorView) {
        let (B, L) = gather(x, columns)
        precondition(y.count == B * outChannels * L, "Conv2d forward y \(y.shape)")
        let K = columnWidth, O = outChannels
        for b in 0..<B {
            BLAS.gemm(transB: true, m: O, n: L, k: K, a: weight.value.data, lda: K,
                      b: columns.data + b * L * K, ldb: K, beta: 0, c: y.data + b * O * L, ldc: L)
        }
        if let bias = bias {
            let bp = bias.value.data, yp = y.data
            Parallel.forEachWithoutBLAS(B * O, AddChannelBias(bp: bp, yp: yp, O: O, L: L))
        }
    }

    /// x: [B, in, H, W] → y: [B, Ho·Wo, out] (token layout, as `flatten(2).transpose(1, 2)`).
    public func forwardTokens(_ x: TensorView, into y: TensorView, columns: TensorView) {
        let (B, L) = gather(x, columns)
        precondition(y.count == B * L * outChannels, "Conv2d token forward y \(y.shape)")
        let K = columnWidth
        BLAS.gemm(transB: true, m: B * L, n: outChannels, k: K, a: columns.data, lda: K,
                  b: weight.value.data, ldb: K, beta: 0, c: y.data, ldc: outChannels)
        if let bias = bias { addRowVector(bias.value, to: y) }
    }

    /// dy: [B, out, Ho, Wo]. dx (+)= ∂L/∂x (nil: skip; needs columnGradient [B·L, in·k·k]);
    /// weight/bias gradients accumulate from the forward columns.
    public func backward(_ dy: TensorView, x: TensorView, columns: TensorView, columnGradient: TensorView?,
                         dx: TensorView?, parameterGradients: Bool = true) {
        let B = x.shape[0], K = columnWidth, O = outChannels
        let L = columns.shape[0] / B
        precondition(dy.count == B * O * L, "Conv2d backward dy \(dy.shape)")
        if parameterGradients, let gw = weight.activeGrad {
            for b in 0..<B {
                BLAS.gemm(m: O, n: K, k: L, a: dy.data + b * O * L, lda: L, b: columns.data + b * L * K, ldb: K,
                          beta: 1, c: gw.data, ldc: K)
            }
        }
        if parameterGradients, let gb = bias?.activeGrad {
            for b in 0..<B {
                for o in 0..<O {
                    var s: Float = 0
                    let row = dy.data + (b * O + o) * L
                    for l in 0..<L { s += row[l] }
                    gb.data[o] += s
                }
            }
        }
        if let dx = dx {
            guard let dcol = columnGradient else { preconditionFailure("Conv2d backward needs columnGradient for dx") }
            for b in 0..<B {
                BLAS.gemm(transA: true, m: L, n: K, k: O, a: dy.data + b * O * L, lda: L, b: weight.value.data, ldb: K,
                          beta: 0, c: dcol.data + b * L * K, ldc: K)
            }
            scatter(dcol, into: dx)
        }
    }

    /// dy: [B, Ho·Wo, out] (token layout). As `backward`.
    public func backwardTokens(_ dy: TensorView, x: TensorView, columns: TensorView, columnGradient: TensorView?,
                               dx: TensorView?, parameterGradients: Bool = true) {
        let K = columnWidth, O = outChannels, rows = columns.shape[0]
        precondition(dy.count == rows * O, "Conv2d token backward dy \(dy.shape)")
        if parameterGradients, let gw = weight.activeGrad {
            BLAS.gemm(transA: true, m: O, n: K, k: rows, a: dy.data, lda: O, b: columns.data, ldb: K,
                      beta: 1, c: gw.data, ldc: K)
        }
        if parameterGradients, let gb = bias?.activeGrad { sumRows(dy, into: gb) }
        if let dx = dx {
            guard let dcol = columnGradient else { preconditionFailure("Conv2d backward needs columnGradient for dx") }
            BLAS.gemm(m: rows, n: K, k: O, a: dy.data, lda: O, b: weight.value.data, ldb: K, beta: 0, c: dcol.data, ldc: K)
            scatter(dcol, into: dx)
        }
    }

    /// im2col: fills columns from x; returns (B, L).
    private func gather(_ x: TensorView, _ columns: TensorView) -> (Int, Int) {
        precondition(x.shape.rank == 4 && x.shape[1] == inChannels, "Conv2d(\(weight.shape)) input \(x.shape)")
        let B = x.shape[0], C = inChannels, H = x.shape[2], W = x.shape[3]
        let (Ho, Wo) = outputSize(height: H, width: W)
        let L = Ho * Wo, K = columnWidth, k = kernel, s = stride, p = padding
        precondition(columns.count == B * L * K, "Conv2d columns \(columns.shape), need \([B * L, K])")
        let xp = x.data, cp = columns.data
        Parallel.forEachWithoutBLAS(B * Ho, GatherRows(xp: xp, cp: cp, C: C, H: H, W: W, Ho: Ho, Wo: Wo,
                                                       K: K, k: k, s: s, p: p))
        return (B, L)
    }

    /// col2im: dx += columns scattered back (overlapping taps add up).
    private func scatter(_ dcol: TensorView, into dx: TensorView) {
        let B = dx.shape[0], C = inChannels, H = dx.shape[2], W = dx.shape[3]
        let (Ho, Wo) = outputSize(height: H, width: W)
        let K = columnWidth, k = kernel, s = stride, p = padding
        let dp = dx.data, cp = dcol.data
        // Parallel over (b, c) planes: each worker owns whole input planes, so no write races.
        Parallel.forEachWithoutBLAS(B * C, ScatterPlanes(dp: dp, cp: cp, C: C, H: H, W: W, Ho: Ho, Wo: Wo,
                                                         K: K, k: k, s: s, p: p))
    }
}

extension Conv2d {
    /// The output planes of `forward`: y[b, o] += bias[o].
    private struct AddChannelBias: IndexKernel {
        let bp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
        let O: Int, L: Int

        func run(_ i: Int) {
            let v = bp[i % O], row = yp + i * L
            for l in 0..<L { row[l] += v }
        }
    }

    /// The (image, output row) pairs of `gather` (im2col).
    private struct GatherRows: IndexKernel {
        let xp: UnsafeMutablePointer<Float>, cp: UnsafeMutablePointer<Float>
        let C: Int, H: Int, W: Int, Ho: Int, Wo: Int, K: Int, k: Int, s: Int, p: Int

        func run(_ bo: Int) {
            let b = bo / Ho, oy = bo % Ho
            for ox in 0..<Wo {
                let row = cp + ((b * Ho + oy) * Wo + ox) * K
                for c in 0..<C {
                    let plane = xp + (b * C + c) * H * W
                    for ky in 0..<k {
                        let iy = oy * s - p + ky
                        let dst = row + (c * k + ky) * k
                        if iy < 0 || iy >= H { dst.update(repeating: 0, count: k); continue }
                        let ix0 = ox * s - p
                        if ix0 >= 0 && ix0 + k <= W {
                            dst.update(from: plane + iy * W + ix0, count: k)
                        } else {
                            for kx in 0..<k {
                                let ix = ix0 + kx
                                dst[kx] = ix >= 0 && ix < W ? plane[iy * W + ix] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    /// The input planes of `scatter` (col2im); each belongs to one worker.
    private struct ScatterPlanes: IndexKernel {
        let dp: UnsafeMutablePointer<Float>, cp: UnsafeMutablePointer<Float>
        let C: Int, H: Int, W: Int, Ho: Int, Wo: Int, K: Int, k: Int, s: Int, p: Int

        func run(_ bc: Int) {
            let b = bc / C, c = bc % C
            let plane = dp + bc * H * W
            for oy in 0..<Ho {
                for ox in 0..<Wo {
                    let row = cp + ((b * Ho + oy) * Wo + ox) * K + c * k * k
                    for ky in 0..<k {
                        let iy = oy * s - p + ky
                        if iy < 0 || iy >= H { continue }
                        for kx in 0..<k {
                            let ix = ox * s - p + kx
                            if ix >= 0 && ix < W { plane[iy * W + ix] += row[ky * k + kx] }
                        }
                    }
                }
            }
        }
    }
}
