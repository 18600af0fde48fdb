import Foundation
import SemplesEngine
import SemplesModels

/// The CLIP figures of `semples bench` (ViT-B/32, random weights): image forward and forward +
/// pixel gradient at batch 8, and 20 class prompts through the text encoder, beside PyTorch.
public enum CLIPBenchSection {
    public static func run(threads: Int, runs: Int, torch: TorchReference?, log: (String) -> Void) -> [BenchLine] {
        log("clip: ViT-B/32 image forward, forward + pixel gradient (batch 8), 20 prompts")
        let previous = Parallel.threads
        Parallel.configure(threads: threads)
        defer { Parallel.configure(threads: previous) }
        let model = CLIPModel(config: .vitB32)
        CLIPBenchmark.randomise(model)
        let ours = CLIPBenchmark.run(model: model, batch: 8, prompts: 20, runs: runs)
        var theirs: CLIPBenchmark.Report?
        var note: String?
        if let torch {
            log("clip: the same in PyTorch")
            do {
                theirs = try torch.run("fixtures/clip.py", ["bench", "--threads", "\(threads)", "--runs", "\(runs)"],
                                       as: CLIPBenchmark.Report.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        return ours.map { r in
            let t = theirs?.results.first { $0.name == r.name }
            return BenchLine(section: "clip", name: r.name, unit: "ms", semples: r.seconds * 1000,
                             torch: t.map { $0.seconds * 1000 }, note: note, allocations: r.allocations)
        }
    }
}
