import ArgumentParser
import Foundation
import SemplesEngine
import SemplesPipeline

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure semples against PyTorch on this machine, in one run.",
        discussion: """
        Each figure is measured by semples and, when a Python with torch is found, by the same
        computation in PyTorch with the same thread count, and reported as a ratio (> 1: semples is
        faster or uses less memory). Machines are noisy: compare ratios from one run.
        PyTorch is looked for in --python, $SEMPLES_PYTHON, then .venv-torch/bin/python
        (scripts/setup-torch.sh makes it).

        Examples:
          semples bench
          semples bench --only engine --json
          semples bench --threads 1 --python /opt/torch/bin/python
          semples bench --scaling
          semples bench --only train,engine --blas onednn
        """)

    @Option(help: "Threads for both engines (default: all cores).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Timed iterations per figure.") var iterations: Int = 10
    @Option(help: "Alternating semples/PyTorch rounds of the engine figures.") var rounds: Int = 3
    @Option(help: "Sections to run, comma-separated: engine, cam, clip, formats, train, semples, gemm (default: all but gemm).") var only: String?
    @Option(help: "Images timed in the cam section.") var camImages: Int = 4
    @Option(help: "Python with torch for the PyTorch side.") var python: String?
    @Flag(help: "Skip PyTorch even when available.") var noTorch = false
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Only the training step's throughput at 1, 2, … threads up to --threads, with the parallel efficiency.")
    var scaling = false
    @Option(help: "GEMM backend for semples: openblas or onednn (default: $SEMPLES_BLAS, else openblas).") var blas: String?

    /// The GEMM backend and the element-wise kernels' variant, for the report's header.
    var engineDescription: String {
        BLAS.backendDescription + "; element-wise kernels: " + ElementwiseKernels.active.rawValue
    }

    func run() throws {
        let known: Set<String> = ["engine", "cam", "clip", "formats", "train", "semples", "gemm"]
        let sections = only.map { Set($0.split(separator: ",").map(String.init)) } ?? known.subtracting(["gemm"])
        if let bad = sections.subtracting(known).first {
            throw ValidationError("unknown section '\(bad)'; known: \(known.sorted().joined(separator: ", "))")
        }
        let log: (String) -> Void = { FileHandle.standardError.write(Data("bench: \($0)\n".utf8)) }
        var torch: TorchReference?
        var torchVersion: String?
        if !noTorch {
            let found = TorchReference.locate(explicit: python, projectFolder: TorchReference.findProjectFolder())
            torch = found.reference
            if torch != nil { torchVersion = found.reason } else { log("PyTorch not measured: \(found.reason)") }
        }
        if let blas {
            guard let choice = BLAS.Backend(rawValue: blas.lowercased()) else {
                throw ValidationError("unknown GEMM backend '\(blas)'; known: " + BLAS.Backend.allCases.map(\.rawValue).joined(separator: ", "))
            }
            do { try BLAS.select(choice) } catch { throw ValidationError("\(error)") }
        }
        if scaling {
            let rows = TrainingBenchSection.scaling(maxThreads: threads, steps: max(2, iterations / 3), torch: torch, log: log)
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(rows), as: UTF8.self))
            } else {
                print(TrainingBenchSection.scalingTable(rows, blas: engineDescription), terminator: "")
            }
            return
        }
        var lines: [BenchLine] = []
        if sections.contains("gemm") {
            let previous = Parallel.threads
            Parallel.configure(threads: 1)
            let (rows, missing) = GEMMBackendBenchmark.run(log: log)
            Parallel.configure(threads: previous)
            for r in rows {
                let base = r.gflops["OpenBLAS"]
                for (library, value) in r.gflops.sorted(by: { $0.key < $1.key }) {
                    lines.append(BenchLine(section: "gemm", name: "\(r.shape) \(r.m)×\(r.n)×\(r.k) \(library)", unit: "GFLOP/s",
                                           semples: value, note: library == "OpenBLAS" || base == nil ? nil
                                               : String(format: "%.2f× OpenBLAS", value / base!)))
                }
            }
            for m in missing { log("gemm: not measured: \(m)") }
        }
        if sections.contains("engine") {
            lines += EngineBenchSection.run(threads: threads, iterations: iterations, rounds: rounds, torch: torch, log: log)
        }
        if sections.contains("cam") {
            lines += try WeakTrBenchSection.run(threads: threads, images: camImages, torch: torch, log: log)
        }
        if sections.contains("clip") {
            lines += CLIPBenchSection.run(threads: threads, runs: max(3, iterations / 3), torch: torch, log: log)
        }
        if sections.contains("formats") {
            lines += try FormatsBenchSection.run(threads: threads, iterations: max(3, iterations / 3), torch: torch, log: log)
        }
        if sections.contains("train") {
            lines += TrainingBenchSection.run(threads: threads, steps: max(3, iterations / 3), torch: torch, log: log)
        }
        if sections.contains("semples") {
            lines += SemPLeSBenchSection.run(threads: threads, iterations: iterations, torch: torch, log: log)
        }
        let report = BenchReport(threads: threads, torch: torchVersion, blas: engineDescription, lines: lines)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(report), as: UTF8.self))
        } else {
            print(report.table(), terminator: "")
        }
    }
}
