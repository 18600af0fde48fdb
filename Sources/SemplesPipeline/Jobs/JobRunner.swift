import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest

/// The final record of a job, written last and atomically as `result.json`.
/// A folder without it is not finished.
public struct JobResult: Codable, Equatable {
    public var state: String           // succeeded | failed | cancelled
    public var job: String?
    public var manifest: String
    public var started: Date
    public var finished: Date
    public var seconds: Double
    public var metrics: [String: Double]
    public var outputs: [String]
    public var error: String?
}

/// What a job reports when it finishes.
public struct JobOutcome {
    public var metrics: [String: Double] = [:]
    public var outputs: [String] = []
    public init(metrics: [String: Double] = [:], outputs: [String] = []) {
        self.metrics = metrics
        self.outputs = outputs
    }
}

/// A runnable job: reads its manifest, writes into the context's folder.
public protocol Job {
    func run(in context: JobContext) throws -> JobOutcome
}

/// Exit codes of `semples run`, which the daemon relies on.
public enum RunExitCode: Int32 {
    case succeeded = 0
    case failed = 1          // retryable: the job failed for a reason other than its manifest
    case badManifest = 2     // never retried: the manifest or its inputs are wrong
    case stopped = 3         // stopped at a safe point by SIGTERM/SIGINT; rerun with the same --out continues
}

/// Runs one manifest into one output folder, the way both the CLI and the daemon run jobs.
public enum JobRunner {
    ///
    /// `part`: `.shard(K, N)` runs one shard of a sharded CAM job (or of a pipeline's CAM step) and
    /// writes `shards/K.json`, its progress in `shards/K.progress.json` and no `result.json`;
    /// `.merge` checks a sharded job's shards and files and writes `result.json`.
    /// `shardCommand`: how a sharded job starts its shard processes (default: this executable's `run`).
    public static func run(manifestPath: String, outputFolder: String, logFile: String? = nil,
                           threads: Int? = nil, echo: Bool = true, part: CAMPart = .all,
                           shardCommand: [String]? = nil) -> RunExitCode {
        let started = Date()
        let out = URL(fileURLWithPath: outputFolder).standardizedFileURL
        let resultPath = out.appendingPathComponent("result.json").path
        if case let .shard(index, count) = part {
            return runShard(manifestPath: manifestPath, out: out, logFile: logFile, threads: threads, echo: echo,
                            index: index, count: count)
        }
        let context: JobContext
        do {
            context = try JobContext(outputFolder: out, logFile: logFile, echo: echo)
        } catch {
            FileHandle.standardError.write(Data("semples: cannot use output folder '\(out.path)': \(error)\n".utf8))
            return .failed
        }
        // A previous finished run's result no longer describes this folder.
        try? FileManager.default.removeItem(atPath: resultPath)
        if let threads { Parallel.configure(threads: threads) }

        func finish(_ state: String, job: String?, outcome: JobOutcome = JobOutcome(), error: String? = nil) {
            let now = Date()
            let result = JobResult(state: state, job: job, manifest: manifestPath, started: started, finished: now,
                                   seconds: now.timeIntervalSince(started), metrics: outcome.metrics,
                                   outputs: outcome.outputs, error: error)
            do {
                try AtomicFile.write(try JSONCoding.encoder.encode(result), to: resultPath)
            } catch {
                context.log("error: cannot write '\(resultPath)': \(error)")
            }
        }

        let manifest: Manifest
        do {
            manifest = try Manifest.load(path: manifestPath)
        } catch {
            context.log("error: invalid manifest: \(error)")
            finish("failed", job: nil, error: "invalid manifest: \(error)")
            return .badManifest
        }
        context.log("job '\(manifest.job.rawValue)' from '\(manifestPath)' into '\(out.path)' (\(Parallel.threads) threads, "
                    + "GEMMs on \(BLAS.backendDescription))")
        if manifest.precision == "bf16" {
            do {
                try BLAS.setPrecision(.bf16)
            } catch {
                context.log("error: \(error)")
                finish("failed", job: manifest.job.rawValue, error: "\(error)")
                return .badManifest
            }
            context.log(BLAS.bf16Mode == .emulated
                ? "precision bf16, emulated (SEMPLES_BF16=emulate): GEMM operands rounded to bfloat16, float32 sums; no faster"
                : "precision bf16: GEMMs on oneDNN with bfloat16 operands and float32 sums; weights and the rest float32")
        }
        do {
            // Keep a copy of the manifest as run beside the outputs.
            let copy = out.appendingPathComponent("manifest" + (manifestPath.hasSuffix(".json") ? ".json" : ".yaml"))
            if !FileManager.default.fileExists(atPath: copy.path) {
                try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: manifestPath)), to: copy.path)
            }
            let job = try makeJob(manifest, part: part, manifestPath: manifestPath, out: out.path, shardCommand: shardCommand)
            let outcome = try job.run(in: context)
            context.log("succeeded in \(formatDuration(Date().timeIntervalSince(started)))")
            finish("succeeded", job: manifest.job.rawValue, outcome: outcome)
            return .succeeded
        } catch {
            let code = exitCode(for: error, context: context)
            if code != .stopped { finish("failed", job: manifest.job.rawValue, error: "\(error)") }
            return code
        }
    }

    /// How a job's error ends the run, logged once: a stop request is resumable; a bad manifest or
    /// bad inputs are not worth retrying; anything else is a failure the daemon may retry.
    static func exitCode(for error: Error, context: JobContext) -> RunExitCode {
        if let stopped = error as? JobStopped {
            context.log(stopped.description)
            return .stopped
        }
        context.log("error: \(error)")
        return error is ManifestError || error is InputError ? .badManifest : .failed
    }

    static func makeJob(_ manifest: Manifest, part: CAMPart = .all, manifestPath: String = "", out: String = "",
                        shardCommand: [String]? = nil) throws -> Job {
        if part == .merge && manifest.job != .cam {
            throw ManifestError(file: manifest.file, key: "job", "'--merge-shards' is for 'cam' jobs, not '\(manifest.job.rawValue)'")
        }
        switch manifest.job {
        case .cam:
            var job = try CAMJob(manifest: manifest, part: part, shardCommand: shardCommand)
            job.shardInvocation = (manifestPath, out)
            return job
        case .evaluate: return try EvaluateJob(manifest: manifest)
        case .weaktr: return try WeakTrJob(manifest: manifest)
        case .train: return try StageJob(manifest: manifest)
        case .pipeline:
            var job = try PipelineJob(manifest: manifest)
            job.shardInvocation = (manifestPath, out)
            job.shardCommand = shardCommand
            return job
        case .clip: return try CLIPJob(manifest: manifest)
        }
    }

    /// One shard of a sharded CAM job: its files into the job's folder (a pipeline's: `cam/`), its
    /// record `shards/K.json`; no result.json, no manifest copy (the job's own process writes those).
    static func runShard(manifestPath: String, out: URL, logFile: String?, threads: Int?, echo: Bool,
                         index: Int, count: Int) -> RunExitCode {
        let manifest: Manifest
        do { manifest = try Manifest.load(path: manifestPath) } catch {
            FileHandle.standardError.write(Data("semples: invalid manifest: \(error)\n".utf8))
            return .badManifest
        }
        guard manifest.job == .cam || manifest.job == .pipeline, manifest.shards == count, (0..<count).contains(index) else {
            FileHandle.standardError.write(Data("semples: '--shard \(index)/\(count)' does not fit '\(manifestPath)' ('job: \(manifest.job.rawValue)', 'shards: \(manifest.shards)'); shards are K/N with N the manifest's 'shards' and 0 ≤ K < N\n".utf8))
            return .badManifest
        }
        var camManifest = manifest
        var folder = out
        if manifest.job == .pipeline {
            folder = out.appendingPathComponent("cam")
            do { camManifest = try PipelineJob(manifest: manifest).stepManifest("cam", in: out) } catch {
                FileHandle.standardError.write(Data("semples: \(error)\n".utf8))
                return .badManifest
            }
        }
        let context: JobContext
        do {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("shards"), withIntermediateDirectories: true)
            context = try JobContext(outputFolder: folder,
                                     logFile: logFile ?? folder.appendingPathComponent("log-shard-\(index).txt").path,
                                     echo: echo, progressName: "shards/\(index).progress.json")
        } catch {
            FileHandle.standardError.write(Data("semples: cannot use output folder '\(folder.path)': \(error)\n".utf8))
            return .failed
        }
        if let threads { Parallel.configure(threads: threads) }
        context.log("shard \(index)/\(count) of '\(manifestPath)' into '\(folder.path)' (\(Parallel.threads) threads)")
        do {
            _ = try CAMJob(manifest: camManifest, part: .shard(index: index, count: count)).run(in: context)
            context.log("shard \(index)/\(count) succeeded")
            return .succeeded
        } catch {
            return exitCode(for: error, context: context)
        }
    }
}

/// A problem with a job's inputs (dataset files, checkpoints) found before or during the work;
/// not retryable, like a bad manifest.
public struct InputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
