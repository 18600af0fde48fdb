import Foundation
import SemplesEngine

/// Parameters of the fully connected CRF used to refine label maps (spec §6 CRF).
public struct DenseCRFParameters: Equatable, Sendable, Codable {
    /// Gaussian (smoothness) kernel: exp(−|Δp|² / 2 sxy²), weight `gaussianCompatibility`.
    public var gaussianSXY: Float
    public var gaussianCompatibility: Float
    /// Bilateral (appearance) kernel: exp(−|Δp|² / 2 sxy² − |ΔI|² / 2 srgb²).
    public var bilateralSXY: Float
    public var bilateralSRGB: Float
    public var bilateralCompatibility: Float
    /// Mean-field iterations.
    public var iterations: Int
    /// Probability given to the input label in the unary (`unary_from_labels` gt_prob).
    public var labelConfidence: Double

    public init(gaussianSXY: Float, gaussianCompatibility: Float, bilateralSXY: Float, bilateralSRGB: Float,
                bilateralCompatibility: Float, iterations: Int = 10, labelConfidence: Double = 0.7) {
        self.gaussianSXY = gaussianSXY
        self.gaussianCompatibility = gaussianCompatibility
        self.bilateralSXY = bilateralSXY
        self.bilateralSRGB = bilateralSRGB
        self.bilateralCompatibility = bilateralCompatibility
        self.iterations = iterations
        self.labelConfidence = labelConfidence
    }

    /// `crf_inference_label`: Gaussian sxy 4 / compat 3, bilateral sxy 83 / srgb 5 / compat 3.
    public static let voc = DenseCRFParameters(gaussianSXY: 4, gaussianCompatibility: 3, bilateralSXY: 83,
                                               bilateralSRGB: 5, bilateralCompatibility: 3)
    /// `crf_inference_label_coco`: Gaussian sxy 3 / compat 3, bilateral sxy 50 / srgb 5 / compat 10.
    public static let coco = DenseCRFParameters(gaussianSXY: 3, gaussianCompatibility: 3, bilateralSXY: 50,
                                                bilateralSRGB: 5, bilateralCompatibility: 10)
}

/// Fully connected CRF over the pixels of one image with Potts compatibilities and a Gaussian plus
/// a bilateral kernel, each filtered on a permutohedral lattice with symmetric normalisation
/// (K̃ = D^−½ K D^−½, D = K·1), solved by mean field:
///   Q⁰ = softmax(−U),  Qᵗ⁺¹ = softmax(−U + Σ_kernels w · K̃ Qᵗ),  labels = argmax Q.
public enum DenseCRF {
    /// Refines a label map. labels: [H × W] values in 0..<labelCount (stack indices, not label
    /// values); image: [H × W × 3] RGB bytes. Returns the refined [H × W] map.
    public static func refine(labels: [UInt8], labelCount: Int, image: [UInt8], width: Int, height: Int,
                              parameters: DenseCRFParameters) -> [UInt8] {
        let q = marginals(labels: labels, labelCount: labelCount, image: image, width: width, height: height,
                          parameters: parameters)
        let n = width * height
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            var best = 0
            for l in 1..<labelCount where q[i * labelCount + l] > q[i * labelCount + best] { best = l }
            out[i] = UInt8(best)
        }
        return out
    }

    /// The mean-field marginals Q: [H × W, labelCount], point-major.
    public static func marginals(labels: [UInt8], labelCount: Int, image: [UInt8], width: Int, height: Int,
                                 parameters: DenseCRFParameters) -> [Float] {
        let n = width * height
        precondition(labels.count == n, "labels \(labels.count) != \(width)×\(height)")
        precondition(image.count == n * 3, "image \(image.count) bytes != \(width)×\(height)×3")
        precondition(labelCount >= 2 && labelCount <= 256, "label count \(labelCount) must lie in 2…256")
        precondition(labels.allSatisfy { Int($0) < labelCount }, "a label is ≥ the label count \(labelCount)")
        let L = labelCount

        let unary = unaryFromLabels(labels, labelCount: L, confidence: parameters.labelConfidence)
        let gaussian = NormalizedKernel(features: positionFeatures(width: width, height: height, sxy: parameters.gaussianSXY),
                                        dimension: 2, count: n)
        let bilateral = NormalizedKernel(features: bilateralFeatures(image: image, width: width, height: height,
                                                                     sxy: parameters.bilateralSXY, srgb: parameters.bilateralSRGB),
                                         dimension: 5, count: n)
        var q = [Float](repeating: 0, count: n * L)
        var energy = [Float](repeating: 0, count: n * L)
        var filtered = [Float](repeating: 0, count: n * L)
        let kernels = [(gaussian, parameters.gaussianCompatibility), (bilateral, parameters.bilateralCompatibility)]
        unary.withUnsafeBufferPointer { unary in
        q.withUnsafeMutableBufferPointer { q in
        energy.withUnsafeMutableBufferPointer { energy in
        filtered.withUnsafeMutableBufferPointer { filtered in
            for i in 0..<(n * L) { energy[i] = -unary[i] }
            expAndNormalize(UnsafePointer(energy.baseAddress!), into: q.baseAddress!, count: n, labelCount: L)
            for _ in 0..<parameters.iterations {
                for i in 0..<(n * L) { energy[i] = -unary[i] }
                for (kernel, weight) in kernels {
                    kernel.apply(UnsafePointer(q.baseAddress!), into: filtered.baseAddress!, valueSize: L)
                    // Potts: the pairwise term is −w·K̃Q, subtracted from the energy.
                    for i in 0..<(n * L) { energy[i] -= -weight * filtered[i] }
                }
                expAndNormalize(UnsafePointer(energy.baseAddress!), into: q.baseAddress!, count: n, labelCount: L)
            }
        }
        }
        }
        }
        return q
    }

    /// `unary_from_labels(labels, L, gt_prob, zero_unsure=False)`: −log p for the given label and
    /// −log((1 − p)/(L − 1)) for the others, computed in float64 and stored as float32. [N, L].
    static func unaryFromLabels(_ labels: [UInt8], labelCount L: Int, confidence p: Double) -> [Float] {
        let other = Float(-log((1.0 - p) / Double(L - 1)))
        let given = Float(-log(p))
        var u = [Float](repeating: other, count: labels.count * L)
        for (i, l) in labels.enumerated() { u[i * L + Int(l)] = given }
        return u
    }

    /// Gaussian-kernel features (x / sxy, y / sxy) per pixel: [N, 2].
    static func positionFeatures(width: Int, height: Int, sxy: Float) -> [Float] {
        var f = [Float](repeating: 0, count: width * height * 2)
        for y in 0..<height {
            for x in 0..<width {
                f[(y * width + x) * 2] = Float(x) / sxy
                f[(y * width + x) * 2 + 1] = Float(y) / sxy
            }
        }
        return f
    }

    /// Bilateral features (x / sxy, y / sxy, r / srgb, g / srgb, b / srgb) per pixel: [N, 5].
    static func bilateralFeatures(image: [UInt8], width: Int, height: Int, sxy: Float, srgb: Float) -> [Float] {
        var f = [Float](repeating: 0, count: width * height * 5)
        for y in 0..<height {
            for x in 0..<width {
                let p = y * width + x
                f[p * 5] = Float(x) / sxy
                f[p * 5 + 1] = Float(y) / sxy
                for c in 0..<3 { f[p * 5 + 2 + c] = Float(image[p * 3 + c]) / srgb }
            }
        }
        return f
    }

    /// Per point: subtract the maximum, exponentiate, divide by the sum. x, y: [N, L].
    static func expAndNormalize(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int, labelCount L: Int) {
        let chunk = 4096
        Parallel.forEach((n + chunk - 1) / chunk) { block in
            for i in (block * chunk)..<min(n, (block + 1) * chunk) {
                let a = x + i * L, b = y + i * L
                var m = a[0]
                for l in 1..<L { m = max(m, a[l]) }
                var s: Float = 0
                for l in 0..<L {
                    let e = expf(a[l] - m)
                    b[l] = e
                    s += e
                }
                for l in 0..<L { b[l] /= s }
            }
        }
    }
}

/// A lattice-filtered Gaussian kernel with symmetric normalisation: K̃x = D^−½ K (D^−½ x),
/// D^−½ = 1/√(K·1 + 1e−20).
final class NormalizedKernel {
    let lattice: PermutohedralLattice
    let norm: [Float]  // [N]

    init(features: [Float], dimension: Int, count: Int) {
        let lattice = features.withUnsafeBufferPointer {
            PermutohedralLattice(features: $0.baseAddress!, dimension: dimension, count: count)
        }
        self.lattice = lattice
        let ones = [Float](repeating: 1, count: count)
        var response = [Float](repeating: 0, count: count)
        ones.withUnsafeBufferPointer { x in
            response.withUnsafeMutableBufferPointer { y in lattice.filter(x.baseAddress!, into: y.baseAddress!, valueSize: 1) }
        }
        norm = response.map { Float(1.0 / (Double($0) + 1e-20).squareRoot()) }
    }

    /// out = K̃ q. q, out: [N, valueSize].
    func apply(_ q: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, valueSize v: Int) {
        let n = lattice.pointCount
        var scaled = [Float](repeating: 0, count: n * v)
        norm.withUnsafeBufferPointer { norm in
            scaled.withUnsafeMutableBufferPointer { scaled in
                for i in 0..<n {
                    for c in 0..<v { scaled[i * v + c] = q[i * v + c] * norm[i] }
                }
                lattice.filter(UnsafePointer(scaled.baseAddress!), into: out, valueSize: v)
            }
            for i in 0..<n {
                for c in 0..<v { out[i * v + c] *= norm[i] }
            }
        }
    }
}
