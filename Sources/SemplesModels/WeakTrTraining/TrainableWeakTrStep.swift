import Foundation
import SemplesEngine

extension TrainableWeakTr {
    /// Training forward on the workspace's images: DropPath scales drawn per sample from `generator`.
    public func forward(_ ws: WeakTrTrainingWorkspace, generator: inout SeededGenerator) {
        for (l, block) in blocks.enumerated() {
            block.dropPath.sample(into: ws.caches[l].attentionScales, generator: &generator)
            block.dropPath.sample(into: ws.caches[l].mlpScales, generator: &generator)
        }
        forwardWithCachedScales(ws)
    }

    /// Forward with DropPath as the identity (`keepScales` false) or with the scales already set
    /// through `ws.dropPathScales(block:)` (`keepScales` true; fixed masks for tests).
    public func forward(_ ws: WeakTrTrainingWorkspace, keepScales: Bool = false) {
        if !keepScales {
            for cache in ws.caches {
                cache.attentionScales.fill(1)
                cache.mlpScales.fill(1)
            }
        }
        forwardWithCachedScales(ws)
    }

    private func forwardWithCachedScales(_ ws: WeakTrTrainingWorkspace) {
        let c = config
        let B = ws.batch, D = c.embedDimension, C = c.classCount, P = ws.patches, N = ws.tokens
        let L = c.depth, NH = c.headCount, ch = c.channelCount, hd = c.headDimension

        // Embedding: patch conv, C class tokens, position embedding as is (spec §2.1.3).
        patchEmbed.forwardTokens(ws.images, into: ws.patchTokens, columns: ws.patchColumns)
        let x0 = ws.residuals[0].data, pt = ws.patchTokens.data
        let cls = classToken.value.data, pos = positionEmbedding.value.data
        Parallel.forEachWithoutBLAS(B) { b in
            let xb = x0 + b * N * D
            for i in 0..<(C * D) { xb[i] = cls[i] + pos[i] }
            let pb = pt + b * P * D, xp = xb + C * D, pp = pos + C * D
            for i in 0..<(P * D) { xp[i] = pb[i] + pp[i] }
        }

        for l in 0..<L {
            blocks[l].forwardWithCachedScales(ws.residuals[l], into: ws.residuals[l + 1], cache: ws.caches[l])
        }
        let xL = ws.residuals[L].data

        // AAF (spec §2.1.4) on detached inputs: pool each block's attention output over the tokens,
        // channel j = g·L + l takes o_l[n, e·H + g] for e < hd.
        let pooled = ws.pooled.data, feats = ws.features.data
        let pooling = c.pooling
        Parallel.forEachWithoutBLAS(B * L) { bl in
            let b = bl / L, l = bl % L
            let o = ws.caches[l].attentionOutput.data + b * N * D
            let out = pooled + (b * L + l) * D
            out.update(from: o, count: D)
            for n in 1..<N {
                let row = o + n * D
                if pooling == .max {
                    for d in 0..<D { out[d] = max(out[d], row[d]) }
                } else {
                    for d in 0..<D { out[d] += row[d] }
                }
            }
            if pooling == .avg { for d in 0..<D { out[d] /= Float(N) } }
            for g in 0..<NH {
                let f = feats + (b * ch + g * L + l) * hd
                for e in 0..<hd { f[e] = out[e * NH + g] }
            }
        }
        featureDown.forward(ws.features, into: ws.featureHidden)
        featureOut.forward(ws.featureHidden, into: ws.scores.reshaped([B * ch, 1]))
        channelDown.forward(ws.scores, into: ws.channelPre)
        Activation.relu.forward(ws.channelPre, into: ws.channelHidden)
        channelUp.forward(ws.channelHidden, into: ws.channelOut)
        Activation.sigmoid.forward(ws.channelOut, into: ws.fusionWeights)

        // Head on the (non-detached) patch tokens as NCHW; predictions.
        let hin = ws.headInput.data
        Parallel.forEachWithoutBLAS(B) { b in
            let src = xL + (b * N + C) * D, dst = hin + b * D * P
            for p in 0..<P { for d in 0..<D { dst[d * P + p] = src[p * D + d] } }
        }
        head.forward(ws.headInput, into: ws.logits.reshaped([B, C, c.gridSide, c.gridSide]), columns: ws.headColumns)
        let logits = ws.logits.data, clsPred = ws.classTokenPrediction.data, coarse = ws.coarsePrediction.data
        for b in 0..<B {
            for k in 0..<C {
                var s: Float = 0
                let t = xL + (b * N + k) * D
                for d in 0..<D { s += t[d] }
                clsPred[b * C + k] = s / Float(D)
                var m: Float = 0
                let row = logits + (b * C + k) * P
                for p in 0..<P { m += row[p] }
                coarse[b * C + k] = m / Float(P)
            }
        }

        // M = (1/ch) Σ_j w_j A_j (detached maps), fused CAM with the detached ReLU(head), fine CAM.
        let fused = ws.fused.data, w = ws.fusionWeights.data, cams = ws.cams.data, fine = ws.fineCAM.data
        let finePred = ws.finePrediction.data
        let invChannels = 1 / Float(ch)
        Parallel.forEach(B) { b in
            let m = fused + b * N * N
            m.update(repeating: 0, count: N * N)
            for l in 0..<L {
                let probs = ws.caches[l].probabilities.data
                for h in 0..<NH {
                    BLAS.axpy(count: N * N, alpha: w[b * ch + h * L + l] * invChannels,
                              x: probs + (b * NH + h) * N * N, y: m)
                }
            }
            let cb = cams + b * C * P, lb = logits + b * C * P
            for k in 0..<C {
                for p in 0..<P { cb[k * P + p] = m[k * N + C + p] * max(lb[k * P + p], 0) }
            }
            // fine[k, i] = Σ_p M[C+i, C+p] · cams[k, p]
            BLAS.gemm(transB: true, m: C, n: P, k: P, a: cb, lda: P, b: m + C * N + C, ldb: N,
                      beta: 0, c: fine + b * C * P, ldc: P)
            for k in 0..<C {
                var s: Float = 0
                let row = fine + (b * C + k) * P
                for p in 0..<P { s += row[p] }
                finePred[b * C + k] = s / Float(P)
            }
        }
    }

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
        let w = ws.fusionWeights.data
        for i in 0..<(B * ch) { dW[i] *= w[i] * (1 - w[i]) }
        channelUp.backward(ws.weightGradient, x: ws.channelHidden, dx: ws.channelHiddenGradient, accumulate: false)
        Activation.relu.backward(ws.channelHiddenGradient, x: ws.channelPre, dx: ws.channelHiddenGradient, accumulate: false)
        channelDown.backward(ws.channelHiddenGradient, x: ws.scores, dx: ws.scoreGradient, accumulate: false)
        featureOut.backward(ws.scoreGradient.reshaped([B * ch, 1]), x: ws.featureHidden, dx: ws.featureHiddenGradient,
                            accumulate: false)
        featureDown.backward(ws.featureHiddenGradient, x: ws.features, dx: nil)

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
