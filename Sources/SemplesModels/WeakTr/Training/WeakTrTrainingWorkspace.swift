import Foundation
import SemplesEngine

/// Activation and gradient memory of one WeakTr training step, carved once from an arena for a
/// batch size; nothing is allocated while steps run. B = batch, N = C + P tokens, P = g² patches,
/// L·H AAF channels (ch), hd head width, fh = hd/8, hidden = ch/r.
public final class WeakTrTrainingWorkspace {
    public let batch: Int
    public let patches: Int
    public let tokens: Int

    let images: TensorView            // [B, 3, S, S]  normalised input
    let targets: TensorView           // [B, C]        multi-hot labels
    let patchColumns: TensorView      // [B·P, 3·16·16]
    let patchTokens: TensorView       // [B, P, D]
    let residuals: [TensorView]       // L + 1 of [B, N, D]: input of block l, and the last output
    let caches: [TransformerBlock.Cache]
    let scratch: TransformerBlock.Scratch
    let pooled: TensorView            // [B, L, D]      token pooling of each block's attention output
    let fusion: AdaptiveAttentionFusion.Cache
    /// [B, ch] the AAF weights w.
    public var fusionWeights: TensorView { fusion.weights }
    let headInput: TensorView         // [B, D, g, g]  patch tokens as NCHW
    let headColumns: TensorView       // [B·P, D·9]
    public let logits: TensorView     // [B, C, P]     head output before ReLU
    let fused: TensorView             // [B, N, N]     M = (1/ch) Σ_j w_j A_j
    public let cams: TensorView       // [B, C, P]     cross ⊙ ReLU(logits)
    public let fineCAM: TensorView    // [B, C, P]
    public let classTokenPrediction: TensorView   // [B, C]
    public let coarsePrediction: TensorView       // [B, C]
    public let finePrediction: TensorView         // [B, C]

    // Backward.
    let classTokenGradient: TensorView   // [B, C]
    let coarseGradient: TensorView       // [B, C]
    let fineGradient: TensorView         // [B, C]
    let fineMapGradient: TensorView      // [B, C, P]
    let camGradient: TensorView          // [B, C, P]
    let fusedGradient: TensorView        // [B, N, N]
    let weightGradient: TensorView       // [B, ch]  ∂L/∂w, then ∂L/∂(pre-sigmoid)
    let fusionScratch: AdaptiveAttentionFusion.Scratch
    let logitGradient: TensorView        // [B, C, P]
    let headInputGradient: TensorView    // [B, D, g, g]
    let headColumnGradient: TensorView   // [B·P, D·9]
    let streamGradients: [TensorView]    // 2 of [B, N, D], used in turn
    let patchTokenGradient: TensorView   // [B, P, D]

    /// Floats of arena the workspace for `batch` takes.
    public static func floats(model: WeakTr, batch B: Int) -> Int {
        let c = model.config
        let D = c.embedDimension, C = c.classCount, g = c.gridSide, P = g * g, N = C + P
        let ch = c.channelCount
        let F = c.mlpHidden, H = c.headCount, S = g * 16
        func r(_ n: Int) -> Int { (n + 15) & ~15 }
        let cache = 7 * r(B * N * D) + 4 * r(B * N) + r(B * N * 3 * D) + r(B * H * N * N) + 2 * r(B * N * F) + 2 * r(B)
        let scratch = r(B * N * 3 * D) + r(B * N * D) + r(B * H * N * N) + 3 * r(B * N * D) + r(B * N * F)
        var t = r(B * 3 * S * S) + r(B * C) + r(B * P * 768) + r(B * P * D) + (c.depth + 1) * r(B * N * D)
        t += c.depth * cache + scratch
        t += r(B * c.depth * D) + AdaptiveAttentionFusion.floats(config: c, batch: B, backward: true)
        t += r(B * D * P) + r(B * P * D * 9) + r(B * C * P) + r(B * N * N) + 2 * r(B * C * P) + 3 * r(B * C)
        t += 3 * r(B * C) + 2 * r(B * C * P) + r(B * N * N) + r(B * ch)
        t += r(B * C * P) + r(B * D * P) + r(B * P * D * 9) + 2 * r(B * N * D) + r(B * P * D)
        return t + 64
    }

    init(model: WeakTr, batch B: Int, arena a: Arena) {
        let c = model.config
        let D = c.embedDimension, C = c.classCount, g = c.gridSide, P = g * g, N = C + P
        let ch = c.channelCount
        let S = g * 16
        batch = B
        patches = P
        tokens = N
        images = a.allocate(Shape(B, 3, S, S))
        targets = a.allocate(Shape(B, C))
        patchColumns = a.allocate(model.patchEmbed.columnsShape(batch: B, height: S, width: S))
        patchTokens = a.allocate(Shape(B, P, D))
        residuals = (0...c.depth).map { _ in a.allocate(Shape(B, N, D)) }
        caches = model.blocks.map { $0.makeCache(a, batch: B, tokens: N) }
        scratch = model.blocks[0].makeScratch(a, batch: B, tokens: N)
        pooled = a.allocate(Shape(B, c.depth, D))
        fusion = model.fusion.makeCache(a, batch: B)
        headInput = a.allocate(Shape(B, D, g, g))
        headColumns = a.allocate(model.head.columnsShape(batch: B, height: g, width: g))
        logits = a.allocate(Shape(B, C, P))
        fused = a.allocate(Shape(B, N, N))
        cams = a.allocate(Shape(B, C, P))
        fineCAM = a.allocate(Shape(B, C, P))
        classTokenPrediction = a.allocate(Shape(B, C))
        coarsePrediction = a.allocate(Shape(B, C))
        finePrediction = a.allocate(Shape(B, C))
        classTokenGradient = a.allocate(Shape(B, C))
        coarseGradient = a.allocate(Shape(B, C))
        fineGradient = a.allocate(Shape(B, C))
        fineMapGradient = a.allocate(Shape(B, C, P))
        camGradient = a.allocate(Shape(B, C, P))
        fusedGradient = a.allocate(Shape(B, N, N))
        weightGradient = a.allocate(Shape(B, ch))
        fusionScratch = model.fusion.makeScratch(a, batch: B)
        logitGradient = a.allocate(Shape(B, C, P))
        headInputGradient = a.allocate(Shape(B, D, g, g))
        headColumnGradient = a.allocate(model.head.columnsShape(batch: B, height: g, width: g))
        streamGradients = [a.allocate(Shape(B, N, D)), a.allocate(Shape(B, N, D))]
        patchTokenGradient = a.allocate(Shape(B, P, D))
    }

    /// The input batch to fill: [B, 3, S, S] normalised images.
    public var imageBuffer: TensorView { images }
    /// The labels to fill: [B, C] in {0, 1}.
    public var targetBuffer: TensorView { targets }
    /// The DropPath scales of block l's attention and MLP branches ([B] each), as drawn by the last
    /// training forward (or to be set by the caller before `forward(dropPath: .fixed)`).
    public func dropPathScales(block l: Int) -> (attention: TensorView, mlp: TensorView) {
        (caches[l].attentionScales, caches[l].mlpScales)
    }
    /// The attention map of AAF channel j = head·L + layer of image b: [N, N] (spec §2.1.4).
    func attentionMap(image b: Int, channel j: Int) -> UnsafePointer<Float> {
        let L = caches.count, H = caches[0].probabilities.shape[1]
        return UnsafePointer(caches[j % L].probabilities.data + (b * H + j / L) * tokens * tokens)
    }
    /// The attention probabilities of block l: [B, H, N, N].
    public func attentionProbabilities(block l: Int) -> TensorView { caches[l].probabilities }
}
