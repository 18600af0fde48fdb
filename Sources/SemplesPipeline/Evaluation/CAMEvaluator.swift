import SemplesEngine
import SemplesFormats

/// Evaluation of CAM dictionaries against ground-truth label maps (spec §6), image by image.
///
/// Without CRF, a curve is measured in one pass over the images (every threshold at once, see
/// `ThresholdSweep`). With CRF the prediction at each threshold goes through the dense CRF, so a
/// curve with CRF needs one pass per threshold: the caller runs a fixed evaluator per threshold
/// and stops with `GreedyThreshold` as the reference does.
public struct CAMEvaluator: Sendable {
    public enum Mode: Equatable, Sendable {
        /// Greedy sweep over start/100 … (end−1)/100.
        case curve(start: Int, end: Int)
        /// One background threshold (a fraction, e.g. 0.43).
        case fixed(threshold: Double)
    }

    public let dataSet: LabelSet
    public let mode: Mode
    /// CRF parameters when the predictions are refined (fixed mode only).
    public let crf: DenseCRFParameters?
    private var sweep: ThresholdSweep
    private var counts = ConfusionCounts()
    public private(set) var imageCount = 0

    public init(dataSet: LabelSet, mode: Mode, crf: DenseCRFParameters? = nil) {
        if case .curve = mode {
            precondition(crf == nil, "a curve with CRF is run as one fixed pass per threshold")
        }
        self.dataSet = dataSet
        self.mode = mode
        self.crf = crf
        switch mode {
        case let .curve(start, end):
            precondition(start >= 0 && start < end, "curve start \(start) must lie below end \(end)")
            sweep = ThresholdSweep(thresholds: ThresholdSweep.curveThresholds(start: start, end: end))
        case let .fixed(t):
            sweep = ThresholdSweep(thresholds: [t])
        }
    }

    /// Adds one image. cams: the `.npy` dictionary {class: [H, W]}; groundTruth: [H × W] label
    /// values; image: [H × W × 3] RGB bytes, needed only with CRF. Returns the predicted label map
    /// in fixed mode (for the optional PNG output), nil in curve mode. `source` names the image in errors.
    @discardableResult
    public mutating func add(cams: [Int: Tensor], groundTruth: [UInt8], height: Int, width: Int,
                             image: [UInt8]? = nil, source: String) throws -> [UInt8]? {
        let stack = try CAMStack(cams, height: height, width: width, source: source)
        guard groundTruth.count == height * width else {
            throw FormatError(source, "ground truth has \(groundTruth.count) pixels, expected \(height)×\(width)")
        }
        imageCount += 1
        switch mode {
        case .curve:
            try sweep.add(stack, groundTruth: groundTruth, source: source)
            return nil
        case let .fixed(t):
            let prediction: [UInt8]
            if let parameters = crf {
                guard let rgb = image, rgb.count == height * width * 3 else {
                    throw FormatError(source, "CRF needs the \(width)×\(height) RGB image, found \(image?.count ?? 0) bytes")
                }
                var indices = [UInt8](repeating: 0, count: height * width)
                indices.withUnsafeMutableBufferPointer { stack.argmaxIndices(threshold: t, into: $0) }
                let refined = DenseCRF.refine(labels: indices, labelCount: stack.stackCount, image: rgb,
                                              width: width, height: height, parameters: parameters)
                let lookup = stack.labelLookup
                prediction = refined.map { lookup[Int($0)] }
            } else {
                prediction = stack.labels(threshold: t)
            }
            try counts.add(prediction: prediction, groundTruth: groundTruth, source: source)
            return prediction
        }
    }

    /// The report over all images added so far.
    public func metrics() -> EvaluationMetrics {
        switch mode {
        case .curve:
            let points = zip(sweep.thresholds, sweep.allCounts()).map { (threshold: $0, counts: $1) }
            return EvaluationMetrics(dataSet: dataSet, curveMode: true, crf: false, imageCount: imageCount, points: points)
        case let .fixed(t):
            return EvaluationMetrics(dataSet: dataSet, curveMode: false, crf: crf != nil, imageCount: imageCount,
                                     points: [(threshold: t, counts: counts)])
        }
    }

    /// The confusion counts in fixed mode (to combine per-threshold CRF passes into a curve).
    public var fixedCounts: ConfusionCounts { counts }
}
