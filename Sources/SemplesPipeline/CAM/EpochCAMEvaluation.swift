import Foundation
import SemplesFormats
import SemplesModels

/// Epoch CAM evaluation (spec §4.4) of a WeakTr: the CAMs of every image at the scales (with flips)
/// against its ground truth, with the greedy threshold sweep from `start`. The weaktr job and the
/// SemPLeS stages (a)/(c) select their best epoch with it.
enum EpochCAMEvaluation {
    /// `checkStop` runs before each image and throws to stop.
    static func run(model: WeakTr, dataset: SegmentationDataset, ids: [String], scales: [Double], start: Int,
                    context: JobContext, checkStop: () throws -> Void = {}) throws -> EvaluationMetrics {
        let generator = CAMGenerator(model: model, scales: scales)
        var evaluator = try CAMEvaluator(dataSet: dataset.kind == .voc12 ? .voc : .coco, mode: .curve(start: start, end: 60))
        let started = Date()
        for id in ids {
            try checkStop()
            let image = try ImageIO.read(dataset.imagePath(id))
            let cams = generator.cams(for: image, labels: dataset.labelVector(id)!)
            let gt = try ImageIO.readLabels(dataset.groundTruthPath(id))
            try evaluator.add(cams: cams, groundTruth: gt.pixels, height: gt.height, width: gt.width,
                              source: dataset.imagePath(id))
        }
        let metrics = evaluator.metrics()
        // Per-class IoU of the classes present in the ground truth or the predictions.
        let classes = metrics.perClass.filter { $0.truthPixels > 0 || $0.predictedPixels > 0 }
            .map { String(format: "%@ %.1f", $0.name, ($0.iou ?? 0) * 100) }.joined(separator: ", ")
        context.log(String(format: "CAM evaluation: mIoU %.2f%% at t=%.2f over %d images (%@); IoU %@", metrics.bestMeanIoU * 100,
                           metrics.bestThreshold, ids.count, formatDuration(Date().timeIntervalSince(started)), classes))
        return metrics
    }
}
