import SemplesEngine
import SemplesFormats

/// Evaluation of CAM dictionaries against ground-truth label maps (spec §6), image by image.
///
/// Without CRF, a curve is measured in one pass over the images (every threshold at once, see
/// `ThresholdSweep`). With CRF the prediction at each threshold goes through the dense CRF, so a
/// curve with CRF needs one pass per threshold, as in the reference: drive it with `ThresholdWalk`
/// and a fixed-threshold evaluator per pass.
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

    /// Throws when a curve is combined with CRF (run those with `ThresholdWalk`) or the curve is empty.
    public init(dataSet: LabelSet, mode: Mode, crf: DenseCRFParameters? = nil) throws {
        if case let .curve(start, end) = mode {
            guard crf == nil else {
                throw EvaluationSetupError("a threshold curve with CRF takes one pass per threshold: use ThresholdWalk with fixed-threshold passes")
            }
            guard start >= 0, start < end else {
                throw EvaluationSetupError("curve start \(start) must be ≥ 0 and below end \(end)")
            }
        }
        if case let .fixed(t) = mode, !(t.isFinite) {
            throw EvaluationSetupError("threshold \(t) is not a finite number")
        }
        self.dataSet = dataSet
        self.mode = mode
        self.crf = crf
        switch mode {
        case let .curve(start, end):
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

    /// Adds one image as `ImageIO` reads it: groundTruth from `readLabels` (one channel), image
    /// from `read` (RGB, only needed with CRF).
    @discardableResult
    public mutating func add(cams: [Int: Tensor], groundTruth: Image8, image: Image8? = nil, source: String) throws -> [UInt8]? {
        guard groundTruth.channels == 1 else {
            throw FormatError(source, "ground truth has \(groundTruth.channels) channels, expected a one-channel label map")
        }
        if let image {
            guard image.channels == 3, image.width == groundTruth.width, image.height == groundTruth.height else {
                throw FormatError(source, "image is \(image.width)×\(image.height)×\(image.channels), expected \(groundTruth.width)×\(groundTruth.height)×3 like its ground truth")
            }
        }
        return try add(cams: cams, groundTruth: groundTruth.pixels, height: groundTruth.height, width: groundTruth.width,
                       image: image?.pixels, source: source)
    }

    /// Adds the images of another evaluator with the same settings (e.g. one per worker thread).
    public mutating func merge(_ other: CAMEvaluator) {
        precondition(other.dataSet == dataSet && other.mode == mode && other.crf == crf, "merging evaluators with different settings")
        sweep.merge(other.sweep)
        counts.merge(other.counts)
        imageCount += other.imageCount
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

/// A setting that cannot be evaluated (thrown before any image is read).
public struct EvaluationSetupError: Error, CustomStringConvertible, Equatable {
    public let detail: String
    public init(_ detail: String) { self.detail = detail }
    public var description: String { detail }
}

/// The greedy threshold walk run one threshold at a time, for curves whose every threshold needs
/// its own pass over the images (with CRF):
///
///     var walk = ThresholdWalk(start: 40)
///     while let t = walk.next {
///         var pass = try CAMEvaluator(dataSet: .voc, mode: .fixed(threshold: t), crf: .voc)
///         for image in images { try pass.add(…) }
///         walk.record(pass.fixedCounts, dataSet: .voc)
///     }
///     let metrics = walk.metrics(dataSet: .voc, crf: true, imageCount: images.count)
public struct ThresholdWalk: Sendable {
    public let thresholds: [Double]
    private var recorded: [ConfusionCounts] = []
    private var bestPercent = 0.0
    private var stopped = false

    public init(start: Int, end: Int = 60) {
        thresholds = ThresholdSweep.curveThresholds(start: start, end: end)
    }

    /// The threshold to evaluate next, nil once the walk has stopped or run out of thresholds.
    public var next: Double? {
        stopped || recorded.count >= thresholds.count ? nil : thresholds[recorded.count]
    }

    /// Records the counts of the pass at `next` and applies the stop rule.
    public mutating func record(_ counts: ConfusionCounts, dataSet: LabelSet) {
        precondition(next != nil, "the walk has already stopped")
        recorded.append(counts)
        let percent = counts.meanIoU(classCount: dataSet.classCount) * 100
        if percent > bestPercent { bestPercent = percent } else { stopped = true }
    }

    public func metrics(dataSet: LabelSet, crf: Bool, imageCount: Int) -> EvaluationMetrics {
        EvaluationMetrics(dataSet: dataSet, curveMode: true, crf: crf, imageCount: imageCount,
                          points: zip(thresholds, recorded).map { (threshold: $0, counts: $1) })
    }
}
