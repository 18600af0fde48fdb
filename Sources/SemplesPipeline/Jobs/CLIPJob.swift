import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// `job: clip` — a small CLIP trained contrastively on captioned images (`CLIPTrainer`).
///
/// Outputs: `clip.safetensors` (the state dict with OpenAI's names, spec §7.1, `logit_scale`
/// included; `CLIPModel.load` and the SemPLeS stages read it), the BPE vocabulary copied beside it
/// (the stages look for it there), `history.json`, `loss_curve.png`, `zero_shot.png`, TensorBoard
/// events in `tensorboard/`. Metrics: the zero-shot accuracies on the held-out images: objects
/// (single objects, among the object words) and backgrounds (backgrounds alone, among the
/// background words), with the prompts "a photo of {word}.".
/// A stopped run starts over when rerun (the job is minutes long).
public struct CLIPJob: Job {
    public let manifest: Manifest

    public init(manifest: Manifest) throws {
        guard manifest.clip != nil else { throw ManifestError(file: manifest.file, key: "job", "not a clip manifest") }
        self.manifest = manifest
    }

    public static let checkpointName = "clip.safetensors"

    public func config() -> CLIPConfig {
        let c = manifest.clip!
        return CLIPConfig(imageResolution: c.inputSize, patchSize: c.patchSize, visionWidth: c.visionWidth,
                          visionLayers: c.visionLayers, visionHeads: c.visionWidth / 64, embedDimension: c.embedDimension,
                          contextLength: CLIPTokenizer.contextLength, vocabularySize: Int(CLIPTokenizer.endOfText) + 1,
                          textWidth: c.textWidth, textLayers: c.textLayers, textHeads: c.textWidth / 64)
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest, c = m.clip!
        let index = try CaptionIndex.read(c.captions)
        let root = m.dataPath + "/voc12/VOCdevkit/VOC2012/JPEGImages/"
        func ids(_ list: String) throws -> [String] {
            guard let text = try? String(contentsOfFile: list, encoding: .utf8) else {
                throw InputError("'\(list)' cannot be read")
            }
            var out = text.split(whereSeparator: \.isNewline).compactMap { $0.split(separator: " ").first.map(String.init) }
            if let limit = m.limit { out = Array(out.prefix(limit)) }
            for id in out {
                guard index.images[id] != nil else {
                    throw InputError("'\(list)': image '\(id)' has no captions in '\(c.captions)'")
                }
                guard FileManager.default.isReadableFile(atPath: root + id + ".jpg") else {
                    throw InputError("'\(list)': image '\(root + id).jpg' does not exist")
                }
            }
            return out
        }
        let trainIDs = try ids(m.imgList)
        guard trainIDs.count >= c.batchSize else {
            throw InputError("'\(m.imgList)': \(trainIDs.count) captioned images, fewer than one batch of \(c.batchSize)")
        }
        let heldOut = try c.heldoutList.map(ids) ?? []
        let vocabulary: String
        do {
            vocabulary = try CLIPTokenizer.locateVocabulary(configured: c.vocabulary)
        } catch {
            throw InputError("\(error)")
        }
        let tokenizer = try CLIPTokenizer(vocabularyPath: vocabulary)
        let samples = trainIDs.map { id in
            CLIPTrainer.Sample(imagePath: root + id + ".jpg",
                               captions: index.images[id]!.captions.map { tokenizer.tokenize($0, contextLength: CLIPTokenizer.contextLength) })
        }
        let config = config()
        let model = CLIPModel(config: config, trainable: true)
        CLIPTrainer.initialise(model, seed: UInt64(m.seed))
        let settings = CLIPTrainer.Settings(epochs: c.epochs, batchSize: c.batchSize, learningRate: c.lr,
                                            minimumLearningRate: c.minLr, warmupEpochs: c.warmupEpochs,
                                            weightDecay: c.weightDecay, seed: UInt64(m.seed))
        let trainer = CLIPTrainer(model: model, samples: samples, settings: settings)
        let out = context.outputFolder
        let events = try TensorBoardWriter(folder: out.appendingPathComponent("tensorboard").path)
        context.log("CLIP training: image \(config.imageResolution)px/\(config.patchSize), width \(config.visionWidth)×\(config.visionLayers), text \(config.textWidth)×\(config.textLayers), embedding \(config.embedDimension), \(model.store.scalarCount) parameters; \(samples.count) captioned images (\(heldOut.count) held out), batch \(c.batchSize), \(trainer.iterationsPerEpoch) iterations per epoch, \(c.epochs) epochs, lr \(c.lr)")

        var history: [CLIPTrainer.EpochRecord] = []
        var lossCurve: [(x: Double, y: Double?)] = []
        var latest: [String: Double] = [:]
        for epoch in 0..<c.epochs {
            context.begin("epoch \(epoch + 1)/\(c.epochs)", total: trainer.iterationsPerEpoch)
            let every = max(1, trainer.iterationsPerEpoch / 4)
            let (loss, accuracy, lr) = try trainer.trainEpoch(epoch, checkStop: { try context.checkStop() }) { it, r, lr in
                context.advance()
                lossCurve.append((x: Double(it), y: Double(r.loss)))
                try events.add(scalars: [("train/loss", Double(r.loss)), ("train/lr", lr),
                                         ("train/logit_scale", Double(model.logitScale.value.data[0]))], step: it)
                guard r.loss.isFinite else { throw InputError("CLIP training diverged at iteration \(it): loss \(r.loss); lower 'lr'") }
                if it % every == 0 {
                    context.log(String(format: "epoch %d/%d iteration %d loss %.4f in-batch accuracy %.2f lr %.3g",
                                       epoch + 1, c.epochs, it, r.loss, (r.imageAccuracy + r.textAccuracy) / 2, lr))
                }
            }
            var record = CLIPTrainer.EpochRecord(epoch: epoch, loss: loss, accuracy: accuracy, learningRate: lr,
                                                 logitScale: exp(Double(model.logitScale.value.data[0])))
            if !heldOut.isEmpty {
                latest = try Self.zeroShot(model, tokenizer: tokenizer, index: index, ids: heldOut, root: root)
                record.zeroShot = latest
                for (k, v) in latest.sorted(by: { $0.key < $1.key }) {
                    try events.add(scalar: "eval/zero_shot_\(k)", v, step: trainer.iteration)
                }
            }
            try events.add(scalars: [("epoch/loss", loss), ("epoch/in_batch_accuracy", accuracy)], step: trainer.iteration)
            history.append(record)
            context.log(String(format: "epoch %d done: loss %.4f, in-batch accuracy %.3f, logit scale %.1f", epoch + 1, loss,
                               accuracy, record.logitScale)
                        + latest.sorted { $0.key < $1.key }.map { String(format: ", zero-shot %@ %.1f%%", $0.key, $0.value * 100) }.joined())
            try Self.writeReports(history, lossCurve: lossCurve, to: out)
        }
        let weights = model.stateDict().map { ($0.0, $0.1.view) }
        try OutputCheck.finiteWeights(weights, file: out.appendingPathComponent(Self.checkpointName).path)
        try SafeTensors.write(weights, metadata: ["format": "pt"], to: out.appendingPathComponent(Self.checkpointName).path)
        let vocabularyCopy = out.appendingPathComponent(CLIPTokenizer.vocabularyFileName).path
        try? FileManager.default.removeItem(atPath: vocabularyCopy)
        try FileManager.default.copyItem(atPath: vocabulary, toPath: vocabularyCopy)
        var metrics: [String: Double] = ["epochs": Double(c.epochs), "final_loss": history.last?.loss ?? 0,
                                         "parameters": Double(model.store.scalarCount)]
        for (k, v) in latest { metrics["zero_shot_" + k] = v }
        return JobOutcome(metrics: metrics, outputs: [Self.checkpointName, CLIPTokenizer.vocabularyFileName, "history.json",
                                                      "loss_curve.png", "tensorboard"]
                          + (latest.isEmpty ? [] : ["zero_shot.png"]))
    }

    /// Zero-shot accuracies on captioned images: `objects` (images of one object, among the object
    /// words), `backgrounds` (backgrounds alone, among the background words) and
    /// `scene_backgrounds` (the background of full scenes), prompts "a photo of {word}.".
    public static func zeroShot(_ model: CLIPModel, tokenizer: CLIPTokenizer, index: CaptionIndex, ids: [String],
                                root: String) throws -> [String: Double] {
        let objectText = try CLIPTrainer.textFeatures(model, tokenizer: tokenizer, texts: index.objects.map(CLIPClassNames.prompt))
        let backgroundText = try CLIPTrainer.textFeatures(model, tokenizer: tokenizer,
                                                          texts: index.backgrounds.map(CLIPClassNames.prompt))
        var out: [String: Double] = [:]
        for (name, kind, text, words) in [("objects", "object", objectText, index.objects),
                                          ("backgrounds", "background", backgroundText, index.backgrounds),
                                          ("scene_backgrounds", "scene", backgroundText, index.backgrounds)] {
            let chosen = ids.filter { index.images[$0]!.kind == kind }
            guard !chosen.isEmpty else { continue }
            let answers = chosen.map { id -> Int in
                let e = index.images[id]!
                return words.firstIndex(of: kind == "object" ? e.objects[0] : (e.background ?? "")) ?? -1
            }
            let features = try CLIPTrainer.imageFeatures(model, paths: chosen.map { root + $0 + ".jpg" })
            out[name] = CLIPTrainer.zeroShotAccuracy(features: features, classText: text, answers: answers)
        }
        return out
    }

    static func writeReports(_ history: [CLIPTrainer.EpochRecord], lossCurve: [(x: Double, y: Double?)], to out: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFile.write(try encoder.encode(history), to: out.appendingPathComponent("history.json").path)
        try LineChart(title: "CLIP contrastive loss", xLabel: "iteration", yLabel: "loss",
                      series: [.init(name: "loss", points: lossCurve)]).writePNG(to: out.appendingPathComponent("loss_curve.png").path)
        let keys = Set(history.compactMap { $0.zeroShot?.keys }.flatMap { $0 }).sorted()
        if !keys.isEmpty {
            let series = keys.map { key in
                LineChart.Series(name: key, points: history.map { (x: Double($0.epoch + 1), y: $0.zeroShot?[key].map { $0 * 100 }) },
                                 markers: true)
            }
            try LineChart(title: "CLIP zero-shot accuracy (held out)", xLabel: "epoch", yLabel: "accuracy (%)",
                          series: series).writePNG(to: out.appendingPathComponent("zero_shot.png").path)
        }
    }
}
