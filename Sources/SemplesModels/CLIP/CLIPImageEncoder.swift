import SemplesEngine

/// CLIP's vision transformer (spec §2.2): patch conv without bias, class token, positional
/// embedding, ln_pre, pre-norm blocks, ln_post on the class token, `proj`.
/// The input is used as given: no CLIP normalisation (spec §2.2, trap 2).
public struct CLIPImageEncoder {
    public let config: CLIPConfig
    let patchWeight: Parameter          // visual.conv1.weight [W, 3, P, P]
    let classEmbedding: Parameter       // [W]
    let positionalEmbedding: Parameter  // [G²+1, W]
    let lnPre: LayerNorm
    let blocks: [CLIPResidualBlock]
    let lnPost: LayerNorm
    let projection: Parameter           // visual.proj [W, E]

    init(_ store: ParameterStore, config c: CLIPConfig) {
        config = c
        let w = c.visionWidth
        classEmbedding = store.declare("visual.class_embedding", [w])
        positionalEmbedding = store.declare("visual.positional_embedding", [c.imageTokens, w])
        projection = store.declare("visual.proj", [w, c.embedDimension])
        patchWeight = store.declare("visual.conv1.weight", [w, 3, c.patchSize, c.patchSize])
        lnPre = LayerNorm(weight: store.declare("visual.ln_pre.weight", [w]),
                          bias: store.declare("visual.ln_pre.bias", [w]), eps: c.layerNormEpsilon)
        blocks = (0..<c.visionLayers).map {
            CLIPResidualBlock(store, prefix: "visual.transformer.resblocks.\($0).", width: w,
                              heads: c.visionHeads, causal: false, eps: c.layerNormEpsilon)
        }
        lnPost = LayerNorm(weight: store.declare("visual.ln_post.weight", [w]),
                           bias: store.declare("visual.ln_post.bias", [w]), eps: c.layerNormEpsilon)
    }

    /// What forward keeps for backward (all views into the caller's arena).
    public struct Pass {
        let batch: Int
        let patches: TensorView     // [B·G², 3·P·P] im2col of the input
        let embedded: TensorView    // [B, T, W] tokens + positions, before ln_pre
        let preMean, preRstd: TensorView
        let stream: TensorView      // [B, T, W] residual stream (the final block output at the end)
        let blocks: CLIPResidualBlock.ActivationLayout?  // all blocks but the last (nil: not kept)
        let last: CLIPResidualBlock.ClassTokenActivations?
        let classTokens: TensorView // [B, W] the encoder output at token 0
        let postNormed: TensorView  // [B, W]
        let postMean, postRstd: TensorView
        let scratch: TensorView     // [B, T, W]
        let keepsActivations: Bool
    }

    /// Floats of arena memory one forward (and its backward) needs at this batch size.
    public func arenaSize(batch B: Int, backward: Bool) -> Int {
        let c = config, T = c.imageTokens, W = c.visionWidth, P = c.patchSize, H = c.visionHeads
        let perBlock = 4 * B * T * W + 4 * B * T + (B * T * 3 * W + B * H * T * T + B * T * W) + 2 * B * T * 4 * W
        let blockScratch = B * T * 3 * W + B * T * W + B * H * T * T + B * T * W + B * T * 4 * W
        var n = B * c.grid * c.grid * (3 * P * P + W) + 3 * B * T * W + 2 * B * T + 4 * B * W + 2 * B
        // Kept activations per block (the class-token block needs less than a full one), or one
        // shared set plus the class-token block's; backward adds both kinds of scratch.
        n += perBlock * (backward ? blocks.count : 2)
        if backward { n += 2 * blockScratch + B * T * W + B * c.grid * c.grid * 3 * P * P + 2 * B * W }
        return n + n / 64 + 16 * (blocks.count * 20 + 40)  // margin and 16-float alignment padding
    }

    /// images: [B, 3, R, R] → features: [B, E] (not normalised). With `keepActivations` the
    /// returned pass supports `backward`; otherwise block buffers are reused.
    @discardableResult
    public func forward(_ images: TensorView, into features: TensorView, arena: Arena,
                        keepActivations: Bool = false) -> Pass {
        let c = config, B = images.shape[0], R = c.imageResolution, P = c.patchSize, G = c.grid
        let T = c.imageTokens, W = c.visionWidth, E = c.embedDimension
        precondition(images.shape == Shape(B, 3, R, R) && features.shape == Shape(B, E),
                     "CLIP image encoder: images \(images.shape), features \(features.shape) for \(R)px, \(E)-d")
        let patches = arena.allocate(Shape(B * G * G, 3 * P * P))
        im2col(images, into: patches)
        let embedded = arena.allocate(Shape(B, T, W))
        // Patch conv: rows 1… of every image; row 0 is the class token.
        let patchOut = arena.allocate(Shape(B * G * G, W))
        BLAS.gemm(transB: true, m: B * G * G, n: W, k: 3 * P * P, a: patches.data, lda: 3 * P * P,
                  b: patchWeight.value.data, ldb: 3 * P * P, beta: 0, c: patchOut.data, ldc: W)
        let pos = positionalEmbedding.value.data, cls = classEmbedding.value.data
        for b in 0..<B {
            let e = embedded.data + b * T * W
            for j in 0..<W { e[j] = cls[j] + pos[j] }
            let src = patchOut.data + b * G * G * W
            for i in 0..<(G * G * W) { e[W + i] = src[i] + pos[W + i] }
        }
        let stream = arena.allocate(Shape(B, T, W))
        let preMean = arena.allocate(Shape(B * T)), preRstd = arena.allocate(Shape(B * T))
        lnPre.forward(embedded, into: stream, mean: preMean, rstd: preRstd)
        let scratch = arena.allocate(Shape(B, T, W))
        let saved = CLIPResidualBlock.forward(blocks.dropLast(), stream, scratch: scratch, arena: arena,
                                              batch: B, tokens: T, keepActivations: keepActivations)
        // Only token 0 leaves the encoder: the last block runs for the class token alone.
        let classTokens = arena.allocate(Shape(B, W))
        var last: CLIPResidualBlock.ClassTokenActivations?
        if let block = blocks.last {
            let a = block.makeClassTokenActivations(arena, batch: B, tokens: T)
            block.forwardClassToken(stream, into: classTokens, saved: a)
            last = a
        } else {
            for b in 0..<B { classTokens[b].copy(from: stream[b][0]) }
        }
        let postNormed = arena.allocate(Shape(B, W))
        let postMean = arena.allocate(Shape(B)), postRstd = arena.allocate(Shape(B))
        lnPost.forward(classTokens, into: postNormed, mean: postMean, rstd: postRstd)
        BLAS.gemm(m: B, n: E, k: W, a: postNormed.data, lda: W, b: projection.value.data, ldb: E,
                  beta: 0, c: features.data, ldc: E)
        return Pass(batch: B, patches: patches, embedded: embedded, preMean: preMean, preRstd: preRstd,
                    stream: stream, blocks: saved, last: last, classTokens: classTokens, postNormed: postNormed,
                    postMean: postMean, postRstd: postRstd, scratch: scratch, keepsActivations: keepActivations)
    }

    /// dFeatures: [B, E] → dImages: [B, 3, R, R] (+=) when given. Weight gradients accumulate
    /// (+=) when the store keeps them (a trainable CLIP, `CLIPModel(config:trainable: true)`); a
    /// frozen CLIP forms the input gradient only.
    public func backward(_ dFeatures: TensorView, pass: Pass, imagesGradient dImages: TensorView?, arena: Arena) {
        precondition(pass.keepsActivations, "CLIP image backward needs forward(keepActivations: true)")
        let c = config, B = pass.batch, P = c.patchSize, G = c.grid, T = c.imageTokens, W = c.visionWidth
        let E = c.embedDimension
        precondition(dFeatures.shape == Shape(B, E)
                     && (dImages == nil || dImages!.count == B * 3 * c.imageResolution * c.imageResolution),
                     "CLIP image backward: dFeatures \(dFeatures.shape), dImages \(dImages.map { "\($0.shape)" } ?? "none")")
        let mark = arena.mark
        defer { arena.release(to: mark) }
        // features = postNormed · proj  ⇒  dPostNormed = dFeatures · projᵀ, dProj += postNormedᵀ · dFeatures
        let dPost = arena.allocate(Shape(B, W))
        BLAS.gemm(transB: true, m: B, n: W, k: E, a: dFeatures.data, lda: E, b: projection.value.data, ldb: E,
                  beta: 0, c: dPost.data, ldc: W)
        if let g = projection.activeGrad {
            BLAS.gemm(transA: true, m: W, n: E, k: B, a: pass.postNormed.data, lda: W, b: dFeatures.data, ldb: E,
                      beta: 1, c: g.data, ldc: E)
        }
        let dClass = arena.allocate(Shape(B, W))
        lnPost.backward(dPost, x: pass.classTokens, mean: pass.postMean, rstd: pass.postRstd, dx: dClass,
                        accumulate: false, parameterGradients: true)
        let dStream = arena.allocate(Shape(B, T, W))
        if let block = blocks.last, let saved = pass.last {
            let scratch = block.makeClassTokenScratch(arena, batch: B, tokens: T)
            block.backwardClassToken(dClass, saved: saved, scratch: scratch, dx: dStream)
        } else {
            dStream.zero()
            for b in 0..<B { dStream[b][0].copy(from: dClass[b]) }
        }
        let scratch = blocks.first?.makeScratch(arena, batch: B, tokens: T)
        if let saved = pass.blocks {
            for i in stride(from: blocks.count - 2, through: 0, by: -1) {
                blocks[i].backward(dStream, saved: saved.activations(i, of: blocks[i]), scratch: scratch!)
            }
        }
        let dEmbedded = arena.allocate(Shape(B, T, W))
        lnPre.backward(dStream, x: pass.embedded, mean: pass.preMean, rstd: pass.preRstd, dx: dEmbedded,
                       accumulate: false, parameterGradients: true)
        // embedded[b, 0] = class + pos[0]; embedded[b, 1+i] = patchOut[b, i] + pos[1+i]:
        // dClass += Σ_b dEmbedded[b, 0]; dPos += Σ_b dEmbedded[b].
        if let g = classEmbedding.activeGrad {
            for b in 0..<B { add(dEmbedded[b][0], into: g) }
        }
        if let g = positionalEmbedding.activeGrad {
            for b in 0..<B { add(dEmbedded[b], into: g) }
        }
        // patchOut = patches · conv1ᵀ: dConv1 [W, 3P²] += Σ_b dPatchOut[b]ᵀ · patches[b].
        if let g = patchWeight.activeGrad {
            for b in 0..<B {
                BLAS.gemm(transA: true, m: W, n: 3 * P * P, k: G * G, a: dEmbedded.data + (b * T + 1) * W, lda: W,
                          b: pass.patches.data + b * G * G * 3 * P * P, ldb: 3 * P * P, beta: 1,
                          c: g.data, ldc: 3 * P * P)
            }
        }
        guard let dImages else { return }
        // Patch rows of dEmbedded → dPatches = dPatchOut · conv1.
        let dPatches = arena.allocate(Shape(B * G * G, 3 * P * P))
        for b in 0..<B {
            BLAS.gemm(m: G * G, n: 3 * P * P, k: W, a: dEmbedded.data + (b * T + 1) * W, lda: W,
                      b: patchWeight.value.data, ldb: 3 * P * P, beta: 0,
                      c: dPatches.data + b * G * G * 3 * P * P, ldc: 3 * P * P)
        }
        col2imAdding(dPatches, into: dImages, batch: B)
    }

    /// images [B, 3, R, R] → rows [B·G², 3·P·P], each row ordered (channel, ky, kx) like conv1.weight.
    func im2col(_ images: TensorView, into patches: TensorView) {
        let c = config, B = images.shape[0], R = c.imageResolution, P = c.patchSize, G = c.grid
        let src = images.data, dst = patches.data
        Parallel.forEach(B * G, PatchRows(src: src, dst: dst, R: R, P: P, G: G))
    }

    /// The adjoint of im2col: dImages += scattered patch rows.
    func col2imAdding(_ patches: TensorView, into images: TensorView, batch B: Int) {
        let c = config, R = c.imageResolution, P = c.patchSize, G = c.grid
        let src = patches.data, dst = images.data
        Parallel.forEach(B * G, PatchRowsAdding(src: src, dst: dst, R: R, P: P, G: G))
    }
}

extension CLIPImageEncoder {
    /// The (image, patch row) pairs of `im2col`.
    private struct PatchRows: IndexKernel {
        let src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>
        let R: Int, P: Int, G: Int

        func run(_ bg: Int) {
            let b = bg / G, gy = bg % G
            for gx in 0..<G {
                let row = dst + ((b * G + gy) * G + gx) * 3 * P * P
                for ch in 0..<3 {
                    for ky in 0..<P {
                        let s = src + ((b * 3 + ch) * R + gy * P + ky) * R + gx * P
                        (row + (ch * P + ky) * P).update(from: s, count: P)
                    }
                }
            }
        }
    }

    /// The (image, patch row) pairs of `col2imAdding`; each owns its image rows.
    private struct PatchRowsAdding: IndexKernel {
        let src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>
        let R: Int, P: Int, G: Int

        func run(_ bg: Int) {
            let b = bg / G, gy = bg % G
            for gx in 0..<G {
                let row = src + ((b * G + gy) * G + gx) * 3 * P * P
                for ch in 0..<3 {
                    for ky in 0..<P {
                        let d = dst + ((b * 3 + ch) * R + gy * P + ky) * R + gx * P
                        let s = row + (ch * P + ky) * P
                        for kx in 0..<P { d[kx] += s[kx] }
                    }
                }
            }
        }
    }
}
