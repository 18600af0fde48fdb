import XCTest
@testable import SemplesPipeline
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// The WeakTr training machinery: optimizer state, transform, loader, DeiT weights, and the
/// weaktr job's interruption and resume on a tiny configuration.
final class TrainingTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("training-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/weaktr_train")

    static func tinyConfig(classes: Int = 20, grid: Int = 2) -> WeakTrConfig {
        WeakTrConfig(classCount: classes, embedDimension: 32, depth: 2, headCount: 2, mlpHidden: 128,
                     reduction: 2, pooling: .max, featureHidden: 2, gridSide: grid)
    }

    // MARK: Optimizer

    /// The training optimizer lands on the PyTorch weights after 3 AdamW steps, and a state saved
    /// after one step and restored into a fresh optimizer continues bit for bit.
    /// An optimizer restored from a checkpoint after one step continues exactly as the
    /// uninterrupted one (the optimizer's numbers against PyTorch are checked in
    /// WeakTrTrainingGoldenTests).
    func testOptimizerRestoresExactly() throws {
        let (list, _) = try SafeTensors.read(Self.fixtures.appendingPathComponent("case_max.safetensors").path)
        var t: [String: Tensor] = [:]
        for x in list { t[x.name] = x.tensor }
        let config = WeakTrConfig(classCount: 4, embedDimension: 48, depth: 2, headCount: 3, mlpHidden: 192,
                                  reduction: 2, pooling: .max, featureHidden: 2, gridSide: 3)
        func fresh() throws -> (WeakTr, WeakTrTrainingWorkspace) {
            let model = WeakTr(config: config, dropPathRate: 0)
            var sd: [String: Tensor] = [:]
            for (k, v) in t where k.hasPrefix("w.") { sd[String(k.dropFirst(2))] = v }
            try model.load(stateDict: sd, source: "fixture")
            let ws = model.prepare(batch: 3)
            ws.imageBuffer.copy(from: t["images"]!.view)
            ws.targetBuffer.copy(from: t["targets"]!.view)
            return (model, ws)
        }
        func step(_ model: WeakTr, _ ws: WeakTrTrainingWorkspace, _ opt: AdamW) {
            model.store.zeroGradients()
            model.forward(ws)
            model.lossAndBackward(ws)
            opt.step()
        }
        let (a, wsA) = try fresh()
        let optA = AdamW(parameters: a.store.parameters, learningRate: 1e-3, weightDecay: 0.05)
        for _ in 0..<3 { step(a, wsA, optA) }
        XCTAssertEqual(Set(optA.steps), [0, 3], "the final norm is skipped, everything else stepped 3 times")

        // Interrupted after one step, restored into a new model and optimizer.
        let (b, wsB) = try fresh()
        let optB = AdamW(parameters: b.store.parameters, learningRate: 1e-3, weightDecay: 0.05)
        step(b, wsB, optB)
        var saved: [String: Tensor] = [:]
        for (k, v) in optB.stateTensors(prefix: "adam.") { let c = Tensor(v.shape.dims); c.view.copy(from: v); saved[k] = c }
        var weights: [String: Tensor] = [:]
        for (k, v) in b.stateDict() { let c = Tensor(v.shape.dims); c.view.copy(from: v); weights[k] = c }
        let (c, wsC) = try fresh()
        try c.load(stateDict: weights, source: "saved")
        let optC = AdamW(parameters: c.store.parameters, learningRate: 1e-3, weightDecay: 0.05)
        try optC.restore(tensors: saved, steps: optB.steps, prefix: "adam.", source: "saved")
        for _ in 0..<2 { step(c, wsC, optC) }
        for ((k, x), (_, y)) in zip(a.stateDict(), c.stateDict()) {
            XCTAssertEqual(x.toArray(), y.toArray(), "\(k) after restore")
        }
        XCTAssertThrowsError(try optC.restore(tensors: [:], steps: optB.steps, prefix: "adam.", source: "empty.safetensors")) {
            XCTAssertTrue("\($0)".contains("empty.safetensors"), "\($0)")
        }
    }

    // MARK: Transform and loader

    func testTransformIsSeededAndStaysInRange() {
        let transform = TrainingAugmentation.cropAndFlip(size: 32)
        let image = Image8(width: 40, height: 30, channels: 3, pixels: (0..<(40 * 30 * 3)).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let a = Tensor([3, 32, 32]), b = Tensor([3, 32, 32]), c = Tensor([3, 32, 32])
        var ga = SeededGenerator(seed: 9), gb = SeededGenerator(seed: 9), gc = SeededGenerator(seed: 10)
        transform.apply(image, rng: &ga, into: a.view)
        transform.apply(image, rng: &gb, into: b.view)
        transform.apply(image, rng: &gc, into: c.view)
        XCTAssertEqual(a.toArray(), b.toArray())
        XCTAssertNotEqual(a.toArray(), c.toArray())
        let values = a.toArray()
        XCTAssertGreaterThanOrEqual(values.min()!, -0.485 / 0.229 - 1e-5)
        XCTAssertLessThanOrEqual(values.max()!, (1 - 0.406) / 0.225 + 1e-5)
    }

    /// Batches made on the background thread equal those made synchronously, in order, and
    /// every image of an epoch is visited once (drop_last drops the remainder).
    func testLoaderIsRepeatableAndResumable() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 10, evalCount: 1, seed: 4)
        let ds = try SegmentationDataset(kind: .voc12, root: data, listPath: data + "/voc12/train_aug_id.txt",
                                         labelsPath: nil, needLabels: true)
        let loader = TrainingBatchLoader(imagePaths: ds.ids.map { ds.imagePath($0) }, labels: ds.ids.map { ds.labelVector($0)! },
                                         batchSize: 3, transform: .cropAndFlip(size: 32), seed: 8)
        XCTAssertEqual(loader.batchesPerEpoch, 3)
        XCTAssertEqual(loader.order(epoch: 2).sorted(), Array(0..<10))
        XCTAssertNotEqual(loader.order(epoch: 2), loader.order(epoch: 3))
        let images = Tensor([3, 3, 32, 32]), targets = Tensor([3, 20])
        let wantImages = Tensor([3, 3, 32, 32]), wantTargets = Tensor([3, 20])
        loader.start(epoch: 2, fromBatch: 1)
        for k in 1..<3 {
            try loader.next(images: images.view, targets: targets.view)
            try loader.makeBatch(epoch: 2, batch: k, images: wantImages.view, targets: wantTargets.view)
            XCTAssertEqual(images.toArray(), wantImages.toArray(), "batch \(k)")
            XCTAssertEqual(targets.toArray(), wantTargets.toArray(), "batch \(k)")
            let n = loader.order(epoch: 2)[k * 3]
            XCTAssertEqual(Array(targets.toArray()[0..<20]), ds.labelVector(ds.ids[n])!.map { $0 > 0 ? 1 : 0 })
        }
        loader.stop()
        // A missing image is reported with its path.
        let broken = TrainingBatchLoader(imagePaths: [folder.path + "/none.jpg"], labels: [[Float](repeating: 0, count: 20)],
                                         batchSize: 1, transform: .cropAndFlip(size: 32), seed: 1)
        broken.start(epoch: 0, fromBatch: 0)
        XCTAssertThrowsError(try broken.next(images: Tensor([1, 3, 32, 32]).view, targets: Tensor([1, 20]).view)) {
            XCTAssertTrue("\($0)".contains("none.jpg"), "\($0)")
        }
    }

    // MARK: DeiT weights

    func testDeiTWeightsAreTiledForTheClassTokens() throws {
        let config = Self.tinyConfig(classes: 3)
        let D = 32, g = 2
        var deit: [(String, Tensor)] = []
        var rng = SeededGenerator(seed: 2)
        func random(_ dims: [Int]) -> Tensor {
            let t = Tensor(dims)
            for i in 0..<t.count { t.data[i] = rng.nextNormal() }
            return t
        }
        deit.append(("cls_token", random([1, 1, D])))
        deit.append(("pos_embed", random([1, 1 + g * g, D])))
        for (name, shape) in config.expectedShapes where !["cls_token", "pos_embed"].contains(name)
            && !name.hasPrefix("head.") && !name.hasPrefix("adaptive_attention_fusion.") {
            deit.append((name, random(shape)))
        }
        deit.append(("head.weight", random([1000, D])))
        deit.append(("head.bias", random([1000])))
        let path = folder.appendingPathComponent("deit.pth").path
        try Pth.save(stateDict: deit.map { ($0.0, $0.1.view) }, key: "model", to: path)
        let mapped = try WeakTrInitializer.deitStateDict(path, config: config)
        XCTAssertNil(mapped["head.weight"])
        let cls = deit[0].1.toArray(), pos = deit[1].1.toArray()
        XCTAssertEqual(mapped["cls_token"]!.shape.dims, [1, 3, D])
        XCTAssertEqual(mapped["cls_token"]!.toArray(), cls + cls + cls)
        XCTAssertEqual(mapped["pos_embed"]!.toArray(), Array(pos[0..<D]) + Array(pos[0..<D]) + Array(pos[0..<D]) + Array(pos[D...]))
        XCTAssertEqual(mapped["blocks.1.mlp.fc2.weight"]!.toArray(), deit.first { $0.0 == "blocks.1.mlp.fc2.weight" }!.1.toArray())

        // The wrong grid is refused with the key, the shapes and the input size it implies.
        XCTAssertThrowsError(try WeakTrInitializer.deitStateDict(path, config: Self.tinyConfig(classes: 3, grid: 3))) {
            XCTAssertTrue("\($0)".contains("pos_embed") && "\($0)".contains("input_size 48"), "\($0)")
        }
    }

    // MARK: The job

    func manifest(_ name: String, data: String, extra: String = "") throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data("""
        job: weaktr
        data_set: VOC12
        data_path: \(data)
        epochs: 2
        batch_size: 4
        lr: 0.02
        min_lr: 0.0
        warmup_epochs: 0
        drop_path: 0.1
        input_size: 32
        embed_dim: 32
        depth: 2
        num_heads: 2
        reduction: 2
        seed: 3
        checkpoint_minutes: 0
        \(extra)
        """.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func modelTensors(_ out: URL) throws -> [String: [Float]] {
        var r: [String: [Float]] = [:]
        for t in try SafeTensors.read(out.appendingPathComponent("checkpoint.safetensors").path).tensors {
            r[t.name] = t.tensor.toArray()
        }
        return r
    }

    /// Runs stopped after k steps (mid-epoch and at an epoch boundary) and then resumed end on the
    /// same weights, moments and exports as an uninterrupted run, bit for bit.
    func testInterruptedRunResumesToTheSameWeights() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 12, evalCount: 2, seed: 5)
        let defaults = try Manifest.load(path: try manifest("d.yaml", data: data))
        XCTAssertEqual(defaults.weaktr?.imgMsList, data + "/voc12/train_id.txt")
        XCTAssertEqual(defaults.imgList, data + "/voc12/train_aug_id.txt")
        // One evaluation image keeps the debug-build test short.
        let evalID = try SegmentationDataset.readIDs(data + "/voc12/train_id.txt")[0]
        let list = folder.appendingPathComponent("eval.txt").path
        try Data((evalID + "\n").utf8).write(to: URL(fileURLWithPath: list))
        let m = try Manifest.load(path: try manifest("w.yaml", data: data, extra: "img_ms_list: \(list)"))

        let full = folder.appendingPathComponent("full")
        let outcome = try WeakTrJob(manifest: m).run(in: try JobContext(outputFolder: full, echo: false, stop: StopFlag()))
        XCTAssertEqual(outcome.metrics["steps"], 6)
        let reference = try modelTensors(full)

        for k in [2, 3] {
            let out = folder.appendingPathComponent("stopped-\(k)")
            var job = try WeakTrJob(manifest: m)
            job.stopAfterStep = k
            XCTAssertThrowsError(try job.run(in: try JobContext(outputFolder: out, echo: false, stop: StopFlag()))) {
                XCTAssertTrue($0 is JobStopped, "\($0)")
            }
            let (_, meta) = try SafeTensors.read(out.appendingPathComponent("checkpoint.safetensors").path)
            let state = try JSONCoding.decoder.decode(WeakTrTrainingState.self, from: Data(meta["state"]!.utf8))
            XCTAssertEqual(state.step, k)
            let resumed = try WeakTrJob(manifest: m).run(in: try JobContext(outputFolder: out, echo: false, stop: StopFlag()))
            XCTAssertEqual(resumed.metrics["steps"], 6)
            XCTAssertEqual(resumed.metrics["best_miou"], outcome.metrics["best_miou"])
            let got = try modelTensors(out)
            XCTAssertEqual(got.keys.sorted(), reference.keys.sorted())
            for (key, value) in reference where got[key]! != value {
                XCTFail("stopped after \(k): '\(key)' differs from the uninterrupted run")
            }
        }

        // Exports: the best-mIoU .pth loads as a WeakTr checkpoint; per-epoch log and plots exist.
        let best = full.appendingPathComponent("checkpoint_best_mIoU.pth").path
        let model = try Checkpoints.loadWeakTr(best, classCount: 20, reduction: 2, pooling: .max)
        XCTAssertEqual(model.config.embedDimension, 32)
        let archive = try Pth.load(best)
        XCTAssertNotNil(archive["epoch"]?.intValue)
        XCTAssertNotNil(archive["miou"]?.doubleValue)
        let log = try String(contentsOf: full.appendingPathComponent("train_log.txt"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 2)
        XCTAssertTrue(log.contains("\"miou\""))
        for plot in ["loss_curve.png", "miou_per_epoch.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: full.appendingPathComponent(plot).path), plot)
        }
        let events = try FileManager.default.contentsOfDirectory(atPath: full.appendingPathComponent("tensorboard").path)
        XCTAssertTrue(events.contains { $0.hasPrefix("events.out.tfevents.") }, "\(events)")
        // The loss went down on this tiny problem.
        let first = try JSONSerialization.jsonObject(with: Data(log.split(separator: "\n")[0].utf8)) as! [String: Any]
        XCTAssertNotNil(first["train_loss_cls"])
    }

    /// A bad augmentation policy is refused before any work, naming the key.
    func testBadAugmentationPolicyIsAManifestError() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 4, evalCount: 1, seed: 5)
        let m = try Manifest.load(path: try manifest("aa.yaml", data: data, extra: "aa: rand-zz"))
        XCTAssertThrowsError(try WeakTrJob(manifest: m)) {
            XCTAssertEqual(($0 as? ManifestError)?.key, "aa", "\($0)")
        }
        let none = try Manifest.load(path: try manifest("none.yaml", data: data, extra: "aa: none\nreprob: 0"))
        XCTAssertNoThrow(try WeakTrJob(manifest: none))
    }

    /// A checkpoint from other settings is refused rather than silently mixed.
    func testCheckpointWithOtherSettingsIsRefused() throws {
        let data = folder.appendingPathComponent("data").path
        _ = try SyntheticDataset.write(to: data, trainCount: 8, evalCount: 1, seed: 5)
        let m = try Manifest.load(path: try manifest("a.yaml", data: data, extra: "limit: 4"))
        let out = folder.appendingPathComponent("out")
        var job = try WeakTrJob(manifest: m)
        job.stopAfterStep = 1
        XCTAssertThrowsError(try job.run(in: try JobContext(outputFolder: out, echo: false, stop: StopFlag())))
        let other = try Manifest.load(path: try manifest("b.yaml", data: data, extra: "limit: 4\nweight_decay: 0.5"))
        XCTAssertThrowsError(try WeakTrJob(manifest: other).run(in: try JobContext(outputFolder: out, echo: false, stop: StopFlag()))) {
            XCTAssertTrue("\($0)".contains("checkpoint.safetensors") && "\($0)".contains("other training settings"), "\($0)")
        }
    }
}
