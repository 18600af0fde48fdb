import Foundation
import SemplesEngine

/// The three MultiLabelSoftMargin terms of WeakTr's training loss (spec §3.4).
public struct WeakTrLossTerms: Sendable, Equatable, Codable {
    public var classToken: Float
    public var coarse: Float
    public var fine: Float
    public var total: Float { classToken + coarse + fine }

    public init(classToken: Float, coarse: Float, fine: Float) {
        self.classToken = classToken
        self.coarse = coarse
        self.fine = fine
    }
}

extension WeakTr {
    /// Training forward (spec §2.1, §3.4) on the workspace's images: batched, in train mode, keeping
    /// what backward needs. Gradient paths as WeakTr:`models.py` (spec §2.1.6): the class-token term
    /// reaches the backbone; the coarse term the head and, through the non-detached patch tokens,
    /// the backbone; the fine term the AAF parameters only (the maps and attention outputs fed to
    /// AAF are detached, and so is the ReLU(head) copy inside the fused CAM).
    ///
    /// DropPath scales are drawn per sample from `generator`.
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
        let L = c.depth, ch = c.channelCount

        // Embedding: patch conv, then the class tokens and the position embedding (spec §2.1.3).
        patchEmbed.forwardTokens(ws.images, into: ws.patchTokens, columns: ws.patchColumns)
        for b in 0..<B {
            let xb = ws.residuals[0][b]
            xb.rows(C, P).copy(from: ws.patchTokens[b])
            addTokenEmbeddings(xb, patchRows: c.gridSide, patchColumns: c.gridSide, square: true, planes: nil, resized: nil)
        }

        for l in 0..<L {
            blocks[l].forwardWithCachedScales(ws.residuals[l], into: ws.residuals[l + 1], cache: ws.caches[l])
        }

        // AAF (spec §2.1.4) on detached inputs: each block's attention output pooled over the tokens.
        Parallel.forEachWithoutBLAS(B * L, PoolAttentionOutputs(ws: ws, pooling: c.pooling, L: L))
        fusion.forward(pooled: ws.pooled, cache: ws.fusion)

        // Head on the (non-detached) patch tokens as NCHW; predictions.
        Parallel.forEachWithoutBLAS(B, HeadInputs(ws: ws, L: L, C: C, P: P, D: D))
        head.forward(ws.headInput, into: ws.logits.reshaped(Shape(B, C, c.gridSide, c.gridSide)), columns: ws.headColumns)
        for b in 0..<B {
            LastAxisMean.forward(ws.residuals[L][b].rows(0, C), into: ws.classTokenPrediction[b])
        }
        LastAxisMean.forward(ws.logits, into: ws.coarsePrediction)

        // M = (1/ch) Σ_j w_j A_j (detached maps), fused CAM with the detached ReLU(head), fine CAM.
        Parallel.forEach(B, FusedCAMs(ws: ws, ch: ch, N: N, C: C))
        LastAxisMean.forward(ws.fineCAM, into: ws.finePrediction)
    }

    /// Sets up (once per batch size) the activation memory of a training step on `batch` images of
    /// the checkpoint grid (gridSide·16 square).
    public func prepare(batch: Int) -> WeakTrTrainingWorkspace {
        if let ws = trainingWorkspace, ws.batch == batch { return ws }
        let floats = WeakTrTrainingWorkspace.floats(model: self, batch: batch)
        if floats > trainingArena.capacity { trainingArena = Arena(capacity: floats) }
        trainingArena.reset()
        let ws = WeakTrTrainingWorkspace(model: self, batch: batch, arena: trainingArena)
        trainingWorkspace = ws
        return ws
    }

    /// Image side the model trains on (the position grid as is, spec §2.1.3 case 1).
    public var inputSide: Int { config.gridSide * config.patchSize }
}

extension WeakTr {
    /// AAF's token pooling of every (image, block) attention output in the training forward.
    private struct PoolAttentionOutputs: IndexKernel {
        let ws: WeakTrTrainingWorkspace
        let pooling: WeakTrPooling
        let L: Int

        func run(_ bl: Int) {
            let b = bl / L, l = bl % L
            AdaptiveAttentionFusion.pool(ws.caches[l].attentionOutput[b], pooling: pooling, into: ws.pooled[b][l])
        }
    }

    /// The patch tokens of each image as the head's NCHW input, in the training forward.
    private struct HeadInputs: IndexKernel {
        let ws: WeakTrTrainingWorkspace
        let L: Int, C: Int, P: Int, D: Int

        func run(_ b: Int) {
            transpose(ws.residuals[L][b].rows(C, P), into: ws.headInput[b].reshaped(Shape(D, P)))
        }
    }

    /// Each image's fused attention map, fused CAM and fine CAM, in the training forward.
    private struct FusedCAMs: IndexKernel {
        let ws: WeakTrTrainingWorkspace
        let ch: Int, N: Int, C: Int

        func run(_ b: Int) {
            let w = ws.fusionWeights.data + b * ch
            CAMFusion.fuse(weights: w, channels: ch, count: N * N, map: { ws.attentionMap(image: b, channel: $0) },
                                      into: ws.fused[b].data)
            CAMFusion.forward(fused: ws.fused[b], keyOffset: C, logits: ws.logits[b], cams: ws.cams[b], fine: ws.fineCAM[b])
        }
    }
}
