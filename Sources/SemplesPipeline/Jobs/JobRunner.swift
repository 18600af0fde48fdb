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
    public static func run(manifestPath: String, outputFolder: String, logFile: String? = nil,
                           threads: Int? = nil, echo: Bool = true) -> RunExitCode {
        let started = Date()
        let out = URL(fileURLWithPath: outputFolder).standardizedFileURL
        let resultPath = out.appendingPathComponent("result.json").path
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
        context.log("job '\(manifest.job.rawValue)' from '\(manifestPath)' into '\(out.path)' (\(Parallel.threads) threads)")
        do {
            // Keep a copy of the manifest as run beside the outputs.
            let copy = out.appendingPathComponent("manifest" + (manifestPath.hasSuffix(".json") ? ".json" : ".yaml"))
            if !FileManager.default.fileExists(atPath: copy.path) {
                try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: manifestPath)), to: copy.path)
            }
            let job = try makeJob(manifest)
            let outcome = try job.run(in: context)
            context.log("succeeded in \(formatDuration(Date().timeIntervalSince(started)))")
            finish("succeeded", job: manifest.job.rawValue, outcome: outcome)
            return .succeeded
        } catch let stopped as JobStopped {
            context.log(stopped.description)
            return .stopped
        } catch let bad as ManifestError {
            context.log("error: \(bad)")
            finish("failed", job: manifest.job.rawValue, error: bad.description)
            return .badManifest
        } catch let input as InputError {
            context.log("error: \(input)")
            finish("failed", job: manifest.job.rawValue, error: input.description)
            return .badManifest
        } catch {
            context.log("error: \(error)")
            finish("failed", job: manifest.job.rawValue, error: "\(error)")
            return .failed
        }
    }

    static func makeJob(_ manifest: Manifest) throws -> Job {
        switch manifest.job {
        case .cam: return try CAMJob(manifest: manifest)
        case .evaluate: return try EvaluateJob(manifest: manifest)
        case .weaktr: return try WeakTrJob(manifest: manifest)
        case .train: return try StageJob(manifest: manifest)
        case .pipeline: return try PipelineJob(manifest: manifest)
        case .clip: return try CLIPJob(manifest: manifest)
        }
    }
}

/// A problem with a job's inputs (dataset files, checkpoints) found before or during the work;
/// not retryable, like a bad manifest.
public struct InputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
