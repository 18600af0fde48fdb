import Foundation
import SemplesEngine
import SemplesModels

/// The loss terms of one iteration (means over the P positive pairs, spec §3).
public struct SemPLeSLossTerms: Equatable, Sendable, Codable {
    public var otm: Float = 0       // (a, c) −mean log clamp(s_fg)
    public var btm: Float = 0       // (a, c) −mean log(1 − clamp(s_bg))
    public var refine: Float = 0    // (c) −mean log(1 − clamp(s(fg, btp)))
    public var max: Float = 0       // (b) −mean log clamp(s(bg, btp))
    public var min: Float = 0       // (b) +mean log clamp(s(text, btp))
    public var total: Float = 0
    public var pairs: Int = 0
    /// Diagnostics of (a)/(c), means over the pairs: s(fg, text), s(bg, text), the share of pairs
    /// whose s(fg, text) is below the clamp (no L_OTM gradient), and the mean mask value.
    public var meanForeground: Float = 0
    public var meanBackground: Float = 0
    public var deadForeground: Float = 0
    /// The share of pairs with 1e-4 ≤ s(fg, text) < 0.1 (L_OTM gradients above 10).
    public var weakForeground: Float = 0
    public var maskArea: Float = 0
    public init() {}
}

/// Adds one pair's share of a similarity loss: the value / P to `loss`, and weight/P · ∂/∂s to the
/// returned derivative (zero outside the clamp range, spec §3.0).
@inline(__always)
func pairLoss(_ kind: SimilarityLoss.Kind, similarity s: Float, pairs P: Int, weight: Float, loss: inout Float) -> Float {
    var value = s, derivative: Float = 0
    let v = withUnsafeMutablePointer(to: &value) { sp in
        withUnsafeMutablePointer(to: &derivative) { dp in
            SimilarityLoss.evaluate(kind, TensorView(sp, Shape(1)), gradient: TensorView(dp, Shape(1)),
                                    weight: weight / Float(P))
        }
    }
    loss += v / Float(P)
    return derivative
}

/// One forward/backward of SemPLeS stage (a) (`refinePrompts` nil) or (c) (the frozen, normalised
/// background-prompt features given) on a batch: frozen backbone (DropPath when a generator is
/// given), trainable head + AAF, masks with ε = 0.1, CLIP image features of Xfg/Xbg, the losses
/// of §3.1/§3.3, and the input-only backward through CLIP down to the head and AAF gradients.
///
/// Images are processed in small groups (the loss is a mean over pairs, so the gradients of an
/// image are complete once its pairs are done): the group's pairs go through CLIP in
/// micro-batches of at most `pairsPerPass` pairs (2 CLIP inputs each), then each image's
/// gradient goes back to the head and AAF. The foreground encoding is shared by L_OTM and
/// L_refine (spec §3.3).
public final class SegmentStep {
    public let backbone: WeakTr
    public let head: WeakTrHeadAAF
    public let clip: CLIPModel
    /// [C, E] unit-length class-prompt features, computed once (spec §9.2).
    public let classText: Tensor
    /// [C, E] unit-length background-prompt features for stage (c), nil in stage (a).
    public let refinePrompts: Tensor?
    /// h0 (and h1 in stage (c)).
    public let hypers: [Float]
    public let epsilon: Float
    public let pairsPerPass: Int
    /// a of the rescaling s → (s + a)/(1 + a) applied to every similarity before its clamped log
    /// (0: the reference).
    public let similarityShift: Float
    /// DropPath maximum rate of the frozen backbone in train mode (spec §2.1.1).
    public var dropPathRate: Float = 0.1

    private let arena: Arena
    private var slots: [ImageSlot] = []
    // Arrays an iteration fills, kept between iterations so that filling them allocates nothing
    // once they have grown to a batch's size.
    private var allPairs: [SemPLeSPair] = []
    private var group: [ImageSlot] = []
    private var work: [(slot: Int, k: Int)] = []

    /// One image's state between its forward and its backward.
    final class ImageSlot {
        let features = WeakTrBackboneFeatures()
        let cache = WeakTrHeadAAF.Cache()
        let upsampled, masks, statistics, dMasks: Tensor
        /// The gradient of one upsampled map (scratch of the mask backward).
        let dUpsampled: Tensor
        /// [C, hp, wp] the fine CAM's gradient, made on the first backward.
        var dFine = Tensor([1])
        var image = TensorView(UnsafeMutablePointer<Float>(bitPattern: 16)!, Shape(0))
        var classes: [Int] = []
        var dropPathScales: [Float] = []
        init(classCount C: Int, size S: Int) {
            upsampled = Tensor([C, S, S])
            masks = Tensor([C, S, S])
            statistics = Tensor([C, 4])
            dMasks = Tensor([C, S, S])
            dUpsampled = Tensor([S, S])
        }
    }

    private func slot(_ i: Int, classCount C: Int, size S: Int) -> ImageSlot {
        while slots.count <= i { slots.append(ImageSlot(classCount: C, size: S)) }
        if slots[i].masks.shape != Shape(C, S, S) { slots[i] = ImageSlot(classCount: C, size: S) }
        return slots[i]
    }

    public init(backbone: WeakTr, head: WeakTrHeadAAF, clip: CLIPModel, classText: Tensor, refinePrompts: Tensor?,
                hypers: [Float], epsilon: Float = SemPLeSMasks.segmentEpsilon, pairsPerPass: Int = 4,
                similarityShift: Float = 0) {
        precondition(hypers.count >= (refinePrompts == nil ? 1 : 2), "stage (\(refinePrompts == nil ? "a" : "c")) needs \(refinePrompts == nil ? 1 : 2) hypers")
        precondition(head.model === backbone, "the head stage must train the backbone model's own head")
        self.backbone = backbone
        self.head = head
        self.clip = clip
        self.classText = classText
        self.refinePrompts = refinePrompts
        self.hypers = hypers
        self.epsilon = epsilon
        self.pairsPerPass = max(1, pairsPerPass)
        self.similarityShift = similarityShift
        // CLIP activations plus the composed inputs, their gradients and the features.
        let images = 2 * self.pairsPerPass, R = clip.config.imageResolution
        arena = Arena(capacity: clip.image.arenaSize(batch: images, backward: true)
                      + 2 * images * (3 * R * R + clip.config.embedDimension) + 64)
    }

    /// images: [B, 3, S, S] (S = CLIP's input size), labels: [B, C]. Accumulates (+=) into the
    /// head's gradients (zero them first). With `generator` the backbone runs in train mode
    /// (DropPath drawn per image in order); without it in eval mode.
    public func run(images: TensorView, labels: TensorView, generator: inout SeededGenerator?) -> SemPLeSLossTerms {
        let B = images.shape[0], S = images.shape[2], C = head.config.classCount, E = clip.config.embedDimension
        precondition(images.shape == Shape(B, 3, S, S) && S == clip.config.imageResolution && labels.shape == Shape(B, C),
                     "segment step: images \(images.shape), labels \(labels.shape), CLIP input \(clip.config.imageResolution)")
        SemPLeSMasks.pairs(labels: labels, into: &allPairs)
        var terms = SemPLeSLossTerms()
        terms.pairs = allPairs.count
        guard !allPairs.isEmpty else { return terms }
        let P = allPairs.count
        let h0 = hypers[0], h1 = hypers.count > 1 ? hypers[1] : 0
        let a = similarityShift
        // The loss sees (s + a)/(1 + a); its derivative with respect to s is scaled by 1/(1 + a).
        func shifted(_ s: Float) -> Float { a == 0 ? s : (s + a) / (1 + a) }
        let chain: Float = 1 / (1 + a)
        // Images are taken in groups whose pairs fill one CLIP micro-batch, so CLIP runs on up
        // to 2·pairsPerPass inputs at a time; each image keeps its own head/AAF state until its
        // pairs are done.
        group.removeAll(keepingCapacity: true)
        var groupPairs = 0
        func flush() {
            work.removeAll(keepingCapacity: true)
            for (slot, s) in group.enumerated() { for k in s.classes { work.append((slot: slot, k: k)) } }
            for start in stride(from: 0, to: work.count, by: pairsPerPass) {
                let chunk = work[start..<min(work.count, start + pairsPerPass)]
                let g = chunk.count
                arena.reset()
                // Rows 0..<g: foregrounds; rows g..<2g: backgrounds.
                let inputs = arena.allocate(Shape(2 * g, 3, S, S))
                for (i, w) in chunk.enumerated() {
                    let s = group[w.slot]
                    SemPLeSMasks.compose(image: s.image, mask: s.masks.view[w.k], foreground: inputs[i], background: inputs[g + i])
                }
                let feats = arena.allocate(Shape(2 * g, E))
                let pass = clip.image.forward(inputs, into: feats, arena: arena, keepActivations: true)
                let dFeats = arena.zeros(Shape(2 * g, E))
                for (i, w) in chunk.enumerated() {
                    let k = w.k
                    let text = classText.view[k].reshaped(Shape(1, E))
                    let fg = feats[i].reshaped(Shape(1, E)), bg = feats[g + i].reshaped(Shape(1, E))
                    let sFg = cosine(fg, text), sBg = cosine(bg, text)
                    terms.meanForeground += sFg / Float(P)
                    terms.meanBackground += sBg / Float(P)
                    if Double(sFg) < 1e-4 { terms.deadForeground += 1 / Float(P) } else if sFg < 0.1 { terms.weakForeground += 1 / Float(P) }
                    let mask = group[w.slot].masks.view[k]
                    var area: Float = 0
                    for j in 0..<mask.count { area += mask.data[j] }
                    terms.maskArea += area / Float(mask.count * P)
                    let dFg = chain * pairLoss(.negativeLog, similarity: shifted(sFg), pairs: P, weight: 1, loss: &terms.otm)
                    let dBg = chain * pairLoss(.negativeLogOneMinus, similarity: shifted(sBg), pairs: P, weight: h0, loss: &terms.btm)
                    backwardCosine(dFg, fg, text, into: dFeats[i].reshaped(Shape(1, E)))
                    backwardCosine(dBg, bg, text, into: dFeats[g + i].reshaped(Shape(1, E)))
                    if let prompts = refinePrompts {
                        // The foreground features are shared by L_OTM and L_refine (spec §3.3).
                        let b = prompts.view[k].reshaped(Shape(1, E))
                        let sRef = cosine(fg, b)
                        let dRef = chain * pairLoss(.negativeLogOneMinus, similarity: shifted(sRef), pairs: P, weight: h1,
                                                    loss: &terms.refine)
                        backwardCosine(dRef, fg, b, into: dFeats[i].reshaped(Shape(1, E)))
                    }
                }
                let dInputs = arena.zeros(Shape(2 * g, 3, S, S))
                clip.image.backward(dFeats, pass: pass, imagesGradient: dInputs, arena: arena)
                for (i, w) in chunk.enumerated() {
                    let s = group[w.slot]
                    SemPLeSMasks.maskGradient(image: s.image, foreground: dInputs[i], background: dInputs[g + i],
                                              into: s.dMasks.view[w.k])
                }
            }
            for s in group {
                let fineShape = Shape(C, s.features.patchRows, s.features.patchColumns)
                if s.dFine.shape != fineShape { s.dFine = Tensor(fineShape.dims) } else { s.dFine.view.zero() }
                SemPLeSMasks.backward(s.dMasks.view, upsampled: s.upsampled.view, statistics: s.statistics.view,
                                      epsilon: epsilon, dFine: s.dFine.view, maps: s.classes, scratch: s.dUpsampled.view)
                head.backward(s.dFine.view, features: s.features, cache: s.cache)
            }
            group.removeAll(keepingCapacity: true)
            groupPairs = 0
        }
        for n in 0..<B {
            if !allPairs.contains(where: { $0.image == n }) { continue }   // no pair, no gradient (skip the forward too)
            let slot = slot(group.count, classCount: C, size: S)
            slot.image = images[n]
            slot.classes.removeAll(keepingCapacity: true)
            for pair in allPairs where pair.image == n { slot.classes.append(pair.classIndex) }
            var scales: [Float]? = nil
            if generator != nil {
                backbone.sampleDropPathScales(maximum: dropPathRate, generator: &generator!, into: &slot.dropPathScales)
                scales = slot.dropPathScales
            }
            backbone.backboneFeatures(slot.image, into: slot.features, dropPathScales: scales)
            head.forward(slot.features, cache: slot.cache)
            SemPLeSMasks.forward(fine: slot.cache.fine.view, epsilon: epsilon, upsampled: slot.upsampled.view,
                                 masks: slot.masks.view, statistics: slot.statistics.view)
            slot.dMasks.view.zero()
            group.append(slot)
            groupPairs += slot.classes.count
            if groupPairs >= pairsPerPass { flush() }
        }
        flush()
        terms.total = terms.otm + h0 * terms.btm + h1 * terms.refine
        return terms
    }
}

/// s = ⟨u/‖u‖, v/‖v‖⟩ for u, v: [1, E].
func cosine(_ u: TensorView, _ v: TensorView) -> Float {
    var s: Float = 0
    withUnsafeMutablePointer(to: &s) { CosineSimilarity.forward(u, v, into: TensorView($0, Shape(1))) }
    return s
}

/// du (+)= ds · ∂s/∂u for s = cos(u, v).
func backwardCosine(_ ds: Float, _ u: TensorView, _ v: TensorView, into du: TensorView) {
    if ds == 0 { return }
    var g = ds
    withUnsafeMutablePointer(to: &g) { CosineSimilarity.backward(TensorView($0, Shape(1)), u, v, du: du, dv: nil) }
}
