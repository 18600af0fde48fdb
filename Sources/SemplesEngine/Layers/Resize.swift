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
    /// One axis's precomputed taps.
    struct Axis {
        var index: [Int]
        var fraction: [Float]
    }

    static func sourceScale(input n: Int, output m: Int, alignCorners: Bool, scaleFactor: Double?) -> Float {
        if alignCorners { return m > 1 ? Float(n - 1) / Float(m - 1) : 0 }
        if let s = scaleFactor, s > 0 { return Float(1.0 / s) }
        return Float(n) / Float(m)
    }

    static func axis(input n: Int, output m: Int, alignCorners: Bool, scaleFactor: Double?, cubic: Bool) -> Axis {
        let scale = sourceScale(input: n, output: m, alignCorners: alignCorners, scaleFactor: scaleFactor)
        var index = [Int](repeating: 0, count: m), fraction = [Float](repeating: 0, count: m)
        for d in 0..<m {
            var src: Float
            if alignCorners {
                src = scale * Float(d)
            } else {
                src = scale * (Float(d) + 0.5) - 0.5
                if !cubic && src < 0 { src = 0 }
            }
            let i = min(Int(src.rounded(.down)), n - 1)
            index[d] = i
            fraction[d] = min(max(src - Float(i), 0), 1)
        }
        return Axis(index: index, fraction: fraction)
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
        let ay = axis(input: H, output: Ho, alignCorners: alignCorners, scaleFactor: scaleFactors?.height, cubic: false)
        let ax = axis(input: W, output: Wo, alignCorners: alignCorners, scaleFactor: scaleFactors?.width, cubic: false)
        let xp = x.data, yp = y.data
        ay.index.withUnsafeBufferPointer { yi in ay.fraction.withUnsafeBufferPointer { yf in
        ax.index.withUnsafeBufferPointer { xi in ax.fraction.withUnsafeBufferPointer { xf in
            Parallel.forEachWithoutBLAS(P * Ho) { po in
                let p = po / Ho, oy = po % Ho
                let y0 = yi[oy], y1 = y0 + (y0 < H - 1 ? 1 : 0), ty = yf[oy]
                let r0 = xp + p * H * W + y0 * W, r1 = xp + p * H * W + y1 * W
                let out = yp + po * Wo
                for ox in 0..<Wo {
                    let x0 = xi[ox], x1 = x0 + (x0 < W - 1 ? 1 : 0), tx = xf[ox]
                    out[ox] = (1 - ty) * ((1 - tx) * r0[x0] + tx * r0[x1]) + ty * ((1 - tx) * r1[x0] + tx * r1[x1])
                }
            }
        }}}}
    }

    /// Bilinear backward: dx [..., H, W] += the transpose of the forward interpolation applied to dy.
    public static func bilinearBackward(_ dy: TensorView, dx: TensorView, alignCorners: Bool,
                                        scaleFactors: (height: Double, width: Double)? = nil) {
        let (P, H, W, Ho, Wo) = planes(dx, dy)
        let ay = axis(input: H, output: Ho, alignCorners: alignCorners, scaleFactor: scaleFactors?.height, cubic: false)
        let ax = axis(input: W, output: Wo, alignCorners: alignCorners, scaleFactor: scaleFactors?.width, cubic: false)
        let gp = dy.data, dp = dx.data
        ay.index.withUnsafeBufferPointer { yi in ay.fraction.withUnsafeBufferPointer { yf in
        ax.index.withUnsafeBufferPointer { xi in ax.fraction.withUnsafeBufferPointer { xf in
            // Each plane belongs to one worker, so the scattered adds never race.
            Parallel.forEachWithoutBLAS(P) { p in
                let base = dp + p * H * W
                for oy in 0..<Ho {
                    let y0 = yi[oy], y1 = y0 + (y0 < H - 1 ? 1 : 0), ty = yf[oy]
                    let g = gp + (p * Ho + oy) * Wo
                    for ox in 0..<Wo {
                        let x0 = xi[ox], x1 = x0 + (x0 < W - 1 ? 1 : 0), tx = xf[ox]
                        let v = g[ox]
                        base[y0 * W + x0] += (1 - ty) * (1 - tx) * v
                        base[y0 * W + x1] += (1 - ty) * tx * v
                        base[y1 * W + x0] += ty * (1 - tx) * v
                        base[y1 * W + x1] += ty * tx * v
                    }
                }
            }
        }}}}
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
        let ay = axis(input: H, output: Ho, alignCorners: alignCorners, scaleFactor: scaleFactors?.height, cubic: true)
        let ax = axis(input: W, output: Wo, alignCorners: alignCorners, scaleFactor: scaleFactors?.width, cubic: true)
        let wy = ay.fraction.map(cubicWeights), wx = ax.fraction.map(cubicWeights)
        let xp = x.data, yp = y.data
        @inline(__always) func clampIndex(_ i: Int, _ n: Int) -> Int { min(max(i, 0), n - 1) }
        for p in 0..<P {
            let plane = xp + p * H * W
            for oy in 0..<Ho {
                let iy = ay.index[oy], cy = wy[oy]
                let rows = [clampIndex(iy - 1, H), clampIndex(iy, H), clampIndex(iy + 1, H), clampIndex(iy + 2, H)]
                let cyw = [cy.0, cy.1, cy.2, cy.3]
                for ox in 0..<Wo {
                    let ix = ax.index[ox], cx = wx[ox]
                    let c0 = clampIndex(ix - 1, W), c1 = clampIndex(ix, W), c2 = clampIndex(ix + 1, W), c3 = clampIndex(ix + 2, W)
                    var acc: Float = 0
                    for j in 0..<4 {
                        let r = plane + rows[j] * W
                        let v = cx.0 * r[c0] + cx.1 * r[c1] + cx.2 * r[c2] + cx.3 * r[c3]
                        acc += cyw[j] * v
                    }
                    yp[(p * Ho + oy) * Wo + ox] = acc
                }
            }
        }
    }
}
