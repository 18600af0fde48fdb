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
        let L = c.depth, ch = c.channelCount

        // Fine term → AAF only (spec §3.4): dfine[k, i] = dpred[k]/P; dM on the patch block and on
        // the class→patch block (through cross); the ReLU(head) factor and the maps are constants.
        LastAxisMean.backward(ws.fineGradient, dx: ws.fineMapGradient)
        Parallel.forEach(B, FusionWeightGradients(ws: ws, ch: ch, N: N, C: C))
        // Sigmoid, attn_head_ffn, attn_feat_ffn (inputs detached: no gradient into the features).
        fusion.backward(ws.weightGradient, cache: ws.fusion, scratch: ws.fusionScratch)

        // Coarse term → head → patch tokens; class-token term → class tokens.
        let g0 = ws.streamGradients[0]
        LastAxisMean.backward(ws.coarseGradient, dx: ws.logitGradient)
        ws.headInputGradient.zero()
        head.backward(ws.logitGradient.reshaped(Shape(B, C, c.gridSide, c.gridSide)), x: ws.headInput,
                      columns: ws.headColumns, columnGradient: ws.headColumnGradient, dx: ws.headInputGradient)
        Parallel.forEachWithoutBLAS(B, TokenGradients(ws: ws, g0: g0, C: C, P: P, D: D))

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

extension WeakTr {
    /// The fine term's way back to each image's AAF weights, in the training backward.
    private struct FusionWeightGradients: IndexKernel {
        let ws: WeakTrTrainingWorkspace
        let ch: Int, N: Int, C: Int

        func run(_ b: Int) {
            ws.fusedGradient[b].zero()
            CAMFusion.backward(ws.fineMapGradient[b], fused: ws.fused[b], keyOffset: C, logits: ws.logits[b],
                               cams: ws.cams[b], dCams: ws.camGradient[b], dFused: ws.fusedGradient[b], dLogits: nil)
            CAMFusion.weightGradients(ws.fusedGradient[b].data, channels: ch, count: N * N, map: { ws.attentionMap(image: b, channel: $0) },
                                      into: ws.weightGradient.data + b * ch)
        }
    }

    /// Each image's class-token and patch-token gradients into the last block's output, in the
    /// training backward.
    private struct TokenGradients: IndexKernel {
        let ws: WeakTrTrainingWorkspace
        let g0: TensorView
        let C: Int, P: Int, D: Int

        func run(_ b: Int) {
            LastAxisMean.backward(ws.classTokenGradient[b], dx: g0[b].rows(0, C))
            transpose(ws.headInputGradient[b].reshaped(Shape(D, P)), into: g0[b].rows(C, P))
        }
    }
}
