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
        var evaluator = try CAMEvaluator(dataSet: labelSet, mode: mode, crf: crfParameters)
        context.begin("evaluate", total: ids.count)
        for id in ids {
            try context.checkStop()
            let cams = try Npy.readCAMDict(predictDir + "/\(id).npy")
            let gt = try ImageIO.readLabels(dataset.groundTruthPath(id))
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
        return JobOutcome(metrics: ["miou": metrics.bestMeanIoU, "threshold": metrics.bestThreshold,
                                    "images": Double(metrics.imageCount)],
                          outputs: ["metrics.json", "miou_curve.png"])
    }
}
