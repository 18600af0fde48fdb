import ArgumentParser
import Foundation
import SemplesFormats
import SemplesPipeline
import SemplesSpool

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job manifest in the foreground.",
        discussion: """
        Writes log.txt, progress.json, the job's outputs and, last, result.json into --out.
        Ctrl-C or SIGTERM stops at the next image boundary; running again with the same --out
        continues where it stopped.

        A 'cam' manifest with 'shards: N' (N > 1) starts N shard processes ('--shard K/N'), each
        writing its images' files into the same --out, then checks every file and writes
        result.json once. '--shard K/N' runs only shard K (images K, K+N, …) and writes
        shards/K.json instead of result.json; '--merge-shards' only checks finished shards and
        writes result.json (semplesd's Slurm executor runs the shards as a job array this way).

        Exit codes: 0 succeeded, 1 failed, 2 invalid manifest or inputs, 3 stopped (resumable),
        75 lease lost (run by semplesd: another host took the job over).

        Example:
          semples run examples/cam-voc.yaml --out runs/cam-voc
        """)

    @Argument(help: "The job manifest (YAML or JSON).") var manifest: String
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Engine threads (default: all cores, or $SEMPLES_THREADS).") var threads: Int?
    @Option(help: "Log file; '-' for none (default: OUT/log.txt).") var logFile: String?
    @Flag(help: "Do not echo log lines and progress to the terminal.") var quiet = false
    @Option(help: "Run only shard K of a manifest with 'shards: N' (K/N, 0 ≤ K < N).") var shard: String?
    @Flag(help: "Check the finished shards of a sharded 'cam' job and write result.json.") var mergeShards = false

    func validate() throws {
        if let s = shard {
            let parts = s.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let k = parts[0], let n = parts[1], n >= 1, n <= 1024, k >= 0, k < n else {
                throw ValidationError("--shard '\(s)': expected K/N with 1 ≤ N ≤ 1024 and 0 ≤ K < N, such as 0/4")
            }
            if mergeShards { throw ValidationError("--shard and --merge-shards exclude each other") }
        }
    }

    var part: CAMPart {
        if mergeShards { return .merge }
        guard let s = shard else { return .all }
        let parts = s.split(separator: "/").compactMap { Int($0) }
        return .shard(index: parts[0], count: parts[1])
    }

    func run() throws {
        StopFlag.shared.installSignalHandlers()
        // Under a daemon on a shared spool: stop without writing once another host took the job over.
        LeaseGuard.watchFromEnvironment()
        if LeaseGuard.fromEnvironment() != nil {
            AtomicFile.beforeCommit = { path in LeaseGuard.stopIfLeaseLost(before: path) }
        }
        let envThreads = ProcessInfo.processInfo.environment["SEMPLES_THREADS"].flatMap(Int.init)
        let code = JobRunner.run(manifestPath: manifest, outputFolder: out, logFile: logFile,
                                 threads: threads ?? envThreads, echo: !quiet, part: part)
        if code != .succeeded { throw ExitCode(code.rawValue) }
    }
}
