import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// Which part of a CAM job one process runs.
public enum CAMPart: Equatable, Sendable {
    /// The whole list: in this process, or (`shards: N`, N > 1) as N shard processes and a merge.
    case all
    /// Shard `index` of `count`: the images at list positions index, index + count, …; writes
    /// `shards/K.json` when done, never `result.json`.
    case shard(index: Int, count: Int)
    /// Checks that every shard finished and every image's file is there and sound; generates nothing.
    case merge
}

/// `job: cam` — multi-scale CAMs for every image of a list (spec §5), one `<id>.npy` each in
/// `cams/`, optional heat-map overlays in `overlays/` and pseudo-masks in `masks/`.
/// Resumable: images whose `.npy` already exists (written atomically) are skipped.
///
/// Sharded (`shards: N`): each shard writes its images' files into the same folders, so the
/// merged folder equals an unsharded run's byte for byte (every image's maps depend on that image
/// alone); the merge checks every file as the unsharded run checks its own.
public struct CAMJob: Job {
    public let manifest: Manifest
    public let part: CAMPart
    /// How to start a shard process (`semples run`); nil: this executable's `run`.
    public let shardCommand: [String]?
    /// The manifest file and `--out` folder a shard process is given (the pipeline's, for its CAM step).
    public var shardInvocation: (manifest: String, out: String)?

    public init(manifest: Manifest, part: CAMPart = .all, shardCommand: [String]? = nil) throws {
        self.manifest = manifest
        self.part = part
        self.shardCommand = shardCommand
    }

    static func shardRecordName(_ index: Int) -> String { "shards/\(index).json" }

    /// The list positions shard `index` of `count` takes: strided, so shards get similar mixes of images.
    public static func shardIDs(_ ids: [String], index: Int, count: Int) -> [String] {
        stride(from: index, to: ids.count, by: count).map { ids[$0] }
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest
        let dataset = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: m.imgList,
                                              labelsPath: m.clsLabels, needLabels: true)
        var ids = dataset.ids
        if let limit = m.limit { ids = Array(ids.prefix(limit)) }
        try dataset.checkPresent(ids: ids, images: true, groundTruth: false, labels: true)
        switch part {
        case .all where m.shards > 1:
            guard let (manifestFile, out) = shardInvocation else {
                throw InputError("'\(m.file)': a sharded CAM job needs its manifest file to start the shard processes")
            }
            let driver = ShardDriver(command: shardCommand ?? ShardDriver.defaultCommand(), manifest: manifestFile,
                                     jobFolder: out, folder: context.outputFolder, count: m.shards)
            let seconds = try driver.run(context: context)
            return try merge(ids, dataset: dataset, context: context, seconds: seconds)
        case .merge:
            return try merge(ids, dataset: dataset, context: context, seconds: nil)
        case .all:
            return try generate(ids, dataset: dataset, context: context, shard: nil)
        case let .shard(index, count):
            let mine = Self.shardIDs(ids, index: index, count: count)
            context.log("shard \(index)/\(count): \(mine.count) of \(ids.count) images")
            let started = Date()
            let outcome = try generate(mine, dataset: dataset, context: context, shard: (index, count))
            let record = ShardRecord(shard: index, count: count, images: mine.count,
                                     written: Int(outcome.metrics["images_this_run"] ?? 0),
                                     seconds: Date().timeIntervalSince(started), finished: Date())
            try AtomicFile.write(try JSONCoding.encoder.encode(record),
                                 to: context.outputFolder.appendingPathComponent(Self.shardRecordName(index)).path)
            return outcome
        }
    }

    /// What a finished shard leaves in `shards/K.json`.
    public struct ShardRecord: Codable, Equatable {
        public var shard: Int
        public var count: Int
        public var images: Int
        /// Images this shard's last run wrote (the rest were there from an earlier run).
        public var written: Int
        public var seconds: Double
        public var finished: Date
    }

    /// A test-only crash point: `SEMPLES_TEST_KILL_SHARD=K@M` SIGKILLs shard K after its M-th image,
    /// on the first attempt only (`SEMPLES_ATTEMPT=1`), as an out-of-memory kill would.
    static func testKillPoint(shard: Int) -> Int? {
        let env = ProcessInfo.processInfo.environment
        guard env["SEMPLES_ATTEMPT"] == "1", let spec = env["SEMPLES_TEST_KILL_SHARD"] else { return nil }
        let parts = spec.split(separator: "@").compactMap { Int($0) }
        return parts.count == 2 && parts[0] == shard ? parts[1] : nil
    }

    /// Generates the CAMs of `ids` that are not there yet, then checks those from earlier runs.
    func generate(_ ids: [String], dataset: SegmentationDataset, context: JobContext, shard: (Int, Int)?) throws -> JobOutcome {
        let m = manifest
        guard let resume = m.resume else { throw InputError("'\(m.file)': no checkpoint ('resume')") }
        context.log("loading '\(resume)'")
        let model = try Checkpoints.loadWeakTr(resume, classCount: m.dataSet.classCount, reduction: m.reduction,
                                               pooling: WeakTrPooling(rawValue: m.poolType.rawValue)!)
        context.log("WeakTr: D=\(model.config.embedDimension), depth \(model.config.depth), \(model.config.headCount) heads, \(model.config.classCount) classes; scales \(m.scales.map { String($0) }.joined(separator: ", ")) with flips")

        let fm = FileManager.default
        let camFolder = context.outputFolder.appendingPathComponent("cams").path
        let overlayFolder = context.outputFolder.appendingPathComponent("overlays").path
        let maskFolder = context.outputFolder.appendingPathComponent("masks").path
        try fm.createDirectory(atPath: camFolder, withIntermediateDirectories: true)
        if m.overlays { try fm.createDirectory(atPath: overlayFolder, withIntermediateDirectories: true) }
        if m.masks { try fm.createDirectory(atPath: maskFolder, withIntermediateDirectories: true) }

        let done = ids.filter { fm.fileExists(atPath: camFolder + "/\($0).npy") }
        let todo = ids.filter { !fm.fileExists(atPath: camFolder + "/\($0).npy") }
        context.begin("cam", total: ids.count, alreadyDone: done.count)
        let generator = CAMGenerator(model: model, scales: m.scales)
        let names = m.dataSet == .voc12 ? LabelSet.voc.classNames : LabelSet.coco.classNames
        let killAfter = shard.flatMap { Self.testKillPoint(shard: $0.0) }
        let started = Date()
        var written = 0
        for id in todo {
            try context.checkStop()
            let labels = dataset.labelVector(id)!
            guard labels.contains(where: { $0 > 0 }) else {
                // As the reference: an image without a positive label gets no file.
                context.log("'\(id)' has no positive label, skipping")
                context.advance()
                continue
            }
            let image = try ImageIO.read(dataset.imagePath(id))
            try generator.checkInput(image, source: dataset.imagePath(id))
            let cams = generator.cams(for: image, labels: labels)
            let positives = cams.keys.sorted()
            // The maps have the image's size at the first scale (its own size at 1.0).
            let size = CAMGenerator.scaledSize(width: image.width, height: image.height, scale: m.scales[0])
            // Every output is checked before it counts: the maps in memory, then the file as read back.
            try OutputCheck.camMaps(cams.mapValues { $0.view }, width: size.width, height: size.height,
                                    file: camFolder + "/\(id).npy")
            // Overlays and masks first: the .npy marks the image as done.
            if m.overlays {
                for (k, cam) in cams {
                    let name = k + 1 < names.count ? names[k + 1] : "class\(k)"
                    try ImageIO.writePNG(CAMOverlay.jet(cam.view, on: image), to: overlayFolder + "/\(id)_\(k)_\(name).png")
                }
            }
            if m.masks, let t = m.maskThreshold {
                let stack = try CAMStack(cams, source: id)
                let mask = Image8(width: size.width, height: size.height, channels: 1, pixels: stack.labels(threshold: t))
                try OutputCheck.mask(mask, classes: positives, width: size.width, height: size.height,
                                     file: maskFolder + "/\(id).png")
                try ImageIO.writePalettePNG(mask, palette: ImageIO.vocPalette(), to: maskFolder + "/\(id).png")
            }
            let camPath = camFolder + "/\(id).npy"
            try Npy.writeCAMDict(cams.mapValues { $0.view }, to: camPath)
            do {
                try OutputCheck.camFile(camPath, classes: positives, width: size.width, height: size.height)
            } catch {
                // Not left behind as done: a resumed run makes it again.
                try? fm.removeItem(atPath: camPath)
                throw error
            }
            written += 1
            // A shard's log names every file it writes, so a retried shard can be seen to write none twice.
            if shard != nil { context.log("wrote 'cams/\(id).npy'") }
            context.advance()
            if let k = killAfter, written == k {
                context.log("test crash point: killing this shard after \(k) image(s)")
                kill(getpid(), SIGKILL)
            }
        }
        // Files from an earlier attempt count only if they pass the same check.
        if !done.isEmpty { context.log("checking \(done.count) CAM files from an earlier run") }
        try check(done, dataset: dataset, camFolder: camFolder)
        let seconds = Date().timeIntervalSince(started)
        context.log(String(format: "cam: %d images in %@ (%.2f images/s)", written, formatDuration(seconds),
                           written > 0 ? Double(written) / seconds : 0))
        return JobOutcome(metrics: ["images": Double(ids.count), "images_this_run": Double(written),
                                    "images_per_second": written > 0 ? Double(written) / seconds : 0],
                          outputs: outputs)
    }

    var outputs: [String] {
        var outputs = ["cams/"]
        if manifest.overlays { outputs.append("overlays/") }
        if manifest.masks { outputs.append("masks/") }
        return outputs
    }

    /// Checks the CAM files of `ids` (which must exist) as a run checks the files it wrote.
    func check(_ ids: [String], dataset: SegmentationDataset, camFolder: String) throws {
        for id in ids {
            let image = try ImageIO.read(dataset.imagePath(id))
            let size = CAMGenerator.scaledSize(width: image.width, height: image.height, scale: manifest.scales[0])
            let labels = dataset.labelVector(id)!
            try OutputCheck.camFile(camFolder + "/\(id).npy", classes: (0..<labels.count).filter { labels[$0] > 0 },
                                    width: size.width, height: size.height)
        }
    }

    /// The end of a sharded job: every shard's record, every image's file, checked; nothing generated.
    /// `seconds`: the shards' wall time when this process ran them.
    func merge(_ ids: [String], dataset: SegmentationDataset, context: JobContext, seconds: Double?) throws -> JobOutcome {
        let n = manifest.shards
        let folder = context.outputFolder
        var written = 0
        for k in 0..<n {
            let path = folder.appendingPathComponent(Self.shardRecordName(k)).path
            guard let data = FileManager.default.contents(atPath: path),
                  let record = try? JSONCoding.decoder.decode(ShardRecord.self, from: data), record.count == n else {
                throw ShardFailure("shard \(k)/\(n) has not finished: '\(path)' is missing or not a record of \(n) shards; run the job again to finish it")
            }
            written += record.written
        }
        let camFolder = folder.appendingPathComponent("cams").path
        let expected = ids.filter { id in dataset.labelVector(id)!.contains { $0 > 0 } }
        if let missing = expected.first(where: { !FileManager.default.fileExists(atPath: camFolder + "/\($0).npy") }) {
            let index = ids.firstIndex(of: missing)! % n
            // The shard's record goes, so the rerun runs that shard again (its other files are skipped).
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(Self.shardRecordName(index)))
            throw ShardFailure("'\(camFolder)/\(missing).npy' is missing although shard \(index)/\(n), which makes it, finished; run the job again to make it")
        }
        context.log("merge: checking the \(expected.count) CAM files of \(n) shards")
        try check(expected, dataset: dataset, camFolder: camFolder)
        var metrics: [String: Double] = ["images": Double(ids.count), "images_this_run": Double(written), "shards": Double(n)]
        if let s = seconds, s > 0 { metrics["images_per_second"] = Double(written) / s }
        return JobOutcome(metrics: metrics, outputs: outputs)
    }
}

/// A shard of a sharded job failed or has not finished; retryable (a rerun continues it).
public struct ShardFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
