import SemplesEngine

/// The AAF-fused attention and the CAMs built from it (spec §2.1.5), shared by WeakTr's training
/// step, which forms the whole map M: [N, N], and the SemPLeS head stage, which keeps only the
/// patch-key columns M[:, C:]: [N, P]. Inference streams the maps and never forms M (spec §9.3).
///
/// A fused map is a view [N, S] whose patch keys are columns o ..< o + P (S = N, o = C for the whole
/// map; S = P, o = 0 for its key columns). logits, cams, fine: [C, P].
enum CAMFusion {
    /// m = (1/ch) Σ_j w[j] · map(j) over `count` floats, j = head·L + layer. Overwrites m.
    static func fuse(weights w: UnsafePointer<Float>, channels ch: Int, count: Int,
                     map: (Int) -> UnsafePointer<Float>, into m: UnsafeMutablePointer<Float>) {
        m.update(repeating: 0, count: count)
        for j in 0..<ch { BLAS.axpy(count: count, alpha: w[j] / Float(ch), x: map(j), y: m) }
    }

    /// dW[j] = ∂L/∂w_j = (1/ch) ⟨dM, map(j)⟩ over `count` floats. Overwrites dW.
    static func weightGradients(_ dM: UnsafePointer<Float>, channels ch: Int, count: Int,
                                map: (Int) -> UnsafePointer<Float>, into dW: UnsafeMutablePointer<Float>) {
        for j in 0..<ch { dW[j] = BLAS.dot(count: count, dM, map(j)) / Float(ch) }
    }

    /// cams[k, p] = M[k, o+p] · ReLU(logits[k, p]) (cross attention ⊙ coarse), and
    /// fine[k, i] = Σ_p M[C+i, o+p] · cams[k, p] (patch attention · cams).
    static func forward(fused m: TensorView, keyOffset o: Int, logits: TensorView, cams: TensorView, fine: TensorView) {
        let C = logits.shape[0], P = logits.count / C, S = m.shape[1]
        precondition(m.shape[0] == C + P && o + P <= S && cams.count == C * P && fine.count == C * P,
                     "CAM fusion: M \(m.shape) at \(o), logits \(logits.shape)")
        let mp = m.data, lp = logits.data, cp = cams.data
        for k in 0..<C {
            for p in 0..<P { cp[k * P + p] = mp[k * S + o + p] * max(lp[k * P + p], 0) }
        }
        BLAS.gemm(transB: true, m: C, n: P, k: P, a: cp, lda: P, b: mp + C * S + o, ldb: S, beta: 0, c: fine.data, ldc: P)
    }

    /// dFine: [C, P] → dM on the key columns of every row (overwritten; other columns untouched),
    /// dCams (scratch), and dLogits (overwritten) when given. nil: ReLU(head) is detached inside the
    /// fused CAM, as in WeakTr's own training (spec §2.1.6).
    static func backward(_ dFine: TensorView, fused m: TensorView, keyOffset o: Int, logits: TensorView, cams: TensorView,
                         dCams: TensorView, dFused: TensorView, dLogits: TensorView?) {
        let C = logits.shape[0], P = logits.count / C, S = m.shape[1]
        precondition(dFine.count == C * P && dFused.shape == m.shape && dCams.count == C * P,
                     "CAM fusion backward: dFine \(dFine.shape), M \(m.shape)")
        let mp = m.data, dm = dFused.data, lp = logits.data, dc = dCams.data
        // fine = cams · PAᵀ ⇒ dPA[i, p] = Σ_k dfine[k, i] · cams[k, p], dcams = dfine · PA.
        BLAS.gemm(transA: true, m: P, n: P, k: C, a: dFine.data, lda: P, b: cams.data, ldb: P, beta: 0,
                  c: dm + C * S + o, ldc: S)
        BLAS.gemm(m: C, n: P, k: P, a: dFine.data, lda: P, b: mp + C * S + o, ldb: S, beta: 0, c: dc, ldc: P)
        // cams = cross ⊙ ReLU(logits): ∂cross = dcams ⊙ ReLU(logits), ∂logits = dcams ⊙ cross ⊙ [logits > 0].
        for k in 0..<C {
            for p in 0..<P {
                let i = k * P + p
                dm[k * S + o + p] = dc[i] * max(lp[i], 0)
                dLogits?.data[i] = lp[i] > 0 ? dc[i] * mp[k * S + o + p] : 0
            }
        }
    }
}
