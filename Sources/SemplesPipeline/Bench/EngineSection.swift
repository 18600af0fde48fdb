import Foundation
import SemplesEngine

/// The engine figures of `semples bench`: transformer blocks and sgemm, against PyTorch.
public enum EngineBenchSection {
    public static func run(threads: Int, iterations: Int, torch: TorchReference?,
                           log: (String) -> Void) -> [BenchLine] {
        log("engine: blocks and sgemm (\(iterations) iterations, \(threads) threads)")
        let ours = EngineBenchmark.run(.init(threads: threads, iterations: iterations, warmup: 2))
        var theirs: EngineBenchmark.Report?
        var note: String?
        if let torch {
            log("engine: the same figures in PyTorch")
            do {
                theirs = try torch.run("bench_torch.py", ["--threads", "\(threads)", "--iterations", "\(iterations)"],
                                       as: EngineBenchmark.Report.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        return ours.figures.map { f in
            let t = theirs?.figures.first { $0.name == f.name }
            if let g = f.gflops {
                return BenchLine(section: "engine", name: f.name, unit: "GFLOP/s", semples: g, torch: t?.gflops,
                                 higherIsBetter: true, note: note)
            }
            return BenchLine(section: "engine", name: f.name, unit: "ms", semples: f.medianMilliseconds,
                             torch: t?.medianMilliseconds, note: note)
        }
    }
}
