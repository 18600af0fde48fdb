import Foundation
import SemplesEngine

/// Timings of the CLIP workloads a training step runs (spec §9): image forward and
/// forward + pixel gradient at a batch, and class prompts through the text encoder.
public enum CLIPBenchmark {
    public struct Result: Codable, Sendable {
        public var name: String
        /// Median seconds of one run.
        public var seconds: Double
        public var runs: Int
        /// Heap allocations per timed run (nil where not counted, and on the PyTorch side).
        public var allocations: Double? = nil
    }

    /// Timings of one side, as `semples clip bench` and `scripts/fixtures/clip.py bench` print them.
    public struct Report: Codable, Sendable {
        public var threads: Int
        public var results: [Result]
        public init(threads: Int, results: [Result]) {
            self.threads = threads
            self.results = results
        }
    }

    /// Fills every parameter with N(0, 0.02²) (LayerNorm weights 1), deterministic by seed.
    public static func randomise(_ model: CLIPModel, seed: UInt64 = 0) {
        var g = SeededGenerator(seed: seed)
        for p in model.store.parameters {
            let v = p.value
            if p.name.hasSuffix("ln_1.weight") || p.name.hasSuffix("ln_2.weight") || p.name.contains("ln_pre.weight")
                || p.name.contains("ln_post.weight") || p.name.contains("ln_final.weight") {
                v.fill(1)
            } else {
                for i in 0..<v.count { v.data[i] = 0.02 * g.nextNormal() }
            }
        }
    }

    static func median(_ runs: Int, _ body: () -> Void) -> (seconds: Double, allocations: Double?) {
        body()  // warm-up
        var times: [Double] = []
        times.reserveCapacity(runs)
        let before = AllocationCount.total
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let allocations = Double(AllocationCount.total - before) / Double(max(runs, 1))
        return (times.sorted()[times.count / 2], AllocationCount.isCounting ? allocations : nil)
    }

    static func result(_ name: String, _ runs: Int, _ measured: (seconds: Double, allocations: Double?)) -> Result {
        Result(name: name, seconds: measured.seconds, runs: runs, allocations: measured.allocations)
    }

    /// Runs the three workloads on `model` (random weights are fine) and returns their timings.
    public static func run(model: CLIPModel, batch B: Int = 8, prompts P: Int = 20, runs: Int = 3) -> [Result] {
        let c = model.config, R = c.imageResolution, E = c.embedDimension
        var g = SeededGenerator(seed: 1)
        let images = Tensor([B, 3, R, R])
        for i in 0..<images.count { images.data[i] = g.nextNormal() }
        let features = Tensor([B, E])
        let probe = Tensor([B, E])
        for i in 0..<probe.count { probe.data[i] = g.nextNormal() }
        let dImages = Tensor([B, 3, R, R])
        let inference = Arena(capacity: model.image.arenaSize(batch: B, backward: false))
        let training = Arena(capacity: model.image.arenaSize(batch: B, backward: true))
        var out: [Result] = []
        out.append(result("clip_image_forward_b\(B)", runs, median(runs) {
            inference.reset()
            model.image.forward(images.view, into: features.view, arena: inference)
        }))
        out.append(result("clip_image_forward_backward_b\(B)", runs, median(runs) {
            training.reset()
            dImages.view.zero()
            let pass = model.image.forward(images.view, into: features.view, arena: training, keepActivations: true)
            model.image.backward(probe.view, pass: pass, imagesGradient: dImages.view, arena: training)
        }))
        // Class prompts "a photo of {name}." are 5–8 tokens up to the EOT.
        let ids: [[Int32]] = (0..<P).map { k in
            var row = [Int32](repeating: 0, count: c.contextLength)
            row[0] = Int32(c.vocabularySize - 2)
            let n = 4 + k % 3
            for t in 1...n { row[t] = Int32(320 + 7 * k + t) % Int32(c.vocabularySize - 2) }
            row[n + 1] = Int32(c.vocabularySize - 1)
            return row
        }
        let textFeatures = Tensor([P, E])
        let textArena = Arena(capacity: model.text.arenaSize(batch: P, tokens: c.contextLength, backward: false))
        out.append(result("clip_text_forward_\(P)_prompts", runs, median(runs) {
            textArena.reset()
            model.text.encode(ids, into: textFeatures.view, arena: textArena)
        }))
        return out
    }
}
