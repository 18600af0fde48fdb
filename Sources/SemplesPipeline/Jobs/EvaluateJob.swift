import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest

/// `job: evaluate` — CAM mIoU over a list (spec §6): the greedy threshold sweep or a fixed
/// threshold (optionally with dense CRF). Writes `metrics.json` and `miou_curve.png`.
public struct EvaluateJob: Job {
    public let manifest: Manifest

    public init(manifest: Manifest) throws {
        self.manifest = manifest
    }

    public func run(in context: JobContext) throws -> JobOutcome {
        let m = manifest
        guard let predictDir = m.predictDir else { throw InputError("'\(m.file)': no 'predict_dir'") }
        let dataset = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: m.imgList,
                                              labelsPath: m.clsLabels, needLabels: false)
        var ids = dataset.ids
        if let limit = m.limit { ids = Array(ids.prefix(limit)) }
        try dataset.checkPresent(ids: ids, images: m.crf, groundTruth: true, labels: false)
        let missing = ids.filter { !FileManager.default.isReadableFile(atPath: predictDir + "/\($0).npy") }
        if !missing.isEmpty {
            throw InputError("\(missing.count) of \(ids.count) images have no CAM file in '\(predictDir)', e.g. '\(missing[0]).npy'")
        }
        let labelSet: LabelSet = m.dataSet == .voc12 ? .voc : .coco
        let mode: CAMEvaluator.Mode = m.curve ? .curve(start: m.start, end: 60) : .fixed(threshold: m.t ?? 0)
        // The CRF parameter set follows the data set unless `cam_type` says otherwise (spec §10 item 15).
        let crfParameters: DenseCRFParameters? = m.crf ? (m.camType.map { $0 == .voc12 ? .voc : .coco } ?? labelSet.crfParameters) : nil
        var evaluator = CAMEvaluator(dataSet: labelSet, mode: mode, crf: crfParameters)
        // Trivial baselines, when image labels are known: every pixel background; every pixel the
        // image's labelled class (the first one when there are several).
        var allBackground = ConfusionCounts()
        var labelEverywhere = ConfusionCounts()
        let haveLabels = !dataset.labels.isEmpty
        context.begin("evaluate", total: ids.count)
        for id in ids {
            try context.checkStop()
            let cams = try Npy.readCAMDict(predictDir + "/\(id).npy")
            let gt = try ImageIO.readLabels(dataset.groundTruthPath(id))
            if haveLabels, let vector = dataset.labelVector(id) {
                let source = dataset.groundTruthPath(id)
                try allBackground.add(prediction: [UInt8](repeating: 0, count: gt.pixels.count), groundTruth: gt.pixels, source: source)
                let first = vector.firstIndex { $0 > 0 }.map { UInt8($0 + 1) } ?? 0
                try labelEverywhere.add(prediction: [UInt8](repeating: first, count: gt.pixels.count), groundTruth: gt.pixels, source: source)
            }
            let rgb = m.crf ? try ImageIO.read(dataset.imagePath(id)).pixels : nil
            try evaluator.add(cams: cams, groundTruth: gt.pixels, height: gt.height, width: gt.width,
                              image: rgb, source: predictDir + "/\(id).npy")
            context.advance()
        }
        let metrics = evaluator.metrics()
        let metricsPath = context.outputFolder.appendingPathComponent("metrics.json").path
        try metrics.write(to: metricsPath)
        let plotPath = context.outputFolder.appendingPathComponent("miou_curve.png").path
        try metrics.meanIoUChart().writePNG(to: plotPath)
        context.log(String(format: "mIoU %.2f%% at t=%.2f over %d images", metrics.bestMeanIoU * 100,
                           metrics.bestThreshold, metrics.imageCount))
        var summary: [String: Double] = ["miou": metrics.bestMeanIoU, "threshold": metrics.bestThreshold,
                                         "images": Double(metrics.imageCount)]
        if haveLabels {
            let background = allBackground.meanIoU(classCount: labelSet.classCount)
            let everywhere = labelEverywhere.meanIoU(classCount: labelSet.classCount)
            summary["baseline_all_background_miou"] = background
            summary["baseline_label_everywhere_miou"] = everywhere
            context.log(String(format: "baselines: all background %.2f%%, labelled class everywhere %.2f%%",
                               background * 100, everywhere * 100))
            let baselines = ["all_background_miou": background, "label_everywhere_miou": everywhere]
            try AtomicFile.write(try JSONCoding.encoder.encode(baselines),
                                 to: context.outputFolder.appendingPathComponent("baselines.json").path)
        }
        return JobOutcome(metrics: summary,
                          outputs: ["metrics.json", "miou_curve.png"] + (haveLabels ? ["baselines.json"] : []))
    }
}
