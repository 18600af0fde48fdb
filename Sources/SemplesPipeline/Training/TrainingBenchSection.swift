import Foundation

/// The `train` section of `semples bench`: one WeakTr training iteration (DeiT-S, batch 8, 224²)
/// in semples and in PyTorch (scripts/bench_train_torch.py) with the same thread count.
public enum TrainingBenchSection {
    struct TorchFigures: Decodable {
        let images_per_second: Double
        let seconds_per_step: Double
        let forward_seconds: Double
        let backward_seconds: Double
        let optimizer_seconds: Double
    }

    public static func run(threads: Int, steps: Int, torch: TorchReference?, log: (String) -> Void) -> [BenchLine] {
        var options = TrainingBenchmarkOptions()
        options.threads = threads
        options.steps = max(1, steps)
        log("train: WeakTr DeiT-S training step, batch \(options.batch), \(options.inputSize)², \(options.steps) steps, \(threads) threads")
        let ours: TrainingBenchmarkResult
        do {
            ours = try WeakTrTrainingBenchmark.run(options)
        } catch {
            log("train: failed: \(error)")
            return []
        }
        var theirs: TorchFigures?
        var note: String?
        if let torch {
            log("train: the same step in PyTorch")
            do {
                theirs = try torch.run("bench_train_torch.py", ["--threads", "\(threads)", "--steps", "\(options.steps)",
                                                                "--batch", "\(options.batch)", "--size", "\(options.inputSize)"],
                                       as: TorchFigures.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        return [
            BenchLine(section: "train", name: "weaktr step", unit: "images/s", semples: ours.imagesPerSecond,
                      torch: theirs?.images_per_second, higherIsBetter: true, note: note,
                      allocations: ours.allocationsPerStep),
            BenchLine(section: "train", name: "forward", unit: "ms", semples: ours.forwardSeconds * 1000,
                      torch: theirs.map { $0.forward_seconds * 1000 }),
            BenchLine(section: "train", name: "backward", unit: "ms", semples: ours.backwardSeconds * 1000,
                      torch: theirs.map { $0.backward_seconds * 1000 }),
            BenchLine(section: "train", name: "AdamW", unit: "ms", semples: ours.optimizerSeconds * 1000,
                      torch: theirs.map { $0.optimizer_seconds * 1000 }),
        ]
    }
}
