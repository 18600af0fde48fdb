import Foundation
import SemplesEngine

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
        // The same step on the engine's set-up before its GEMMs were cut into panels (OpenBLAS,
        // library-threaded GEMMs), for the before/after projection.
        log("train: the same step on the baseline set-up (OpenBLAS, library-threaded GEMMs)")
        let baseline = try? BLAS.withBaseline { try WeakTrTrainingBenchmark.run(options) }
        let hours = { (imagesPerSecond: Double) in projectedHours(imagesPerSecond: imagesPerSecond) }
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
            BenchLine(section: "train", name: "voc_weaktr_60_epochs", unit: "h", semples: hours(ours.imagesPerSecond),
                      torch: theirs.map { hours($0.images_per_second) },
                      note: "10,560 images × 60 epochs at this step's speed, without the epoch evaluations"),
            BenchLine(section: "train", name: "voc_weaktr_60_epochs_baseline", unit: "h",
                      semples: baseline.map { hours($0.imagesPerSecond) } ?? .nan,
                      torch: theirs.map { hours($0.images_per_second) },
                      note: "before: OpenBLAS with library-threaded GEMMs, baseline x86-64 element-wise kernels"),
        ]
    }

    /// Hours of a 60-epoch WeakTr run on VOC train_aug (10,560 images per epoch, spec §9.4) at
    /// this many images per second.
    public static func projectedHours(imagesPerSecond: Double, imagesPerEpoch: Int = 10_560, epochs: Int = 60) -> Double {
        Double(imagesPerEpoch * epochs) / max(imagesPerSecond, 1e-9) / 3600
    }

    /// Throughput of the training step at 1…`maxThreads` threads, each beside PyTorch with the
    /// same thread count when `torch` is given.
    public struct ScalingRow: Codable {
        public var threads: Int
        public var imagesPerSecond: Double
        public var speedUp: Double
        public var efficiency: Double
        public var torchImagesPerSecond: Double?
        public var allocationsPerStep: Double?
    }

    public static func scaling(maxThreads: Int, steps: Int, torch: TorchReference?, log: (String) -> Void) -> [ScalingRow] {
        var rows: [ScalingRow] = []
        for t in 1...max(1, maxThreads) {
            var options = TrainingBenchmarkOptions()
            options.threads = t
            options.steps = max(1, steps)
            log("scaling: training step at \(t) thread\(t == 1 ? "" : "s")")
            let ours: TrainingBenchmarkResult
            do {
                ours = try WeakTrTrainingBenchmark.run(options)
            } catch {
                log("scaling: \(t) threads failed: \(error)")
                continue
            }
            var theirs: Double?
            if let torch {
                theirs = (try? torch.run("bench_train_torch.py", ["--threads", "\(t)", "--steps", "\(options.steps)",
                                                                  "--batch", "\(options.batch)", "--size", "\(options.inputSize)"],
                                         as: TorchFigures.self))?.images_per_second
            }
            let base = rows.first?.imagesPerSecond ?? ours.imagesPerSecond
            rows.append(ScalingRow(threads: t, imagesPerSecond: ours.imagesPerSecond, speedUp: ours.imagesPerSecond / base,
                                   efficiency: ours.imagesPerSecond / base / Double(t), torchImagesPerSecond: theirs,
                                   allocationsPerStep: ours.allocationsPerStep))
        }
        return rows
    }

    /// The scaling table for the terminal; flags any thread count slower than the one before.
    public static func scalingTable(_ rows: [ScalingRow], blas: String) -> String {
        var out = "training step (WeakTr DeiT-S, batch 8, 224²) against threads; semples GEMM: \(blas)\n\n"
        out += "threads  images/s  speed-up  efficiency  PyTorch images/s  ratio  allocs/step\n"
        out += "-------  --------  --------  ----------  ----------------  -----  -----------\n"
        for r in rows {
            let torch = r.torchImagesPerSecond.map { String(format: "%16.3f", $0) } ?? String(repeating: " ", count: 15) + "-"
            let ratio = r.torchImagesPerSecond.map { String(format: "%4.2f×", r.imagesPerSecond / $0) } ?? "    -"
            let allocs = r.allocationsPerStep.map { String(format: "%11.0f", $0) } ?? String(repeating: " ", count: 10) + "-"
            out += String(format: "%7d  %8.3f  %7.2f×  %9.0f%%  ", r.threads, r.imagesPerSecond, r.speedUp, r.efficiency * 100)
                + torch + "  " + ratio + "  " + allocs + "\n"
        }
        let slower = zip(rows, rows.dropFirst()).filter { $1.imagesPerSecond < $0.imagesPerSecond }
        out += slower.isEmpty ? "\nno thread count is slower than the one before it\n"
            : "\nSLOWER with more threads at: " + slower.map { "\($0.1.threads)" }.joined(separator: ", ") + "\n"
        return out
    }
}
