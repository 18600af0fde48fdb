import Foundation

/// timm 0.5.4 `CosineLRScheduler` (cycle_limit 1, no noise, k_decay 1), stepped once per epoch after
/// the epoch is trained (spec §4.1):
///
///     lr(t) = warmupInitial + t·(base − warmupInitial)/warmup             for t < warmup
///     lr(t) = minimum + ½(base − minimum)(1 + cos(π·t/epochs))             for warmup ≤ t < epochs
///     lr(t) = minimum                                                      for t ≥ epochs
///
/// At construction the optimizer's LR is `warmupInitial` when warmup > 0 (else base), so epoch 0
/// runs at that value and epoch e ≥ 1 runs at lr(e − 1): epochs 0 and 1 share an LR (the off-by-one).
public struct CosineSchedule: Sendable, Equatable {
    public var baseLearningRate: Double
    public var minimumLearningRate: Double
    public var epochs: Int
    public var warmupEpochs: Int
    public var warmupInitial: Double

    public init(baseLearningRate: Double, minimumLearningRate: Double = 0, epochs: Int,
                warmupEpochs: Int = 0, warmupInitial: Double = 1e-6) {
        self.baseLearningRate = baseLearningRate
        self.minimumLearningRate = minimumLearningRate
        self.epochs = epochs
        self.warmupEpochs = warmupEpochs
        self.warmupInitial = warmupInitial
    }

    /// The scheduler's value for step t (timm `_get_lr(t)`).
    public func value(at t: Int) -> Double {
        if t < warmupEpochs {
            return warmupInitial + Double(t) * (baseLearningRate - warmupInitial) / Double(warmupEpochs)
        }
        if t >= epochs { return minimumLearningRate }
        return minimumLearningRate + 0.5 * (baseLearningRate - minimumLearningRate)
            * (1 + cos(Double.pi * Double(t) / Double(epochs)))
    }

    /// The learning rate epoch `epoch` (0-based) trains with.
    public func learningRate(forEpoch epoch: Int) -> Double {
        if epoch == 0 { return warmupEpochs > 0 ? warmupInitial : baseLearningRate }
        return value(at: epoch - 1)
    }

    /// lr_eff = lr × batch × world / 512 (spec §4.1).
    public static func scaledLearningRate(_ lr: Double, batchSize: Int, worldSize: Int = 1) -> Double {
        lr * Double(batchSize * worldSize) / 512
    }
}
