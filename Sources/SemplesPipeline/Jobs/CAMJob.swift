import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// `job: cam` — multi-scale CAMs for every image of a list (spec §5), one `<id>.npy` each in
/// `cams/`, optional heat-map overlays in `overlays/` and pseudo-masks in `masks/`.
/// Resumable: images whose `.npy` already exists (written atomically) are skipped.
public struct CAMJob: Job {
    public let manifest: Manifest

    public init(manifest: Manifest) throws {
        self.manifest = manifest
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest
        let dataset = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: m.imgList,
                                              labelsPath: m.clsLabels, needLabels: true)
        var ids = dataset.ids
        if let limit = m.limit { ids = Array(ids.prefix(limit)) }
        try dataset.checkPresent(ids: ids, images: true, groundTruth: false, labels: true)
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
            context.advance()
        }
        // Files from an earlier attempt count only if they pass the same check.
        if !done.isEmpty { context.log("checking \(done.count) CAM files from an earlier run") }
        for id in done {
            let image = try ImageIO.read(dataset.imagePath(id))
            let size = CAMGenerator.scaledSize(width: image.width, height: image.height, scale: m.scales[0])
            let labels = dataset.labelVector(id)!
            try OutputCheck.camFile(camFolder + "/\(id).npy", classes: (0..<labels.count).filter { labels[$0] > 0 },
                                    width: size.width, height: size.height)
        }
        let seconds = Date().timeIntervalSince(started)
        context.log(String(format: "cam: %d images in %@ (%.2f images/s)", written, formatDuration(seconds),
                           written > 0 ? Double(written) / seconds : 0))
        var outputs = ["cams/"]
        if m.overlays { outputs.append("overlays/") }
        if m.masks { outputs.append("masks/") }
        return JobOutcome(metrics: ["images": Double(ids.count), "images_this_run": Double(written),
                                    "images_per_second": written > 0 ? Double(written) / seconds : 0],
                          outputs: outputs)
    }
}
