import Foundation
import Yams

/// A bad manifest: names the file, the key (when one is at fault) and the problem.
public struct ManifestError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let key: String?
    public let problem: String

    public init(file: String, key: String? = nil, _ problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    public var description: String {
        if let key { return "'\(file)': key '\(key)': \(problem)" }
        return "'\(file)': \(problem)"
    }
}

/// The kinds of job a manifest can ask for.
public enum JobKind: String, CaseIterable, Codable, Sendable {
    case cam, evaluate, train, pipeline, weaktr, clip

    /// Kinds this version can run; the others are refused at validation with a clear message.
    public static let available: Set<JobKind> = [.cam, .evaluate, .weaktr, .train, .pipeline, .clip]
}

public enum DataSetKind: String, CaseIterable, Codable, Sendable {
    case voc12 = "VOC12", coco = "COCO"

    /// Number of foreground classes the classifier predicts.
    public var classCount: Int { self == .voc12 ? 20 : 90 }
    /// Number of classes in the evaluation (background included).
    public var evaluationClassCount: Int { self == .voc12 ? 21 : 91 }
}

public enum PoolType: String, CaseIterable, Codable, Sendable {
    case max, avg
}

/// A validated job manifest. Keys mirror the reference's command-line flags; paths are absolute
/// (relative ones were resolved against the manifest's folder) and were checked to exist.
public struct Manifest: Codable, Sendable, Equatable {
    /// The file the manifest was read from.
    public var file: String
    public var job: JobKind
    public var name: String?
    public var dataSet: DataSetKind
    public var dataPath: String
    public var imgList: String
    public var clsLabels: String?
    public var resume: String?
    public var reduction: Int
    public var poolType: PoolType
    public var scales: [Double]
    public var overlays: Bool
    public var masks: Bool
    public var maskThreshold: Double?
    public var predictDir: String?
    public var curve: Bool
    public var start: Int
    public var t: Double?
    public var crf: Bool
    public var camType: DataSetKind?
    public var limit: Int?
    public var seed: Int
    /// `shards`: the image list split into this many parts, each run as its own process (local) or
    /// array task (Slurm) writing into the same outbox; 1: not sharded. `job: cam` and the CAM step
    /// of `job: pipeline` only.
    public var shards: Int = 1
    /// `precision`: "fp32" (default) or "bf16", the arithmetic of a training job's GEMMs
    /// (weaktr, train, pipeline, clip). bf16 runs only where the CPU has AVX-512 BF16.
    public var precision: String = "fp32"
    /// The keys of `job: weaktr` (nil for other jobs).
    public var weaktr: WeakTrManifest? = nil
    /// The keys of `job: train` and `job: pipeline` (nil for other jobs).
    public var semples: SemPLeSManifest? = nil
    /// The keys of `job: clip` (nil for other jobs; CLIPManifest.swift).
    public var clip: CLIPManifest? = nil

    /// Reads and validates a manifest (YAML or JSON). Throws `ManifestError` before any work starts.
    public static func load(path: String) throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ManifestError(file: path, "cannot read the manifest (missing or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(file: path, "not UTF-8 text")
        }
        return try parse(text, file: path, checkFiles: true)
    }

    /// Parses manifest text. `checkFiles` verifies that the named inputs exist.
    public static func parse(_ text: String, file: String, checkFiles: Bool) throws -> Manifest {
        let node: Any?
        do {
            node = try Yams.load(yaml: text)
        } catch {
            throw ManifestError(file: file, "not valid YAML or JSON: \(error)")
        }
        guard let dict = node as? [String: Any] else {
            throw ManifestError(file: file, "expected a mapping of keys to values at the top level")
        }
        let base = URL(fileURLWithPath: file).deletingLastPathComponent().path
        var r = KeyReader(dict: dict, file: file, base: base, checkFiles: checkFiles)
        return try r.read()
    }
}

/// WeakTr base training keys (`job: weaktr`), mirroring WeakTr:`main.py`'s flags.
public struct WeakTrManifest: Codable, Sendable, Equatable {
    /// CAM-evaluation list run after every epoch (`img_ms_list`); nil: no per-epoch evaluation.
    public var imgMsList: String?
    public var epochs = 60
    public var batchSize = 64
    public var lr = 6e-4
    public var minLr = 1e-5
    public var warmupEpochs = 5
    public var weightDecay = 0.03
    public var dropPath = 0.1
    public var inputSize = 224
    /// `deit_small` (384, 12, 6), `deit_tiny` (192, 12, 3), or the sizes given by the three keys below.
    public var model = "deit_small"
    public var embedDim = 384
    public var depth = 12
    public var numHeads = 6
    /// DeiT ImageNet weights (.pth) to start from (spec §4.3); nil: from scratch.
    public var finetune: String?
    public var evalScales: [Double] = [1.0]
    public var evalStart = 40
    /// Minutes between mid-epoch checkpoints.
    public var checkpointMinutes = 5.0
    /// `--aa`: the RandAugment policy, or "none" (spec §4.2 step 3).
    public var aa = "rand-m9-mstd0.5-inc1"
    /// `--reprob`: random-erasing probability (spec §4.2 step 5).
    public var reprob = 0.25

    public init() {}
}

/// One SemPLeS stage's optimisation keys; nil means the reference's value for the stage and data
/// set (spec §4.3).
public struct SemPLeSStageKeys: Codable, Sendable, Equatable {
    public var batchSize: Int?
    public var lr: Double?
    public var hypers: [Double]?

    public init(batchSize: Int? = nil, lr: Double? = nil, hypers: [Double]? = nil) {
        self.batchSize = batchSize
        self.lr = lr
        self.hypers = hypers
    }
}

/// SemPLeS keys (`job: train` with `stage`, and `job: pipeline`), mirroring main{1,2,3}.py's flags.
public struct SemPLeSManifest: Codable, Sendable, Equatable {
    /// `a`, `b` or `c` for `job: train`; nil for `job: pipeline` (all three).
    public var stage: String?
    /// CLIP weights: OpenAI's ViT-B-32.pt, a state-dict .pth or a .safetensors file.
    public var clip: String
    /// Learned background prompts (`btp.pth`) for stage (c).
    public var btpPath: String?
    public var btpLength = 30
    public var epochs = 60
    public var minLr = 0.0
    public var warmupEpochs = 0
    public var weightDecay = 0.03
    public var dropPath = 0.1
    /// CAM-evaluation list run after every epoch of (a)/(c) (`img_ms_list`); nil: none.
    public var imgMsList: String?
    public var evalScales: [Double] = [1.0]
    public var evalStart = 40
    public var checkpointMinutes = 5.0
    /// (image, class) pairs per CLIP pass in (a)/(c).
    public var pairsPerPass = 4
    /// ε of the (a)/(c) mask normalisation (`mask_epsilon`); nil: the reference's 0.1.
    public var maskEpsilon: Double?
    /// a of the (a)/(c) similarity rescaling s → (s + a)/(1 + a) before the clamped logs
    /// (`similarity_shift`); nil or 0: the reference's raw cosine.
    public var similarityShift: Double?
    /// `job: pipeline`: held-out list for the closing comparison report (`test_list`); nil: none.
    public var testList: String?
    /// `job: train`: the stage's keys; `job: pipeline`: keys a, b, c (`stage_a`, … mappings).
    public var stages: [String: SemPLeSStageKeys] = [:]

    public init(clip: String) { self.clip = clip }
}

/// What each key accepts and which jobs know it.
struct KeySpec {
    let jobs: Set<JobKind>
}

private let allJobs = Set(JobKind.allCases)
private let camLike: Set<JobKind> = [.cam, .pipeline, .train]
private let modelLike: Set<JobKind> = camLike.union([.weaktr])
private let evalLike: Set<JobKind> = [.evaluate, .pipeline]
private let trainLike: Set<JobKind> = [.weaktr, .train, .pipeline]
private let semplesJobs: Set<JobKind> = [.train, .pipeline]

private let keySpecs: [String: KeySpec] = [
    "job": KeySpec(jobs: allJobs),
    "name": KeySpec(jobs: allJobs),
    "data_set": KeySpec(jobs: allJobs),
    "data_path": KeySpec(jobs: allJobs),
    "img_list": KeySpec(jobs: allJobs),
    "cls_labels": KeySpec(jobs: allJobs),
    "resume": KeySpec(jobs: camLike),
    "reduction": KeySpec(jobs: modelLike),
    "pool_type": KeySpec(jobs: modelLike),
    "scales": KeySpec(jobs: camLike),
    "overlays": KeySpec(jobs: camLike),
    "masks": KeySpec(jobs: camLike),
    "mask_threshold": KeySpec(jobs: camLike),
    "predict_dir": KeySpec(jobs: [.evaluate]),
    "curve": KeySpec(jobs: evalLike),
    "start": KeySpec(jobs: evalLike),
    "t": KeySpec(jobs: evalLike),
    "crf": KeySpec(jobs: evalLike),
    "cam_type": KeySpec(jobs: evalLike),
    "limit": KeySpec(jobs: allJobs),
    "img_ms_list": KeySpec(jobs: trainLike),
    "epochs": KeySpec(jobs: trainLike),
    "batch_size": KeySpec(jobs: [.weaktr, .train]),
    "lr": KeySpec(jobs: [.weaktr, .train]),
    "min_lr": KeySpec(jobs: trainLike),
    "warmup_epochs": KeySpec(jobs: trainLike),
    "weight_decay": KeySpec(jobs: trainLike),
    "drop_path": KeySpec(jobs: trainLike),
    "input_size": KeySpec(jobs: [.weaktr]),
    "model": KeySpec(jobs: [.weaktr]),
    "embed_dim": KeySpec(jobs: [.weaktr]),
    "depth": KeySpec(jobs: [.weaktr]),
    "num_heads": KeySpec(jobs: [.weaktr]),
    "finetune": KeySpec(jobs: [.weaktr]),
    "eval_scales": KeySpec(jobs: trainLike),
    "eval_start": KeySpec(jobs: trainLike),
    "checkpoint_minutes": KeySpec(jobs: trainLike),
    "aa": KeySpec(jobs: [.weaktr]),
    "reprob": KeySpec(jobs: [.weaktr]),
    "stage": KeySpec(jobs: [.train]),
    "hypers": KeySpec(jobs: [.train]),
    "btp_length": KeySpec(jobs: semplesJobs),
    "btp_path": KeySpec(jobs: [.train]),
    "clip": KeySpec(jobs: semplesJobs),
    "pairs_per_pass": KeySpec(jobs: semplesJobs),
    "mask_epsilon": KeySpec(jobs: semplesJobs),
    "similarity_shift": KeySpec(jobs: semplesJobs),
    "test_list": KeySpec(jobs: [.pipeline]),
    "stage_a": KeySpec(jobs: [.pipeline]),
    "stage_b": KeySpec(jobs: [.pipeline]),
    "stage_c": KeySpec(jobs: [.pipeline]),
    "seed": KeySpec(jobs: allJobs),
    "shards": KeySpec(jobs: [.cam, .pipeline]),
    "precision": KeySpec(jobs: [.weaktr, .train, .pipeline, .clip]),
    // Read by the daemon, not the job: Slurm resources (semplesd's `executor: slurm`).
    "resources": KeySpec(jobs: allJobs),
]

struct KeyReader {
    let dict: [String: Any]
    let file: String
    let base: String
    let checkFiles: Bool

    func fail(_ key: String?, _ problem: String) -> ManifestError {
        ManifestError(file: file, key: key, problem)
    }

    mutating func read() throws -> Manifest {
        guard let jobValue = dict["job"] else {
            throw fail("job", "missing; one of \(JobKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let jobName = jobValue as? String, let job = JobKind(rawValue: jobName) else {
            throw fail("job", "'\(jobValue)' is not a job kind; expected one of \(JobKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard JobKind.available.contains(job) else {
            throw fail("job", "'\(jobName)' jobs are not available in this version; available: \(JobKind.available.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        // Every key must be known, and known for this job kind.
        for key in dict.keys.sorted() {
            guard let spec = keySpecs[key] ?? clipKeySpecs[key] else {
                let near = Set(keySpecs.keys).union(clipKeySpecs.keys).filter { editDistance($0, key) <= 2 }.sorted()
                let hint = near.isEmpty ? "" : "; did you mean '\(near[0])'?"
                throw fail(key, "unknown key\(hint)")
            }
            guard spec.jobs.contains(job) || (job == .clip && clipKeySpecs[key] != nil) else {
                if key == "shards" {
                    throw fail(key, "not used by '\(jobName)' jobs; only 'cam' jobs and the CAM step of 'pipeline' jobs run sharded")
                }
                throw fail(key, "not used by '\(jobName)' jobs")
            }
        }

        let dataSetName = try string("data_set") ?? "VOC12"
        guard let dataSet = DataSetKind(rawValue: dataSetName) else {
            throw fail("data_set", "'\(dataSetName)' is not a data set; expected VOC12 or COCO")
        }
        guard let dataPath = try path("data_path", directory: true) else { throw fail("data_path", "missing") }
        let clsLabels = try path("cls_labels", directory: false)
        let imgList: String
        if let given = try path("img_list", directory: false) {
            imgList = given
        } else if job == .clip {
            imgList = try defaultCLIPList(dataPath: dataPath, clsLabels: clsLabels)
        } else if job == .weaktr {
            // Default: the training list beside the labels (WeakTr's train_aug_id.txt).
            let folder = clsLabels.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
                ?? dataPath + (dataSet == .voc12 ? "/voc12" : "/coco")
            let name = dataSet == .voc12 ? "train_aug_id.txt" : "train_id.txt"
            imgList = folder + "/" + name
            if checkFiles && !FileManager.default.isReadableFile(atPath: imgList) {
                throw fail("img_list", "missing, and the default training list '\(imgList)' does not exist")
            }
        } else {
            throw fail("img_list", "missing")
        }

        var m = Manifest(
            file: file, job: job, name: try string("name"), dataSet: dataSet,
            dataPath: dataPath, imgList: imgList, clsLabels: clsLabels,
            resume: nil, reduction: 8, poolType: .max, scales: [1.0, 1.2],
            overlays: false, masks: false, maskThreshold: nil, predictDir: nil,
            curve: true, start: 40, t: nil, crf: false, camType: nil,
            limit: try int("limit", range: 1...Int.max), seed: try int("seed", range: 0...Int(Int32.max)) ?? 504)

        m.shards = try int("shards", range: 1...1024) ?? 1
        if let p = try string("precision") {
            guard p == "fp32" || p == "bf16" else {
                throw fail("precision", "'\(p)' is not a precision; expected fp32 or bf16")
            }
            m.precision = p
        }
        switch job {
        case .cam:
            guard let resume = try path("resume", directory: false) else {
                throw fail("resume", "missing; the WeakTr or SemPLeS checkpoint (.pth) to generate CAMs with")
            }
            m.resume = resume
            m.reduction = try int("reduction", range: 1...72) ?? 8
            if let p = try string("pool_type") {
                guard let pool = PoolType(rawValue: p) else { throw fail("pool_type", "'\(p)' is not max or avg") }
                m.poolType = pool
            }
            if let s = try doubles("scales") {
                guard !s.isEmpty else { throw fail("scales", "needs at least one scale") }
                guard s.allSatisfy({ $0 > 0.05 && $0 <= 4 }) else { throw fail("scales", "each scale must be in (0.05, 4]") }
                m.scales = s
            }
            m.overlays = try bool("overlays") ?? false
            m.masks = try bool("masks") ?? false
            m.maskThreshold = try double("mask_threshold", range: 0...1)
            if m.masks && m.maskThreshold == nil {
                throw fail("mask_threshold", "missing; pseudo-masks ('masks: true') need a background threshold such as 0.43")
            }
        case .weaktr:
            m.reduction = try int("reduction", range: 1...4096) ?? 8
            if let p = try string("pool_type") {
                guard let pool = PoolType(rawValue: p) else { throw fail("pool_type", "'\(p)' is not max or avg") }
                m.poolType = pool
            }
            m.weaktr = try readWeakTrKeys(imgList: imgList, dataSet: dataSet, reduction: m.reduction)
        case .train, .pipeline:
            guard let resume = try path("resume", directory: false) else {
                throw fail("resume", job == .pipeline
                    ? "missing; the original WeakTr checkpoint (.pth) stages (a) and (c) start from"
                    : "missing; the WeakTr checkpoint to start from (stage a, c: the WeakTr checkpoint; b: the stage-(a) model)")
            }
            m.resume = resume
            m.reduction = try int("reduction", range: 1...4096) ?? (dataSet == .voc12 ? 8 : 4)
            m.poolType = dataSet == .voc12 ? .max : .avg
            if let p = try string("pool_type") {
                guard let pool = PoolType(rawValue: p) else { throw fail("pool_type", "'\(p)' is not max or avg") }
                m.poolType = pool
            }
            m.semples = try readSemPLeSKeys(job: job, imgList: imgList, dataSet: dataSet)
            if job == .pipeline {
                if let s = try doubles("scales") {
                    guard !s.isEmpty, s.allSatisfy({ $0 > 0.05 && $0 <= 4 }) else { throw fail("scales", "each scale must be in (0.05, 4]") }
                    m.scales = s
                }
                m.overlays = try bool("overlays") ?? false
                m.masks = try bool("masks") ?? false
                m.maskThreshold = try double("mask_threshold", range: 0...1)
                if m.masks && m.maskThreshold == nil {
                    throw fail("mask_threshold", "missing; pseudo-masks ('masks: true') need a background threshold such as 0.43")
                }
                try readEvaluationKeys(into: &m)
            }
        case .clip:
            m.clip = try readCLIPKeys(imgList: imgList)
        case .evaluate:
            guard let predict = try path("predict_dir", directory: true) else {
                throw fail("predict_dir", "missing; the folder of <id>.npy CAM files to evaluate")
            }
            m.predictDir = predict
            try readEvaluationKeys(into: &m)
        }
        return m
    }

    /// `img_ms_list`, or by default the reference's CAM-evaluation list beside the training list
    /// when it is there (VOC train_id.txt, COCO train_1250_id.txt), else none.
    func evaluationList(imgList: String, dataSet: DataSetKind) throws -> String? {
        if let list = try path("img_ms_list", directory: false) { return list }
        let beside = URL(fileURLWithPath: imgList).deletingLastPathComponent()
            .appendingPathComponent(dataSet == .voc12 ? "train_id.txt" : "train_1250_id.txt").path
        return FileManager.default.isReadableFile(atPath: beside) ? beside : nil
    }

    func readWeakTrKeys(imgList: String, dataSet: DataSetKind, reduction: Int) throws -> WeakTrManifest {
        var w = WeakTrManifest()
        w.imgMsList = try evaluationList(imgList: imgList, dataSet: dataSet)
        w.epochs = try int("epochs", range: 1...10_000) ?? 60
        w.batchSize = try int("batch_size", range: 1...4096) ?? 64
        w.lr = try double("lr", range: 0...10) ?? 6e-4
        w.minLr = try double("min_lr", range: 0...10) ?? 1e-5
        w.warmupEpochs = try int("warmup_epochs", range: 0...10_000) ?? 5
        w.weightDecay = try double("weight_decay", range: 0...10) ?? 0.03
        w.dropPath = try double("drop_path", range: 0...0.99) ?? 0.1
        w.inputSize = try int("input_size", range: 16...4096) ?? 224
        guard w.inputSize % 16 == 0 else { throw fail("input_size", "\(w.inputSize) is not a multiple of the 16-pixel patch") }
        w.model = try string("model") ?? "deit_small"
        switch w.model {
        case "deit_small": (w.embedDim, w.depth, w.numHeads) = (384, 12, 6)
        case "deit_tiny": (w.embedDim, w.depth, w.numHeads) = (192, 12, 3)
        case "custom": break
        default: throw fail("model", "'\(w.model)' is not deit_small, deit_tiny or custom")
        }
        let sized = dict["embed_dim"] != nil || dict["depth"] != nil || dict["num_heads"] != nil
        if sized { w.model = "custom" }
        w.embedDim = try int("embed_dim", range: 8...4096) ?? w.embedDim
        w.depth = try int("depth", range: 1...64) ?? w.depth
        w.numHeads = try int("num_heads", range: 1...64) ?? w.numHeads
        guard w.embedDim % w.numHeads == 0 else {
            throw fail("embed_dim", "\(w.embedDim) is not divisible by num_heads \(w.numHeads)")
        }
        guard (w.embedDim / w.numHeads) >= 8 else {
            throw fail("num_heads", "head width \(w.embedDim / w.numHeads) is below 8 (AAF reduces it by 8)")
        }
        guard w.depth * w.numHeads >= reduction else {
            throw fail("reduction", "\(reduction) exceeds the \(w.depth * w.numHeads) AAF channels (depth × num_heads)")
        }
        w.finetune = try path("finetune", directory: false)
        if let s = try doubles("eval_scales") {
            guard !s.isEmpty, s.allSatisfy({ $0 > 0.05 && $0 <= 4 }) else {
                throw fail("eval_scales", "needs one or more scales in (0.05, 4]")
            }
            w.evalScales = s
        }
        w.evalStart = try int("eval_start", range: 0...99) ?? 40
        w.checkpointMinutes = try double("checkpoint_minutes", range: 0...1440) ?? 5
        w.aa = try string("aa") ?? "rand-m9-mstd0.5-inc1"
        w.reprob = try double("reprob", range: 0...1) ?? 0.25
        return w
    }

    func readSemPLeSKeys(job: JobKind, imgList: String, dataSet: DataSetKind) throws -> SemPLeSManifest {
        guard let clip = try path("clip", directory: false) else {
            throw fail("clip", "missing; the CLIP ViT-B/32 weights (OpenAI's ViT-B-32.pt or a converted .safetensors)")
        }
        var s = SemPLeSManifest(clip: clip)
        if job == .train {
            guard let stage = try string("stage") else { throw fail("stage", "missing; one of a, b, c") }
            guard ["a", "b", "c"].contains(stage) else { throw fail("stage", "'\(stage)' is not a stage; expected a, b or c") }
            s.stage = stage
            s.btpPath = try path("btp_path", directory: false)
            if stage == "c" && s.btpPath == nil {
                throw fail("btp_path", "missing; stage (c) needs the background prompts learned in stage (b) (btp.pth)")
            }
            if stage != "c" && s.btpPath != nil { throw fail("btp_path", "only stage (c) reads background prompts") }
            s.stages[stage] = try stageKeys(stage: stage, batchSize: int("batch_size", range: 1...4096),
                                            lr: double("lr", range: 0...10), hypers: doubles("hypers"), key: "hypers")
        } else {
            for stage in ["a", "b", "c"] {
                let key = "stage_" + stage
                guard let v = dict[key] else { continue }
                guard let sub = v as? [String: Any] else { throw fail(key, "expected a mapping with batch_size, lr, hypers") }
                if let bad = sub.keys.first(where: { !["batch_size", "lr", "hypers"].contains($0) }) {
                    throw fail(key, "unknown key '\(bad)'; expected batch_size, lr, hypers")
                }
                let reader = KeyReader(dict: sub, file: file, base: base, checkFiles: checkFiles)
                s.stages[stage] = try stageKeys(stage: stage, batchSize: reader.int("batch_size", range: 1...4096),
                                                lr: reader.double("lr", range: 0...10), hypers: reader.doubles("hypers"),
                                                key: key)
            }
        }
        s.imgMsList = try evaluationList(imgList: imgList, dataSet: dataSet)
        s.btpLength = try int("btp_length", range: 1...70) ?? 30
        s.epochs = try int("epochs", range: 1...10_000) ?? 60
        s.minLr = try double("min_lr", range: 0...10) ?? 0
        s.warmupEpochs = try int("warmup_epochs", range: 0...10_000) ?? 0
        s.weightDecay = try double("weight_decay", range: 0...10) ?? 0.03
        s.dropPath = try double("drop_path", range: 0...0.99) ?? 0.1
        if let e = try doubles("eval_scales") {
            guard !e.isEmpty, e.allSatisfy({ $0 > 0.05 && $0 <= 4 }) else {
                throw fail("eval_scales", "needs one or more scales in (0.05, 4]")
            }
            s.evalScales = e
        }
        s.evalStart = try int("eval_start", range: 0...99) ?? 40
        s.checkpointMinutes = try double("checkpoint_minutes", range: 0...1440) ?? 5
        s.pairsPerPass = try int("pairs_per_pass", range: 1...256) ?? 4
        s.maskEpsilon = try double("mask_epsilon", range: 1e-8...1)
        s.similarityShift = try double("similarity_shift", range: 0...10)
        s.testList = try path("test_list", directory: false)
        if s.testList != nil && s.imgMsList == nil {
            throw fail("test_list", "the report chooses thresholds on a validation list: give 'img_ms_list' too")
        }
        return s
    }

    func stageKeys(stage: String, batchSize: Int?, lr: Double?, hypers: [Double]?, key: String) throws -> SemPLeSStageKeys {
        if let h = hypers {
            let need = stage == "c" ? 2 : 1
            guard h.count == need else {
                throw fail(key, "stage (\(stage)) takes \(need) hyper-parameter\(need == 1 ? "" : "s") (h0\(need == 2 ? ", h1" : "")), found \(h.count)")
            }
            guard h.allSatisfy({ $0 >= 0 && $0.isFinite }) else { throw fail(key, "hyper-parameters must be ≥ 0") }
        }
        return SemPLeSStageKeys(batchSize: batchSize, lr: lr, hypers: hypers)
    }

    mutating func readEvaluationKeys(into m: inout Manifest) throws {
        m.curve = try bool("curve") ?? true
        m.start = try int("start", range: 0...99) ?? 40
        m.t = try double("t", range: 0...1)
        m.crf = try bool("crf") ?? false
        if let c = try string("cam_type") {
            guard let kind = DataSetKind(rawValue: c) else { throw fail("cam_type", "'\(c)' is not VOC12 or COCO") }
            m.camType = kind
        }
        if !m.curve && m.t == nil {
            throw fail("t", "missing; 'curve: false' needs a fixed threshold 't' such as 0.43")
        }
        if m.curve && m.t != nil {
            throw fail("t", "given together with 'curve: true'; use one or the other")
        }
        if m.crf && m.curve {
            throw fail("crf", "CRF runs at a fixed threshold: set 'curve: false' and 't'")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let v = dict[key] else { return nil }
        guard let s = v as? String else { throw fail(key, "expected a string, found '\(v)'") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = dict[key] else { return nil }
        guard let b = v as? Bool else { throw fail(key, "expected true or false, found '\(v)'") }
        return b
    }

    func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let v = dict[key] else { return nil }
        guard let i = v as? Int else { throw fail(key, "expected an integer, found '\(v)'") }
        guard range.contains(i) else { throw fail(key, "\(i) is out of range \(range.lowerBound)…\(range.upperBound)") }
        return i
    }

    func double(_ key: String, range: ClosedRange<Double>) throws -> Double? {
        guard let v = dict[key] else { return nil }
        let d: Double
        if let x = v as? Double { d = x } else if let i = v as? Int { d = Double(i) } else {
            throw fail(key, "expected a number, found '\(v)'")
        }
        guard range.contains(d) else { throw fail(key, "\(d) is out of range \(range.lowerBound)…\(range.upperBound)") }
        return d
    }

    func doubles(_ key: String) throws -> [Double]? {
        guard let v = dict[key] else { return nil }
        guard let list = v as? [Any] else { throw fail(key, "expected a list of numbers such as [1.0, 1.2]") }
        return try list.map { item in
            if let d = item as? Double { return d }
            if let i = item as? Int { return Double(i) }
            throw fail(key, "expected a list of numbers, found '\(item)'")
        }
    }

    /// Resolves a path key against the manifest folder and checks it exists with the right kind.
    func path(_ key: String, directory: Bool) throws -> String? {
        guard let raw = try string(key) else { return nil }
        guard !raw.isEmpty else { throw fail(key, "empty path") }
        let expanded = (raw as NSString).expandingTildeInPath
        let full = expanded.hasPrefix("/") ? expanded : URL(fileURLWithPath: base).appendingPathComponent(expanded).standardizedFileURL.path
        if checkFiles {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir) else {
                throw fail(key, "'\(full)' does not exist")
            }
            if directory && !isDir.boolValue { throw fail(key, "'\(full)' is not a folder") }
            if !directory && isDir.boolValue { throw fail(key, "'\(full)' is a folder, expected a file") }
            guard FileManager.default.isReadableFile(atPath: full) else { throw fail(key, "'\(full)' is not readable") }
        }
        return full
    }
}

/// Levenshtein distance, for "did you mean" hints on unknown keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
