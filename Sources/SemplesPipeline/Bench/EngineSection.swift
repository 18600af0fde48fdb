import Foundation
import SemplesEngine

/// The engine figures of `semples bench`: transformer blocks and sgemm, against PyTorch.
/// The two sides run in alternating rounds (semples, PyTorch, semples, …) and each figure is the
/// median over rounds, so a burst of load on a shared machine hits both sides alike.
public enum EngineBenchSection {
    public static func run(threads: Int, iterations: Int, rounds: Int = 3, torch: TorchReference?,
                           log: (String) -> Void) -> [BenchLine] {
        log("engine: blocks and sgemm (\(rounds) rounds of \(iterations) iterations, \(threads) threads)")
        var ours: [EngineBenchmark.Report] = []
        var theirs: [EngineBenchmark.Report] = []
        var note: String?
        for round in 1...max(1, rounds) {
            log("engine: round \(round): semples")
            ours.append(EngineBenchmark.run(.init(threads: threads, iterations: iterations, warmup: 2)))
            guard let torch, note == nil else { continue }
            log("engine: round \(round): PyTorch")
            do {
                theirs.append(try torch.run("bench_torch.py", ["--threads", "\(threads)", "--iterations", "\(iterations)"],
                                            as: EngineBenchmark.Report.self))
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        func median(_ values: [Double]) -> Double? {
            guard !values.isEmpty else { return nil }
            let s = values.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        return EngineBenchmark.figureNames.compactMap { name in
            let mine = ours.compactMap { $0.figures.first { $0.name == name } }
            let other = theirs.compactMap { $0.figures.first { $0.name == name } }
            guard !mine.isEmpty else { return nil }
            if mine[0].gflops != nil {
                return BenchLine(section: "engine", name: name, unit: "GFLOP/s", semples: median(mine.compactMap(\.gflops))!,
                                 torch: median(other.compactMap(\.gflops)), higherIsBetter: true, note: note,
                                 allocations: mine.compactMap(\.allocations).max())
            }
            return BenchLine(section: "engine", name: name, unit: "ms", semples: median(mine.map(\.medianMilliseconds))!,
                             torch: median(other.map(\.medianMilliseconds)), note: note,
                             allocations: mine.compactMap(\.allocations).max())
        }
    }
}
