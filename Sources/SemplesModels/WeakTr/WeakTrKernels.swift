import Foundation
import SemplesEngine

/// Inference kernels of the WeakTr forward: vectorised exp/erf, LayerNorm, GELU, row softmax and
/// the torch-semantics bicubic resize of the position embedding. Inner loops use pointers and
/// SIMD8 registers; none of them allocates.
enum WeakTrKernels {
    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> V8 {
        UnsafeRawPointer(p).loadUnaligned(as: V8.self)
    }

    @inline(__always)
    static func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
    }

    /// e^x for 8 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial (relative
    /// error ≈ 1e-7). Rounding uses the 1.5·2²³ trick so that only SSE2 operations are needed.
    @inline(__always)
    static func exp8(_ x: V8) -> V8 {
        // Clamp with masks: the generic pointwise min/max of the standard library are not inlined.
        let lo = V8(repeating: -87.0), hi = V8(repeating: 88.0)
        let clamped = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        let magic = V8(repeating: 12582912.0)
        let t = clamped * V8(repeating: 1.44269504088896341) + magic
        let n = t - magic
        var r = clamped - n * V8(repeating: 0.693359375)
        r = r - n * V8(repeating: -2.12194440e-4)
        var p = V8(repeating: 1.9875691500e-4)
        p = p * r + V8(repeating: 1.3981999507e-3)
        p = p * r + V8(repeating: 8.3334519073e-3)
        p = p * r + V8(repeating: 4.1665795894e-2)
        p = p * r + V8(repeating: 1.6666665459e-1)
        p = p * r + V8(repeating: 5.0000001201e-1)
        let er = p * (r * r) + r + V8(repeating: 1)
        // 2^n from the exponent bits: t's low mantissa bits hold n (its ulp is 1), and n lies
        // in [-126, 127] after the clamp.
        let nBits = unsafeBitCast(t, to: SIMD8<UInt32>.self) &- SIMD8<UInt32>(repeating: 0x4B40_0000)
        let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: V8.self)
        return er * scale
    }

    /// Scalar e^x with the same polynomial (tails of rows shorter than 8).
    @inline(__always)
    static func exp1(_ x: Float) -> Float {
        exp8(V8(repeating: x))[0]
    }

    /// GELU, exact erf form: 0.5·x·(1 + erf(x/√2)). erf by Abramowitz–Stegun 7.1.26
    /// (absolute error ≤ 1.5e-7). In place over `count` floats.
    static func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            store8(gelu8(load8(x + i)), x + i)
            i += 8
        }
        while i < count {
            x[i] = gelu8(V8(repeating: x[i]))[0]
            i += 1
        }
    }

    @inline(__always)
    static func gelu8(_ x: V8) -> V8 {
        let z = x * V8(repeating: 0.70710678118654752)
        let az = z.replacing(with: -z, where: z .< 0)
        let t = V8(repeating: 1) / (V8(repeating: 1) + V8(repeating: 0.3275911) * az)
        var poly = V8(repeating: 1.061405429)
        poly = poly * t + V8(repeating: -1.453152027)
        poly = poly * t + V8(repeating: 1.421413741)
        poly = poly * t + V8(repeating: -0.284496736)
        poly = poly * t + V8(repeating: 0.254829592)
        poly = poly * t
        var erf = V8(repeating: 1) - poly * exp8(-(az * az))
        erf = erf.replacing(with: -erf, where: z .< 0)
        return V8(repeating: 0.5) * x * (V8(repeating: 1) + erf)
    }

    /// Unnormalised softmax of each of `rows` rows of length `n` (row stride `stride`):
    /// s ← exp(s − rowmax), inverseSums[r] = 1 / Σ exp. Callers fold the 1/Σ into what they
    /// compute from the row, which saves a pass over the N×N scores.
    static func expRows(_ s: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int,
                        inverseSums: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = s + r * stride
            var m8 = V8(repeating: -.infinity)
            var j = 0
            while j + 8 <= n { let v = load8(row + j); m8 = m8.replacing(with: v, where: v .> m8); j += 8 }
            var m = m8.max()
            while j < n { m = max(m, row[j]); j += 1 }
            let mv = V8(repeating: m)
            var sum8 = V8.zero
            j = 0
            while j + 8 <= n {
                let e = exp8(load8(row + j) - mv)
                store8(e, row + j)
                sum8 += e
                j += 8
            }
            var sum = sum8.sum()
            while j < n {
                let e = exp1(row[j] - m)
                row[j] = e
                sum += e
                j += 1
            }
            inverseSums[r] = 1 / sum
        }
    }

    /// In-place softmax of each of `rows` rows of length `n` (row stride `stride`).
    static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int) {
        var inv: Float = 0
        for r in 0..<rows {
            let row = s + r * stride
            expRows(row, rows: 1, n: n, stride: stride, inverseSums: &inv)
            scaleRow(row, count: n, by: inv)
        }
    }

    /// row[0..<count] *= factor.
    @inline(__always)
    static func scaleRow(_ row: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        let f = V8(repeating: factor)
        var j = 0
        while j + 8 <= count { store8(load8(row + j) * f, row + j); j += 8 }
        while j < count { row[j] *= factor; j += 1 }
    }

    /// LayerNorm over the last axis: x, y: [rows, d] (may alias), gamma, beta: [d].
    static func layerNorm(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, d: Int,
                          gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
        for r in 0..<rows {
            let xr = x + r * d, yr = y + r * d
            var s8 = V8.zero
            var j = 0
            while j + 8 <= d { s8 += load8(xr + j); j += 8 }
            var sum = s8.sum()
            while j < d { sum += xr[j]; j += 1 }
            let mean = sum / Float(d)
            let mv = V8(repeating: mean)
            var q8 = V8.zero
            j = 0
            while j + 8 <= d { let c = load8(xr + j) - mv; q8 += c * c; j += 8 }
            var sq = q8.sum()
            while j < d { let c = xr[j] - mean; sq += c * c; j += 1 }
            let rstd = 1 / (sq / Float(d) + eps).squareRoot()
            let rv = V8(repeating: rstd)
            j = 0
            while j + 8 <= d {
                store8((load8(xr + j) - mv) * rv * load8(gamma + j) + load8(beta + j), yr + j)
                j += 8
            }
            while j < d { yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j]; j += 1 }
        }
    }

    /// y[r, :] = bias for every row (before a beta = 1 GEMM).
    static func broadcastRows(_ bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, d: Int) {
        for r in 0..<rows { (y + r * d).update(from: bias, count: d) }
    }

    /// torch `interpolate(mode='bicubic', align_corners=False, scale_factor=s)` of one plane set:
    /// src: [channels, inH, inW] → dst: [channels, outH, outW]. Source coordinates use the given
    /// scale factors (spec §2.1.3): src = (dst + 0.5)·(1/s) − 0.5, cubic A = −0.75, taps clamped.
    static func bicubicTorch(_ src: UnsafePointer<Float>, channels: Int, inH: Int, inW: Int,
                             _ dst: UnsafeMutablePointer<Float>, outH: Int, outW: Int,
                             scaleH: Double, scaleW: Double) {
        func taps(_ outSize: Int, _ inSize: Int, _ scale: Double) -> [(idx: [Int], w: [Float])] {
            let ratio = Float(1.0 / scale)
            return (0..<outSize).map { o in
                let real = ratio * (Float(o) + 0.5) - 0.5
                let f = real.rounded(.down)
                let t = real - f
                let base = Int(f)
                let idx = (-1...2).map { min(max(base + $0, 0), inSize - 1) }
                return (idx, cubicWeights(t))
            }
        }
        let ty = taps(outH, inH, scaleH), tx = taps(outW, inW, scaleW)
        for c in 0..<channels {
            let s = src + c * inH * inW, d = dst + c * outH * outW
            for oy in 0..<outH {
                let (iy, wy) = ty[oy]
                for ox in 0..<outW {
                    let (ix, wx) = tx[ox]
                    var acc: Float = 0
                    for a in 0..<4 {
                        let row = s + iy[a] * inW
                        // torch interpolates along x first, then combines the rows along y.
                        let v = row[ix[0]] * wx[0] + row[ix[1]] * wx[1] + row[ix[2]] * wx[2] + row[ix[3]] * wx[3]
                        acc += v * wy[a]
                    }
                    d[oy * outW + ox] = acc
                }
            }
        }
    }

    /// Cubic convolution weights for the four taps at offsets −1, 0, 1, 2 (A = −0.75).
    static func cubicWeights(_ t: Float) -> [Float] {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]
    }
}

/// ToTensor + ImageNet Normalize of an interleaved RGB byte image, as the reference's input
/// transform: ((v / 255) − mean) / std per channel, optionally mirrored left–right.
public enum ImageNetInput {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// rgb: height·width·3 bytes → out: [3, height, width].
    public static func normalize(_ rgb: UnsafePointer<UInt8>, width: Int, height: Int, flipped: Bool = false,
                                 into out: TensorView) {
        precondition(out.shape.dims == [3, height, width], "normalise into \(out.shape), expected [3, \(height), \(width)]")
        for c in 0..<3 {
            let m = mean[c], s = std[c]
            let plane = out.data + c * height * width
            for y in 0..<height {
                let src = rgb + y * width * 3 + c
                let dst = plane + y * width
                for x in 0..<width {
                    let sx = flipped ? width - 1 - x : x
                    dst[x] = (Float(src[sx * 3]) / 255 - m) / s
                }
            }
        }
    }
}
