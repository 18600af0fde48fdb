import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// Loading model checkpoints in the formats users bring.
public enum Checkpoints {
    /// A WeakTr/SemPLeS checkpoint: a `.pth` holding `{'model': state_dict, …}` or a bare state dict,
    /// or a `.safetensors` state dict. Keys and shapes are checked strictly.
    public static func loadWeakTr(_ path: String, classCount: Int, reduction: Int,
                                  pooling: WeakTrPooling) throws -> WeakTr {
        try WeakTr(stateDict: try readStateDict(path), classCount: classCount, reduction: reduction, pooling: pooling,
                   source: path)
    }

    /// The float32 tensors of a `.pth` ({'model': state_dict, …} or a bare state dict) or a
    /// `.safetensors` file, by name; throws when it holds none.
    public static func readStateDict(_ path: String) throws -> [String: Tensor] {
        var dict: [String: Tensor] = [:]
        if path.hasSuffix(".safetensors") {
            for t in try SafeTensors.read(path).tensors { dict[t.name] = t.tensor }
        } else {
            let archive = try Pth.open(path)
            let hasModel = archive.root.dictEntries?.contains(where: { $0.key.stringValue == "model" }) == true
            for (name, t) in try Pth.tensors(of: archive, key: hasModel ? "model" : nil) { dict[name] = t.toFloat32() }
        }
        guard !dict.isEmpty else { throw FormatError(path, "holds no tensors; expected a WeakTr state dict") }
        return dict
    }

    /// CAMs of `ids` at `scales` (with flips) from `model`, scored against the ground truth with the
    /// greedy threshold sweep from `start` (spec §4.4, §6), logged in one line. `stoppable`: a stop
    /// request ends the evaluation (and the job) between images.
    static func evaluateCAMs(model: WeakTr, dataset: SegmentationDataset, ids: [String], scales: [Double],
                             start: Int, context: JobContext, stoppable: Bool) throws -> EvaluationMetrics {
        let generator = CAMGenerator(model: model, scales: scales)
        var evaluator = try CAMEvaluator(dataSet: dataset.kind == .voc12 ? .voc : .coco, mode: .curve(start: start, end: 60))
        let started = Date()
        for id in ids {
            if stoppable { try context.checkStop() }
            let image = try ImageIO.read(dataset.imagePath(id))
            let cams = generator.cams(for: image, labels: dataset.labelVector(id)!)
            let gt = try ImageIO.readLabels(dataset.groundTruthPath(id))
            try evaluator.add(cams: cams, groundTruth: gt.pixels, height: gt.height, width: gt.width,
                              source: dataset.imagePath(id))
        }
        let metrics = evaluator.metrics()
        context.log(String(format: "CAM evaluation: mIoU %.2f%% at t=%.2f over %d images (%@)", metrics.bestMeanIoU * 100,
                           metrics.bestThreshold, ids.count, formatDuration(Date().timeIntervalSince(started))))
        return metrics
    }
}
