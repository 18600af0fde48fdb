import Foundation
import SemplesEngine

/// Results of one inference pass. The views point into the model's workspace and stay valid until
/// the next pass.
public struct WeakTrOutput {
    public let patchRows: Int                 // hp = ⌊H/16⌋
    public let patchColumns: Int              // wp = ⌊W/16⌋
    public let cams: TensorView               // [C, hp, wp] fused: cross-attention ⊙ ReLU(head)
    public let fineCAM: TensorView            // [C, hp, wp] patch attention · cams
    public let logits: TensorView             // [C, hp, wp] head output before ReLU
    public let patchAttention: TensorView?    // [P, P] AAF-fused patch→patch attention, if asked for
    public let classTokenPrediction: TensorView   // [C] mean over D of the class tokens
    public let coarseCAMPrediction: TensorView    // [C] mean of logits over the grid
    public let fineCAMPrediction: TensorView      // [C] mean of fineCAM over the grid
    public let fusionWeights: TensorView      // [L·H] AAF weights, channel j = head·L + layer
}

/// The CAM part of an inference workspace (after the backbone's buffers in the same arena).
struct WeakTrCAMBuffers {
    let headOutput: TensorView       // [hp·(wp+2), C] head on the padded grid
    let logits: TensorView           // [C, hp, wp]
    let cross: TensorView            // [C, P]
    let cams: TensorView             // [C, hp, wp]
    let camsT: TensorView            // [P, C]
    let fineAccumulators: TensorView // [workers, P, C]
    let blockProduct: TensorView     // [workers, rowBlock, C]
    let fine: TensorView             // [C, hp, wp]
    let predictions: TensorView      // [3, C]
    let fusion: AdaptiveAttentionFusion.Cache   // one image
    let patchAttention: TensorView?  // [P, P]

    static func floats(config c: WeakTrConfig, hp: Int, wp: Int, workers: Int, patchAttention: Bool) -> Int {
        func r(_ n: Int) -> Int { (n + 15) & ~15 }
        let C = c.classCount, P = hp * wp
        return r(hp * (wp + 2) * C) + 4 * r(C * P) + r(P * C) + r(workers * P * C)
            + r(workers * WeakTrInferenceBuffers.rowBlock * C) + r(3 * C)
            + AdaptiveAttentionFusion.floats(config: c, batch: 1, backward: false) + (patchAttention ? r(P * P) : 0)
    }

    init(_ a: Arena, model: WeakTr, hp: Int, wp: Int, workers: Int, patchAttention: Bool) {
        let C = model.config.classCount, P = hp * wp
        headOutput = a.allocate(Shape(hp * (wp + 2), C))
        logits = a.allocate(Shape(C, hp, wp))
        cross = a.allocate(Shape(C, P))
        cams = a.allocate(Shape(C, hp, wp))
        camsT = a.allocate(Shape(P, C))
        fineAccumulators = a.allocate(Shape(workers, P, C))
        blockProduct = a.allocate(Shape(workers, WeakTrInferenceBuffers.rowBlock, C))
        fine = a.allocate(Shape(C, hp, wp))
        predictions = a.allocate(Shape(3, C))
        fusion = model.fusion.makeCache(a, batch: 1)
        self.patchAttention = patchAttention ? a.allocate(Shape(P, P)) : nil
    }
}

extension WeakTr {
    /// Floats of workspace a CAM pass on an hp×wp grid needs.
    public func workspaceFloats(patchRows hp: Int, patchColumns wp: Int, patchAttention: Bool = false) -> Int {
        let keep = attentionMemory.keeps(tokens: config.classCount + hp * wp, maps: config.channelCount)
        return WeakTrInferenceBuffers.floats(config: config, hp: hp, wp: wp, keep: keep, secondPass: true,
                                             workers: inferenceWorkers)
            + WeakTrCAMBuffers.floats(config: config, hp: hp, wp: wp, workers: inferenceWorkers,
                                      patchAttention: patchAttention)
    }

    /// Frees the inference workspace (it grows to the largest image seen); the next pass makes a new one.
    public func releaseInferenceWorkspace() {
        inferenceArena = nil
    }

    /// The inference arena, reset, with room for at least `floats`.
    func inferenceWorkspace(floats: Int) -> Arena {
        if inferenceArena == nil || inferenceArena!.capacity < floats { inferenceArena = Arena(capacity: floats) }
        inferenceArena!.reset()
        return inferenceArena!
    }

    /// Eval-mode forward for CAM generation on one normalised image `image: [3, H, W]` (H, W ≥ 16):
    /// the backbone, AAF, the head, and the fused and fine CAMs (spec §2.1.5, §5).
    public func forward(_ image: TensorView, patchAttention wantPatchAttention: Bool = false) -> WeakTrOutput {
        precondition(image.shape.rank == 3 && image.shape[0] == 3, "WeakTr input must be [3, H, W], got \(image.shape)")
        let hp = image.shape[1] / config.patchSize, wp = image.shape[2] / config.patchSize
        precondition(hp >= 1 && wp >= 1, "image \(image.shape[2])×\(image.shape[1]) is smaller than one 16×16 patch")
        let C = config.classCount, D = config.embedDimension, L = config.depth, NH = config.headCount
        let P = hp * wp, N = C + P, workers = inferenceWorkers
        let keep = attentionMemory.keeps(tokens: N, maps: config.channelCount)
        let arena = inferenceWorkspace(floats: workspaceFloats(patchRows: hp, patchColumns: wp,
                                                               patchAttention: wantPatchAttention))
        let b = WeakTrInferenceBuffers(arena, config: config, hp: hp, wp: wp, keep: keep, secondPass: true, workers: workers)
        let cam = WeakTrCAMBuffers(arena, model: self, hp: hp, wp: wp, workers: workers, patchAttention: wantPatchAttention)

        // Phase 1: the backbone.
        inferenceBackbone(image, b, dropPathScales: nil, patchColumns: nil)
        fusion.forward(pooled: b.pooled.reshaped(Shape(1, L, D)), cache: cam.fusion)
        let weights = cam.fusion.weights
        headOnGrid(b.x.rows(C, P), hp: hp, wp: wp, scratch: b.hidden, output: cam.headOutput, logits: cam.logits)

        // Predictions: class tokens (no final LayerNorm, spec §10 item 24) and the coarse CAM mean.
        LastAxisMean.forward(b.x.rows(0, C), into: cam.predictions[0])
        LastAxisMean.forward(cam.logits, into: cam.predictions[1])

        // Phase 2a: cross attention, M[:C, C:] = (1/LH) Σ_j w_j A_j[:C, C:], then the fused CAM.
        let cross = cam.cross.data, cams = cam.cams.data, camsT = cam.camsT.data, logits = cam.logits.data
        cam.cross.zero()
        let invChannels = 1 / Float(L * NH)
        for l in 0..<L {
            for h in 0..<NH {
                let coef = weights.data[h * L + l] * invChannels
                let rows = b.classRows.data + (l * NH + h) * C * N
                for c in 0..<C { BLAS.axpy(count: P, alpha: coef, x: rows + c * N + C, y: cross + c * P) }
            }
        }
        for i in 0..<(C * P) {
            let v = cross[i] * max(logits[i], 0)
            cams[i] = v
            camsT[(i % P) * C + i / P] = v
        }

        // Phase 2b: fine[c, i] = Σ_j (w_j/LH) Σ_p A_j[C+i, C+p] · cams[c, p], one map at a time.
        cam.fineAccumulators.zero()
        cam.patchAttention?.zero()
        let fineWorkers = cam.patchAttention == nil ? workers : 1
        let scale = 1 / Float(config.headDimension).squareRoot()
        Parallel.forEach(fineWorkers, FineCAMMaps(b: b, cam: cam, weights: weights, camsT: camsT, keep: keep,
                                                  fineWorkers: fineWorkers, L: L, NH: NH, C: C, N: N, P: P,
                                                  headDimension: config.headDimension, invChannels: invChannels,
                                                  scale: scale))
        let total = cam.fineAccumulators[0]
        for w in 1..<max(fineWorkers, 1) { BLAS.axpy(count: P * C, alpha: 1, x: cam.fineAccumulators[w].data, y: total.data) }
        transpose(total, into: cam.fine.reshaped(Shape(C, P)))
        LastAxisMean.forward(cam.fine, into: cam.predictions[2])
        return WeakTrOutput(patchRows: hp, patchColumns: wp, cams: cam.cams, fineCAM: cam.fine, logits: cam.logits,
                            patchAttention: cam.patchAttention, classTokenPrediction: cam.predictions[0],
                            coarseCAMPrediction: cam.predictions[1], fineCAMPrediction: cam.predictions[2],
                            fusionWeights: weights.reshaped(Shape(L * NH)))
    }

    /// `head` (Conv2d D → C, 3×3, pad 1) on the patch tokens [P, D] as nine shifted GEMMs over a
    /// zero-padded grid, without the 9·P·D floats of an im2col. scratch holds the padded grid and
    /// the weight regrouped per tap; output: [hp·(wp+2), C]; logits: [C, hp, wp].
    private func headOnGrid(_ tokens: TensorView, hp: Int, wp: Int, scratch: TensorView, output: TensorView,
                            logits: TensorView) {
        let C = config.classCount, D = config.embedDimension, pw = wp + 2
        // (hp+2)·(wp+2) rows plus 2 zero rows read past the end by the last taps.
        let paddedFloats = ((hp + 2) * pw + 2) * D
        let pad = scratch.data, taps = scratch.data + paddedFloats   // taps: [9, C, D]
        precondition(scratch.count >= paddedFloats + 9 * C * D, "head scratch \(scratch.count) floats")
        pad.update(repeating: 0, count: paddedFloats)
        for y in 0..<hp { (pad + ((y + 1) * pw + 1) * D).update(from: tokens.data + y * wp * D, count: wp * D) }
        let weight = head.weight.value.data   // [C, D, 3, 3]
        for c in 0..<C {
            for d in 0..<D {
                for t in 0..<9 { taps[(t * C + c) * D + d] = weight[(c * D + d) * 9 + t] }
            }
        }
        let out = output.data, bias = head.bias!.value.data
        for r in 0..<(hp * pw) { (out + r * C).update(from: bias, count: C) }
        for ky in 0..<3 {
            for kx in 0..<3 {
                BLAS.gemm(transB: true, m: hp * pw, n: C, k: D, a: pad + (ky * pw + kx) * D, lda: D,
                          b: taps + (ky * 3 + kx) * C * D, ldb: D, beta: 1, c: out, ldc: C)
            }
        }
        for y in 0..<hp {
            for xx in 0..<wp {
                for c in 0..<C { logits.data[(c * hp + y) * wp + xx] = out[(y * pw + xx) * C + c] }
            }
        }
    }
}

extension WeakTr {
    /// Phase 2b of `forward`: the attention maps spread over the workers, each accumulating its
    /// own share of the fine CAM.
    private struct FineCAMMaps: IndexKernel {
        let b: WeakTrInferenceBuffers
        let cam: WeakTrCAMBuffers
        let weights: TensorView
        let camsT: UnsafeMutablePointer<Float>
        let keep: Bool
        let fineWorkers: Int, L: Int, NH: Int, C: Int, N: Int, P: Int, headDimension: Int
        let invChannels: Float, scale: Float

        func run(_ w: Int) {
            let product = cam.blockProduct[w].data
            for j in stride(from: w, to: L * NH, by: fineWorkers) {
                let l = j / NH, h = j % NH
                let coef = weights.data[h * L + l] * invChannels
                let inverse = b.inverseSums(layer: l, head: h, headCount: NH, worker: w)
                for r0 in stride(from: C, to: N, by: WeakTrInferenceBuffers.rowBlock) {
                    let rows = min(WeakTrInferenceBuffers.rowBlock, N - r0)
                    let s = b.scores(layer: l, head: h, headCount: NH, worker: w, firstRow: r0, rows: rows)
                    if !keep {   // recompute this block of map (l, h) from the stored Q and K
                        WeakTr.attentionScores(b.qkv[l], head: h, headDimension: headDimension, firstRow: r0,
                                               scale: scale, into: s, inverseSums: inverse.slice(offset: r0, Shape(rows)))
                    }
                    // product[i, c] = Σ_p E[r0+i, C+p] · cams[c, p]; then × w_j/LH · 1/Σ_i.
                    BLAS.gemm(m: rows, n: C, k: P, a: s.data + C, lda: N, b: camsT, ldb: C, c: product, ldc: C)
                    let acc = cam.fineAccumulators[w].data + (r0 - C) * C
                    for i in 0..<rows {
                        let f = coef * inverse.data[r0 + i]
                        BLAS.axpy(count: C, alpha: f, x: product + i * C, y: acc + i * C)
                        if let pa = cam.patchAttention {
                            BLAS.axpy(count: P, alpha: f, x: s.data + i * N + C, y: pa.data + (r0 - C + i) * P)
                        }
                    }
                }
            }
        }
    }
}
