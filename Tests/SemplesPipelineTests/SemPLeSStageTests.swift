import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// One iteration of each SemPLeS stage on a fixed batch against the PyTorch reference of
/// scripts/fixtures/semples.py: loss terms, gradients, and the weights after three AdamW steps.
final class SemPLeSStageTests: XCTestCase {
    typealias F = SemPLeSFixtures

    func testBackboneAndHeadGiveTheEvalFineCAM() throws {
        let stages = try F.tensors("stages.safetensors")
        let model = try F.weakTr()
        let head = WeakTrHeadAAF(model: model)
        let features = WeakTrBackboneFeatures(), cache = WeakTrHeadAAF.Cache()
        let images = stages["images"]!
        let want = stages["a.fine"]!   // [B, C, 4, 4]
        for n in 0..<2 {
            model.backboneFeatures(images.view[n], into: features)
            head.forward(features, cache: cache)
            let eval = model.forward(images.view[n])
            let per = F.classCount * 16
            let ref = Tensor([per], values: Array(want.toArray()[(n * per)..<((n + 1) * per)]))
            XCTAssertLessThan(F.maxRelativeError(cache.fine.view, ref), 1e-4, "image \(n) vs reference")
            XCTAssertLessThan(F.maxRelativeError(cache.fine.view, Tensor([per], values: eval.fineCAM.toArray())), 1e-4,
                              "image \(n) vs eval WeakTr")
        }
    }

    func testMasksMatchReference() throws {
        let stages = try F.tensors("stages.safetensors")
        for (stage, eps) in [("a", SemPLeSMasks.segmentEpsilon), ("b", SemPLeSMasks.promptEpsilon)] {
            let fine = stages[stage + ".fine"]!
            let M = fine.shape[0] * fine.shape[1]
            let up = Tensor([M, 64, 64]), masks = Tensor([M, 64, 64]), stats = Tensor([M, 4])
            SemPLeSMasks.forward(fine: fine.view.reshaped([M, 4, 4]), epsilon: eps, upsampled: up.view, masks: masks.view,
                                 statistics: stats.view)
            XCTAssertLessThan(F.maxRelativeError(masks.view, stages[stage + ".masks"]!), 1e-5, "stage \(stage)")
        }
        let labels = Tensor([2, 3], values: [1, 0, 1, 0, 1, 1])
        XCTAssertEqual(SemPLeSMasks.pairs(labels: labels.view).map { [$0.image, $0.classIndex] }, [[0, 0], [0, 2], [1, 1], [1, 2]])
    }

    /// Finite differences through upsample, min-max (with its argmin/argmax routing) and the
    /// fg/bg products, for both epsilons.
    func testMaskBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 7)
        let h = 3, S = 8
        let fine = Tensor([2, h, h]), image = Tensor([3, S, S])
        for i in 0..<fine.count { fine.data[i] = g.nextNormal() }
        for i in 0..<image.count { image.data[i] = g.nextNormal() }
        let rFg = Tensor([3, S, S]), rBg = Tensor([3, S, S])
        for i in 0..<rFg.count { rFg.data[i] = g.nextNormal(); rBg.data[i] = g.nextNormal() }
        for eps: Float in [0.1, 1e-4] {
            func loss(_ f: Tensor) -> Double {
                let up = Tensor([2, S, S]), masks = Tensor([2, S, S]), st = Tensor([2, 4])
                SemPLeSMasks.forward(fine: f.view, epsilon: eps, upsampled: up.view, masks: masks.view, statistics: st.view)
                let fg = Tensor([3, S, S]), bg = Tensor([3, S, S])
                SemPLeSMasks.compose(image: image.view, mask: masks.view[1], foreground: fg.view, background: bg.view)
                var s = 0.0
                for i in 0..<fg.count { s += Double(fg.data[i] * rFg.data[i] + bg.data[i] * rBg.data[i]) }
                return s
            }
            let up = Tensor([2, S, S]), masks = Tensor([2, S, S]), st = Tensor([2, 4])
            SemPLeSMasks.forward(fine: fine.view, epsilon: eps, upsampled: up.view, masks: masks.view, statistics: st.view)
            let dMasks = Tensor([2, S, S]), dFine = Tensor([2, h, h])
            SemPLeSMasks.maskGradient(image: image.view, foreground: rFg.view, background: rBg.view, into: dMasks.view[1])
            SemPLeSMasks.backward(dMasks.view, upsampled: up.view, statistics: st.view, epsilon: eps, dFine: dFine.view, maps: [1])
            for i in 0..<fine.count {
                let step: Float = 1e-3
                let saved = fine.data[i]
                fine.data[i] = saved + step; let lp = loss(fine)
                fine.data[i] = saved - step; let lm = loss(fine)
                fine.data[i] = saved
                let numeric = (lp - lm) / Double(2 * step)
                XCTAssertEqual(Double(dFine.data[i]), numeric, accuracy: 2e-2 * max(1, abs(numeric)), "eps \(eps) entry \(i)")
            }
            XCTAssertEqual((0..<9).map { dFine.data[$0] }, [Float](repeating: 0, count: 9), "map without a pair gets no gradient")
        }
    }

    private func segmentStep(_ stage: String) throws -> (SegmentStep, [String: Tensor]) {
        let stages = try F.tensors("stages.safetensors")
        let model = try F.weakTr()
        let head = WeakTrHeadAAF(model: model)
        let clip = try F.clip()
        let step = SegmentStep(backbone: model, head: head, clip: clip, classText: F.classText(clip, stages),
                               refinePrompts: stage == "c" ? stages["btp_features"]! : nil, hypers: F.hypers[stage]!,
                               pairsPerPass: stage == "c" ? 1 : 4)
        return (step, stages)
    }

    private func checkSegmentStage(_ stage: String) throws {
        let (step, stages) = try segmentStep(stage)
        let want = try F.terms()[stage]!
        let optimizer = AdamW(parameters: step.head.parameters, learningRate: F.learningRates[stage]!,
                              weightDecay: F.weightDecay)
        for iteration in 0..<3 {
            step.head.zeroGradients()
            var generator: SeededGenerator? = nil
            let terms = step.run(images: stages["images"]!.view, labels: stages["labels"]!.view, generator: &generator)
            if iteration == 0 {
                XCTAssertEqual(terms.pairs, 4)
                XCTAssertEqual(Double(terms.otm), want["otm"]!, accuracy: 1e-4, "stage \(stage) L_OTM")
                XCTAssertEqual(Double(terms.btm), want["btm"]!, accuracy: 1e-4, "stage \(stage) L_BTM")
                XCTAssertEqual(Double(terms.total), want["loss"]!, accuracy: 3e-4, "stage \(stage) loss")
                if stage == "c" { XCTAssertEqual(Double(terms.refine), want["refine"]!, accuracy: 1e-4, "L_refine") }
                for p in step.head.parameters {
                    let error = F.maxRelativeError(p.grad!, stages["\(stage).grad.\(p.name)"]!)
                    XCTAssertLessThan(error, 1e-3, "stage \(stage) gradient of \(p.name)")
                }
            }
            optimizer.step()
        }
        for p in step.head.parameters {
            let error = F.maxRelativeError(p.value, stages["\(stage).after.\(p.name)"]!)
            XCTAssertLessThan(error, 1e-4, "stage \(stage) \(p.name) after 3 AdamW steps")
        }
    }

    func testStageAMatchesReference() throws { try checkSegmentStage("a") }

    /// With `similarityShift` a, the losses see (s + a)/(1 + a): the head/AAF gradients still match
    /// finite differences of the total loss, and a = 0 is the reference step.
    func testSimilarityShiftGradientMatchesFiniteDifferences() throws {
        let stages = try F.tensors("stages.safetensors")
        let model = try F.weakTr()
        let head = WeakTrHeadAAF(model: model)
        let clip = try F.clip()
        let images = stages["images"]!.view, labels = stages["labels"]!.view
        func step(shift: Float) -> SegmentStep {
            SegmentStep(backbone: model, head: head, clip: clip, classText: F.classText(clip, stages),
                        refinePrompts: stages["btp_features"]!, hypers: F.hypers["c"]!, pairsPerPass: 4, similarityShift: shift)
        }
        func run(_ s: SegmentStep) -> SemPLeSLossTerms {
            head.zeroGradients()
            var generator: SeededGenerator? = nil
            return s.run(images: images, labels: labels, generator: &generator)
        }
        let reference = run(step(shift: 0)), want = try F.terms()["c"]!
        XCTAssertEqual(Double(reference.otm), want["otm"]!, accuracy: 1e-4)
        let shifted = step(shift: 1)
        let terms = run(shifted)
        XCTAssertEqual(terms.pairs, 4)
        XCTAssertEqual(terms.meanForeground, reference.meanForeground, accuracy: 1e-6, "the shift changes the loss, not CLIP")
        XCTAssertNotEqual(terms.otm, reference.otm)
        XCTAssertEqual(terms.total, terms.otm + F.hypers["c"]![0] * terms.btm + F.hypers["c"]![1] * terms.refine, accuracy: 1e-5)
        var checked = 0
        for p in head.parameters {
            // The entry with the largest gradient of each tensor, against a central difference.
            _ = run(shifted)
            var index = 0
            for i in 0..<p.count where abs(p.grad!.data[i]) > abs(p.grad!.data[index]) { index = i }
            let analytic = Double(p.grad!.data[index])
            guard abs(analytic) > 1e-3 else { continue }
            let saved = p.value.data[index], h: Float = 1e-3
            p.value.data[index] = saved + h; let plus = Double(run(shifted).total)
            p.value.data[index] = saved - h; let minus = Double(run(shifted).total)
            p.value.data[index] = saved
            let numeric = (plus - minus) / Double(2 * h)
            // The loss (≈ 4.9) is a float32 sum: each evaluation lands within about 2 ulps of the
            // exact value (the spread seen between GEMM backends and kernel variants), so the central
            // difference carries up to 4 ulps / 2h ≈ 9.5e-4, in steps of 1 ulp / 2h ≈ 2.4e-4;
            // on top of that 5 % for the curvature over ±h. A shift missing from backward changes
            // the OTM part of the gradient by a factor 2 and fails this.
            let quantum = Double(Float(max(abs(plus), abs(minus))).ulp) / Double(2 * h)
            XCTAssertEqual(analytic, numeric, accuracy: 5e-2 * abs(numeric) + 4 * quantum, "\(p.name)[\(index)]")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no parameter had a gradient to check")
    }

    func testStageCMatchesReference() throws { try checkSegmentStage("c") }

    func testStageBMatchesReference() throws {
        let stages = try F.tensors("stages.safetensors")
        let clip = try F.clip()
        let prompts = BackgroundPrompts(values: stages["prompts"]!.view)
        let step = PromptStep(weakTr: try F.weakTr(), clip: clip, classText: F.classText(clip, stages), prompts: prompts,
                              template: F.template, hypers: F.hypers["b"]!, imagesPerPass: 3)
        let want = try F.terms()["b"]!
        let optimizer = AdamW(parameters: [prompts.prompts], learningRate: F.learningRates["b"]!, weightDecay: F.weightDecay)
        let (pairs, backgrounds) = step.backgroundFeatures(images: stages["images"]!.view, labels: stages["labels"]!.view)
        XCTAssertEqual(pairs.count, 4)
        for iteration in 0..<3 {
            prompts.prompts.grad!.zero()
            let terms = step.run(pairs: pairs, backgroundFeatures: backgrounds)
            if iteration == 0 {
                XCTAssertEqual(Double(terms.max), want["max"]!, accuracy: 1e-4, "L_max")
                XCTAssertEqual(Double(terms.min), want["min"]!, accuracy: 1e-4, "L_min (+log s)")
                XCTAssertEqual(Double(terms.total), want["loss"]!, accuracy: 2e-4, "loss")
                XCTAssertLessThan(F.maxRelativeError(prompts.prompts.grad!, stages["b.grad.prompts"]!), 1e-3, "prompt gradient")
            }
            optimizer.step()
        }
        XCTAssertLessThan(F.maxRelativeError(prompts.prompts.value, stages["b.after.prompts"]!), 1e-4, "prompts after 3 steps")
    }

    /// The trainable head + AAF against finite differences of L = Σ r ⊙ fine.
    func testHeadBackwardMatchesFiniteDifferences() throws {
        let stages = try F.tensors("stages.safetensors")
        let model = try F.weakTr()
        let head = WeakTrHeadAAF(model: model)
        let features = WeakTrBackboneFeatures(), cache = WeakTrHeadAAF.Cache()
        model.backboneFeatures(stages["images"]!.view[0], into: features)
        var g = SeededGenerator(seed: 3)
        let r = Tensor([F.classCount, 4, 4])
        for i in 0..<r.count { r.data[i] = g.nextNormal() }
        func loss() -> Double {
            head.forward(features, cache: cache)
            var s = 0.0
            for i in 0..<r.count { s += Double(r.data[i]) * Double(cache.fine.data[i]) }
            return s
        }
        _ = loss()
        head.zeroGradients()
        head.backward(r.view, features: features, cache: cache)
        for p in head.parameters {
            for i in Set([0, p.count / 2, p.count - 1]) {
                let step: Float = 1e-2 * max(1, abs(p.value.data[i]))
                let saved = p.value.data[i]
                p.value.data[i] = saved + step; let lp = loss()
                p.value.data[i] = saved - step; let lm = loss()
                p.value.data[i] = saved
                let numeric = (lp - lm) / Double(2 * step)
                XCTAssertEqual(Double(p.grad!.data[i]), numeric, accuracy: 2e-2 * max(1e-2, abs(numeric)), "\(p.name)[\(i)]")
            }
        }
    }
}
