import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// Hyper-parameters of WeakTr base training (spec §4.1, §4.3; reference flag names in comments).
public struct WeakTrTrainingSettings: Codable, Equatable, Sendable {
    public var epochs: Int                 // --epochs
    public var batchSize: Int              // --batch-size
    public var learningRate: Double        // --lr (scaled by batch/512)
    public var minimumLearningRate: Double // --min-lr
    public var warmupEpochs: Int           // --warmup-epochs
    public var weightDecay: Double         // --weight-decay
    public var dropPath: Double            // --drop-path
    public var seed: UInt64                // --seed

    public init(epochs: Int, batchSize: Int, learningRate: Double = 6e-4, minimumLearningRate: Double = 1e-5,
                warmupEpochs: Int = 5, weightDecay: Double = 0.03, dropPath: Double = 0.1, seed: UInt64 = 504) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.minimumLearningRate = minimumLearningRate
        self.warmupEpochs = warmupEpochs
        self.weightDecay = weightDecay
        self.dropPath = dropPath
        self.seed = seed
    }

    /// The per-epoch schedule on lr_eff = lr·batch/512 (spec §4.1).
    public var schedule: CosineSchedule {
        CosineSchedule(baseLearningRate: CosineSchedule.scaledLearningRate(learningRate, batchSize: batchSize),
                       minimumLearningRate: minimumLearningRate, epochs: epochs, warmupEpochs: warmupEpochs)
    }
}

/// One finished epoch, as written to the per-epoch JSON log.
public struct WeakTrEpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var learningRate: Double
    public var loss: Double
    public var classTokenLoss: Double
    public var coarseLoss: Double
    public var fineLoss: Double
    public var miou: Double?
    public var threshold: Double?
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case epoch, loss, miou, threshold, seconds
        case learningRate = "lr", classTokenLoss = "train_loss_cls", coarseLoss = "train_loss_coarse"
        case fineLoss = "train_loss_fine"
    }
}

/// Where training stands: everything besides the tensors that a resumed run needs to continue
/// exactly. Data order, augmentation and DropPath draws are functions of (seed, epoch, batch,
/// step), so these counters are the whole generator state.
public struct WeakTrTrainingState: Codable, Equatable, Sendable {
    public var epoch = 0            // epoch in progress
    public var batch = 0            // next batch of that epoch
    public var step = 0             // optimizer steps done
    public var optimizerSteps: [Int] = []
    public var lossSums: [Double] = [0, 0, 0]   // class token, coarse, fine over this epoch's batches
    public var epochSeconds = 0.0
    public var lossCurve: [[Double]] = []       // [step, loss] every few steps
    public var history: [WeakTrEpochRecord] = []
    public var bestMIoU: Double?
    public var bestEpoch: Int?

    public init() {}
}

/// The training loop pieces shared by the job, the resume test and the benchmark.
public final class WeakTrTrainer {
    public let model: WeakTr
    public let settings: WeakTrTrainingSettings
    public let optimizer: AdamW
    public let loader: TrainingBatchLoader
    public let workspace: WeakTrTrainingWorkspace
    public var state = WeakTrTrainingState()

    public init(model: WeakTr, settings: WeakTrTrainingSettings, loader: TrainingBatchLoader) {
        precondition(loader.batchSize == settings.batchSize, "loader batch \(loader.batchSize) vs \(settings.batchSize)")
        self.model = model
        self.settings = settings
        self.loader = loader
        optimizer = AdamW(parameters: model.store.parameters, learningRate: settings.schedule.learningRate(forEpoch: 0),
                          weightDecay: settings.weightDecay)
        workspace = model.prepare(batch: settings.batchSize)
    }

    /// Where the optimizer's moments live in a training checkpoint: "adam.m.<name>", "adam.v.<name>".
    static let optimizerPrefix = "adam."

    public var batchesPerEpoch: Int { loader.batchesPerEpoch }
    public var finished: Bool { state.epoch >= settings.epochs }

    /// The generator the DropPath masks of optimizer step `step` draw from.
    public func dropPathGenerator(step: Int) -> SeededGenerator {
        SeededGenerator(seed: TrainingBatchLoader.mix(settings.seed, UInt64(step), 0xD509))
    }

    /// Starts the background loader at the current position.
    public func startEpoch() {
        optimizer.learningRate = settings.schedule.learningRate(forEpoch: state.epoch)
        if state.batch < batchesPerEpoch { loader.start(epoch: state.epoch, fromBatch: state.batch) }
    }

    /// One iteration on the next batch: forward (train mode), loss, backward, AdamW step.
    @discardableResult
    public func iteration() throws -> WeakTrLossTerms {
        let started = Date()
        try loader.next(images: workspace.imageBuffer, targets: workspace.targetBuffer)
        model.store.zeroGradients()
        var g = dropPathGenerator(step: state.step)
        model.forward(workspace, generator: &g)
        let terms = model.lossAndBackward(workspace)
        optimizer.step()
        state.batch += 1
        state.step += 1
        state.lossSums[0] += Double(terms.classToken)
        state.lossSums[1] += Double(terms.coarse)
        state.lossSums[2] += Double(terms.fine)
        let every = max(1, batchesPerEpoch / 20)
        if state.step % every == 0 || state.batch == batchesPerEpoch {
            state.lossCurve.append([Double(state.step), Double(terms.total)])
        }
        state.epochSeconds += Date().timeIntervalSince(started)
        return terms
    }

    /// Closes the epoch in progress: records it, moves the counters on.
    @discardableResult
    public func finishEpoch(miou: Double?, threshold: Double?) -> WeakTrEpochRecord {
        let n = Double(max(batchesPerEpoch, 1))
        let record = WeakTrEpochRecord(
            epoch: state.epoch, learningRate: optimizer.learningRate,
            loss: state.lossSums.reduce(0, +) / n, classTokenLoss: state.lossSums[0] / n,
            coarseLoss: state.lossSums[1] / n, fineLoss: state.lossSums[2] / n,
            miou: miou, threshold: threshold, seconds: state.epochSeconds)
        state.history.append(record)
        if let miou, miou > (state.bestMIoU ?? -1) {
            state.bestMIoU = miou
            state.bestEpoch = state.epoch
        }
        state.epoch += 1
        state.batch = 0
        state.lossSums = [0, 0, 0]
        state.epochSeconds = 0
        return record
    }

    // MARK: Checkpoints

    /// Writes model, optimizer moments and state atomically as one safetensors file.
    public func saveCheckpoint(to path: String, config: [String: String] = [:]) throws {
        state.optimizerSteps = optimizer.steps
        var tensors: [(String, TensorView)] = model.stateDict().map { ("model." + $0.0, $0.1) }
        tensors += optimizer.stateTensors(prefix: Self.optimizerPrefix)
        try OutputCheck.finiteWeights(tensors, file: path)
        var metadata = config
        metadata["state"] = String(decoding: try JSONCoding.encoder.encode(state), as: UTF8.self)
        metadata["settings"] = String(decoding: try JSONCoding.encoder.encode(settings), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    /// Restores a checkpoint written by `saveCheckpoint`; refuses one made with other settings.
    public func loadCheckpoint(from path: String) throws {
        let (list, metadata) = try SafeTensors.read(path)
        guard let stateText = metadata["state"], let settingsText = metadata["settings"] else {
            throw FormatError(path, "not a training checkpoint (no 'state' or 'settings' metadata)")
        }
        let saved = try JSONCoding.decoder.decode(WeakTrTrainingSettings.self, from: Data(settingsText.utf8))
        guard saved == settings else {
            throw FormatError(path, "made with other training settings (\(saved)); use a new output folder or the same settings")
        }
        var tensors: [String: Tensor] = [:]
        for t in list { tensors[t.name] = t.tensor }
        var sd: [String: Tensor] = [:]
        for (k, v) in tensors where k.hasPrefix("model.") { sd[String(k.dropFirst(6))] = v }
        try model.load(stateDict: sd, source: path)
        let restored = try JSONCoding.decoder.decode(WeakTrTrainingState.self, from: Data(stateText.utf8))
        try optimizer.restore(tensors: tensors, steps: restored.optimizerSteps, prefix: Self.optimizerPrefix, source: path)
        state = restored
    }
}
