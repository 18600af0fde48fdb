import Foundation
import SemplesEngine
import SemplesFormats

/// Where the 12·6 attention maps of a forward pass live while the AAF weights are not yet known
/// (spec §9.3).
public enum WeakTrAttentionMemory: Sendable, Equatable {
    /// Keep only Q and K of each layer and recompute each map once the weights are known:
    /// memory O(L·N·D), about 15% more arithmetic.
    case recompute
    /// Keep all L·H maps (L·H·N² floats), as the reference does.
    case keep
    /// Keep the maps when they take at most `limitBytes`, recompute otherwise.
    case automatic(limitBytes: Int)

    /// The default: keep up to 512 MB of maps (VOC images at scale 1.2), recompute beyond.
    public static let standard = WeakTrAttentionMemory.automatic(limitBytes: 512 << 20)

    /// Whether a pass over `tokens` tokens keeps its `maps` attention maps.
    public func keeps(tokens: Int, maps: Int) -> Bool {
        switch self {
        case .recompute: return false
        case .keep: return true
        case .automatic(let limit): return maps * tokens * tokens * 4 <= limit
        }
    }
}

/// Results of one forward pass. The views point into the model's workspace and stay valid until
/// the next call to `forward`.
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

/// WeakTr (spec §2.1) in eval mode, for CAM generation: DeiT backbone with C class tokens,
/// AAF-fused attention, 3×3 conv head, fused and fine CAMs.
public final class WeakTr {
    public let config: WeakTrConfig
    let weights: WeakTrWeights
    public var attentionMemory: WeakTrAttentionMemory = .standard
    private var arena: Arena?

    /// Builds the model from a state dict, checking every key and shape (spec §7.1).
    /// D, depth, heads and widths are read from the shapes; C, reduction and pooling are given.
    public init(stateDict: [String: Tensor], classCount: Int, reduction: Int, pooling: WeakTrPooling,
                source: String) throws {
        let shapes = stateDict.mapValues { $0.shape.dims }
        config = WeakTrConfig.inferred(from: shapes, classCount: classCount, reduction: reduction, pooling: pooling)
        weights = try WeakTrWeights(stateDict: stateDict, config: config, path: source)
    }

    /// Loads a `.safetensors` file holding the state dict under the reference key names.
    public static func load(safetensors path: String, classCount: Int, reduction: Int,
                            pooling: WeakTrPooling) throws -> WeakTr {
        let (tensors, _) = try SafeTensors.read(path)
        var dict: [String: Tensor] = [:]
        for t in tensors { dict[t.name] = t.tensor }
        return try WeakTr(stateDict: dict, classCount: classCount, reduction: reduction, pooling: pooling,
                          source: path)
    }

    /// Floats of workspace a forward pass on an hp×wp grid needs.
    public func workspaceFloats(patchRows hp: Int, patchColumns wp: Int, patchAttention: Bool = false) -> Int {
        let keep = attentionMemory.keeps(tokens: config.classCount + hp * wp, maps: config.channelCount)
        let layout = Layout(config: config, hp: hp, wp: wp, keep: keep,
                            workers: workerCount, patchAttention: patchAttention)
        return layout.total
    }

    private var workerCount: Int { max(1, min(Parallel.threads, config.headCount)) }

    /// Forward pass on one normalised image `image: [3, H, W]` (H, W ≥ 16).
    public func forward(_ image: TensorView, patchAttention wantPatchAttention: Bool = false) -> WeakTrOutput {
        precondition(image.shape.rank == 3 && image.shape[0] == 3, "WeakTr input must be [3, H, W], got \(image.shape)")
        let H = image.shape[1], W = image.shape[2]
        let hp = H / config.patchSize, wp = W / config.patchSize
        precondition(hp >= 1 && wp >= 1, "image \(W)×\(H) is smaller than one 16×16 patch")
        let workers = workerCount
        let keep = attentionMemory.keeps(tokens: config.classCount + hp * wp, maps: config.channelCount)
        let lay = Layout(config: config, hp: hp, wp: wp, keep: keep, workers: workers,
                         patchAttention: wantPatchAttention)
        if arena == nil || arena!.capacity < lay.total { arena = Arena(capacity: lay.total) }
        let ws = arena!
        ws.reset()
        let C = config.classCount, D = config.embedDimension, L = config.depth, NH = config.headCount
        let hd = config.headDimension, F = config.mlpHidden
        let P = hp * wp, N = C + P
        let eps = config.layerNormEpsilon

        let x = ws.allocate([N, D])                  // residual stream
        let a = ws.allocate([N, D])                  // LayerNorm output / concatenated heads
        let o = ws.allocate([N, D])                  // attention output after proj ("feat")
        let hidden = ws.allocate([lay.hiddenFloats])  // MLP hidden [N, F]; also im2col and padded grid scratch
        let qkvStore = ws.allocate([lay.qkvLayers, N, 3 * D])
        let attn = ws.allocate([lay.attentionSlots, lay.attentionRows, N])
        let inverseSums = ws.allocate([lay.inverseSumSlots, N])   // 1/Σexp per query row
        let classRows = ws.allocate([L, NH, C, N])   // softmax rows of the class-token queries
        let pooled = ws.allocate([L, D])             // AAF token pooling of o_l
        let poolPartial = ws.allocate([workers, D])  // per-chunk pooling
        let posPlanes = ws.allocate([D, lay.grid * lay.grid])
        let posResized = ws.allocate([D, P])
        let headTemp = ws.allocate([hp * (wp + 2), C])
        let logits = ws.allocate([C, hp, wp])
        let cross = ws.allocate([C, P])
        let cams = ws.allocate([C, hp, wp])
        let camsT = ws.allocate([P, C])
        let fineAcc = ws.allocate([workers, P, C])
        let blockProduct = ws.allocate([workers, Self.rowBlock, C])
        let fine = ws.allocate([C, hp, wp])
        let fusion = ws.allocate([L * NH])
        let aafScratch = ws.allocate([lay.aafScratchFloats])
        let predictions = ws.allocate([3, C])
        let patchAttention = wantPatchAttention ? ws.allocate([P, P]) : nil

        embed(image, hp: hp, wp: wp, x: x, im2col: hidden, posPlanes: posPlanes, posResized: posResized)

        // Phase 1: the backbone. Per layer keep the class-query softmax rows, the token pooling
        // of the attention output, and Q/K (recompute) or the maps themselves (keep).
        let scale = 1 / Float(hd).squareRoot()
        for l in 0..<L {
            let blk = weights.blocks[l]
            let qkv = qkvStore[lay.qkvLayers == 1 ? 0 : l]
            // Token-wise work runs on row chunks, one per worker, each with a single-threaded
            // GEMM: as fast as threaded BLAS on these shapes, without its idle spinning.
            Parallel.forEach(workers) { w in
                let (r0, rows) = Self.chunk(w, of: workers, count: N)
                WeakTrKernels.layerNorm(x.data + r0 * D, a.data + r0 * D, rows: rows, d: D,
                                        gamma: blk.norm1Weight.data, beta: blk.norm1Bias.data, eps: eps)
                self.linear(a.data + r0 * D, rows: rows, inFeatures: D, weight: blk.qkvWeight, bias: blk.qkvBias,
                            into: qkv.data + r0 * 3 * D, outFeatures: 3 * D)
            }
            Parallel.forEach(workers) { w in
                for h in stride(from: w, to: NH, by: workers) {
                    // Row blocks of the N×N map stay in cache between the score GEMM, the exp
                    // and the A·V GEMM; the softmax's 1/Σ is applied to the A·V rows.
                    let inv = self.inverseSumRow(inverseSums, keep: keep, layer: l, head: h, worker: w)
                    for r0 in stride(from: 0, to: N, by: Self.rowBlock) {
                        let rows = min(Self.rowBlock, N - r0)
                        let s = self.attentionBlock(attn, keep: keep, layer: l, head: h, worker: w, firstRow: r0)
                        BLAS.gemm(transB: true, m: rows, n: N, k: hd, alpha: scale,
                                  a: qkv.data + r0 * 3 * D + h * hd, lda: 3 * D,
                                  b: qkv.data + D + h * hd, ldb: 3 * D, c: s, ldc: N)
                        WeakTrKernels.expRows(s, rows: rows, n: N, stride: N, inverseSums: inv + r0)
                        let out = a.data + r0 * D + h * hd
                        BLAS.gemm(m: rows, n: hd, k: N, a: s, lda: N, b: qkv.data + 2 * D + h * hd, ldb: 3 * D,
                                  c: out, ldc: D)
                        for i in 0..<rows {
                            WeakTrKernels.scaleRow(out + i * D, count: hd, by: inv[r0 + i])
                            if r0 + i < C {   // keep the class-query rows, normalised
                                let dst = classRows.data + ((l * NH + h) * C + r0 + i) * N
                                dst.update(from: s + i * N, count: N)
                                WeakTrKernels.scaleRow(dst, count: N, by: inv[r0 + i])
                            }
                        }
                    }
                }
            }
            Parallel.forEach(workers) { w in
                let (r0, rows) = Self.chunk(w, of: workers, count: N)
                let xr = x.data + r0 * D, ar = a.data + r0 * D, or = o.data + r0 * D, hr = hidden.data + r0 * F
                self.linear(ar, rows: rows, inFeatures: D, weight: blk.projWeight, bias: blk.projBias, into: or, outFeatures: D)
                self.poolTokens(or, rows: rows, into: poolPartial[w].data)
                self.add(or, into: xr, count: rows * D)
                WeakTrKernels.layerNorm(xr, ar, rows: rows, d: D, gamma: blk.norm2Weight.data,
                                        beta: blk.norm2Bias.data, eps: eps)
                self.linear(ar, rows: rows, inFeatures: D, weight: blk.fc1Weight, bias: blk.fc1Bias, into: hr, outFeatures: F)
                WeakTrKernels.geluInPlace(hr, count: rows * F)
                // x += fc2(h): bias first, then a beta = 1 GEMM straight into the residual stream.
                for r in 0..<rows { self.add(blk.fc2Bias.data, into: xr + r * D, count: D) }
                BLAS.gemm(transB: true, m: rows, n: D, k: F, a: hr, lda: F, b: blk.fc2Weight.data, ldb: F,
                          beta: 1, c: xr, ldc: D)
            }
            combinePools(poolPartial, workers: workers, tokens: N, into: pooled[l])
        }

        aafWeights(pooled: pooled, scratch: aafScratch, into: fusion)
        head(x, hp: hp, wp: wp, padded: hidden, temp: headTemp, logits: logits)

        // Predictions: class tokens (no final LayerNorm, spec §10 item 24) and the coarse CAM mean.
        for c in 0..<C {
            var s: Float = 0
            for d in 0..<D { s += x.data[c * D + d] }
            predictions.data[c] = s / Float(D)
            var m: Float = 0
            for p in 0..<P { m += logits.data[c * P + p] }
            predictions.data[C + c] = m / Float(P)
        }

        // Phase 2a: cross attention, M[:C, C:] = (1/LH) Σ_j w_j A_j[:C, C:], then the fused CAM.
        cross.zero()
        let invChannels = 1 / Float(L * NH)
        for l in 0..<L {
            for h in 0..<NH {
                let coef = fusion.data[h * L + l] * invChannels
                let rows = classRows.data + (l * NH + h) * C * N
                for c in 0..<C {
                    BLAS.axpy(count: P, alpha: coef, x: rows + c * N + C, y: cross.data + c * P)
                }
            }
        }
        for i in 0..<(C * P) {
            let v = cross.data[i] * max(logits.data[i], 0)
            cams.data[i] = v
            camsT.data[(i % P) * C + i / P] = v
        }

        // Phase 2b: fine[c, i] = Σ_j (w_j/LH) Σ_p A_j[C+i, C+p] · cams[c, p], one map at a time.
        fineAcc.zero()
        patchAttention?.zero()
        let fineWorkers = patchAttention == nil ? workers : 1
        Parallel.forEach(fineWorkers) { w in
            let product = blockProduct[w].data
            for j in stride(from: w, to: L * NH, by: fineWorkers) {
                let l = j / NH, h = j % NH
                let coef = self.weightsValue(fusion, head: h, layer: l) * invChannels
                let qkv = qkvStore[keep ? 0 : l]
                let inv = self.inverseSumRow(inverseSums, keep: keep, layer: l, head: h, worker: w)
                for r0 in stride(from: C, to: N, by: Self.rowBlock) {
                    let rows = min(Self.rowBlock, N - r0)
                    let s = self.attentionBlock(attn, keep: keep, layer: l, head: h, worker: w, firstRow: r0)
                    if !keep {   // recompute this block of map (l, h) from the stored Q and K
                        BLAS.gemm(transB: true, m: rows, n: N, k: hd, alpha: scale,
                                  a: qkv.data + r0 * 3 * D + h * hd, lda: 3 * D,
                                  b: qkv.data + D + h * hd, ldb: 3 * D, c: s, ldc: N)
                        WeakTrKernels.expRows(s, rows: rows, n: N, stride: N, inverseSums: inv + r0)
                    }
                    // product[i, c] = Σ_p E[r0+i, C+p] · cams[c, p]; then × w_j/LH · 1/Σ_i.
                    BLAS.gemm(m: rows, n: C, k: P, a: s + C, lda: N, b: camsT.data, ldb: C,
                              c: product, ldc: C)
                    let acc = fineAcc[w].data + (r0 - C) * C
                    for i in 0..<rows {
                        BLAS.axpy(count: C, alpha: coef * inv[r0 + i], x: product + i * C, y: acc + i * C)
                    }
                    if let pa = patchAttention {
                        for i in 0..<rows {
                            BLAS.axpy(count: P, alpha: coef * inv[r0 + i], x: s + i * N + C,
                                      y: pa.data + (r0 - C + i) * P)
                        }
                    }
                }
            }
        }
        for w in 1..<max(fineWorkers, 1) { add(fineAcc[w].data, into: fineAcc[0].data, count: P * C) }
        for c in 0..<C {
            var m: Float = 0
            for p in 0..<P {
                let v = fineAcc[0].data[p * C + c]
                fine.data[c * P + p] = v
                m += v
            }
            predictions.data[2 * C + c] = m / Float(P)
        }
        return WeakTrOutput(patchRows: hp, patchColumns: wp, cams: cams, fineCAM: fine, logits: logits,
                            patchAttention: patchAttention, classTokenPrediction: predictions[0],
                            coarseCAMPrediction: predictions[1], fineCAMPrediction: predictions[2],
                            fusionWeights: fusion)
    }

    @inline(__always)
    private func weightsValue(_ fusion: TensorView, head h: Int, layer l: Int) -> Float {
        fusion.data[h * config.depth + l]
    }

    /// Rows per block of an attention map when it is not kept whole.
    static let rowBlock = 128

    /// Where rows firstRow… of map (l, h) go: the map's own slot when kept, else the worker's
    /// block scratch.
    @inline(__always)
    private func attentionBlock(_ attn: TensorView, keep: Bool, layer l: Int, head h: Int, worker w: Int,
                                firstRow: Int) -> UnsafeMutablePointer<Float> {
        let rows = attn.shape[1], n = attn.shape[2]
        if keep {
            return attn.data + (l * config.headCount + h) * rows * n + firstRow * n
        }
        return attn.data + w * rows * n
    }

    /// The 1/Σexp row of map (l, h): kept per map (keep) or per worker (recompute).
    @inline(__always)
    private func inverseSumRow(_ sums: TensorView, keep: Bool, layer l: Int, head h: Int, worker w: Int) -> UnsafeMutablePointer<Float> {
        let slot = keep ? l * config.headCount + h : w
        return sums.data + slot * sums.shape[1]
    }

    /// y[rows, out] = x[rows, in] · Wᵀ + b, W: [out, in] (PyTorch layout).
    private func linear(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: Tensor, bias: Tensor,
                        into y: UnsafeMutablePointer<Float>, outFeatures: Int) {
        WeakTrKernels.broadcastRows(bias.data, into: y, rows: rows, d: outFeatures)
        BLAS.gemm(transB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
                  b: weight.data, ldb: inFeatures, beta: 1, c: y, ldc: outFeatures)
    }

    private func add(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        BLAS.axpy(count: count, alpha: 1, x: src, y: dst)
    }

    /// Patch embedding, class tokens and position embedding (spec §2.1.3) into x: [N, D].
    private func embed(_ image: TensorView, hp: Int, wp: Int, x: TensorView, im2col: TensorView,
                       posPlanes: TensorView, posResized: TensorView) {
        let C = config.classCount, D = config.embedDimension, P = hp * wp
        let H = image.shape[1], W = image.shape[2]
        let K = 3 * 16 * 16
        let cols = im2col.data
        for py in 0..<hp {
            for px in 0..<wp {
                let dst = cols + (py * wp + px) * K
                for c in 0..<3 {
                    for ky in 0..<16 {
                        (dst + c * 256 + ky * 16).update(from: image.data + (c * H + py * 16 + ky) * W + px * 16, count: 16)
                    }
                }
            }
        }
        let patchRows = x.data + C * D
        linear(cols, rows: P, inFeatures: K, weight: weights.patchWeight, bias: weights.patchBias,
               into: patchRows, outFeatures: D)
        x.data.update(from: weights.classToken.data, count: C * D)
        let pos = weights.positionEmbedding.data
        BLAS.axpy(count: C * D, alpha: 1, x: pos, y: x.data)
        let g = config.gridSide
        if P == g * g && H == W {
            BLAS.axpy(count: P * D, alpha: 1, x: pos + C * D, y: patchRows)
            return
        }
        // Resize the g×g patch part with torch bicubic at scale factors ((hp+0.1)/g, (wp+0.1)/g).
        for t in 0..<(g * g) {
            for d in 0..<D { posPlanes.data[d * g * g + t] = pos[(C + t) * D + d] }
        }
        WeakTrKernels.bicubicTorch(posPlanes.data, channels: D, inH: g, inW: g, posResized.data, outH: hp, outW: wp,
                                   scaleH: (Double(hp) + 0.1) / Double(g), scaleW: (Double(wp) + 0.1) / Double(g))
        for p in 0..<P {
            for d in 0..<D { patchRows[p * D + d] += posResized.data[d * P + p] }
        }
    }

    /// Rows [start, start + length) of chunk w when `count` rows are split over `workers`.
    @inline(__always)
    static func chunk(_ w: Int, of workers: Int, count: Int) -> (start: Int, length: Int) {
        let lo = count * w / workers, hi = count * (w + 1) / workers
        return (lo, hi - lo)
    }

    /// Max or sum over `rows` token rows of o, per channel (part of the spec §2.1.4 pooling).
    private func poolTokens(_ o: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        let D = config.embedDimension
        if rows == 0 {
            out.update(repeating: config.pooling == .max ? -.infinity : 0, count: D)
            return
        }
        out.update(from: o, count: D)
        for n in 1..<rows {
            let row = o + n * D
            if config.pooling == .max {
                for d in 0..<D { out[d] = max(out[d], row[d]) }
            } else {
                for d in 0..<D { out[d] += row[d] }
            }
        }
    }

    /// Max of the chunk maxima, or the chunk sums divided by the token count.
    private func combinePools(_ partial: TensorView, workers: Int, tokens: Int, into out: TensorView) {
        let D = config.embedDimension
        out.data.update(from: partial.data, count: D)
        for w in 1..<max(workers, 1) {
            let p = partial.data + w * D
            for d in 0..<D { out.data[d] = config.pooling == .max ? max(out.data[d], p[d]) : out.data[d] + p[d] }
        }
        if config.pooling == .avg { for d in 0..<D { out.data[d] /= Float(tokens) } }
    }

    /// AAF weights w: [L·H] from the pooled features (spec §2.1.4, channel interleave of trap 23:
    /// channel j = g·L + l reads o_l[:, d·H + g] for d = 0..<hd).
    private func aafWeights(pooled: TensorView, scratch: TensorView, into w: TensorView) {
        let L = config.depth, NH = config.headCount, hd = config.headDimension
        let fh = config.featureHidden, ch = config.channelCount, hidden = config.channelHidden
        let s = scratch.data, f = s + ch, z = f + hd, u = z + fh     // [ch], [hd], [fh], [hidden]
        for g in 0..<NH {
            for l in 0..<L {
                for d in 0..<hd { f[d] = pooled.data[l * config.embedDimension + d * NH + g] }
                for k in 0..<fh {
                    var acc = weights.featureDownBias.data[k]
                    for d in 0..<hd { acc += weights.featureDown.data[k * hd + d] * f[d] }
                    z[k] = acc
                }
                var out = weights.featureOutBias.data[0]
                for k in 0..<fh { out += weights.featureOut.data[k] * z[k] }
                s[g * L + l] = out
            }
        }
        for k in 0..<hidden {
            var acc: Float = 0
            for j in 0..<ch { acc += weights.channelDown.data[k * ch + j] * s[j] }
            u[k] = max(acc, 0)
        }
        for j in 0..<ch {
            var acc: Float = 0
            for k in 0..<hidden { acc += weights.channelUp.data[j * hidden + k] * u[k] }
            w.data[j] = 1 / (1 + Foundation.exp(-acc))
        }
    }

    /// Conv2d(D → C, 3×3, pad 1) on the patch tokens as nine shifted GEMMs over a zero-padded grid.
    private func head(_ x: TensorView, hp: Int, wp: Int, padded: TensorView, temp: TensorView, logits: TensorView) {
        let C = config.classCount, D = config.embedDimension
        let pw = wp + 2
        // (hp+2)·(wp+2) rows plus 2 zero rows read past the end by the last taps.
        let pad = padded.data
        pad.update(repeating: 0, count: ((hp + 2) * pw + 2) * D)
        for y in 0..<hp {
            (pad + ((y + 1) * pw + 1) * D).update(from: x.data + (C + y * wp) * D, count: wp * D)
        }
        WeakTrKernels.broadcastRows(weights.headBias.data, into: temp.data, rows: hp * pw, d: C)
        for ky in 0..<3 {
            for kx in 0..<3 {
                BLAS.gemm(transB: true, m: hp * pw, n: C, k: D, a: pad + (ky * pw + kx) * D, lda: D,
                          b: weights.headTaps.data + (ky * 3 + kx) * C * D, ldb: D, beta: 1, c: temp.data, ldc: C)
            }
        }
        for y in 0..<hp {
            for xx in 0..<wp {
                for c in 0..<C { logits.data[(c * hp + y) * wp + xx] = temp.data[(y * pw + xx) * C + c] }
            }
        }
    }

    /// Workspace sizes for one grid.
    private struct Layout {
        let total: Int
        let qkvLayers: Int
        let attentionSlots: Int
        let attentionRows: Int
        let inverseSumSlots: Int
        let grid: Int
        let hiddenFloats: Int
        let aafScratchFloats: Int

        init(config: WeakTrConfig, hp: Int, wp: Int, keep: Bool, workers: Int, patchAttention: Bool) {
            let C = config.classCount, D = config.embedDimension, L = config.depth, NH = config.headCount
            let P = hp * wp, N = C + P
            grid = config.gridSide
            qkvLayers = keep ? 1 : L
            attentionSlots = keep ? L * NH : workers
            attentionRows = keep ? N : min(N, WeakTr.rowBlock)
            inverseSumSlots = keep ? L * NH : workers
            func r(_ n: Int) -> Int { (n + 15) & ~15 }
            hiddenFloats = max(N * config.mlpHidden, P * 768, ((hp + 2) * (wp + 2) + 2) * D)
            var t = 3 * r(N * D) + r(hiddenFloats) + r(qkvLayers * N * 3 * D) + r(attentionSlots * attentionRows * N) + r(inverseSumSlots * N)
            t += r(L * NH * C * N) + r(L * D) + r(workers * D) + r(D * grid * grid) + r(D * P) + r(hp * (wp + 2) * C)
            t += 4 * r(C * P) + r(P * C) + r(workers * P * C) + r(workers * WeakTr.rowBlock * C) + r(L * NH) + r(3 * C)
            aafScratchFloats = config.channelCount + config.headDimension + config.featureHidden + config.channelHidden
            t += r(aafScratchFloats)
            if patchAttention { t += r(P * P) }
            total = t
        }
    }
}
