import Foundation
import SemplesEngine
import SemplesModels

/// The SemPLeS figures of `semples bench`: one stage-(a) iteration and one stage-(b) iteration at
/// full size (DeiT-S WeakTr with 20 classes, CLIP ViT-B/32, 224 px, random weights), batch 8 with
/// 12 positive (image, class) pairs (1.5 per image, spec §7.2), against PyTorch: the reference's
/// loop as written and a minimal loop doing the same necessary work (scripts/bench_semples_torch.py).
/// Also the projected hours of a full VOC run of each stage on this machine (spec §9.4 sizes).
public enum SemPLeSBenchSection {
    public struct Figures: Codable {
        public var stageA: Double   // seconds per iteration at batch 8
        public var stageB: Double?
        /// Heap allocations per timed stage-(a) iteration (semples only).
        public var stageAAllocations: Double? = nil
        enum CodingKeys: String, CodingKey {
            case stageA = "stage_a_seconds"
            case stageB = "stage_b_seconds"
        }
    }

    public static let batch = 8
    /// Image i has classes {i mod 20} and, for even i, also {(i + 7) mod 20}: 12 pairs.
    public static func labels(classCount C: Int = 20) -> Tensor {
        let t = Tensor([batch, C])
        for i in 0..<batch {
            t.data[i * C + i % C] = 1
            if i % 2 == 0 { t.data[i * C + (i + 7) % C] = 1 }
        }
        return t
    }

    /// Random CLIP ViT-B/32 weights (LayerNorm weights 1).
    static func randomCLIP(seed: UInt64) -> CLIPModel {
        let clip = CLIPModel(config: .vitB32)
        var g = SeededGenerator(seed: seed)
        for p in clip.store.parameters {
            let v = p.value
            let isNormWeight = (p.name.contains("ln_") || p.name.contains("ln_final")) && p.name.hasSuffix("weight")
            for i in 0..<v.count { v.data[i] = isNormWeight ? 1 : 0.02 * g.nextNormal() }
        }
        return clip
    }

    /// Median seconds per iteration of stages (a) and (b).
    public static func measure(iterations: Int, log: (String) -> Void) throws -> Figures {
        let C = 20, S = 224
        let config = WeakTrConfig.deitSmall(classCount: C)
        var dict: [String: Tensor] = [:]
        for (k, v) in WeakTrInitializer.stateDict(config: config, seed: 1) { dict[k] = v }
        let backbone = try WeakTr(stateDict: dict, classCount: C, reduction: 8, pooling: .max, source: "bench",
                                  gradients: .headAndFusion)
        let head = WeakTrHeadAAF(model: backbone)
        let clip = randomCLIP(seed: 2)
        var g = SeededGenerator(seed: 3)
        let classText = Tensor([C, 512])
        for i in 0..<classText.count { classText.data[i] = g.nextNormal() }
        normaliseRows(classText.view)
        let images = Tensor([batch, 3, S, S])
        for i in 0..<images.count { images.data[i] = g.nextNormal() }
        let labels = Self.labels(classCount: C)

        let step = SegmentStep(backbone: backbone, head: head, clip: clip, classText: classText, refinePrompts: nil,
                               hypers: [2.4], pairsPerPass: 4)
        let optimizer = AdamW(parameters: head.parameters, learningRate: 6.4e-5, weightDecay: 0.03)
        var allocationsA: Double?
        func timeIt(_ body: () -> Void) -> Double {
            var times: [Double] = []
            times.reserveCapacity(iterations + 1)
            var before = 0
            for i in 0..<(iterations + 1) {
                if i == 1 { before = AllocationCount.total }   // after the warm-up
                let t0 = Date()
                body()
                times.append(Date().timeIntervalSince(t0))
            }
            if AllocationCount.isCounting { allocationsA = Double(AllocationCount.total - before) / Double(iterations) }
            times.removeFirst()   // warm-up
            return times.sorted()[times.count / 2]
        }
        log("semples: stage (a) iteration, batch \(batch), 12 pairs")
        let a = timeIt {
            head.zeroGradients()
            var gen: SeededGenerator? = SeededGenerator(seed: 4)
            _ = step.run(images: images.view, labels: labels.view, generator: &gen)
            optimizer.step()
        }
        let stageAAllocations = allocationsA
        log("semples: stage (b) iteration, batch \(batch)")
        var pg = SeededGenerator(seed: 5)
        let prompts = BackgroundPrompts(classCount: C, length: 30, width: 512, generator: &pg)
        let promptStep = PromptStep(weakTr: backbone, clip: clip, classText: classText, prompts: prompts, hypers: [0.02])
        let promptOptimizer = AdamW(parameters: [prompts.prompts], learningRate: 0.025, weightDecay: 0.03)
        let b = timeIt {
            prompts.prompts.grad!.zero()
            _ = promptStep.run(images: images.view, labels: labels.view)
            promptOptimizer.step()
        }
        return Figures(stageA: a, stageB: b, stageAAllocations: stageAAllocations)
    }

    /// Hours of a 60-epoch VOC run from seconds per batch-8 iteration: (a)/(c) 10,560 images per
    /// epoch; (b) 10,496 images per epoch with the C prompt passes spread over batches of 128 (the
    /// bench's batch of 8 pays them every 8 images, so the projection overestimates (b)). The epoch
    /// CAM evaluation of (a)/(c) is not included.
    public static func projectedHours(secondsPerIteration s: Double, imagesPerEpoch: Int, epochs: Int = 60) -> Double {
        s / Double(batch) * Double(imagesPerEpoch) * Double(epochs) / 3600
    }

    public static func run(threads: Int, iterations requested: Int, torch: TorchReference?, log: (String) -> Void) -> [BenchLine] {
        Parallel.configure(threads: threads)
        // A full-size iteration takes seconds: a few are enough for a median.
        let iterations = max(1, min(requested, 3))
        var lines: [BenchLine] = []
        let ours: Figures
        do {
            ours = try measure(iterations: iterations, log: log)
        } catch {
            return [BenchLine(section: "semples", name: "stage_a_iteration_b8", unit: "ms", semples: .nan, note: "\(error)")]
        }
        log("semples: the same on the baseline set-up (OpenBLAS, library-threaded GEMMs)")
        let baseline = try? BLAS.withBaseline { try measure(iterations: iterations, log: log) }
        var reference: Double?, minimal: Double?, note: String?
        if let torch {
            for mode in ["reference", "minimal"] {
                log("semples: stage (a) in PyTorch, \(mode) loop")
                do {
                    let f = try torch.run("bench_semples_torch.py", ["--mode", mode, "--threads", "\(threads)",
                                                                     "--iterations", "\(iterations)"], as: Figures.self)
                    if mode == "reference" { reference = f.stageA } else { minimal = f.stageA }
                } catch {
                    note = "PyTorch run failed: \(error)"
                }
            }
        }
        lines.append(BenchLine(section: "semples", name: "stage_a_iteration_b8_vs_reference_loop", unit: "ms",
                               semples: ours.stageA * 1000, torch: reference.map { $0 * 1000 }, note: note,
                               allocations: ours.stageAAllocations))
        lines.append(BenchLine(section: "semples", name: "stage_a_iteration_b8_vs_minimal_loop", unit: "ms",
                               semples: ours.stageA * 1000, torch: minimal.map { $0 * 1000 }, note: note,
                               allocations: ours.stageAAllocations))
        if let b = ours.stageB {
            lines.append(BenchLine(section: "semples", name: "stage_b_iteration_b8", unit: "ms", semples: b * 1000))
            lines.append(BenchLine(section: "semples", name: "voc_stage_b_60_epochs", unit: "h",
                                   semples: projectedHours(secondsPerIteration: b, imagesPerEpoch: 10_496)))
        }
        let hoursA = projectedHours(secondsPerIteration: ours.stageA, imagesPerEpoch: 10_560)
        lines.append(BenchLine(section: "semples", name: "voc_stage_a_60_epochs", unit: "h", semples: hoursA,
                               torch: reference.map { projectedHours(secondsPerIteration: $0, imagesPerEpoch: 10_560) },
                               note: "without the epoch CAM evaluations"))
        lines.append(BenchLine(section: "semples", name: "voc_stage_c_60_epochs", unit: "h", semples: hoursA,
                               note: "as (a): the refine term adds one cosine per pair"))
        if let baseline {
            let before = "before: OpenBLAS with library-threaded GEMMs, baseline x86-64 element-wise kernels"
            let a = projectedHours(secondsPerIteration: baseline.stageA, imagesPerEpoch: 10_560)
            lines.append(BenchLine(section: "semples", name: "voc_stage_a_60_epochs_baseline", unit: "h", semples: a, note: before))
            if let b = baseline.stageB {
                lines.append(BenchLine(section: "semples", name: "voc_stage_b_60_epochs_baseline", unit: "h",
                                       semples: projectedHours(secondsPerIteration: b, imagesPerEpoch: 10_496), note: before))
            }
            lines.append(BenchLine(section: "semples", name: "voc_stage_c_60_epochs_baseline", unit: "h", semples: a, note: before))
        }
        return lines
    }
}
