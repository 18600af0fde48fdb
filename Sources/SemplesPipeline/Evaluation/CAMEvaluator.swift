import SemplesEngine
import SemplesFormats

/// Evaluation of CAM dictionaries against ground-truth label maps (spec §6), image by image.
///
/// Without CRF, a curve is measured in one pass over the images (every threshold at once, see
/// `ThresholdSweep`). With CRF the prediction at each threshold goes through the dense CRF; a
/// curve with CRF is then evaluated at every threshold of the curve for each image (the greedy
/// stop is applied at the end, so the result is the reference's, at the cost of CRF runs past
/// the stop). `ThresholdWalk` runs such curves one pass per threshold instead, like the reference.
public struct CAMEvaluator: Sendable {
    /// How thresholds are chosen (spec §6: `--curve True --start S` or `--t T`).
    public enum Mode: Equatable, Sendable {
        /// Greedy sweep over start/100 … (end−1)/100; empty when start ≥ end (then, as in the
        /// reference, the report is threshold 0 and mIoU 0).
        case curve(start: Int, end: Int)
        /// One background threshold (a fraction, e.g. 0.43).
        case fixed(threshold: Double)
    }

    /// Label space (21 or 91 classes) and threshold mode.
    public let dataSet: LabelSet
    public let mode: Mode
    /// CRF parameters when the predictions are refined.
    public let crf: DenseCRFParameters?
    /// The evaluated thresholds, ascending.
    public let thresholds: [Double]
    /// Without CRF: all thresholds in one accumulator.
    private var sweep: ThresholdSweep
    /// With CRF: counts per threshold.
    private var refinedCounts: [ConfusionCounts]
    /// Images added so far.
    public private(set) var imageCount = 0

    public init(dataSet: LabelSet, mode: Mode, crf: DenseCRFParameters? = nil) {
        self.dataSet = dataSet
        self.mode = mode
        self.crf = crf
        switch mode {
        case let .curve(start, end):
            thresholds = ThresholdSweep.curveThresholds(start: max(start, 0), end: max(end, start, 0))
        case let .fixed(t):
            thresholds = [t]
        }
        sweep = ThresholdSweep(thresholds: crf == nil ? thresholds : [])
        refinedCounts = [ConfusionCounts](repeating: ConfusionCounts(), count: crf == nil ? 0 : thresholds.count)
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
        var prediction: [UInt8]? = nil
        if let parameters = crf {
            guard let rgb = image, rgb.count == height * width * 3 else {
                throw FormatError(source, "CRF needs the \(width)×\(height) RGB image, found \(image?.count ?? 0) bytes")
            }
            let lookup = stack.labelLookup
            var indices = [UInt8](repeating: 0, count: height * width)
            for (i, t) in thresholds.enumerated() {
                indices.withUnsafeMutableBufferPointer { stack.argmaxIndices(threshold: t, into: $0) }
                let refined = DenseCRF.refine(labels: indices, labelCount: stack.stackCount, image: rgb,
                                              width: width, height: height, parameters: parameters)
                let labels = refined.map { lookup[Int($0)] }
                try refinedCounts[i].add(prediction: labels, groundTruth: groundTruth, source: source)
                prediction = labels
            }
        } else {
            try sweep.add(stack, groundTruth: groundTruth, source: source)
            if case let .fixed(t) = mode { prediction = stack.labels(threshold: t) }
        }
        imageCount += 1
        if case .fixed = mode { return prediction }
        return nil
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
        for i in refinedCounts.indices { refinedCounts[i].merge(other.refinedCounts[i]) }
        imageCount += other.imageCount
    }

    /// The confusion counts at every threshold, in order.
    public var allCounts: [ConfusionCounts] { crf == nil ? sweep.allCounts() : refinedCounts }

    /// The report over all images added so far.
    public func metrics() -> EvaluationMetrics {
        let curveMode: Bool
        if case .curve = mode { curveMode = true } else { curveMode = false }
        return EvaluationMetrics(dataSet: dataSet, curveMode: curveMode, crf: crf != nil, imageCount: imageCount,
                                 points: zip(thresholds, allCounts).map { (threshold: $0, counts: $1) })
    }

    /// The confusion counts in fixed mode (to combine per-threshold passes into a curve).
    public var fixedCounts: ConfusionCounts { allCounts.first ?? ConfusionCounts() }
}

/// The greedy threshold walk run one threshold at a time, for curves whose every threshold needs
/// its own pass over the images (with CRF):
///
///     var walk = ThresholdWalk(start: 40)
///     while let t = walk.next {
///         var pass = CAMEvaluator(dataSet: .voc, mode: .fixed(threshold: t), crf: .voc)
///         for image in images { try pass.add(…) }
///         walk.record(pass.fixedCounts, dataSet: .voc)
///     }
///     let metrics = walk.metrics(dataSet: .voc, crf: true, imageCount: images.count)
public struct ThresholdWalk: Sendable {
    /// The curve's thresholds, start/100 … (end−1)/100.
    public let thresholds: [Double]
    private var recorded: [ConfusionCounts] = []
    private var bestPercent = 0.0
    private var stopped = false

    /// A walk over start/100 … (end−1)/100 (the reference's `end` is 60).
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

    /// The report over the thresholds recorded so far.
    public func metrics(dataSet: LabelSet, crf: Bool, imageCount: Int) -> EvaluationMetrics {
        EvaluationMetrics(dataSet: dataSet, curveMode: true, crf: crf, imageCount: imageCount,
                          points: zip(thresholds, recorded).map { (threshold: $0, counts: $1) })
    }
}
