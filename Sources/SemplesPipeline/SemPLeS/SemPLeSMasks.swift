import Foundation
import SemplesEngine

/// One positive (image, class) pair of a batch (spec §3.0 step 4).
public struct SemPLeSPair: Equatable, Sendable {
    public let image: Int
    public let classIndex: Int
    public init(image: Int, classIndex: Int) {
        self.image = image
        self.classIndex = classIndex
    }
}

/// The mask and pair construction shared by the three stages (spec §3.0), as a forward/backward
/// unit: fine CAM → bilinear (align_corners true) to the image size → per-map min-max with ε →
/// Xfg = M ⊙ X, Xbg = (1 − M) ⊙ X; and back from ∂Xfg/∂Xbg to ∂fine.
public enum SemPLeSMasks {
    /// ε of the min-max normalisation: 0.1 in stages (a) and (c), 1e-4 in (b) (spec §10 item 4).
    public static let segmentEpsilon: Float = 0.1
    public static let promptEpsilon: Float = 1e-4

    /// All (n, k) with labels[n, k] == 1, n outer, k inner. labels: [B, C].
    public static func pairs(labels: TensorView) -> [SemPLeSPair] {
        var out: [SemPLeSPair] = []
        pairs(labels: labels, into: &out)
        return out
    }

    /// `pairs` into `out` (replacing its contents, keeping its capacity): a training loop reuses one
    /// array across iterations.
    public static func pairs(labels: TensorView, into out: inout [SemPLeSPair]) {
        let B = labels.shape[0], C = labels.shape[1]
        out.removeAll(keepingCapacity: true)
        for n in 0..<B { for k in 0..<C where labels.data[n * C + k] == 1 { out.append(SemPLeSPair(image: n, classIndex: k)) } }
    }

    /// fine: [M, h, w] → upsampled, masks: [M, S, S] (S from masks), statistics: [M, 4] kept for backward.
    public static func forward(fine: TensorView, epsilon: Float, upsampled: TensorView, masks: TensorView,
                               statistics: TensorView) {
        precondition(upsampled.shape == masks.shape && fine.count / (fine.shape[fine.shape.rank - 1] * fine.shape[fine.shape.rank - 2])
                     == statistics.count / 4, "masks: fine \(fine.shape), masks \(masks.shape), statistics \(statistics.shape)")
        Resize.bilinear(fine, into: upsampled, alignCorners: true)
        MinMaxNormalization.forward(upsampled, into: masks, eps: epsilon, statistics: statistics)
    }

    /// image: [3, S, S], mask: [S, S] → foreground = M ⊙ X, background = (1 − M) ⊙ X (each [3, S, S], optional).
    public static func compose(image: TensorView, mask: TensorView, foreground: TensorView?, background: TensorView?) {
        let n = mask.count
        precondition(image.count == 3 * n, "compose: image \(image.shape), mask \(mask.shape)")
        let m = mask.data, x = image.data
        for ch in 0..<3 {
            let xc = x + ch * n
            if let fg = foreground {
                let f = fg.data + ch * n
                for i in 0..<n { f[i] = m[i] * xc[i] }
            }
            if let bg = background {
                let b = bg.data + ch * n
                for i in 0..<n { b[i] = (1 - m[i]) * xc[i] }
            }
        }
    }

    /// dMask (+)= Σ_channels (dForeground − dBackground) ⊙ X. image, gradients: [3, S, S]; dMask: [S, S].
    public static func maskGradient(image: TensorView, foreground dFg: TensorView?, background dBg: TensorView?,
                                    into dMask: TensorView) {
        let n = dMask.count, x = image.data, d = dMask.data
        for ch in 0..<3 {
            let xc = x + ch * n
            if let g = dFg {
                let gc = g.data + ch * n
                for i in 0..<n { d[i] += gc[i] * xc[i] }
            }
            if let g = dBg {
                let gc = g.data + ch * n
                for i in 0..<n { d[i] -= gc[i] * xc[i] }
            }
        }
    }

    /// Back from dMasks: [M, S, S] through the min-max (gradients to the argmin/argmax pixels) and
    /// the upsampling: dFine: [M, h, w] (+=). `maps` limits the work to the maps that have a
    /// gradient (the positive pairs); nil means all. `scratch` ([S, S], overwritten) is the
    /// upsampled map's gradient; nil makes one per call.
    public static func backward(_ dMasks: TensorView, upsampled: TensorView, statistics: TensorView, epsilon: Float,
                                dFine: TensorView, maps: [Int]? = nil, scratch: TensorView? = nil) {
        let r = dMasks.shape.rank
        let S1 = dMasks.shape[r - 2], S2 = dMasks.shape[r - 1], M = dMasks.count / (S1 * S2)
        let h = dFine.shape[dFine.shape.rank - 2], w = dFine.shape[dFine.shape.rank - 1]
        precondition(scratch == nil || scratch!.count == S1 * S2, "mask backward scratch \(scratch!.shape) for \(S1)×\(S2)")
        let dUp = scratch ?? Tensor([S1, S2]).view
        for m in maps ?? Array(0..<M) {
            MinMaxNormalization.backward(dMasks.slice(offset: m * S1 * S2, Shape(1, S1, S2)),
                                         x: upsampled.slice(offset: m * S1 * S2, Shape(1, S1, S2)), eps: epsilon,
                                         statistics: statistics.slice(offset: m * 4, Shape(1, 4)),
                                         dx: dUp.reshaped(Shape(1, S1, S2)), accumulate: false)
            Resize.bilinearBackward(dUp.reshaped(Shape(1, S1, S2)), dx: dFine.slice(offset: m * h * w, Shape(1, h, w)),
                                    alignCorners: true)
        }
    }
}
