import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// `job: train` with `stage: a | b | c` — one SemPLeS training stage (spec §3, §4): CLIP and the
/// class-text features loaded once, the augmenting background loader (§4.2), the stage's trainer with
/// per-epoch CAM evaluation in (a)/(c). Outputs: `checkpoint_best_mIoU.pth` (with an evaluation
/// list) and `checkpoint.pth` in (a)/(c), `btp.pth` in (b); `history.json`, `loss_curve.png`,
/// `miou_per_epoch.png`. Resumable from `training.safetensors` in the output folder.
public struct StageJob: Job {
    public let manifest: Manifest
    public let stage: SemPLeSStage

    public init(manifest: Manifest) throws {
        guard let s = manifest.semples, let name = s.stage, let stage = SemPLeSStage(rawValue: name) else {
            throw ManifestError(file: manifest.file, key: "stage", "missing; one of a, b, c")
        }
        self.manifest = manifest
        self.stage = stage
    }

    /// The stage's settings: the reference's values for the data set (spec §4.3), with the
    /// manifest's keys on top.
    public static func settings(_ m: Manifest, stage: SemPLeSStage) -> SemPLeSSettings {
        let s = m.semples!
        var out = SemPLeSSettings.reference(stage: stage, coco: m.dataSet == .coco)
        let keys = s.stages[stage.rawValue] ?? SemPLeSStageKeys()
        if let b = keys.batchSize { out.batchSize = b }
        if let lr = keys.lr { out.learningRate = lr }
        if let h = keys.hypers { out.hypers = h }
        out.epochs = s.epochs
        out.minimumLearningRate = s.minLr
        out.warmupEpochs = s.warmupEpochs
        out.weightDecay = s.weightDecay
        out.dropPath = s.dropPath
        out.promptLength = s.btpLength
        out.seed = UInt64(m.seed)
        out.pairsPerPass = s.pairsPerPass
        out.maskEpsilon = s.maskEpsilon
        out.similarityShift = s.similarityShift
        out.checkpointMinutes = s.checkpointMinutes
        return out
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest, s = m.semples!
        let settings = Self.settings(m, stage: stage)
        let C = m.dataSet.classCount
        let train = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: m.imgList,
                                            labelsPath: m.clsLabels, needLabels: true)
        var ids = train.ids
        if let limit = m.limit { ids = Array(ids.prefix(limit)) }
        try train.checkPresent(ids: ids, images: true, groundTruth: false, labels: true)
        guard ids.count >= settings.batchSize else {
            throw InputError("'\(m.imgList)': \(ids.count) training images, fewer than one batch of \(settings.batchSize)")
        }
        guard let resume = m.resume else { throw InputError("'\(m.file)': no checkpoint ('resume')") }
        // Everything that can be wrong with the inputs is found before any training.
        let weakTr = try Self.weakTrStateDict(resume, classCount: C, reduction: m.reduction,
                                              pooling: WeakTrPooling(rawValue: m.poolType.rawValue)!)
        var prompts: Tensor?
        if stage == .c {
            guard let btp = s.btpPath else { throw InputError("'\(m.file)': stage (c) needs 'btp_path'") }
            prompts = try Self.readPrompts(btp, classCount: C)
        }
        var evaluation: (SegmentationDataset, [String])?
        if stage != .b, let list = s.imgMsList {
            let ds = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: list, labelsPath: m.clsLabels,
                                             needLabels: true)
            var evalIDs = ds.ids
            if let limit = m.limit { evalIDs = Array(evalIDs.prefix(limit)) }
            try ds.checkPresent(ids: evalIDs, images: true, groundTruth: true, labels: true)
            evaluation = (ds, evalIDs)
        }
        context.log("loading CLIP '\(s.clip)'")
        let clip = try CLIPModel.load(s.clip)
        if let p = prompts, p.shape[2] != clip.config.textWidth {
            throw InputError("'\(s.btpPath!)': prompts of width \(p.shape[2]), the CLIP text width is \(clip.config.textWidth)")
        }
        let tokenizer = try CLIPTokenizer.load(modelFolder: URL(fileURLWithPath: s.clip).deletingLastPathComponent().path)
        let names = m.dataSet == .voc12 ? CLIPClassNames.voc : CLIPClassNames.coco
        let classText = try CLIPTextFeatures(classNames: names, model: clip, tokenizer: tokenizer).features
        let S = clip.config.imageResolution

        let loader = TrainingBatchLoader(imagePaths: ids.map { train.imagePath($0) },
                                         labels: ids.map { train.labelVector($0)! }, batchSize: settings.batchSize,
                                         transform: Self.transform(stage: stage, size: S), seed: UInt64(m.seed))
        let trainer = try SemPLeSTrainer(settings: settings, source: loader, weakTrStateDict: weakTr, classCount: C,
                                         reduction: m.reduction, pooling: WeakTrPooling(rawValue: m.poolType.rawValue)!,
                                         clip: clip, classText: classText, prompts: prompts,
                                         outputFolder: context.outputFolder, source: resume)
        trainer.log = { context.log($0) }
        trainer.events = try TensorBoardWriter(folder: context.outputFolder.appendingPathComponent("tensorboard").path)
        trainer.checkStop = { try context.checkStop() }
        trainer.onStart = { total, done in context.begin("stage \(stage.rawValue)", total: total, alreadyDone: done) }
        trainer.progress = { _, _ in context.advance() }
        if let (ds, evalIDs) = evaluation {
            trainer.evaluate = { dict in
                try Self.evaluate(dict, classCount: C, reduction: m.reduction, pooling: WeakTrPooling(rawValue: m.poolType.rawValue)!,
                                  dataset: ds, ids: evalIDs, scales: s.evalScales, start: s.evalStart, context: context)
            }
        }
        context.log("SemPLeS stage (\(stage.rawValue)): \(ids.count) images, batch \(settings.batchSize), \(loader.batchesPerEpoch) iterations per epoch, \(settings.epochs) epochs, lr_eff \(settings.schedule.baseLearningRate), hypers \(settings.hypers)")
        let state = try trainer.run()

        var metrics: [String: Double] = ["epochs": Double(state.history.count), "final_loss": state.history.last?.loss ?? 0]
        if let b = state.bestMIoU { metrics["best_miou"] = b }
        if let e = state.bestEpoch { metrics["best_epoch"] = Double(e) }
        let outputs: [String]
        switch stage {
        case .b: outputs = ["btp.pth", "history.json", "loss_curve.png", "tensorboard"]
        case .a, .c:
            outputs = (state.bestMIoU != nil ? ["checkpoint_best_mIoU.pth", "miou_per_epoch.png"] : [])
                + ["checkpoint.pth", "history.json", "loss_curve.png", "tensorboard"]
        }
        return JobOutcome(metrics: metrics, outputs: outputs)
    }

    /// Training augmentation (spec §4.2): (a)/(c) random resized crop, flip, RandAugment
    /// rand-m9-mstd0.5-inc1 and pixel-mode random erasing; (b) crop and flip only.
    public static func transform(stage: SemPLeSStage, size: Int) -> TrainingAugmentation {
        stage == .b ? .cropAndFlip(size: size) : .stageAC(size: size)
    }

    /// The model a finished (a)/(c) run hands on: the best-mIoU checkpoint when there is one.
    public static func modelPath(in folder: URL) -> String {
        let best = folder.appendingPathComponent("checkpoint_best_mIoU.pth").path
        return FileManager.default.fileExists(atPath: best) ? best : folder.appendingPathComponent("checkpoint.pth").path
    }

    /// A WeakTr state dict from `.pth` ({'model': …} or bare) or `.safetensors`, checked against
    /// the class count, reduction and pooling (a mismatch is an input error, found before training).
    public static func weakTrStateDict(_ path: String, classCount: Int, reduction: Int,
                                       pooling: WeakTrPooling) throws -> [String: Tensor] {
        let dict: [String: Tensor]
        do {
            dict = try Checkpoints.readStateDict(path)
        } catch let e as FormatError {
            throw InputError(e.description)
        }
        do {
            _ = try WeakTr(stateDict: dict, classCount: classCount, reduction: reduction, pooling: pooling, source: path)
        } catch {
            throw InputError("\(error)")
        }
        return dict
    }

    /// `btp.pth` ({'prompts': [C, L, W]}) with C checked.
    public static func readPrompts(_ path: String, classCount: Int) throws -> Tensor {
        let dict = try Pth.stateDict(path, key: nil)
        guard let prompts = dict["prompts"]?.tensor else {
            throw InputError("'\(path)' has no 'prompts' tensor; expected the btp.pth of stage (b)")
        }
        guard prompts.shape.rank == 3, prompts.shape[0] == classCount else {
            throw InputError("'\(path)': prompts of shape \(prompts.shape), expected [\(classCount), length, width]")
        }
        return prompts
    }

    /// Epoch CAM evaluation (spec §4.4): CAMs at the scales (with flips), greedy threshold sweep.
    static func evaluate(_ dict: [String: Tensor], classCount: Int, reduction: Int, pooling: WeakTrPooling,
                         dataset: SegmentationDataset, ids: [String], scales: [Double], start: Int,
                         context: JobContext) throws -> (miou: Double, threshold: Double) {
        let model = try WeakTr(stateDict: dict, classCount: classCount, reduction: reduction, pooling: pooling,
                               source: "trained weights")
        let metrics = try EpochCAMEvaluation.run(model: model, dataset: dataset, ids: ids, scales: scales, start: start,
                                                 context: context, checkStop: context.checkStop)
        return (metrics.bestMeanIoU, metrics.bestThreshold)
    }
}
