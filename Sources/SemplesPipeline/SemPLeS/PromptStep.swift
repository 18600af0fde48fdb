import Foundation
import SemplesEngine
import SemplesModels

/// The learnable background prompts of stage (b): `prompts` [C, L, W] (spec §2.3.1), as one
/// parameter for AdamW.
public final class BackgroundPrompts {
    public let prompts: Parameter

    /// U[0, 1) initialisation from the generator (spec §10 item 10).
    public init(classCount: Int, length: Int, width: Int, generator: inout SeededGenerator) {
        prompts = Parameter(name: "prompts", dims: [classCount, length, width])
        let p = prompts.value
        for i in 0..<p.count { p.data[i] = generator.nextUniform() }
    }

    /// Prompts with the given values (e.g. read from `btp.pth`): [C, L, W].
    public init(values: TensorView) {
        prompts = Parameter(name: "prompts", dims: values.shape.dims)
        prompts.value.copy(from: values)
    }

    public var classCount: Int { prompts.shape[0] }
    public var length: Int { prompts.shape[1] }
}

/// One forward/backward of SemPLeS stage (b) (spec §3.2, Appendix B): masks from the frozen
/// stage-(a) WeakTr in eval mode with ε = 1e-4, CLIP image features of the backgrounds (no
/// gradient), background-prompt features with the text transformer truncated at the EOT, and
/// L_max + h0·L_min (+log s, spec §10 item 3) back to the prompt embeddings.
public final class PromptStep {
    public let weakTr: WeakTr
    public let clip: CLIPModel
    /// [C, E] unit-length class-prompt features, computed once.
    public let classText: Tensor
    public let prompts: BackgroundPrompts
    public let template: CLIPPromptTemplate
    public let hypers: [Float]
    public let epsilon: Float
    public let imagesPerPass: Int

    public init(weakTr: WeakTr, clip: CLIPModel, classText: Tensor, prompts: BackgroundPrompts,
                template: CLIPPromptTemplate = .semples, hypers: [Float], epsilon: Float = SemPLeSMasks.promptEpsilon,
                imagesPerPass: Int = 8) {
        precondition(!hypers.isEmpty, "stage (b) needs h0")
        self.weakTr = weakTr
        self.clip = clip
        self.classText = classText
        self.prompts = prompts
        self.template = template
        self.hypers = hypers
        self.epsilon = epsilon
        self.imagesPerPass = max(1, imagesPerPass)
    }

    /// The masks' fine CAMs come from the frozen WeakTr, so the background features of a batch
    /// are computed first: [P, E] unit rows, with the pairs.
    public func backgroundFeatures(images: TensorView, labels: TensorView) -> (pairs: [SemPLeSPair], features: Tensor) {
        let B = images.shape[0], S = images.shape[2], C = prompts.classCount, E = clip.config.embedDimension
        precondition(images.shape == Shape(B, 3, S, S) && S == clip.config.imageResolution && labels.shape == Shape(B, C),
                     "prompt step: images \(images.shape), labels \(labels.shape), CLIP input \(clip.config.imageResolution)")
        let pairs = SemPLeSMasks.pairs(labels: labels)
        let out = Tensor([max(pairs.count, 1), E])
        var backgrounds: [Tensor] = []
        var row = 0
        let arena = Arena(capacity: clip.image.arenaSize(batch: imagesPerPass, backward: false) + imagesPerPass * (3 * S * S + E) + 64)
        func flush() {
            guard !backgrounds.isEmpty else { return }
            arena.reset()
            let n = backgrounds.count
            let batch = arena.allocate(Shape(n, 3, S, S))
            for (i, t) in backgrounds.enumerated() { batch[i].copy(from: t.view) }
            let feats = arena.allocate(Shape(n, E))
            clip.image.forward(batch, into: feats, arena: arena)
            normaliseRows(feats)
            (out.data + row * E).update(from: feats.data, count: n * E)
            row += n
            backgrounds.removeAll()
        }
        for n in 0..<B {
            let ks = pairs.filter { $0.image == n }.map(\.classIndex)
            if ks.isEmpty { continue }
            let result = weakTr.forward(images[n])
            let hp = result.patchRows, wp = result.patchColumns
            let up = Tensor([C, S, S]), masks = Tensor([C, S, S]), stats = Tensor([C, 4])
            SemPLeSMasks.forward(fine: result.fineCAM.reshaped(Shape(C, hp, wp)), epsilon: epsilon, upsampled: up.view,
                                 masks: masks.view, statistics: stats.view)
            for k in ks {
                let bg = Tensor([3, S, S])
                SemPLeSMasks.compose(image: images[n], mask: masks.view[k], foreground: nil, background: bg.view)
                backgrounds.append(bg)
                if backgrounds.count == imagesPerPass { flush() }
            }
        }
        flush()
        return (pairs, out)
    }

    /// Loss and prompt gradients (+= into prompts.prompts.grad; zero it first).
    public func run(images: TensorView, labels: TensorView) -> SemPLeSLossTerms {
        let (pairs, backgrounds) = backgroundFeatures(images: images, labels: labels)
        return run(pairs: pairs, backgroundFeatures: backgrounds)
    }

    /// The prompt half of `run`, given the background features.
    public func run(pairs: [SemPLeSPair], backgroundFeatures v: Tensor) -> SemPLeSLossTerms {
        var terms = SemPLeSLossTerms()
        terms.pairs = pairs.count
        guard !pairs.isEmpty else { return terms }
        let C = prompts.classCount, E = clip.config.embedDimension, L = prompts.length, P = pairs.count
        let T = template.endPosition(length: L) + 1
        let arena = Arena(capacity: clip.text.arenaSize(batch: C, tokens: T, backward: true) + 2 * C * E + C * T * clip.config.textWidth + 64)
        let b = arena.allocate(Shape(C, E))
        let pass = clip.text.encodeBackgroundPrompts(prompts.prompts.value, template: template, into: b, arena: arena,
                                                     keepActivations: true)
        let dB = arena.zeros(Shape(C, E))
        let h0 = hypers[0]
        for (p, pair) in pairs.enumerated() {
            let k = pair.classIndex
            let bk = b[k].reshaped(Shape(1, E)), vp = v.view[p].reshaped(Shape(1, E)), tk = classText.view[k].reshaped(Shape(1, E))
            let sImg = cosine(vp, bk), sLbl = cosine(tk, bk)
            let dImg = pairLoss(.negativeLog, similarity: sImg, pairs: P, weight: 1, loss: &terms.max)
            let dLbl = pairLoss(.positiveLog, similarity: sLbl, pairs: P, weight: h0, loss: &terms.min)
            backwardCosine(dImg, bk, vp, into: dB[k].reshaped(Shape(1, E)))
            backwardCosine(dLbl, bk, tk, into: dB[k].reshaped(Shape(1, E)))
        }
        if let grad = prompts.prompts.activeGrad {
            clip.text.backwardBackgroundPrompts(dB, pass: pass, promptsGradient: grad, arena: arena)
        }
        terms.total = terms.max + h0 * terms.min
        return terms
    }
}
