import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest

/// `job: pipeline` — the whole of SemPLeS from one manifest (spec §1): stage (a) from the WeakTr
/// checkpoint → stage (b) with the stage-(a) model → stage (c) from the WeakTr checkpoint with
/// the learned prompts → CAMs with the stage-(c) model → evaluation. Each step writes into its own
/// sub-folder (`a/`, `b/`, `c/`, `cam/`, `evaluate/`) and records `step.json` when done; a rerun
/// skips finished steps and resumes the interrupted one from its own checkpoint.
/// With `test_list`, a last step `report/` compares the WeakTr base, stage (a) and stage (c) on
/// the held-out images (`SemPLeSReport`: report.json, report.txt, side-by-side overlays).
public struct PipelineJob: Job {
    public let manifest: Manifest
    /// The pipeline's manifest file and `--out` folder, given to the shard processes of a sharded
    /// CAM step (`shards: N`), and how to start them (nil: this executable's `run`).
    public var shardInvocation: (manifest: String, out: String)?
    public var shardCommand: [String]?

    public static let steps = ["a", "b", "c", "cam", "evaluate"]

    /// The steps this manifest runs.
    public var steps: [String] { Self.steps + (manifest.semples?.testList != nil ? ["report"] : []) }

    public init(manifest: Manifest) throws {
        guard manifest.semples != nil, manifest.resume != nil else {
            throw ManifestError(file: manifest.file, key: "job", "not a pipeline manifest")
        }
        self.manifest = manifest
    }

    /// The manifest of one step, derived from the pipeline's.
    public func stepManifest(_ step: String, in folder: URL) -> Manifest {
        var m = manifest
        let original = manifest.resume!
        func sub(_ name: String) -> URL { folder.appendingPathComponent(name) }
        switch step {
        case "a":
            m.job = .train
            m.semples!.stage = "a"
        case "b":
            m.job = .train
            m.semples!.stage = "b"
            m.resume = StageJob.modelPath(in: sub("a"))
        case "c":
            m.job = .train
            m.semples!.stage = "c"
            m.semples!.btpPath = sub("b").appendingPathComponent("btp.pth").path
            m.resume = original
        case "cam":
            m.job = .cam
            m.resume = StageJob.modelPath(in: sub("c"))
            // CAMs for the evaluation list (the reference's train_id.txt), else the training list.
            m.imgList = manifest.semples!.imgMsList ?? manifest.imgList
        default:
            m.job = .evaluate
            m.imgList = manifest.semples!.imgMsList ?? manifest.imgList
            m.predictDir = sub("cam").appendingPathComponent("cams").path
        }
        return m
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        var metrics: [String: Double] = [:]
        var outputs: [String] = []
        let steps = self.steps
        let finished = steps.prefix { FileManager.default.fileExists(atPath:
            context.outputFolder.appendingPathComponent($0).appendingPathComponent("step.json").path) }.count
        // Top-level progress counts steps; each step's own progress.json is in its sub-folder.
        context.begin("pipeline steps", total: steps.count, alreadyDone: finished)
        for (index, step) in steps.enumerated() {
            try context.checkStop()
            let folder = context.outputFolder.appendingPathComponent(step)
            let marker = folder.appendingPathComponent("step.json")
            if let data = FileManager.default.contents(atPath: marker.path),
               let done = try? JSONCoding.decoder.decode(StepRecord.self, from: data) {
                context.log("step \(index + 1)/\(steps.count) '\(step)' already done, skipping")
                for (k, v) in done.metrics { metrics[step + "." + k] = v }
                outputs += done.outputs.map { step + "/" + $0 }
                continue
            }
            context.log("step \(index + 1)/\(steps.count) '\(step)' into '\(folder.path)'")
            // The status line names the running step; its own progress is in its folder.
            context.begin("step \(index + 1)/\(steps.count) '\(step)'", total: steps.count, alreadyDone: index)
            let m = stepManifest(step, in: context.outputFolder)
            let sub = try JobContext(outputFolder: folder, logFile: nil, echo: false, stop: context.stop)
            let job: Job
            switch step {
            case "report": job = ReportStep(manifest: manifest, pipelineFolder: context.outputFolder, echo: context)
            case "a", "b", "c": job = try StageJob(manifest: m)
            case "cam":
                // Sharded: the shard processes run inside this job (locally, or within its Slurm allocation).
                var cam = try CAMJob(manifest: m, shardCommand: shardCommand)
                cam.shardInvocation = shardInvocation
                job = cam
            default: job = try EvaluateJob(manifest: m)
            }
            let outcome = try job.run(in: sub)
            let record = StepRecord(step: step, metrics: outcome.metrics, outputs: outcome.outputs, finished: Date())
            try AtomicFile.write(try JSONCoding.encoder.encode(record), to: marker.path)
            for (k, v) in outcome.metrics { metrics[step + "." + k] = v }
            outputs += outcome.outputs.map { step + "/" + $0 }
            context.advance()
            context.log("step '\(step)' done: " + outcome.metrics.sorted { $0.key < $1.key }
                .map { "\($0.key) \(String(format: "%.4g", $0.value))" }.joined(separator: ", "))
        }
        if let miou = metrics["evaluate.miou"] { metrics["miou"] = miou }
        // With the report, the headline is the held-out comparison (evaluate/ scores the
        // validation images the thresholds were chosen on).
        if let semples = metrics["report.miou_semples"], let base = metrics["report.miou_weaktr"] {
            metrics["miou"] = semples
            metrics["miou_weaktr"] = base
        }
        return JobOutcome(metrics: metrics, outputs: outputs)
    }

    /// What a finished step leaves in `step.json`.
    struct StepRecord: Codable {
        var step: String
        var metrics: [String: Double]
        var outputs: [String]
        var finished: Date
    }
}

/// The pipeline's `report` step as a job: runs `SemPLeSReport`, writes report.json and
/// report.txt, and logs the table to the pipeline's log.
struct ReportStep: Job {
    let manifest: Manifest
    let pipelineFolder: URL
    let echo: JobContext

    func run(in context: JobContext) throws -> JobOutcome {
        let report = try SemPLeSReport.run(manifest: manifest, testList: manifest.semples!.testList!,
                                           folder: pipelineFolder, context: context)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let out = context.outputFolder
        try AtomicFile.write(try encoder.encode(report), to: out.appendingPathComponent(SemPLeSReport.fileName).path)
        let table = report.table()
        try AtomicFile.write(Data((table + "\n").utf8), to: out.appendingPathComponent("report.txt").path)
        for line in table.split(separator: "\n") { echo.log(String(line)) }
        var metrics: [String: Double] = ["test_images": Double(report.testImages)]
        let keys = ["weaktr", "a", "semples"]
        for (key, row) in zip(keys, report.models) {
            metrics["miou_" + key] = row.miou
            metrics["threshold_" + key] = row.threshold
            if let c = row.meanCooccurrence { metrics["cooccurrence_" + key] = c }
        }
        return JobOutcome(metrics: metrics, outputs: [SemPLeSReport.fileName, "report.txt", "overlays/"])
    }
}
