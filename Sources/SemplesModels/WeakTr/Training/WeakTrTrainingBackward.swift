import Foundation
import SemplesEngine

extension WeakTr {
    /// The three loss terms on the workspace's targets, and (unless `gradients` is false) backward
    /// through everything: parameter gradients accumulate (+=) into the store; zero them first.
    /// `termWeights` scales the gradient of each term (class token, coarse, fine); training uses 1s.
    @discardableResult
    public func lossAndBackward(_ ws: WeakTrTrainingWorkspace, gradients: Bool = true,
                                termWeights: (Float, Float, Float) = (1, 1, 1)) -> WeakTrLossTerms {
        ws.classTokenGradient.zero()
        ws.coarseGradient.zero()
        ws.fineGradient.zero()
        let terms = WeakTrLossTerms(
            classToken: MultiLabelSoftMarginLoss.evaluate(ws.classTokenPrediction, targets: ws.targets,
                                                          gradient: gradients ? ws.classTokenGradient : nil,
                                                          weight: termWeights.0),
            coarse: MultiLabelSoftMarginLoss.evaluate(ws.coarsePrediction, targets: ws.targets,
                                                      gradient: gradients ? ws.coarseGradient : nil, weight: termWeights.1),
            fine: MultiLabelSoftMarginLoss.evaluate(ws.finePrediction, targets: ws.targets,
                                                    gradient: gradients ? ws.fineGradient : nil, weight: termWeights.2))
        if gradients { backward(ws) }
        return terms
    }

    /// Backward from the prediction gradients in the workspace.
    func backward(_ ws: WeakTrTrainingWorkspace) {
        let c = config
        let B = ws.batch, D = c.embedDimension, C = c.classCount, P = ws.patches, N = ws.tokens
        let L = c.depth, NH = c.headCount, ch = c.channelCount
        let invChannels = 1 / Float(ch)

        // Fine term → AAF only (spec §3.4): dfine[k, i] = dpred[k]/P; dM on the patch block and on
        // the class→patch block (through cross); the ReLU(head) factor and the maps are constants.
        let dPred = ws.fineGradient.data, dFine = ws.fineMapGradient.data, dCams = ws.camGradient.data
        let dM = ws.fusedGradient.data, fused = ws.fused.data, cams = ws.cams.data, logits = ws.logits.data
        let dW = ws.weightGradient.data
        Parallel.forEach(B) { b in
            let df = dFine + b * C * P
            for k in 0..<C {
                let v = dPred[b * C + k] / Float(P)
                for i in 0..<P { df[k * P + i] = v }
            }
            let m = fused + b * N * N, dm = dM + b * N * N, cb = cams + b * C * P, dcb = dCams + b * C * P
            dm.update(repeating: 0, count: N * N)
            // dM[C+i, C+p] = Σ_k dfine[k, i] · cams[k, p]
            BLAS.gemm(transA: true, m: P, n: P, k: C, a: df, lda: P, b: cb, ldb: P, beta: 0, c: dm + C * N + C, ldc: N)
            // dcams[k, p] = Σ_i dfine[k, i] · M[C+i, C+p]
            BLAS.gemm(m: C, n: P, k: P, a: df, lda: P, b: m + C * N + C, ldb: N, beta: 0, c: dcb, ldc: P)
            let lb = logits + b * C * P
            for k in 0..<C {
                for p in 0..<P { dm[k * N + C + p] = dcb[k * P + p] * max(lb[k * P + p], 0) }
            }
            // ∂L/∂w_j = (1/ch) ⟨dM, A_j⟩
            for l in 0..<L {
                let probs = ws.caches[l].probabilities.data
                for h in 0..<NH {
                    dW[b * ch + h * L + l] = invChannels * BLAS.dot(count: N * N, dm, probs + (b * NH + h) * N * N)
                }
            }
        }
        // Sigmoid, attn_head_ffn, attn_feat_ffn (inputs detached: no gradient into the features).
        fusion.backward(ws.weightGradient, cache: ws.fusion, scratch: ws.fusionScratch)

        // Coarse term → head → patch tokens; class-token term → class tokens.
        let g0 = ws.streamGradients[0]
        let dx = g0.data, dCoarse = ws.coarseGradient.data, dCls = ws.classTokenGradient.data
        let dLogits = ws.logitGradient.data
        for b in 0..<B {
            for k in 0..<C {
                let v = dCoarse[b * C + k] / Float(P)
                for p in 0..<P { dLogits[(b * C + k) * P + p] = v }
            }
        }
        ws.headInputGradient.zero()
        head.backward(ws.logitGradient.reshaped([B, C, c.gridSide, c.gridSide]), x: ws.headInput,
                      columns: ws.headColumns, columnGradient: ws.headColumnGradient, dx: ws.headInputGradient)
        let dHin = ws.headInputGradient.data
        Parallel.forEachWithoutBLAS(B) { b in
            let db = dx + b * N * D
            for k in 0..<C {
                let v = dCls[b * C + k] / Float(D)
                for d in 0..<D { db[k * D + d] = v }
            }
            let src = dHin + b * D * P
            for p in 0..<P { for d in 0..<D { db[(C + p) * D + d] = src[d * P + p] } }
        }

        // Blocks in reverse.
        var current = 0
        for l in stride(from: L - 1, through: 0, by: -1) {
            blocks[l].backward(ws.streamGradients[current], x: ws.residuals[l], cache: ws.caches[l],
                               scratch: ws.scratch, dx: ws.streamGradients[1 - current], accumulate: false)
            current = 1 - current
        }

        // Embedding: class tokens and position embedding sum over the batch; patch conv weights.
        let g = ws.streamGradients[current].data
        if let gc = classToken.activeGrad {
            for b in 0..<B { BLAS.axpy(count: C * D, alpha: 1, x: g + b * N * D, y: gc.data) }
        }
        if let gp = positionEmbedding.activeGrad {
            for b in 0..<B { BLAS.axpy(count: N * D, alpha: 1, x: g + b * N * D, y: gp.data) }
        }
        let dpt = ws.patchTokenGradient.data
        for b in 0..<B { (dpt + b * P * D).update(from: g + (b * N + C) * D, count: P * D) }
        patchEmbed.backwardTokens(ws.patchTokenGradient, x: ws.images, columns: ws.patchColumns,
                                  columnGradient: nil, dx: nil)
    }
}
