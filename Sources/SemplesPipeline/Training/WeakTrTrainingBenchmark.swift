import Foundation
import SemplesEngine
import SemplesModels

/// Settings of the WeakTr training-step benchmark (DeiT-S, batch 8, 224², VOC's 20 classes).
public struct TrainingBenchmarkOptions: Sendable, Codable {
    public var batch = 8
    public var steps = 3                  // timed steps, after one warm-up step
    public var classCount = 20
    public var embedDimension = 384
    public var depth = 12
    public var headCount = 6
    public var inputSize = 224
    public var dropPath = 0.1
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    public var seed: UInt64 = 0

    public init() {}
}

/// Figures of one training-step benchmark run.
public struct TrainingBenchmarkResult: Codable, Sendable {
    public var imagesPerSecond: Double
    public var secondsPerStep: Double
    public var forwardSeconds: Double
    public var backwardSeconds: Double
    public var optimizerSeconds: Double
    public var steps: Int
    public var batch: Int
    public var threads: Int
    public var workspaceBytes: Int
    /// Heap allocations per timed step (nil where they are not counted).
    public var allocationsPerStep: Double?
}

/// One WeakTr training iteration as the job runs it (train-mode forward with DropPath, the three
/// loss terms, backward, AdamW), on random weights and inputs (speed does not depend on them).
public enum WeakTrTrainingBenchmark {
    public static func run(_ o: TrainingBenchmarkOptions) throws -> TrainingBenchmarkResult {
        Parallel.configure(threads: o.threads)
        let config = WeakTrConfig(classCount: o.classCount, embedDimension: o.embedDimension, depth: o.depth,
                                  headCount: o.headCount, mlpHidden: 4 * o.embedDimension, reduction: 8,
                                  pooling: .max, featureHidden: o.embedDimension / o.headCount / 8,
                                  gridSide: o.inputSize / 16)
        let model = WeakTr(config: config, dropPathRate: Float(o.dropPath))
        var dict: [String: Tensor] = [:]
        for (name, t) in WeakTrInitializer.stateDict(config: config, seed: o.seed) { dict[name] = t }
        try model.load(stateDict: dict, source: "<random>")
        let ws = model.prepare(batch: o.batch)
        var rng = SeededGenerator(seed: o.seed &+ 1)
        for i in 0..<ws.imageBuffer.count { ws.imageBuffer.data[i] = rng.nextNormal() }
        for i in 0..<ws.targetBuffer.count { ws.targetBuffer.data[i] = rng.nextUniform() < 0.1 ? 1 : 0 }
        let optimizer = AdamW(parameters: model.store.parameters, learningRate: 1e-4, weightDecay: 0.03)
        var forward = 0.0, backward = 0.0, step = 0.0
        var allocationsBefore = 0
        for s in 0...o.steps {
            if s == 1 { allocationsBefore = AllocationCount.total }   // after the warm-up step
            let t0 = Date()
            model.store.zeroGradients()
            var g = SeededGenerator(seed: UInt64(s))
            model.forward(ws, generator: &g)
            let t1 = Date()
            model.lossAndBackward(ws)
            let t2 = Date()
            optimizer.step()
            let t3 = Date()
            if s > 0 {
                forward += t1.timeIntervalSince(t0)
                backward += t2.timeIntervalSince(t1)
                step += t3.timeIntervalSince(t2)
            }
        }
        let allocations = Double(AllocationCount.total - allocationsBefore)
        let total = forward + backward + step
        let n = Double(max(o.steps, 1))
        return TrainingBenchmarkResult(imagesPerSecond: Double(o.batch * o.steps) / total, secondsPerStep: total / n,
                                       forwardSeconds: forward / n, backwardSeconds: backward / n,
                                       optimizerSeconds: step / n, steps: o.steps, batch: o.batch, threads: o.threads,
                                       workspaceBytes: WeakTrTrainingWorkspace.floats(model: model, batch: o.batch) * 4,
                                       allocationsPerStep: AllocationCount.isCounting ? allocations / n : nil)
    }
}
