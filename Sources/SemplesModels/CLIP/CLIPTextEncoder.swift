import SemplesEngine

/// CLIP's text transformer (spec §2.3): token and positional embeddings, causal pre-norm blocks,
/// ln_final, the feature at the EOT position through `text_projection`.
///
/// Causality means positions after the EOT cannot change the EOT feature, so each batch runs
/// only up to its last EOT position (spec §2.3, "causality note").
public struct CLIPTextEncoder {
    public let config: CLIPConfig
    let tokenEmbedding: Parameter       // [V, W]
    let positionalEmbedding: Parameter  // [context, W]
    let blocks: [CLIPResidualBlock]
    let lnFinal: LayerNorm
    let textProjection: Parameter       // [W, E]

    init(_ store: ParameterStore, config c: CLIPConfig) {
        config = c
        let w = c.textWidth
        tokenEmbedding = store.declare("token_embedding.weight", [c.vocabularySize, w])
        positionalEmbedding = store.declare("positional_embedding", [c.contextLength, w])
        blocks = (0..<c.textLayers).map {
            CLIPResidualBlock(store, prefix: "transformer.resblocks.\($0).", width: w,
                              heads: c.textHeads, causal: true, eps: c.layerNormEpsilon)
        }
        lnFinal = LayerNorm(weight: store.declare("ln_final.weight", [w]),
                            bias: store.declare("ln_final.bias", [w]), eps: c.layerNormEpsilon)
        textProjection = store.declare("text_projection", [w, c.embedDimension])
    }

    /// What forward keeps for backward.
    public struct Pass {
        let batch: Int
        let tokens: Int               // positions run: max EOT index + 1
        let endPositions: EndPositions
        let blocks: CLIPResidualBlock.ActivationLayout?   // nil: not kept
        let endRows: TensorView       // [B, W] stream rows at the EOT positions
        let normed: TensorView        // [B, W]
        let mean, rstd: TensorView
        let keepsActivations: Bool
        /// The token ids the embeddings came from (`forward(ids:…)`), for the token-table gradient.
        var ids: [[Int32]]? = nil
    }

    /// Floats of arena memory for `batch` sequences run to `tokens` positions (including the
    /// embedded input `encode` allocates).
    public func arenaSize(batch B: Int, tokens T: Int, backward: Bool) -> Int {
        let W = config.textWidth, H = config.textHeads
        let perBlock = 4 * B * T * W + 4 * B * T + (B * T * 3 * W + B * H * T * T + B * T * W) + 2 * B * T * 4 * W
        let blockScratch = B * T * 3 * W + B * T * W + B * H * T * T + B * T * W + B * T * 4 * W
        var n = 3 * B * T * W + 3 * B * W + 2 * B
        n += perBlock * (backward ? blocks.count : 1)
        if backward { n += blockScratch + B * T * W + 2 * B * W }
        return n + n / 64 + 16 * (blocks.count * 20 + 40)
    }

    /// The EOT position of each id row: the index of its largest id (as the reference reads it).
    public static func endPositions(_ ids: [[Int32]]) -> [Int] {
        ids.map(endPosition)
    }

    /// The EOT position of one id row: the index of its largest id (the first, on ties).
    static func endPosition(_ row: [Int32]) -> Int {
        var best = 0
        for (i, id) in row.enumerated() where id > row[best] { best = i }  // first maximum
        return best
    }

    /// The EOT positions of a batch: given, or read off the token ids row by row when asked (no
    /// array is made for them in `encode` and `forward(ids:…)`, which run in training loops).
    enum EndPositions: CustomStringConvertible {
        case listed([Int])
        case ofIDs([[Int32]])

        var count: Int {
            switch self {
            case .listed(let positions): return positions.count
            case .ofIDs(let ids): return ids.count
            }
        }

        subscript(_ b: Int) -> Int {
            switch self {
            case .listed(let positions): return positions[b]
            case .ofIDs(let ids): return CLIPTextEncoder.endPosition(ids[b])
            }
        }

        /// Positions the batch runs: the last EOT position + 1 (1 for an empty batch).
        var tokens: Int {
            var last = 0
            for b in 0..<count { last = max(last, self[b]) }
            return last + 1
        }

        var description: String { "\((0..<count).map { self[$0] })" }
    }

    /// The token-embedding rows of `ids` ([B][context]) for positions 0..<tokens → [B, tokens, W].
    public func embed(_ ids: [[Int32]], tokens T: Int, into x: TensorView) {
        let W = config.textWidth, V = config.vocabularySize
        precondition(x.shape == Shape(ids.count, T, W), "text embed into \(x.shape), expected [\(ids.count), \(T), \(W)]")
        let table = tokenEmbedding.value.data
        for (b, row) in ids.enumerated() {
            for t in 0..<T {
                let id = Int(row[t])
                precondition(id >= 0 && id < V, "token id \(id) outside the vocabulary of \(V)")
                (x.data + (b * T + t) * W).update(from: table + id * W, count: W)
            }
        }
    }

    /// Features of tokenised texts: ids [B][context] → features [B, E].
    public func encode(_ ids: [[Int32]], into features: TensorView, arena: Arena) {
        let ends = EndPositions.ofIDs(ids)
        let T = ends.tokens
        let mark = arena.mark
        defer { arena.release(to: mark) }
        let x = arena.allocate(Shape(ids.count, T, config.textWidth))
        embed(ids, tokens: T, into: x)
        forward(embeddings: x, ends: ends, into: features, arena: arena, keepActivations: false)
    }

    /// Trainable forward of tokenised texts: ids [B][context] → features [B, E], keeping the
    /// activations and the ids, so that `backward(_:pass:embeddingsGradient: nil, arena:)` also
    /// reaches the token-embedding table. The embedded input is allocated in `arena`.
    @discardableResult
    public func forward(ids: [[Int32]], into features: TensorView, arena: Arena) -> Pass {
        let ends = EndPositions.ofIDs(ids)
        let T = ends.tokens
        let x = arena.allocate(Shape(ids.count, T, config.textWidth))
        embed(ids, tokens: T, into: x)
        var pass = forward(embeddings: x, ends: ends, into: features, arena: arena, keepActivations: true)
        pass.ids = ids
        return pass
    }

    /// embeddings: [B, T, W] token embeddings (positions are added here) → features [B, E], read
    /// at `endPositions` (each < T). The embeddings buffer becomes the residual stream and is
    /// overwritten. With `keepActivations` the pass supports `backward`.
    @discardableResult
    public func forward(embeddings x: TensorView, endPositions: [Int], into features: TensorView, arena: Arena,
                        keepActivations: Bool = false) -> Pass {
        forward(embeddings: x, ends: .listed(endPositions), into: features, arena: arena, keepActivations: keepActivations)
    }

    /// `forward(embeddings:endPositions:…)` with the positions as `EndPositions`.
    @discardableResult
    func forward(embeddings x: TensorView, ends endPositions: EndPositions, into features: TensorView, arena: Arena,
                 keepActivations: Bool) -> Pass {
        let c = config, B = x.shape[0], T = x.shape[1], W = c.textWidth, E = c.embedDimension
        precondition(x.shape == Shape(B, T, W) && T <= c.contextLength && endPositions.count == B
                     && (0..<B).allSatisfy({ endPositions[$0] >= 0 && endPositions[$0] < T })
                     && features.shape == Shape(B, E),
                     "CLIP text encoder: x \(x.shape), ends \(endPositions), features \(features.shape)")
        for b in 0..<B { add(positionalEmbedding.value.rows(0, T), into: x[b]) }
        let scratch = arena.allocate(Shape(B, T, W))
        let saved = CLIPResidualBlock.forward(blocks, x, scratch: scratch, arena: arena,
                                              batch: B, tokens: T, keepActivations: keepActivations)
        let endRows = arena.allocate(Shape(B, W))
        for b in 0..<B { endRows[b].copy(from: x[b][endPositions[b]]) }
        let normed = arena.allocate(Shape(B, W)), mean = arena.allocate(Shape(B)), rstd = arena.allocate(Shape(B))
        lnFinal.forward(endRows, into: normed, mean: mean, rstd: rstd)
        BLAS.gemm(m: B, n: E, k: W, a: normed.data, lda: W, b: textProjection.value.data, ldb: E,
                  beta: 0, c: features.data, ldc: E)
        return Pass(batch: B, tokens: T, endPositions: endPositions, blocks: saved, endRows: endRows,
                    normed: normed, mean: mean, rstd: rstd, keepsActivations: keepActivations)
    }

    /// dFeatures: [B, E] → dEmbeddings: [B, T, W] (+=) when given, the gradient w.r.t. the
    /// embeddings fed to forward. Weight gradients (blocks, ln_final, text_projection, positional
    /// embedding) accumulate when the store keeps them; the token-embedding table's gradient needs
    /// the ids: `backward(_:pass:ids:arena:)`.
    public func backward(_ dFeatures: TensorView, pass: Pass, embeddingsGradient dx: TensorView?, arena: Arena) {
        precondition(pass.keepsActivations, "CLIP text backward needs forward(keepActivations: true)")
        let B = pass.batch, T = pass.tokens, W = config.textWidth, E = config.embedDimension
        precondition(dFeatures.shape == Shape(B, E) && (dx == nil || dx!.shape == Shape(B, T, W)),
                     "CLIP text backward: dFeatures \(dFeatures.shape), dx \(dx.map { "\($0.shape)" } ?? "none")")
        let mark = arena.mark
        defer { arena.release(to: mark) }
        // features = normed · text_projection
        let dNormed = arena.allocate(Shape(B, W))
        BLAS.gemm(transB: true, m: B, n: W, k: E, a: dFeatures.data, lda: E, b: textProjection.value.data, ldb: E,
                  beta: 0, c: dNormed.data, ldc: W)
        if let g = textProjection.activeGrad {
            BLAS.gemm(transA: true, m: W, n: E, k: B, a: pass.normed.data, lda: W, b: dFeatures.data, ldb: E,
                      beta: 1, c: g.data, ldc: E)
        }
        let dEnd = arena.allocate(Shape(B, W))
        lnFinal.backward(dNormed, x: pass.endRows, mean: pass.mean, rstd: pass.rstd, dx: dEnd,
                         accumulate: false, parameterGradients: true)
        let dStream = arena.zeros(Shape(B, T, W))
        for b in 0..<B { dStream[b][pass.endPositions[b]].copy(from: dEnd[b]) }
        let scratch = blocks.first?.makeScratch(arena, batch: B, tokens: T)
        if let saved = pass.blocks {
            for i in stride(from: blocks.count - 1, through: 0, by: -1) {
                blocks[i].backward(dStream, saved: saved.activations(i, of: blocks[i]), scratch: scratch!)
            }
        }
        // x = embeddings + positions[0..<T]: the stream gradient is the embedding gradient, and
        // the positional rows collect it summed over the batch.
        if let g = positionalEmbedding.activeGrad {
            for b in 0..<B { add(dStream[b], into: g.rows(0, T)) }
        }
        if let dx { add(dStream, into: dx) }
        if let ids = pass.ids, let g = tokenEmbedding.activeGrad {
            // embed() copied table rows: scatter the stream gradient back onto them.
            let gp = g.data, sp = dStream.data
            for (b, row) in ids.enumerated() {
                for t in 0..<T { BLAS.axpy(count: W, alpha: 1, x: sp + (b * T + t) * W, y: gp + Int(row[t]) * W) }
            }
        }
    }
}
