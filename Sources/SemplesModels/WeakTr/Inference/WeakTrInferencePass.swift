import Foundation
import SemplesEngine

/// Where the L·H attention maps of an inference pass live while the AAF weights are not yet known
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

/// The backbone part of an inference workspace on an hp×wp grid, carved from the model's arena.
/// N = C + P tokens, P = hp·wp; `workers` row chunks (or heads) run in parallel.
struct WeakTrInferenceBuffers {
    let patchRows: Int               // hp
    let patchColumns: Int            // wp
    let workers: Int
    /// Whole attention maps kept for a second pass (else recomputed from Q and K).
    let keep: Bool
    let x: TensorView                // [N, D] residual stream
    let a: TensorView                // [N, D] LayerNorm output / concatenated heads
    let o: TensorView                // [N, D] attention output after proj ("feat")
    let hidden: TensorView           // [hiddenFloats] MLP hidden [N, F]; patch im2col; padded grid + head taps
    let qkv: TensorView              // [qkvLayers, N, 3D] (every layer's when the maps are recomputed)
    let attention: TensorView        // [slots, rows, N] exp-scores: every map (keep) or a row block per worker
    let inverseSums: TensorView      // [slots, N] 1/Σexp per query row
    let classRows: TensorView        // [L, H, C, N] softmax rows of the class-token queries
    let pooled: TensorView           // [L, D] AAF token pooling of o_l
    let poolPartial: TensorView      // [workers, D]
    let positionPlanes: TensorView   // [D, g, g]
    let positionResized: TensorView  // [D, hp, wp]

    /// Rows per block of an attention map when it is not kept whole.
    static let rowBlock = 128

    struct Sizes {
        let qkvLayers, slots, rows, hiddenFloats: Int
        init(config c: WeakTrConfig, hp: Int, wp: Int, keep: Bool, secondPass: Bool, workers: Int) {
            let N = c.classCount + hp * wp, D = c.embedDimension
            qkvLayers = keep || !secondPass ? 1 : c.depth
            slots = keep ? c.depth * c.headCount : workers
            rows = keep ? N : min(N, rowBlock)
            let padded = ((hp + 2) * (wp + 2) + 2) * D
            hiddenFloats = max(N * c.mlpHidden, hp * wp * 3 * c.patchSize * c.patchSize, padded + 9 * c.classCount * D)
        }
    }

    /// Floats of arena these buffers take.
    static func floats(config c: WeakTrConfig, hp: Int, wp: Int, keep: Bool, secondPass: Bool, workers: Int) -> Int {
        func r(_ n: Int) -> Int { (n + 15) & ~15 }
        let s = Sizes(config: c, hp: hp, wp: wp, keep: keep, secondPass: secondPass, workers: workers)
        let C = c.classCount, D = c.embedDimension, L = c.depth, NH = c.headCount, P = hp * wp, N = C + P
        let g = c.gridSide
        return 3 * r(N * D) + r(s.hiddenFloats) + r(s.qkvLayers * N * 3 * D) + r(s.slots * s.rows * N) + r(s.slots * N)
            + r(L * NH * C * N) + r(L * D) + r(workers * D) + r(D * g * g) + r(D * P)
    }

    init(_ a: Arena, config c: WeakTrConfig, hp: Int, wp: Int, keep: Bool, secondPass: Bool, workers: Int) {
        let s = Sizes(config: c, hp: hp, wp: wp, keep: keep, secondPass: secondPass, workers: workers)
        let C = c.classCount, D = c.embedDimension, L = c.depth, NH = c.headCount, P = hp * wp, N = C + P
        patchRows = hp
        patchColumns = wp
        self.workers = workers
        self.keep = keep
        x = a.allocate(Shape(N, D))
        self.a = a.allocate(Shape(N, D))
        o = a.allocate(Shape(N, D))
        hidden = a.allocate(Shape(s.hiddenFloats))
        qkv = a.allocate(Shape(s.qkvLayers, N, 3 * D))
        attention = a.allocate(Shape(s.slots, s.rows, N))
        inverseSums = a.allocate(Shape(s.slots, N))
        classRows = a.allocate(Shape(L, NH, C, N))
        pooled = a.allocate(Shape(L, D))
        poolPartial = a.allocate(Shape(workers, D))
        positionPlanes = a.allocate(Shape(D, c.gridSide, c.gridSide))
        positionResized = a.allocate(Shape(D, hp, wp))
    }

    /// Rows firstRow ..< firstRow + rows of map (l, h): in the map's own slot when kept, else in
    /// the worker's block.
    func scores(layer l: Int, head h: Int, headCount: Int, worker w: Int, firstRow: Int, rows: Int) -> TensorView {
        let n = attention.shape[2]
        if keep { return attention[l * headCount + h].slice(offset: firstRow * n, Shape(rows, n)) }
        return attention[w].slice(offset: 0, Shape(rows, n))
    }

    /// The 1/Σexp row of map (l, h): kept per map, or per worker when recomputing.
    func inverseSums(layer l: Int, head h: Int, headCount: Int, worker w: Int) -> TensorView {
        inverseSums[keep ? l * headCount + h : w]
    }
}

extension WeakTr {
    /// Workers of an inference pass: row chunks for the token-wise layers, heads for attention.
    var inferenceWorkers: Int { max(1, min(Parallel.threads, config.headCount)) }

    /// Rows [start, start + length) of chunk w when `count` rows are split over `workers`.
    @inline(__always)
    static func chunk(_ w: Int, of workers: Int, count: Int) -> (start: Int, length: Int) {
        let lo = count * w / workers, hi = count * (w + 1) / workers
        return (lo, hi - lo)
    }

    /// The backbone in inference mode (spec §2.1.2–2.1.3) on one image [3, H, W]: embedding and
    /// the L blocks, no activations kept for backward. Per layer it keeps the class-query softmax
    /// rows, the AAF token pooling of the attention output, and Q/K (recompute) or the exp-scores
    /// themselves (keep). `dropPathScales` ([2·L]: attention and MLP branch of each block) is
    /// train-mode DropPath; nil is eval mode. `patchColumns` [L·H, N, P], when given, receives the
    /// normalised key columns C..<N of every map, channel j = h·L + l.
    func inferenceBackbone(_ image: TensorView, _ b: WeakTrInferenceBuffers, dropPathScales: [Float]?,
                           patchColumns: TensorView?) {
        let c = config, C = c.classCount, D = c.embedDimension, L = c.depth, NH = c.headCount
        let hd = c.headDimension, F = c.mlpHidden
        let P = b.patchRows * b.patchColumns, N = C + P
        let workers = b.workers
        precondition(dropPathScales == nil || dropPathScales!.count == 2 * L, "DropPath scales: \(2 * L) expected")
        embed(image, b)
        let x = b.x, a = b.a, o = b.o, hidden = b.hidden.slice(offset: 0, Shape(N, F))
        let scale = 1 / Float(hd).squareRoot()
        for l in 0..<L {
            let block = blocks[l]
            let qkv = b.qkv[b.qkv.shape[0] == 1 ? 0 : l]   // [N, 3D]
            let attentionScale = dropPathScales?[2 * l] ?? 1, mlpScale = dropPathScales?[2 * l + 1] ?? 1
            // Token-wise work runs on row chunks, one per worker, each with single-threaded GEMMs:
            // as fast as threaded BLAS on these shapes, without its idle spinning.
            Parallel.forEach(workers, InferenceQKVRows(block: block, x: x, a: a, qkv: qkv, workers: workers, N: N))
            Parallel.forEach(workers, InferenceAttentionHeads(b: b, a: a, qkv: qkv, patchColumns: patchColumns, l: l, L: L,
                                                              NH: NH, hd: hd, C: C, N: N, P: P, D: D, workers: workers,
                                                              scale: scale))
            Parallel.forEach(workers, InferenceTokenRows(c: c, block: block, b: b, x: x, a: a, o: o, hidden: hidden,
                                                         workers: workers, N: N, D: D, F: F,
                                                         attentionScale: attentionScale, mlpScale: mlpScale))
            AdaptiveAttentionFusion.combinePools(b.poolPartial, tokens: N, pooling: c.pooling, into: b.pooled[l])
        }
    }

    /// s = exp(scale·Q[firstRow…]·Kᵀ − rowmax) for one head, and 1/Σ of each row: the softmax of
    /// rows firstRow ..< firstRow + rows of its attention map without the normalising pass.
    /// qkv: [N, 3D], s: [rows, N], inverseSums: [rows].
    static func attentionScores(_ qkv: TensorView, head h: Int, headDimension hd: Int, firstRow r0: Int, scale: Float,
                                into s: TensorView, inverseSums: TensorView) {
        let D = qkv.shape[1] / 3, N = s.shape[1]
        BLAS.gemm(transB: true, m: s.shape[0], n: N, k: hd, alpha: scale, a: qkv.data + r0 * 3 * D + h * hd, lda: 3 * D,
                  b: qkv.data + D + h * hd, ldb: 3 * D, c: s.data, ldc: N)
        Softmax.exponentiate(s, inverseSums: inverseSums)
    }

    /// Patch embedding, class tokens and position embedding (spec §2.1.3) into b.x: [N, D].
    private func embed(_ image: TensorView, _ b: WeakTrInferenceBuffers) {
        let C = config.classCount, hp = b.patchRows, wp = b.patchColumns, P = hp * wp
        let H = image.shape[1], W = image.shape[2]
        let columns = b.hidden.slice(offset: 0, patchEmbed.columnMatrixShape(batch: 1, height: H, width: W))
        patchEmbed.forwardTokens(image.reshaped(Shape(1, 3, H, W)), into: b.x.rows(C, P), columns: columns)
        addTokenEmbeddings(b.x, patchRows: hp, patchColumns: wp, square: H == W, planes: b.positionPlanes,
                           resized: b.positionResized)
    }

    /// x: [N, D] with the patch embeddings in rows C..<N: writes the class tokens into rows 0..<C
    /// and adds the position embedding, as is on the checkpoint's square grid, else with its patch
    /// part resized by torch bicubic at scale factors ((hp+0.1)/g, (wp+0.1)/g) (spec §2.1.3).
    /// planes: [D, g, g] and resized: [D, hp, wp] are scratch (unused on the checkpoint's grid).
    func addTokenEmbeddings(_ x: TensorView, patchRows hp: Int, patchColumns wp: Int, square: Bool,
                            planes: TensorView?, resized: TensorView?) {
        let C = config.classCount, D = config.embedDimension, P = hp * wp, g = config.gridSide
        let pos = positionEmbedding.value.data, patchRows = x.data + C * D
        x.data.update(from: classToken.value.data, count: C * D)
        BLAS.axpy(count: C * D, alpha: 1, x: pos, y: x.data)
        if P == g * g && square {
            BLAS.axpy(count: P * D, alpha: 1, x: pos + C * D, y: patchRows)
            return
        }
        guard let planes, let resized else { preconditionFailure("position resize to \(hp)×\(wp) needs scratch planes") }
        for t in 0..<(g * g) {
            for d in 0..<D { planes.data[d * g * g + t] = pos[(C + t) * D + d] }
        }
        Resize.bicubic(planes, into: resized, scaleFactors: ((Double(hp) + 0.1) / Double(g), (Double(wp) + 0.1) / Double(g)))
        for p in 0..<P {
            for d in 0..<D { patchRows[p * D + d] += resized.data[d * P + p] }
        }
    }
}

extension WeakTr {
    /// One layer's norm1 and qkv projection of `inferenceBackbone`, a row chunk per worker.
    private struct InferenceQKVRows: IndexKernel {
        let block: TransformerBlock
        let x: TensorView, a: TensorView, qkv: TensorView
        let workers: Int, N: Int

        func run(_ w: Int) {
            let (r0, rows) = WeakTr.chunk(w, of: workers, count: N)
            guard rows > 0 else { return }
            block.norm1.forward(x.rows(r0, rows), into: a.rows(r0, rows))
            block.attention.qkv.forward(a.rows(r0, rows), into: qkv.rows(r0, rows))
        }
    }

    /// One layer's attention of `inferenceBackbone`, heads spread over the workers.
    private struct InferenceAttentionHeads: IndexKernel {
        let b: WeakTrInferenceBuffers
        let a: TensorView, qkv: TensorView
        let patchColumns: TensorView?
        let l: Int, L: Int, NH: Int, hd: Int, C: Int, N: Int, P: Int, D: Int, workers: Int
        let scale: Float

        func run(_ w: Int) {
            for h in stride(from: w, to: NH, by: workers) {
                // Row blocks of the N×N map stay in cache between the score GEMM, the exp and
                // the A·V GEMM; the softmax's 1/Σ is applied to the A·V rows.
                let inverse = b.inverseSums(layer: l, head: h, headCount: NH, worker: w)
                for r0 in stride(from: 0, to: N, by: WeakTrInferenceBuffers.rowBlock) {
                    let rows = min(WeakTrInferenceBuffers.rowBlock, N - r0)
                    let s = b.scores(layer: l, head: h, headCount: NH, worker: w, firstRow: r0, rows: rows)
                    WeakTr.attentionScores(qkv, head: h, headDimension: hd, firstRow: r0, scale: scale, into: s,
                                           inverseSums: inverse.slice(offset: r0, Shape(rows)))
                    let out = a.data + r0 * D + h * hd
                    BLAS.gemm(m: rows, n: hd, k: N, a: s.data, lda: N, b: qkv.data + 2 * D + h * hd, ldb: 3 * D,
                              c: out, ldc: D)
                    for i in 0..<rows {
                        let inv = inverse.data[r0 + i]
                        BLAS.scale(count: hd, alpha: inv, x: out + i * D)
                        if r0 + i < C {   // keep the class-query rows, normalised
                            let dst = b.classRows.data + ((l * NH + h) * C + r0 + i) * N
                            dst.update(from: s.data + i * N, count: N)
                            BLAS.scale(count: N, alpha: inv, x: dst)
                        }
                        if let columns = patchColumns {
                            let dst = columns.data + ((h * L + l) * N + r0 + i) * P
                            dst.update(from: s.data + i * N + C, count: P)
                            BLAS.scale(count: P, alpha: inv, x: dst)
                        }
                    }
                }
            }
        }
    }

    /// One layer's attention projection, pooling, residuals and MLP of `inferenceBackbone`, a row
    /// chunk per worker.
    private struct InferenceTokenRows: IndexKernel {
        let c: WeakTrConfig
        let block: TransformerBlock
        let b: WeakTrInferenceBuffers
        let x: TensorView, a: TensorView, o: TensorView, hidden: TensorView
        let workers: Int, N: Int, D: Int, F: Int
        let attentionScale: Float, mlpScale: Float

        func run(_ w: Int) {
            let (r0, rows) = WeakTr.chunk(w, of: workers, count: N)
            let xr = x.rows(r0, rows), ar = a.rows(r0, rows), or = o.rows(r0, rows), hr = hidden.rows(r0, rows)
            guard rows > 0 else {   // no rows: the pooling's identity
                AdaptiveAttentionFusion.poolRows(or, pooling: c.pooling, into: b.poolPartial[w])
                return
            }
            block.attention.projection.forward(ar, into: or)
            AdaptiveAttentionFusion.poolRows(or, pooling: c.pooling, into: b.poolPartial[w])
            BLAS.axpy(count: rows * D, alpha: attentionScale, x: or.data, y: xr.data)
            block.norm2.forward(xr, into: ar)
            block.fc1.forward(ar, into: hr)
            block.configuration.activation.forward(hr, into: hr)
            // x += s·fc2(h): bias first, then a beta = 1 GEMM straight into the residual stream.
            let fc2 = block.fc2
            for r in 0..<rows { BLAS.axpy(count: D, alpha: mlpScale, x: fc2.bias!.value.data, y: xr.data + r * D) }
            BLAS.gemm(transB: true, m: rows, n: D, k: F, alpha: mlpScale, a: hr.data, lda: F,
                      b: fc2.weight.value.data, ldb: F, beta: 1, c: xr.data, ldc: D)
        }
    }
}
