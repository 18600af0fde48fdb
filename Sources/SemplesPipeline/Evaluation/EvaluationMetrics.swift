import Foundation
import SemplesFormats

/// What an evaluation job reports (`metrics.json`). IoU and mIoU are fractions in [0, 1]; the
/// reference prints them in percent. `null` stands for NaN (a class absent from prediction and truth).
public struct EvaluationMetrics: Codable, Equatable, Sendable {
    /// One point of the mIoU-against-threshold curve.
    public struct CurvePoint: Codable, Equatable, Sendable {
        public var threshold: Double
        public var meanIoU: Double?

        private enum CodingKeys: String, CodingKey { case threshold, meanIoU }

        /// Writes NaN as an explicit null.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(threshold, forKey: .threshold)
            try c.encode(meanIoU, forKey: .meanIoU)
        }
    }

    /// IoU of one label value at the best threshold.
    public struct ClassIoU: Codable, Equatable, Sendable {
        public var label: Int
        public var name: String
        public var iou: Double?
        public var truthPixels: Int64
        public var predictedPixels: Int64

        private enum CodingKeys: String, CodingKey { case label, name, iou, truthPixels, predictedPixels }

        /// Writes NaN as an explicit null.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(label, forKey: .label)
            try c.encode(name, forKey: .name)
            try c.encode(iou, forKey: .iou)
            try c.encode(truthPixels, forKey: .truthPixels)
            try c.encode(predictedPixels, forKey: .predictedPixels)
        }
    }

    /// Data set ("VOC12" or "COCO").
    public var dataSet: LabelSet
    /// "curve" (greedy sweep) or "fixed" (one threshold).
    public var mode: String
    /// Whether predictions went through the dense CRF; classes averaged over; images evaluated.
    public var crf: Bool
    public var classCount: Int
    public var imageCount: Int
    /// Pixels counted (ground truth ≠ 255) over all images.
    public var pixelCount: Int64
    /// The chosen threshold and its mIoU; 0 and 0 when no threshold beat 0 (as the reference).
    public var bestThreshold: Double
    public var bestMeanIoU: Double
    /// Thresholds the sweep looked at, in order, the stopping one included.
    public var curve: [CurvePoint]
    /// Per-class IoU at the best threshold (at the first threshold when none was best).
    public var perClass: [ClassIoU]

    /// Builds the report from the counts of the evaluated thresholds, applying the greedy rule in
    /// curve mode. `points` are in threshold order; in curve mode the walk may stop before the end,
    /// and the curve then holds only the thresholds the reference would have evaluated.
    public init(dataSet: LabelSet, curveMode: Bool, crf: Bool, imageCount: Int,
                points: [(threshold: Double, counts: ConfusionCounts)]) {
        let classCount = dataSet.classCount
        let means = points.map { $0.counts.meanIoU(classCount: classCount) }
        let chosen: Int?
        let evaluated: Int
        if curveMode {
            (chosen, evaluated) = GreedyThreshold.walk(means)
        } else {
            chosen = points.isEmpty ? nil : 0
            evaluated = points.count
        }
        self.dataSet = dataSet
        self.mode = curveMode ? "curve" : "fixed"
        self.crf = crf
        self.classCount = classCount
        self.imageCount = imageCount
        // An empty curve (start ≥ 60) evaluates nothing: threshold 0, mIoU 0, no per-class values.
        let reference = points.isEmpty ? ConfusionCounts() : points[chosen ?? 0].counts
        pixelCount = reference.truth.reduce(0, +)
        if let c = chosen {
            bestThreshold = points[c].threshold
            // A fixed threshold over images without counted pixels has no mIoU; report 0 (JSON has no NaN).
            bestMeanIoU = means[c].isNaN ? 0 : means[c]
        } else {
            bestThreshold = 0
            bestMeanIoU = 0
        }
        curve = (0..<evaluated).map { CurvePoint(threshold: points[$0].threshold, meanIoU: means[$0].isNaN ? nil : means[$0]) }
        let iou = reference.intersectionOverUnion(classCount: classCount)
        let names = dataSet.classNames
        perClass = (0..<classCount).map {
            ClassIoU(label: $0, name: names[$0], iou: iou[$0].isNaN ? nil : iou[$0],
                     truthPixels: reference.truth[$0], predictedPixels: reference.predicted[$0])
        }
    }

    /// The headline numbers for `result.json`: best threshold, best mIoU (fraction), images, pixels.
    public var summary: [String: Double] {
        ["best_threshold": bestThreshold, "best_mIoU": bestMeanIoU, "images": Double(imageCount),
         "pixels": Double(pixelCount)]
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Writes `metrics.json` atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(try jsonData(), to: path)
    }
}
