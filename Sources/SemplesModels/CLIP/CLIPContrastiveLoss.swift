import Foundation
import SemplesEngine

/// CLIP's symmetric InfoNCE loss (Radford et al. 2021, Fig. 3), as OpenAI's `CLIP.forward` plus
/// the paper's loss:
///
///     Î = I/‖I‖, T̂ = T/‖T‖ (rows);  Z = exp(s)·Î·T̂ᵀ  [N, N]
///     L = ½ (CE(Z, diag) + CE(Zᵀ, diag)),  CE = mean over the N rows
///
/// where s is `logit_scale`. Image n and text n form the positive pair.
public enum CLIPContrastiveLoss {
    /// What forward keeps for backward.
    public struct Pass {
        let imageUnit: TensorView   // [N, E] Î
        let textUnit: TensorView    // [N, E] T̂
        let imageNorm: [Float]      // ‖I_n‖
        let textNorm: [Float]
        let logits: TensorView      // [N, N] Z
        let rowSoftmax: TensorView  // [N, N] softmax over each row of Z (image → texts)
        let columnSoftmax: TensorView  // [N, N] softmax over each column of Z (text → images)
        let scale: Float            // exp(s)
        /// The loss L.
        public let loss: Float
        /// Fraction of rows (images) whose largest logit is their own text, and of columns.
        public let imageAccuracy: Float
        public let textAccuracy: Float
    }

    /// Floats of arena memory one forward and backward take for N pairs of width E.
    public static func arenaSize(pairs N: Int, width E: Int) -> Int {
        4 * (N * E + 15) + 5 * (N * N + 15)
    }

    /// images, texts: [N, E] features (not normalised); logScale: `logit_scale`.
    public static func forward(images: TensorView, texts: TensorView, logScale: Float, arena: Arena) -> Pass {
        let N = images.shape[0], E = images.shape[1]
        precondition(N >= 1 && texts.shape == images.shape, "contrastive loss: images \(images.shape), texts \(texts.shape)")
        func unit(_ x: TensorView) -> (TensorView, [Float]) {
            let u = arena.allocate(Shape(N, E))
            u.copy(from: x)
            var norms = [Float](repeating: 0, count: N)
            for n in 0..<N {
                let row = u.data + n * E
                norms[n] = BLAS.dot(count: E, row, row).squareRoot()
                BLAS.scale(count: E, alpha: 1 / max(norms[n], 1e-12), x: row)
            }
            return (u, norms)
        }
        let (iu, inorm) = unit(images), (tu, tnorm) = unit(texts)
        let scale = Float(exp(Double(logScale)))
        let z = arena.allocate(Shape(N, N))
        BLAS.gemm(transB: true, m: N, n: N, k: E, alpha: scale, a: iu.data, lda: E, b: tu.data, ldb: E,
                  beta: 0, c: z.data, ldc: N)
        let rows = arena.allocate(Shape(N, N)), columns = arena.allocate(Shape(N, N))
        var loss = 0.0, rowHits = 0, columnHits = 0
        for k in 0..<N {
            // Row k: image k against every text; column k: text k against every image.
            let row = Self.softmaxLine(z.data + k * N, stride: 1, count: N, diagonal: k, into: rows.data + k * N)
            let column = Self.softmaxLine(z.data + k, stride: N, count: N, diagonal: k, into: columns.data + k)
            loss += 0.5 * (row.loss + column.loss)
            if row.best == k { rowHits += 1 }
            if column.best == k { columnHits += 1 }
        }
        return Pass(imageUnit: iu, textUnit: tu, imageNorm: inorm, textNorm: tnorm, logits: z, rowSoftmax: rows,
                    columnSoftmax: columns, scale: scale, loss: Float(loss / Double(N)),
                    imageAccuracy: Float(rowHits) / Float(N), textAccuracy: Float(columnHits) / Float(N))
    }

    /// Overwrites dImages, dTexts ([N, E]) with ∂L/∂(features) and returns ∂L/∂s.
    ///
    /// dZ = (P_row − 1) / 2N + (P_col − 1) / 2N (1 on the diagonal); Z = e^s·S, so dS = e^s·dZ and
    /// ∂L/∂s = Σ dZ ⊙ Z. dÎ = dS·T̂, dT̂ = dSᵀ·Î, and through û = x/‖x‖: dx = (dû − û(û·dû))/‖x‖.
    public static func backward(_ pass: Pass, imagesGradient dImages: TensorView, textsGradient dTexts: TensorView,
                                arena: Arena) -> Float {
        let N = pass.logits.shape[0], E = pass.imageUnit.shape[1]
        precondition(dImages.shape == Shape(N, E) && dTexts.shape == Shape(N, E), "contrastive backward shapes")
        let mark = arena.mark
        defer { arena.release(to: mark) }
        let dS = arena.allocate(Shape(N, N))
        let half = 1 / (2 * Float(N))
        var dLogScale = 0.0
        for i in 0..<N {
            for j in 0..<N {
                let k = i * N + j
                let dz = half * (pass.rowSoftmax.data[k] + pass.columnSoftmax.data[k] - (i == j ? 2 : 0))
                dLogScale += Double(dz) * Double(pass.logits.data[k])
                dS.data[k] = pass.scale * dz
            }
        }
        BLAS.gemm(m: N, n: E, k: N, a: dS.data, lda: N, b: pass.textUnit.data, ldb: E, beta: 0,
                  c: dImages.data, ldc: E)
        BLAS.gemm(transA: true, m: N, n: E, k: N, a: dS.data, lda: N, b: pass.imageUnit.data, ldb: E, beta: 0,
                  c: dTexts.data, ldc: E)
        func throughNorm(_ d: TensorView, _ u: TensorView, _ norms: [Float]) {
            for n in 0..<N {
                let du = d.data + n * E, un = u.data + n * E
                let dot = BLAS.dot(count: E, un, du)
                BLAS.axpy(count: E, alpha: -dot, x: un, y: du)
                BLAS.scale(count: E, alpha: 1 / max(norms[n], 1e-12), x: du)
            }
        }
        throughNorm(dImages, pass.imageUnit, pass.imageNorm)
        throughNorm(dTexts, pass.textUnit, pass.textNorm)
        return Float(dLogScale)
    }
}

extension CLIPContrastiveLoss {
    /// Softmax of `count` logits `x[0], x[stride], …` into `out` (same stride), in double:
    /// returns the cross-entropy of the entry `diagonal` (log-sum-exp − x[diagonal]) and the argmax.
    static func softmaxLine(_ x: UnsafePointer<Float>, stride: Int, count: Int, diagonal: Int,
                            into out: UnsafeMutablePointer<Float>) -> (loss: Double, best: Int) {
        var m = -Double.infinity, best = 0
        for j in 0..<count where Double(x[j * stride]) > m { m = Double(x[j * stride]); best = j }
        var sum = 0.0
        for j in 0..<count { sum += exp(Double(x[j * stride]) - m) }
        for j in 0..<count { out[j * stride] = Float(exp(Double(x[j * stride]) - m) / sum) }
        return (m + log(sum) - Double(x[diagonal * stride]), best)
    }
}
