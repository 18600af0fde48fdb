import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// `job: weaktr` — WeakTr base training (spec §3.4, §4.1, §4.3): per epoch, train, then CAM
/// evaluation on `img_ms_list` (scale 1.0 + flip, greedy threshold sweep), keeping the best-mIoU
/// weights as `checkpoint_best_mIoU.pth` ({'model', 'epoch', 'miou'}).
///
/// Resumable: `checkpoint.safetensors` (weights, AdamW moments, counters) is written atomically
/// every `checkpoint_minutes`, at each epoch end and when a stop is requested; a rerun on the same
/// output folder continues from it and ends where an uninterrupted run would.
public struct WeakTrJob: Job {
    public let manifest: Manifest
    /// Requests a stop once this many optimizer steps are done (interruption tests).
    var stopAfterStep: Int?

    public init(manifest: Manifest) throws {
        guard let w = manifest.weaktr else {
            throw ManifestError(file: manifest.file, key: "job", "not a weaktr manifest")
        }
        self.manifest = manifest
        // The policy strings are checked before any work starts.
        _ = try Self.augmentation(w, file: manifest.file)
    }

    /// Crop, flip, normalise, and the `aa` / `reprob` stages of spec §4.2.
    static func augmentation(_ w: WeakTrManifest, file: String) throws -> TrainingAugmentation {
        do {
            return try TrainingAugmentation(size: w.inputSize, autoAugment: w.aa, reprob: w.reprob)
        } catch let e as AugmentationFlagError {
            throw ManifestError(file: file, key: e.flag, e.detail)
        }
    }

    /// The model geometry the manifest asks for.
    public static func config(_ m: Manifest) -> WeakTrConfig {
        let w = m.weaktr!
        return WeakTrConfig(classCount: m.dataSet.classCount, embedDimension: w.embedDim, depth: w.depth,
                            headCount: w.numHeads, mlpHidden: 4 * w.embedDim, reduction: m.reduction,
                            pooling: WeakTrPooling(rawValue: m.poolType.rawValue)!,
                            featureHidden: w.embedDim / w.numHeads / 8, gridSide: w.inputSize / 16)
    }

    public static func settings(_ m: Manifest) -> WeakTrTrainingSettings {
        let w = m.weaktr!
        return WeakTrTrainingSettings(epochs: w.epochs, batchSize: w.batchSize, learningRate: w.lr,
                                      minimumLearningRate: w.minLr, warmupEpochs: w.warmupEpochs,
                                      weightDecay: w.weightDecay, dropPath: w.dropPath, seed: UInt64(m.seed))
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest, w = m.weaktr!
        let train = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: m.imgList,
                                            labelsPath: m.clsLabels, needLabels: true)
        var ids = train.ids
        if let limit = m.limit { ids = Array(ids.prefix(limit)) }
        try train.checkPresent(ids: ids, images: true, groundTruth: false, labels: true)
        guard ids.count >= w.batchSize else {
            throw InputError("'\(m.imgList)': \(ids.count) training images, fewer than one batch of \(w.batchSize)")
        }
        var evaluation: (SegmentationDataset, [String])?
        if let list = w.imgMsList {
            // The labels the training list uses, when the evaluation list lies elsewhere.
            let besideTraining = URL(fileURLWithPath: m.imgList).deletingLastPathComponent()
                .appendingPathComponent("cls_labels.npy").path
            let labels = m.clsLabels ?? (FileManager.default.fileExists(atPath: besideTraining) ? besideTraining : nil)
            let ds = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: list,
                                             labelsPath: labels, needLabels: true)
            var evalIDs = ds.ids
            if let limit = m.limit { evalIDs = Array(evalIDs.prefix(limit)) }
            try ds.checkPresent(ids: evalIDs, images: true, groundTruth: true, labels: true)
            evaluation = (ds, evalIDs)
        }

        let config = Self.config(m)
        let settings = Self.settings(m)
        let model = WeakTr(config: config, dropPathRate: Float(w.dropPath))
        let loader = TrainingBatchLoader(imagePaths: ids.map { train.imagePath($0) },
                                         labels: ids.map { train.labelVector($0)! }, batchSize: w.batchSize,
                                         transform: try Self.augmentation(w, file: m.file), seed: UInt64(m.seed))
        let trainer = WeakTrTrainer(model: model, settings: settings, loader: loader)
        let out = context.outputFolder
        let checkpointPath = out.appendingPathComponent("checkpoint.safetensors").path
        if FileManager.default.fileExists(atPath: checkpointPath) {
            try trainer.loadCheckpoint(from: checkpointPath)
            context.log("resuming from '\(checkpointPath)': epoch \(trainer.state.epoch), batch \(trainer.state.batch), step \(trainer.state.step)")
        } else {
            try Self.initialise(model, manifest: m, context: context)
        }
        context.log("WeakTr training: D=\(config.embedDimension), depth \(config.depth), \(config.headCount) heads, \(config.classCount) classes, \(w.inputSize)² input; \(ids.count) images, batch \(w.batchSize), \(trainer.batchesPerEpoch) iterations per epoch, \(w.epochs) epochs, lr_eff \(settings.schedule.baseLearningRate)")

        let events = try TensorBoardWriter(folder: out.appendingPathComponent("tensorboard").path)
        var lastSave = Date()
        var lastEvaluationSeconds = 0.0
        let every = max(1, trainer.batchesPerEpoch / 10)
        while !trainer.finished {
            let epoch = trainer.state.epoch
            trainer.startEpoch()
            context.begin("epoch \(epoch + 1)/\(w.epochs)", total: trainer.batchesPerEpoch, alreadyDone: trainer.state.batch)
            while trainer.state.batch < trainer.batchesPerEpoch {
                if context.stop.isSet {
                    trainer.loader.stop()
                    try trainer.saveCheckpoint(to: checkpointPath)
                    try context.checkStop()
                }
                let terms = try trainer.iteration()
                context.advance()
                try events.add(scalars: [("train/loss", Double(terms.total)), ("train/cls", Double(terms.classToken)),
                                         ("train/coarse", Double(terms.coarse)), ("train/fine", Double(terms.fine)),
                                         ("train/lr", trainer.optimizer.learningRate)], step: trainer.state.step)
                if let k = stopAfterStep, trainer.state.step >= k { context.stop.set("test stop") }
                guard terms.total.isFinite else {
                    throw InputError("training diverged at step \(trainer.state.step): loss \(terms.total); lower 'lr'")
                }
                if trainer.state.batch % every == 0 || trainer.state.batch == trainer.batchesPerEpoch {
                    let p = context.progress
                    // Whole-run estimate: this epoch's remainder, then the later epochs at this rate
                    // plus the last CAM evaluation's duration each.
                    let later = Double(w.epochs - epoch - 1)
                    let total = p.rate > 0 ? (p.etaSeconds ?? 0) + later * (Double(trainer.batchesPerEpoch) / p.rate + lastEvaluationSeconds) : nil
                    context.log(String(format: "epoch %d/%d iteration %d/%d loss %.4f (cls %.4f coarse %.4f fine %.4f) lr %.3g, %.2f images/s, ETA epoch %@, run %@",
                                       epoch + 1, w.epochs, trainer.state.batch, trainer.batchesPerEpoch, terms.total,
                                       terms.classToken, terms.coarse, terms.fine, trainer.optimizer.learningRate,
                                       p.rate * Double(w.batchSize), p.etaSeconds.map(formatDuration) ?? "-",
                                       total.map(formatDuration) ?? "-"))
                }
                if w.checkpointMinutes > 0 && Date().timeIntervalSince(lastSave) >= w.checkpointMinutes * 60 {
                    try trainer.saveCheckpoint(to: checkpointPath)
                    lastSave = Date()
                }
            }
            trainer.loader.stop()
            var miou: Double?, threshold: Double?
            if let (ds, evalIDs) = evaluation {
                let evaluationStarted = Date()
                defer { lastEvaluationSeconds = Date().timeIntervalSince(evaluationStarted) }
                let metrics = try Self.evaluate(model: model, dataset: ds, ids: evalIDs, scales: w.evalScales,
                                                start: w.evalStart, context: context)
                miou = metrics.bestMeanIoU
                threshold = metrics.bestThreshold
            }
            let improved = miou.map { $0 > (trainer.state.bestMIoU ?? -1) } ?? false
            try OutputCheck.finiteWeights(model.stateDict(), file: out.appendingPathComponent("checkpoint.pth").path)
            if improved || (evaluation == nil) {
                try Pth.save(stateDict: model.stateDict(), key: "model",
                             extras: [("epoch", .int(epoch)), ("miou", .float(miou ?? -1))],
                             to: out.appendingPathComponent("checkpoint_best_mIoU.pth").path)
            }
            try Pth.save(stateDict: model.stateDict(), key: "model", extras: [("epoch", .int(epoch))],
                         to: out.appendingPathComponent("checkpoint.pth").path)
            let record = trainer.finishEpoch(miou: miou, threshold: threshold)
            try events.add(scalars: [("epoch/loss", record.loss)]
                           + (miou.map { [("eval/miou", $0 * 100), ("eval/threshold", threshold ?? 0)] } ?? []),
                           step: trainer.state.step)
            try trainer.saveCheckpoint(to: checkpointPath)
            lastSave = Date()
            try Self.writeReports(trainer.state, to: out)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            context.log("epoch \(epoch + 1) done: " + String(decoding: try encoder.encode(record), as: UTF8.self))
        }
        let s = trainer.state
        var metrics: [String: Double] = ["epochs": Double(s.history.count), "steps": Double(s.step),
                                         "final_loss": s.history.last?.loss ?? 0]
        if let b = s.bestMIoU { metrics["best_miou"] = b }
        if let e = s.bestEpoch { metrics["best_epoch"] = Double(e) }
        var outputs = ["checkpoint_best_mIoU.pth", "checkpoint.pth", "checkpoint.safetensors", "train_log.txt", "loss_curve.png",
                       "tensorboard"]
        if evaluation != nil { outputs.append("miou_per_epoch.png") }
        return JobOutcome(metrics: metrics, outputs: outputs)
    }

    /// From scratch (spec §2.1.1) or from DeiT ImageNet weights (`finetune`, spec §4.3).
    static func initialise(_ model: WeakTr, manifest m: Manifest, context: JobContext) throws {
        var dict: [String: Tensor] = [:]
        for (name, t) in WeakTrInitializer.stateDict(config: model.config, seed: UInt64(m.seed)) { dict[name] = t }
        if let path = m.weaktr!.finetune {
            context.log("starting from DeiT weights '\(path)'")
            let loaded = try WeakTrInitializer.deitStateDict(path, config: model.config)
            for (k, v) in loaded { dict[k] = v }
        } else {
            context.log("starting from scratch (seed \(m.seed))")
        }
        try model.load(stateDict: dict, source: m.weaktr!.finetune ?? "<initialiser>")
    }

    /// CAMs at the evaluation scales (with flips) on the current weights, then the greedy sweep.
    static func evaluate(model: WeakTr, dataset: SegmentationDataset, ids: [String], scales: [Double],
                         start: Int, context: JobContext) throws -> EvaluationMetrics {
        // The training model itself generates the CAMs; its inference workspace is let go afterwards
        // so that the training steps do not carry it.
        defer { model.releaseInferenceWorkspace() }
        return try EpochCAMEvaluation.run(model: model, dataset: dataset, ids: ids, scales: scales, start: start,
                                          context: context)
    }

    /// train_log.txt (one JSON line per epoch), loss_curve.png, miou_per_epoch.png.
    static func writeReports(_ state: WeakTrTrainingState, to out: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let lines = try state.history.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8),
                             to: out.appendingPathComponent("train_log.txt").path)
        try LineChart.writeTrainingCharts(model: "WeakTr training", lossCurve: state.lossCurve,
                                          mIoUByEpoch: state.history.map { ($0.epoch, $0.miou) }, to: out)
    }
}
