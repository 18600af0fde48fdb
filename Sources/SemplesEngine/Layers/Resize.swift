import Foundation

/// Spatial resizing of planes with PyTorch `F.interpolate` semantics.
///
/// Inputs are [..., H, W] (every leading index is one plane); outputs [..., Ho, Wo].
/// Source coordinates (per axis, in/out sizes n, m):
/// - align_corners true:  src = dst·(n−1)/(m−1)  (0 when m = 1)
/// - align_corners false: src = (dst + 0.5)·scale − 0.5, scale = 1/scale_factor when a scale factor
///   is given (torch's default when `recompute_scale_factor` is unset), else n/m. Bilinear clamps a
///   negative src to 0; bicubic does not.
/// Then index = min(⌊src⌋, n−1) and the fraction t = clamp(src − index, 0, 1).
public enum Resize {
    static func sourceScale(input n: Int, output m: Int, alignCorners: Bool, scaleFactor: Double?) -> Float {
        if alignCorners { return m > 1 ? Float(n - 1) / Float(m - 1) : 0 }
        if let s = scaleFactor, s > 0 { return Float(1.0 / s) }
        return Float(n) / Float(m)
    }

    /// Source steps along height and width (`sourceScale` for each axis).
    static func sourceScales(_ H: Int, _ W: Int, _ Ho: Int, _ Wo: Int, alignCorners: Bool,
                             scaleFactors: (height: Double, width: Double)?) -> (Float, Float) {
        (sourceScale(input: H, output: Ho, alignCorners: alignCorners, scaleFactor: scaleFactors?.height),
         sourceScale(input: W, output: Wo, alignCorners: alignCorners, scaleFactor: scaleFactors?.width))
    }

    /// Source tap of output index d on an axis of n inputs: (index, fraction). Computed on the fly,
    /// so resizing allocates nothing.
    @inline(__always)
    static func tap(_ d: Int, scale: Float, input n: Int, alignCorners: Bool, cubic: Bool) -> (Int, Float) {
        var src: Float
        if alignCorners {
            src = scale * Float(d)
        } else {
            src = scale * (Float(d) + 0.5) - 0.5
            if !cubic && src < 0 { src = 0 }
        }
        let i = min(Int(src.rounded(.down)), n - 1)
        return (i, min(max(src - Float(i), 0), 1))
    }

    static func planes(_ x: TensorView, _ y: TensorView) -> (P: Int, H: Int, W: Int, Ho: Int, Wo: Int) {
        let r = x.shape.rank
        precondition(r >= 2 && y.shape.rank == r, "resize \(x.shape) → \(y.shape)")
        let H = x.shape[r - 2], W = x.shape[r - 1], Ho = y.shape[r - 2], Wo = y.shape[r - 1]
        let P = x.count / max(H * W, 1)
        precondition(P * Ho * Wo == y.count && H > 0 && W > 0, "resize planes \(x.shape) → \(y.shape)")
        return (P, H, W, Ho, Wo)
    }

    /// Bilinear: x [..., H, W] → y [..., Ho, Wo]. Overwrites y.
    public static func bilinear(_ x: TensorView, into y: TensorView, alignCorners: Bool,
                                scaleFactors: (height: Double, width: Double)? = nil) {
        let (P, H, W, Ho, Wo) = planes(x, y)
        let (sy, sx) = sourceScales(H, W, Ho, Wo, alignCorners: alignCorners, scaleFactors: scaleFactors)
        let xp = x.data, yp = y.data
        Parallel.forEachWithoutBLAS(P * Ho, BilinearRows(xp: xp, yp: yp, H: H, W: W, Ho: Ho, Wo: Wo, sy: sy, sx: sx,
                                                         alignCorners: alignCorners))
    }

    /// Bilinear backward: dx [..., H, W] += the transpose of the forward interpolation applied to dy.
    public static func bilinearBackward(_ dy: TensorView, dx: TensorView, alignCorners: Bool,
                                        scaleFactors: (height: Double, width: Double)? = nil) {
        let (P, H, W, Ho, Wo) = planes(dx, dy)
        let (sy, sx) = sourceScales(H, W, Ho, Wo, alignCorners: alignCorners, scaleFactors: scaleFactors)
        let gp = dy.data, dp = dx.data
        // Each plane belongs to one worker, so the scattered adds never race.
        Parallel.forEachWithoutBLAS(P, BilinearBackwardPlanes(gp: gp, dp: dp, H: H, W: W, Ho: Ho, Wo: Wo, sy: sy, sx: sx,
                                                              alignCorners: alignCorners))
    }

    /// Cubic convolution weights (Keys, A = −0.75) for taps at −1, 0, 1, 2 given fraction t.
    @inline(__always) static func cubicWeights(_ t: Float) -> (Float, Float, Float, Float) {
        let A: Float = -0.75
        func near(_ x: Float) -> Float { ((A + 2) * x - (A + 3)) * x * x + 1 }
        func far(_ x: Float) -> Float { ((A * x - 5 * A) * x + 8 * A) * x - 4 * A }
        return (far(t + 1), near(t), near(1 - t), far(2 - t))
    }

    /// Bicubic (torch, A = −0.75, taps clamped to the border): x [..., H, W] → y [..., Ho, Wo].
    /// With `scaleFactors`, source coordinates use the given factors (spec §2.1.3 pos-embed resize).
    public static func bicubic(_ x: TensorView, into y: TensorView, alignCorners: Bool = false,
                               scaleFactors: (height: Double, width: Double)? = nil) {
        let (P, H, W, Ho, Wo) = planes(x, y)
        let (sy, sx) = sourceScales(H, W, Ho, Wo, alignCorners: alignCorners, scaleFactors: scaleFactors)
        let xp = x.data, yp = y.data
        Parallel.forEachWithoutBLAS(P * Ho, BicubicRows(xp: xp, yp: yp, H: H, W: W, Ho: Ho, Wo: Wo, sy: sy, sx: sx,
                                                        alignCorners: alignCorners))
    }
}

extension Resize {
    /// The (plane, output row) pairs of `bilinear`.
    private struct BilinearRows: IndexKernel {
        let xp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
        let H: Int, W: Int, Ho: Int, Wo: Int
        let sy: Float, sx: Float
        let alignCorners: Bool

        func run(_ po: Int) {
            let p = po / Ho, oy = po % Ho
            let (y0, ty) = tap(oy, scale: sy, input: H, alignCorners: alignCorners, cubic: false)
            let y1 = y0 + (y0 < H - 1 ? 1 : 0)
            let r0 = xp + p * H * W + y0 * W, r1 = xp + p * H * W + y1 * W
            let out = yp + po * Wo
            for ox in 0..<Wo {
                let (x0, tx) = tap(ox, scale: sx, input: W, alignCorners: alignCorners, cubic: false)
                let x1 = x0 + (x0 < W - 1 ? 1 : 0)
                out[ox] = (1 - ty) * ((1 - tx) * r0[x0] + tx * r0[x1]) + ty * ((1 - tx) * r1[x0] + tx * r1[x1])
            }
        }
    }

    /// The planes of `bilinearBackward`.
    private struct BilinearBackwardPlanes: IndexKernel {
        let gp: UnsafeMutablePointer<Float>, dp: UnsafeMutablePointer<Float>
        let H: Int, W: Int, Ho: Int, Wo: Int
        let sy: Float, sx: Float
        let alignCorners: Bool

        func run(_ p: Int) {
            let base = dp + p * H * W
            for oy in 0..<Ho {
                let (y0, ty) = tap(oy, scale: sy, input: H, alignCorners: alignCorners, cubic: false)
                let y1 = y0 + (y0 < H - 1 ? 1 : 0)
                let g = gp + (p * Ho + oy) * Wo
                for ox in 0..<Wo {
                    let (x0, tx) = tap(ox, scale: sx, input: W, alignCorners: alignCorners, cubic: false)
                    let x1 = x0 + (x0 < W - 1 ? 1 : 0)
                    let v = g[ox]
                    base[y0 * W + x0] += (1 - ty) * (1 - tx) * v
                    base[y0 * W + x1] += (1 - ty) * tx * v
                    base[y1 * W + x0] += ty * (1 - tx) * v
                    base[y1 * W + x1] += ty * tx * v
                }
            }
        }
    }

    /// The (plane, output row) pairs of `bicubic`.
    private struct BicubicRows: IndexKernel {
        let xp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
        let H: Int, W: Int, Ho: Int, Wo: Int
        let sy: Float, sx: Float
        let alignCorners: Bool

        @inline(__always) func clampIndex(_ i: Int, _ n: Int) -> Int { min(max(i, 0), n - 1) }

        func run(_ po: Int) {
            let p = po / Ho, oy = po % Ho
            let plane = xp + p * H * W
            let (iy, ty) = tap(oy, scale: sy, input: H, alignCorners: alignCorners, cubic: true)
            let wy = cubicWeights(ty)
            let r0 = plane + clampIndex(iy - 1, H) * W, r1 = plane + clampIndex(iy, H) * W
            let r2 = plane + clampIndex(iy + 1, H) * W, r3 = plane + clampIndex(iy + 2, H) * W
            for ox in 0..<Wo {
                let (ix, tx) = tap(ox, scale: sx, input: W, alignCorners: alignCorners, cubic: true)
                let wx = cubicWeights(tx)
                let c0 = clampIndex(ix - 1, W), c1 = clampIndex(ix, W), c2 = clampIndex(ix + 1, W), c3 = clampIndex(ix + 2, W)
                @inline(__always) func row(_ r: UnsafeMutablePointer<Float>) -> Float {
                    wx.0 * r[c0] + wx.1 * r[c1] + wx.2 * r[c2] + wx.3 * r[c3]
                }
                yp[po * Wo + ox] = wy.0 * row(r0) + wy.1 * row(r1) + wy.2 * row(r2) + wy.3 * row(r3)
            }
        }
    }
}
