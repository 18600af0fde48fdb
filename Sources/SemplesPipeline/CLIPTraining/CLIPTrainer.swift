import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// Contrastive training of a small CLIP on captioned images (Radford et al. 2021): OpenAI's
/// initialisation, random (image, one of its captions) pairs per batch, the symmetric InfoNCE
/// loss with a learnable logit scale (clamped at ln 100, as in the paper), AdamW with decay on
/// matrices only and a per-iteration cosine schedule with linear warm-up (the engine's
/// `CosineSchedule` counted in iterations).
public final class CLIPTrainer {
    public struct Settings {
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Double
        public var minimumLearningRate: Double
        public var warmupEpochs: Int
        public var weightDecay: Double
        public var seed: UInt64
        public init(epochs: Int, batchSize: Int, learningRate: Double, minimumLearningRate: Double,
                    warmupEpochs: Int, weightDecay: Double, seed: UInt64) {
            self.epochs = epochs
            self.batchSize = batchSize
            self.learningRate = learningRate
            self.minimumLearningRate = minimumLearningRate
            self.warmupEpochs = warmupEpochs
            self.weightDecay = weightDecay
            self.seed = seed
        }
    }

    /// One captioned training image.
    public struct Sample {
        public var imagePath: String
        public var captions: [[Int32]]
    }

    public let model: CLIPModel
    public let settings: Settings
    let samples: [Sample]
    let step: CLIPTrainingStep
    let decayed: AdamW
    let undecayed: AdamW
    let schedule: CosineSchedule
    let transform: TrainingAugmentation
    let images: Tensor
    public var iterationsPerEpoch: Int { samples.count / settings.batchSize }
    public private(set) var iteration = 0

    public init(model: CLIPModel, samples: [Sample], settings: Settings) {
        precondition(samples.count >= settings.batchSize, "fewer samples than one batch")
        self.model = model
        self.samples = samples
        self.settings = settings
        let maxTokens = (samples.flatMap { $0.captions }.map { CLIPTextEncoder.endPositions([$0])[0] }.max() ?? 1) + 1
        step = CLIPTrainingStep(model: model, batch: settings.batchSize, maximumTokens: maxTokens)
        // The paper decays weights, not gains, biases, embeddings' class token or the temperature.
        let params = model.store.parameters
        let matrices = params.filter { $0.shape.rank >= 2 }
        decayed = AdamW(parameters: matrices, learningRate: settings.learningRate, beta1: 0.9, beta2: 0.98,
                        eps: 1e-6, weightDecay: settings.weightDecay)
        undecayed = AdamW(parameters: params.filter { $0.shape.rank < 2 }, learningRate: settings.learningRate,
                          beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0)
        let perEpoch = samples.count / settings.batchSize
        schedule = CosineSchedule(baseLearningRate: settings.learningRate, minimumLearningRate: settings.minimumLearningRate,
                                  epochs: settings.epochs * perEpoch, warmupEpochs: settings.warmupEpochs * perEpoch,
                                  warmupInitial: settings.learningRate / 100)
        // Crop and flip, keeping most of the picture: the caption names everything in it.
        transform = TrainingAugmentation(crop: RandomResizedCrop(size: model.config.imageResolution, scale: 0.6...1.0))
        let R = model.config.imageResolution
        images = Tensor([settings.batchSize, 3, R, R])
    }

    /// OpenAI's `CLIP.initialize_parameters` (and torch's defaults for conv1 and the LayerNorms),
    /// logit_scale = ln(1/0.07).
    public static func initialise(_ model: CLIPModel, seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        let c = model.config
        func normal(_ p: Parameter, _ std: Float) { for i in 0..<p.count { p.value.data[i] = g.nextNormal() * std } }
        for p in model.store.parameters {
            let n = p.name
            let textual = !n.hasPrefix("visual.")
            let width = Float(textual ? c.textWidth : c.visionWidth)
            let layers = Float(textual ? c.textLayers : c.visionLayers)
            if n.hasSuffix(".weight") && n.contains("ln_") {
                p.value.fill(1)
            } else if n.hasSuffix("bias") || n.contains("ln_") {
                p.value.zero()
            } else if n == "logit_scale" {
                p.value.data[0] = Float(log(1 / 0.07))
            } else if n == "token_embedding.weight" {
                normal(p, 0.02)
            } else if n == "positional_embedding" {
                normal(p, 0.01)
            } else if n == "visual.conv1.weight" {
                // torch's Conv2d default: kaiming-uniform with a = √5, i.e. U(±1/√fan_in).
                let bound = 1 / Float(3 * c.patchSize * c.patchSize).squareRoot()
                for i in 0..<p.count { p.value.data[i] = (2 * g.nextUniform() - 1) * bound }
            } else if n.hasPrefix("visual.") && !n.contains("resblocks") {
                normal(p, 1 / width.squareRoot())   // class_embedding, positional_embedding, proj
            } else if n.hasSuffix("attn.in_proj_weight") || n == "text_projection" {
                normal(p, 1 / width.squareRoot())
            } else if n.hasSuffix("attn.out_proj.weight") || n.hasSuffix("mlp.c_proj.weight") {
                normal(p, 1 / width.squareRoot() / (2 * layers).squareRoot())
            } else if n.hasSuffix("mlp.c_fc.weight") {
                normal(p, 1 / (2 * width).squareRoot())
            } else {
                normal(p, 0.02)
            }
        }
    }

    /// Result of one epoch.
    public struct EpochRecord: Codable {
        public var epoch: Int
        public var loss: Double
        public var accuracy: Double
        public var learningRate: Double
        public var logitScale: Double
        public var heldOutLoss: Double?
        public var zeroShot: [String: Double]?
    }

    /// Trains one epoch; `onIteration(iteration, loss, lr)` after every step.
    public func trainEpoch(_ epoch: Int, checkStop: () throws -> Void,
                           onIteration: (Int, CLIPTrainingStep.Result, Double) throws -> Void) throws -> (loss: Double, accuracy: Double, lr: Double) {
        var g = SeededGenerator(seed: settings.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        var order = Array(0..<samples.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        let N = settings.batchSize, R = model.config.imageResolution
        var lossSum = 0.0, accuracySum = 0.0, lr = 0.0
        for k in 0..<iterationsPerEpoch {
            try checkStop()
            var ids: [[Int32]] = []
            for i in 0..<N {
                let sample = samples[order[k * N + i]]
                let image = try ImageIO.read(sample.imagePath)
                transform.apply(image, rng: &g, into: images.view.slice(offset: i * 3 * R * R, Shape(3, R, R)))
                ids.append(sample.captions[Int(g.next() % UInt64(sample.captions.count))])
            }
            lr = schedule.value(at: iteration)
            decayed.learningRate = lr
            undecayed.learningRate = lr
            model.store.zeroGradients()
            let result = step.run(images: images.view, ids: ids)
            decayed.step()
            undecayed.step()
            let scale = model.logitScale.value
            scale.data[0] = min(scale.data[0], Float(log(100.0)))
            iteration += 1
            lossSum += Double(result.loss)
            accuracySum += Double(result.imageAccuracy + result.textAccuracy) / 2
            try onIteration(iteration, result, lr)
        }
        let n = Double(max(iterationsPerEpoch, 1))
        return (lossSum / n, accuracySum / n, lr)
    }

    /// The image as the evaluation sees it: resized to the model's square (Pillow bicubic) and
    /// ImageNet-normalised, as the SemPLeS stages feed CLIP (spec §2.2).
    public static func evaluationInput(_ image: Image8, size S: Int, into output: TensorView) {
        precondition(output.count == 3 * S * S, "evaluation input \(S)×\(S) into \(output.shape)")
        TrainingAugmentation.normalize(PILResize.bicubic(image, width: S, height: S), into: output.data)
    }

    /// Unit image features of `paths`, in batches.
    public static func imageFeatures(_ model: CLIPModel, paths: [String], batch: Int = 16) throws -> Tensor {
        let S = model.config.imageResolution, E = model.config.embedDimension
        let out = Tensor([paths.count, E])
        let arena = Arena(capacity: model.image.arenaSize(batch: batch, backward: false))
        let input = Tensor([batch, 3, S, S])
        var start = 0
        while start < paths.count {
            let n = min(batch, paths.count - start)
            for i in 0..<n {
                evaluationInput(try ImageIO.read(paths[start + i]), size: S,
                                into: input.view.slice(offset: i * 3 * S * S, Shape(3, S, S)))
            }
            arena.reset()
            let features = out.view.rows(start, n)
            model.image.forward(input.view.rows(0, n), into: features, arena: arena)
            start += n
        }
        normaliseRows(out.view)
        return out
    }

    /// Unit text features of `texts`.
    public static func textFeatures(_ model: CLIPModel, tokenizer: CLIPTokenizer, texts: [String]) throws -> Tensor {
        try CLIPTextFeatures(texts: texts, model: model, tokenizer: tokenizer).features
    }

    /// Zero-shot accuracy: the fraction of `features` rows whose most similar class text is `answers[i]`.
    public static func zeroShotAccuracy(features: Tensor, classText: Tensor, answers: [Int]) -> Double {
        let E = features.shape[1], K = classText.shape[0]
        var hits = 0
        for (i, answer) in answers.enumerated() {
            var best = 0, bestScore = -Float.infinity
            for k in 0..<K {
                let s = BLAS.dot(count: E, features.data + i * E, classText.data + k * E)
                if s > bestScore { bestScore = s; best = k }
            }
            if best == answer { hits += 1 }
        }
        return answers.isEmpty ? 0 : Double(hits) / Double(answers.count)
    }
}
