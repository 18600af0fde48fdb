import Foundation

/// Per-map min-max normalisation (spec §3.0): y = (m − min m) / (max m − min m + ε).
///
/// As the reference takes `min(dim=2)` then `min(dim=3)` (and the same for max), PyTorch routes
/// the min/max gradient to one pixel: the first column holding the extreme value and, within that
/// column, its first row. Ties (e.g. a flat map) are resolved the same way here.
public enum MinMaxNormalization {
    /// x, y: [M, H, W] (any rank ≥ 2: the last two axes form a map). statistics: [M, 4] saved for
    /// backward: (min, max, argmin, argmax) with flat pixel indices. Overwrites y (may alias x).
    public static func forward(_ x: TensorView, into y: TensorView, eps: Float, statistics: TensorView) {
        let r = x.shape.rank
        let H = x.shape[r - 2], W = x.shape[r - 1], n = H * W, M = x.count / n
        precondition(y.count == x.count && statistics.count == M * 4, "min-max normalise \(x.shape), stats \(statistics.shape)")
        let xp = x.data, yp = y.data, sp = statistics.data
        Parallel.forEachWithoutBLAS(M, ForwardMaps(xp: xp, yp: yp, sp: sp, H: H, W: W, n: n, eps: eps))
    }

    /// dx (+)= ∂L/∂x given dy. With r = 1/(max − min + ε) and y = (x − min)·r:
    /// ∂L/∂x_i = r·dy_i; ∂L/∂min = −r·Σdy + r²·Σ dy⊙(x − min); ∂L/∂max = −r²·Σ dy⊙(x − min).
    public static func backward(_ dy: TensorView, x: TensorView, eps: Float, statistics: TensorView,
                                dx: TensorView, accumulate: Bool = true) {
        let r = x.shape.rank
        let n = x.shape[r - 2] * x.shape[r - 1], M = x.count / n
        precondition(dy.count == x.count && dx.count == x.count && statistics.count == M * 4, "min-max backward shapes")
        let gp = dy.data, xp = x.data, dp = dx.data, sp = statistics.data
        Parallel.forEachWithoutBLAS(M, BackwardMaps(gp: gp, xp: xp, dp: dp, sp: sp, n: n, eps: eps,
                                                    accumulate: accumulate))
    }
}

extension MinMaxNormalization {
    /// The maps of `forward`.
    private struct ForwardMaps: IndexKernel {
        let xp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>, sp: UnsafeMutablePointer<Float>
        let H: Int, W: Int, n: Int
        let eps: Float

        func run(_ m: Int) {
            let map = xp + m * n
            var lo = map[0], hi = map[0], loAt = 0, hiAt = 0
            for w in 0..<W {
                for h in 0..<H {
                    let v = map[h * W + w]
                    if v < lo { lo = v; loAt = h * W + w }
                    if v > hi { hi = v; hiAt = h * W + w }
                }
            }
            let inv = 1 / (hi - lo + eps)
            let out = yp + m * n
            for i in 0..<n { out[i] = (map[i] - lo) * inv }
            sp[m * 4] = lo
            sp[m * 4 + 1] = hi
            sp[m * 4 + 2] = Float(loAt)
            sp[m * 4 + 3] = Float(hiAt)
        }
    }

    /// The maps of `backward`.
    private struct BackwardMaps: IndexKernel {
        let gp: UnsafeMutablePointer<Float>, xp: UnsafeMutablePointer<Float>
        let dp: UnsafeMutablePointer<Float>, sp: UnsafeMutablePointer<Float>
        let n: Int
        let eps: Float
        let accumulate: Bool

        func run(_ m: Int) {
            let lo = sp[m * 4], hi = sp[m * 4 + 1]
            let loAt = Int(sp[m * 4 + 2]), hiAt = Int(sp[m * 4 + 3])
            let inv = 1 / (hi - lo + eps)
            let g = gp + m * n, map = xp + m * n, d = dp + m * n
            var sumG = 0.0, sumGX = 0.0
            for i in 0..<n {
                sumG += Double(g[i])
                sumGX += Double(g[i]) * Double(map[i] - lo)
            }
            let r = Double(inv)
            let dMin = Float(-r * sumG + r * r * sumGX)
            let dMax = Float(-r * r * sumGX)
            for i in 0..<n { d[i] = (accumulate ? d[i] : 0) + g[i] * inv }
            d[loAt] += dMin
            d[hiAt] += dMax
        }
    }
}

/// Cosine similarity of row pairs: s[i] = ⟨u_i/‖u_i‖, v_i/‖v_i‖⟩. u, v: [N, K] → s: [N].
public enum CosineSimilarity {
    public static func forward(_ u: TensorView, _ v: TensorView, into s: TensorView) {
        let N = s.count, K = u.count / max(N, 1)
        precondition(u.count == N * K && v.count == N * K, "cosine \(u.shape), \(v.shape) → \(s.shape)")
        for i in 0..<N {
            let a = u.data + i * K, b = v.data + i * K
            var uv = 0.0, uu = 0.0, vv = 0.0
            for j in 0..<K {
                uv += Double(a[j]) * Double(b[j]); uu += Double(a[j]) * Double(a[j]); vv += Double(b[j]) * Double(b[j])
            }
            s.data[i] = Float(uv / (uu.squareRoot() * vv.squareRoot()))
        }
    }

    /// ∂s/∂u = (v̂ − s·û)/‖u‖ (and symmetrically for v). du, dv (+)= ds ⊙ those; either may be nil.
    public static func backward(_ ds: TensorView, _ u: TensorView, _ v: TensorView, du: TensorView?, dv: TensorView?) {
        let N = ds.count, K = u.count / max(N, 1)
        for i in 0..<N {
            let a = u.data + i * K, b = v.data + i * K
            var uv = 0.0, uu = 0.0, vv = 0.0
            for j in 0..<K {
                uv += Double(a[j]) * Double(b[j]); uu += Double(a[j]) * Double(a[j]); vv += Double(b[j]) * Double(b[j])
            }
            let nu = uu.squareRoot(), nv = vv.squareRoot(), s = uv / (nu * nv), g = Double(ds.data[i])
            if let du = du {
                for j in 0..<K { du.data[i * K + j] += Float(g * (Double(b[j]) / (nu * nv) - s * Double(a[j]) / uu)) }
            }
            if let dv = dv {
                for j in 0..<K { dv.data[i * K + j] += Float(g * (Double(a[j]) / (nu * nv) - s * Double(b[j]) / vv)) }
            }
        }
    }
}

/// The CLIP similarity losses of spec §3 (means over the P pairs of a batch). clamp is
/// clamp(s, 1e-4, 0.9999) and its gradient is zero outside [1e-4, 0.9999], the bounds compared in double
/// precision as torch does (torch passes the gradient exactly at the bounds).
public enum SimilarityLoss {
    public static let lower: Float = 1e-4
    public static let upper: Float = 0.9999

    public enum Kind: Sendable {
        /// −mean log(clamp(s)) (pull towards 1; "SimMaxLoss").
        case negativeLog
        /// −mean log(1 − clamp(s)) (push away; "SimMinLoss").
        case negativeLogOneMinus
        /// +mean log(clamp(s)) (stage (b) repel term, spec §3.2 / §10 item 3).
        case positiveLog
    }

    /// Returns the loss over s [P]; when ds is given, ds (+)= weight · ∂loss/∂s.
    @discardableResult
    public static func evaluate(_ kind: Kind, _ s: TensorView, gradient ds: TensorView? = nil, weight: Float = 1) -> Float {
        let P = s.count
        precondition(P > 0 && (ds == nil || ds!.count == P), "similarity loss over \(s.shape)")
        var total = 0.0
        for i in 0..<P {
            let x = s.data[i]
            let c = min(max(x, lower), upper)
            // torch compares against the bounds as doubles: 1e-4 as float (9.99999975e-5) is outside.
            let inside: Float = (Double(x) >= 1e-4 && Double(x) <= 0.9999) ? 1 : 0
            let value: Double, derivative: Float
            switch kind {
            case .negativeLog:
                value = -log(Double(c)); derivative = -1 / c
            case .negativeLogOneMinus:
                value = -log(Double(1 - c)); derivative = 1 / (1 - c)
            case .positiveLog:
                value = log(Double(c)); derivative = 1 / c
            }
            total += value
            if let ds = ds { ds.data[i] += weight * derivative * inside / Float(P) }
        }
        return Float(total / Double(P))
    }
}

/// torch.nn.MultiLabelSoftMarginLoss (mean reduction): mean_b −(1/C)·Σ_c [y log σ(z) + (1−y) log σ(−z)].
public enum MultiLabelSoftMarginLoss {
    /// logits, targets: [B, C]. Returns the loss; dlogits (+)= weight · (σ(z) − y)/(B·C) when given.
    @discardableResult
    public static func evaluate(_ logits: TensorView, targets: TensorView, gradient: TensorView? = nil,
                                weight: Float = 1) -> Float {
        precondition(logits.shape.rank == 2 && targets.count == logits.count, "MLSM logits \(logits.shape), targets \(targets.shape)")
        let B = logits.shape[0], C = logits.shape[1]
        var total = 0.0
        @inline(__always) func logSigmoid(_ z: Double) -> Double { min(z, 0) - log1p(exp(-abs(z))) }
        for i in 0..<B * C {
            let z = Double(logits.data[i]), y = Double(targets.data[i])
            total -= y * logSigmoid(z) + (1 - y) * logSigmoid(-z)
            if let g = gradient {
                let s = 1 / (1 + exp(-z))
                g.data[i] += weight * Float((s - y) / Double(B * C))
            }
        }
        return Float(total / Double(B * C))
    }
}
