import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// The three SemPLeS training stages (spec §1, §3).
public enum SemPLeSStage: String, Codable, Sendable, CaseIterable {
    case a, b, c
}

/// Settings of one stage run; the keys mirror the reference's flags (spec §4.1, §4.3).
public struct SemPLeSSettings: Codable, Equatable, Sendable {
    public var stage: SemPLeSStage
    public var epochs = 60
    public var batchSize: Int                 // --batch-size
    public var learningRate: Double           // --lr, scaled by batch/512
    public var minimumLearningRate = 0.0      // --min-lr
    public var warmupEpochs = 0               // --warmup-epochs
    public var weightDecay = 0.03
    public var hypers: [Double]               // --hypers: h0 (and h1 in stage c)
    public var promptLength = 30              // --btp_length
    public var dropPath = 0.1                 // --drop-path (frozen backbone, train mode)
    public var seed: UInt64 = 504
    /// Pairs per CLIP pass in (a)/(c) (memory: ≈ 2 × 25 MB each at 224 px).
    public var pairsPerPass = 4
    /// ε of the (a)/(c) mask normalisation; nil: the reference's 0.1 (spec §3.0, §10 item 4).
    /// A model whose fine CAMs span much less than 0.1 gets near-empty masks with 0.1.
    public var maskEpsilon: Double? = nil
    /// a of the (a)/(c) similarity rescaling (s + a)/(1 + a) before the clamped logs; nil: none
    /// (the reference). A CLIP whose cosines reach below 1e-4 gives no L_OTM gradient there.
    public var similarityShift: Double? = nil
    /// Minutes between mid-epoch checkpoints.
    public var checkpointMinutes = 5.0

    /// The reference's settings for a stage (spec §4.3).
    public static func reference(stage: SemPLeSStage, coco: Bool) -> SemPLeSSettings {
        switch (stage, coco) {
        case (.a, false): return SemPLeSSettings(stage: .a, batchSize: 64, learningRate: 5.12e-4, hypers: [2.4])
        case (.b, false): return SemPLeSSettings(stage: .b, batchSize: 128, learningRate: 0.1, hypers: [0.02])
        case (.c, false): return SemPLeSSettings(stage: .c, batchSize: 64, learningRate: 5.12e-4, hypers: [2.4, 0.05])
        case (.a, true): return SemPLeSSettings(stage: .a, batchSize: 32, learningRate: 5.12e-6, hypers: [0.75])
        case (.b, true): return SemPLeSSettings(stage: .b, batchSize: 128, learningRate: 0.01, hypers: [0.01])
        case (.c, true): return SemPLeSSettings(stage: .c, batchSize: 24, learningRate: 5.12e-6, hypers: [0.75, 0.2])
        }
    }

    public init(stage: SemPLeSStage, batchSize: Int, learningRate: Double, hypers: [Double]) {
        self.stage = stage
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.hypers = hypers
    }

    /// The per-epoch cosine schedule on lr × batch / 512 (spec §4.1).
    public var schedule: CosineSchedule {
        CosineSchedule(baseLearningRate: CosineSchedule.scaledLearningRate(learningRate, batchSize: batchSize),
                       minimumLearningRate: minimumLearningRate, epochs: epochs, warmupEpochs: warmupEpochs)
    }

    /// Hypers a stage needs: one in (a) and (b), two in (c).
    public var hyperCount: Int { stage == .c ? 2 : 1 }
}

/// Where training batches come from: batch k of epoch e must be a pure function of (e, k), so a
/// resumed run sees the batches an uninterrupted one would (the augmenting loader satisfies this).
public protocol SemPLeSBatchSource: AnyObject {
    var batchesPerEpoch: Int { get }
    /// Starts delivering batches fromBatch… of `epoch` (a loader may prepare them in the background).
    func start(epoch: Int, fromBatch: Int)
    /// The next batch: images [B, 3, S, S] normalised, targets [B, C] multi-hot. Overwrites both.
    func next(images: TensorView, targets: TensorView) throws
    /// Stops any background work.
    func stop()
}

/// The augmenting loader of the training area: decoding and augmentation run on a background
/// thread, and batch k of epoch e depends only on (seed, e, k).
extension TrainingBatchLoader: SemPLeSBatchSource {}

/// One finished epoch.
public struct SemPLeSEpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var learningRate: Double
    public var loss: Double
    public var terms: [String: Double]
    public var miou: Double?
    public var threshold: Double?
}

/// Everything besides tensors that a resumed run needs.
public struct SemPLeSTrainingState: Codable, Equatable, Sendable {
    public var epoch = 0
    public var batch = 0
    public var steps: [Int] = []
    public var history: [SemPLeSEpochRecord] = []
    public var bestMIoU: Double?
    public var bestEpoch: Int?
    /// Sums of the loss terms over the iterations of the current epoch done so far.
    public var sums: [String: Double] = [:]
    public var iterations = 0
    public var finished = false
    /// (iteration, loss) of every iteration, for the loss curve.
    public var lossCurve: [[Double]] = []
}

/// Runs one SemPLeS stage: iterations, AdamW with the per-epoch cosine schedule, checkpoints that
/// survive interruption, the exports the reference reads (`checkpoint*.pth`, `btp.pth`), and
/// (a)/(c) model selection by the epoch CAM evaluation when one is given.
public final class SemPLeSTrainer {
    public let settings: SemPLeSSettings
    public let source: SemPLeSBatchSource
    public let outputFolder: URL
    let classCount: Int
    let imageSize: Int
    let segment: SegmentStep?
    let promptStep: PromptStep?
    /// The WeakTr of the stage; (a)/(c) train its head and AAF in place.
    let model: WeakTr
    public let optimizer: AdamW

    /// Per-epoch CAM evaluation of a full WeakTr state dict → (mIoU, threshold); (a)/(c) only.
    public var evaluate: (([String: Tensor]) throws -> (miou: Double, threshold: Double))?
    public var log: (String) -> Void = { _ in }
    /// TensorBoard scalars (loss terms and lr per iteration, epoch means and mIoU), when set.
    public var events: TensorBoardWriter?
    /// Called between iterations; throws to stop (a checkpoint is written first).
    public var checkStop: () throws -> Void = {}
    /// (iterations done, iterations in the run) after each iteration.
    public var progress: (Int, Int) -> Void = { _, _ in }
    /// (iterations in the run, iterations already done by an earlier run) once the checkpoint is read.
    public var onStart: (Int, Int) -> Void = { _, _ in }

    public static let checkpointName = "training.safetensors"

    /// weakTrStateDict: the WeakTr to start from (a, c: the original checkpoint; b: the stage-(a)
    /// model). prompts: [C, L, W] frozen background prompts for (c); (b) initialises its own.
    public init(settings: SemPLeSSettings, source: SemPLeSBatchSource, weakTrStateDict: [String: Tensor],
                classCount: Int, reduction: Int, pooling: WeakTrPooling, clip: CLIPModel, classText: Tensor,
                prompts: Tensor? = nil, template: CLIPPromptTemplate = .semples, outputFolder: URL,
                source path: String = "checkpoint") throws {
        precondition(settings.hypers.count >= settings.hyperCount, "stage \(settings.stage) needs \(settings.hyperCount) hypers")
        self.settings = settings
        self.source = source
        self.outputFolder = outputFolder
        self.classCount = classCount
        imageSize = clip.config.imageResolution
        // Stages (a) and (c) train the model's head and AAF in place (spec §3.5).
        let model = try WeakTr(stateDict: weakTrStateDict, classCount: classCount, reduction: reduction, pooling: pooling,
                               source: path, gradients: settings.stage == .b ? .none : .headAndFusion)
        self.model = model
        let hypers = settings.hypers.map { Float($0) }
        let lr = settings.schedule.learningRate(forEpoch: 0)
        switch settings.stage {
        case .a, .c:
            var refine: Tensor? = nil
            if settings.stage == .c {
                guard let prompts else { throw InputError("stage (c) needs the background prompts of stage (b) ('btp_path')") }
                guard prompts.shape.rank == 3, prompts.shape[0] == classCount, prompts.shape[2] == clip.config.textWidth else {
                    throw InputError("background prompts \(prompts.shape) do not fit \(classCount) classes and CLIP text width \(clip.config.textWidth)")
                }
                // Frozen in (c): their features are computed once (spec §9.2).
                let features = Tensor([classCount, clip.config.embedDimension])
                let T = template.endPosition(length: prompts.shape[1]) + 1
                let arena = Arena(capacity: clip.text.arenaSize(batch: classCount, tokens: T, backward: false)
                                  + classCount * T * clip.config.textWidth + 64)
                clip.text.encodeBackgroundPrompts(prompts.view, template: template, into: features.view, arena: arena)
                normaliseRows(features.view)
                refine = features
            }
            let head = WeakTrHeadAAF(model: model)
            segment = SegmentStep(backbone: model, head: head, clip: clip, classText: classText, refinePrompts: refine,
                                  hypers: hypers, epsilon: settings.maskEpsilon.map(Float.init) ?? SemPLeSMasks.segmentEpsilon,
                                  pairsPerPass: settings.pairsPerPass, similarityShift: Float(settings.similarityShift ?? 0))
            segment!.dropPathRate = Float(settings.dropPath)
            promptStep = nil
            optimizer = AdamW(parameters: head.parameters, learningRate: lr, weightDecay: settings.weightDecay)
        case .b:
            var g = SeededGenerator(seed: settings.seed ^ 0xB7B)
            let prompts = BackgroundPrompts(classCount: classCount, length: settings.promptLength,
                                            width: clip.config.textWidth, generator: &g)
            promptStep = PromptStep(weakTr: model, clip: clip, classText: classText, prompts: prompts, template: template,
                                    hypers: hypers)
            segment = nil
            optimizer = AdamW(parameters: [prompts.prompts], learningRate: lr, weightDecay: settings.weightDecay)
        }
    }

    /// The trained tensors: head + AAF (a, c) or the prompts (b).
    public var trainedParameters: [Parameter] { optimizer.parameters }

    /// The full WeakTr state dict with the trained head and AAF, in checkpoint order (a, c).
    public func modelStateDict() -> [(String, TensorView)] {
        model.stateDict()
    }

    /// Runs (or resumes) the stage to the end. Returns the final state.
    @discardableResult
    public func run() throws -> SemPLeSTrainingState {
        try FileManager.default.createDirectory(at: outputFolder, withIntermediateDirectories: true)
        var state = try restore() ?? SemPLeSTrainingState()
        if state.steps.isEmpty { state.steps = optimizer.steps }
        if state.finished { return state }
        let perEpoch = source.batchesPerEpoch
        guard perEpoch > 0 else {
            throw InputError("fewer training images than one batch of \(settings.batchSize) (drop_last)")
        }
        let total = perEpoch * settings.epochs
        onStart(total, state.epoch * perEpoch + state.batch)
        defer { source.stop() }
        let S = imageSize
        let images = Tensor([settings.batchSize, 3, S, S]), targets = Tensor([settings.batchSize, classCount])
        var lastSave = Date()
        let runStart = Date(), doneAtStart = state.epoch * perEpoch + state.batch
        while state.epoch < settings.epochs {
            let epoch = state.epoch
            optimizer.learningRate = settings.schedule.learningRate(forEpoch: epoch)
            source.start(epoch: epoch, fromBatch: state.batch)
            while state.batch < perEpoch {
                do { try checkStop() } catch { source.stop(); try save(state); throw error }
                try source.next(images: images.view, targets: targets.view)
                let terms = iterate(images: images.view, targets: targets.view, epoch: epoch, batch: state.batch)
                for (k, v) in terms { state.sums[k, default: 0] += v }
                state.iterations += 1
                state.batch += 1
                state.steps = optimizer.steps
                state.lossCurve.append([Double(epoch * perEpoch + state.batch), terms["loss"] ?? 0])
                guard (terms["loss"] ?? 0).isFinite else {
                    throw InputError("stage \(settings.stage.rawValue) diverged at epoch \(epoch + 1), iteration \(state.batch): loss \(terms["loss"] ?? 0); lower 'lr'")
                }
                progress(epoch * perEpoch + state.batch, total)
                try events?.add(scalars: terms.sorted { $0.key < $1.key }.map { ("train/" + $0.key, $0.value) }
                                + [("train/lr", optimizer.learningRate)], step: epoch * perEpoch + state.batch)
                if state.batch % max(1, perEpoch / 10) == 0 || state.batch == perEpoch {
                    let done = epoch * perEpoch + state.batch
                    let rate = Double(done - doneAtStart) / max(Date().timeIntervalSince(runStart), 1e-9)
                    let shown = terms.filter { $0.key != "loss" }.sorted { $0.key < $1.key }
                        .map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: " ")
                    log(String(format: "stage %@ epoch %d/%d iteration %d/%d loss %.4f (%@) lr %.3g, %.2f images/s, ETA %@",
                               settings.stage.rawValue, epoch + 1, settings.epochs, state.batch, perEpoch,
                               state.lossCurve.last?[1] ?? 0, shown, optimizer.learningRate,
                               rate * Double(settings.batchSize), formatDuration(Double(total - done) / max(rate, 1e-9))))
                }
                if Date().timeIntervalSince(lastSave) >= settings.checkpointMinutes * 60 && state.batch < perEpoch {
                    try save(state)
                    lastSave = Date()
                }
            }
            source.stop()
            // Iterations done: a stop during the epoch evaluation resumes straight at it.
            try save(state)
            try finishEpoch(&state)
            try save(state)
            lastSave = Date()
        }
        state.finished = true
        try save(state)
        return state
    }

    /// One iteration: loss, gradients, AdamW step. Returns the loss terms.
    func iterate(images: TensorView, targets: TensorView, epoch: Int, batch: Int) -> [String: Double] {
        for p in optimizer.parameters { p.grad?.zero() }
        let t: SemPLeSLossTerms
        if let segment {
            // DropPath draws depend only on (seed, epoch, batch): a resumed run draws the same.
            var g: SeededGenerator? = SeededGenerator(seed: settings.seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(epoch) << 32 ^ UInt64(batch))
            t = segment.run(images: images, labels: targets, generator: &g)
        } else {
            t = promptStep!.run(images: images, labels: targets)
        }
        if t.pairs > 0 { optimizer.step() }
        let diagnostics = ["s_fg": Double(t.meanForeground), "s_bg": Double(t.meanBackground),
                           "dead_fg": Double(t.deadForeground), "weak_fg": Double(t.weakForeground), "mask_area": Double(t.maskArea)]
        switch settings.stage {
        case .a: return ["loss": Double(t.total), "otm": Double(t.otm), "btm": Double(t.btm)].merging(diagnostics) { a, _ in a }
        case .b: return ["loss": Double(t.total), "max": Double(t.max), "min": Double(t.min)]
        case .c: return ["loss": Double(t.total), "otm": Double(t.otm), "btm": Double(t.btm), "refine": Double(t.refine)]
            .merging(diagnostics) { a, _ in a }
        }
    }

    private func finishEpoch(_ state: inout SemPLeSTrainingState) throws {
        let n = Double(max(state.iterations, 1))
        var record = SemPLeSEpochRecord(epoch: state.epoch, learningRate: optimizer.learningRate,
                                        loss: (state.sums["loss"] ?? 0) / n,
                                        terms: state.sums.filter { $0.key != "loss" }.mapValues { $0 / n })
        let folder = outputFolder.path
        switch settings.stage {
        case .b:
            // The reference overwrites btp.pth every epoch: the last one is kept (spec §4.4).
            let prompts = [("prompts", promptStep!.prompts.prompts.value)]
            try OutputCheck.finiteWeights(prompts, file: folder + "/btp.pth")
            try Pth.save(stateDict: prompts, key: nil, to: folder + "/btp.pth")
        case .a, .c:
            let model = modelStateDict()
            try OutputCheck.finiteWeights(model, file: folder + "/checkpoint.pth")
            try Pth.save(stateDict: model, extras: [("epoch", .int(state.epoch))], to: folder + "/checkpoint.pth")
            if let evaluate {
                let dict = Dictionary(uniqueKeysWithValues: model.map { ($0.0, Self.copy($0.1)) })
                let (miou, threshold) = try evaluate(dict)
                record.miou = miou
                record.threshold = threshold
                if state.bestMIoU == nil || miou > state.bestMIoU! {
                    state.bestMIoU = miou
                    state.bestEpoch = state.epoch
                    try Pth.save(stateDict: model, extras: [("epoch", .int(state.epoch)), ("miou", .float(miou))],
                                 to: folder + "/checkpoint_best_mIoU.pth")
                }
            }
        }
        state.history.append(record)
        let step = (state.epoch + 1) * source.batchesPerEpoch
        try events?.add(scalars: [("epoch/loss", record.loss)] + record.terms.sorted { $0.key < $1.key }.map { ("epoch/" + $0.key, $0.value) }
                        + (record.miou.map { [("eval/miou", $0 * 100), ("eval/threshold", record.threshold ?? 0)] } ?? []), step: step)
        log(String(format: "stage %@ epoch %d done: loss %.4f", settings.stage.rawValue, state.epoch + 1, record.loss)
            + (record.miou.map { String(format: ", CAM mIoU %.2f%% at t=%.2f", $0 * 100, record.threshold ?? 0) } ?? ""))
        try AtomicFile.write(try JSONCoding.encoder.encode(state.history), to: folder + "/history.json")
        try writeCharts(state)
        state.epoch += 1
        state.batch = 0
        state.sums = [:]
        state.iterations = 0
    }

    /// loss_curve.png (per iteration) and, with an evaluation, miou_per_epoch.png.
    func writeCharts(_ state: SemPLeSTrainingState) throws {
        try LineChart.writeTrainingCharts(model: "SemPLeS stage (\(settings.stage.rawValue))", lossCurve: state.lossCurve,
                                          mIoUByEpoch: state.history.map { ($0.epoch, $0.miou) }, to: outputFolder)
    }

    static func copy(_ v: TensorView) -> Tensor {
        let t = Tensor(v.shape.dims)
        t.view.copy(from: v)
        return t
    }

    /// Writes the training checkpoint atomically: trained tensors, optimizer moments, state.
    func save(_ state: SemPLeSTrainingState) throws {
        var tensors: [(String, TensorView)] = optimizer.parameters.map { ("param." + $0.name, $0.value) }
        tensors += optimizer.stateTensors()
        try OutputCheck.finiteWeights(tensors, file: outputFolder.appendingPathComponent(Self.checkpointName).path)
        let json = String(decoding: try JSONCoding.encoder.encode(state), as: UTF8.self)
        let settingsJSON = String(decoding: try JSONCoding.encoder.encode(settings), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: ["state": json, "settings": settingsJSON],
                              to: outputFolder.appendingPathComponent(Self.checkpointName).path)
    }

    /// Loads the training checkpoint when there is one. Refuses one written with other settings.
    func restore() throws -> SemPLeSTrainingState? {
        let path = outputFolder.appendingPathComponent(Self.checkpointName).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (list, metadata) = try SafeTensors.read(path)
        guard let json = metadata["state"], let state = try? JSONCoding.decoder.decode(SemPLeSTrainingState.self, from: Data(json.utf8)) else {
            throw FormatError(path, "has no training state; delete it to start over")
        }
        // Checkpoint cadence and CLIP micro-batch size may change between runs; nothing else.
        func essential(_ s: SemPLeSSettings) -> SemPLeSSettings {
            var e = s
            e.checkpointMinutes = 0
            e.pairsPerPass = 0
            return e
        }
        if let s = metadata["settings"], let saved = try? JSONCoding.decoder.decode(SemPLeSSettings.self, from: Data(s.utf8)),
           essential(saved) != essential(settings) {
            throw InputError("'\(path)' was written by a run with other settings; use a new output folder or delete it")
        }
        var dict: [String: Tensor] = [:]
        for t in list { dict[t.name] = t.tensor }
        for p in optimizer.parameters {
            guard let t = dict["param." + p.name], t.count == p.count else {
                throw FormatError(path, "'param.\(p.name)' missing or of another size")
            }
            p.value.copy(from: t.view.reshaped(p.shape.dims))
        }
        try optimizer.restore(tensors: dict, steps: state.steps.isEmpty ? optimizer.steps : state.steps, source: path)
        log("resuming stage \(settings.stage.rawValue) at epoch \(state.epoch + 1), iteration \(state.batch + 1)")
        return state
    }
}
