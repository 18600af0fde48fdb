import SemplesFormats

/// Confusion counts for many background thresholds from one pass over the images (spec §6).
///
/// At a pixel let m be the largest CAM value and L the label of the first class reaching it.
/// The prediction at threshold t is background when Float(t) ≥ m (ties go to background) and L
/// otherwise, so along ascending thresholds a pixel predicts L for the first n(m) thresholds and
/// background after. Histograms over (L, n) give P, T and TP at every threshold by prefix sums,
/// exactly as if each threshold had been evaluated separately.
public struct ThresholdSweep: Sendable {
    /// Background thresholds, strictly ascending (the reference's `i / 100.0`).
    public let thresholds: [Double]
    /// The thresholds as the float32 background plane holds them.
    let planeValues: [Float]
    /// [256 × (T + 1)]: pixels whose foreground label is L and whose prefix length is n, at L·(T+1)+n.
    /// Pixels without any class map count as L = 0, n = 0 (background at every threshold).
    private var predictedHistogram: [Int64]
    /// Same, restricted to pixels whose ground truth equals L (L ≥ 1).
    private var hitHistogram: [Int64]
    /// [T + 1]: pixels whose ground truth is background, by prefix length n.
    private var backgroundTruthHistogram: [Int64]
    private var truth = [Int64](repeating: 0, count: 256)
    /// Images and counted pixels (ground truth ≠ 255) added so far.
    public private(set) var imageCount = 0
    public private(set) var pixelCount: Int64 = 0

    /// thresholds: strictly ascending background scores (possibly none).
    public init(thresholds: [Double]) {
        precondition(zip(thresholds, thresholds.dropFirst()).allSatisfy { $0 < $1 }, "thresholds must ascend: \(thresholds)")
        self.thresholds = thresholds
        planeValues = thresholds.map { Float($0) }
        precondition(zip(planeValues, planeValues.dropFirst()).allSatisfy { $0 < $1 }, "thresholds collide in float32")
        let slots = thresholds.count + 1
        predictedHistogram = [Int64](repeating: 0, count: 256 * slots)
        hitHistogram = [Int64](repeating: 0, count: 256 * slots)
        backgroundTruthHistogram = [Int64](repeating: 0, count: slots)
    }

    /// The reference's curve thresholds: start/100, (start+1)/100, …, (end−1)/100.
    public static func curveThresholds(start: Int, end: Int = 60) -> [Double] {
        (start..<end).map { Double($0) / 100.0 }
    }

    /// Adds one image. groundTruth: [height × width] label values, 255 ignored.
    public mutating func add(_ cams: CAMStack, groundTruth: [UInt8], source: String) throws {
        let n = cams.height * cams.width
        guard groundTruth.count == n else {
            throw FormatError(source, "CAM maps are \(cams.height)×\(cams.width) (\(n) pixels) but the ground truth has \(groundTruth.count) pixels")
        }
        let slots = thresholds.count + 1
        let lookup = cams.labelLookup
        let planes = cams.planes.map { UnsafePointer($0.data) }
        var counted: Int64 = 0
        planeValues.withUnsafeBufferPointer { t in
            predictedHistogram.withUnsafeMutableBufferPointer { predicted in
                hitHistogram.withUnsafeMutableBufferPointer { hits in
                    backgroundTruthHistogram.withUnsafeMutableBufferPointer { backgroundTruth in
                        truth.withUnsafeMutableBufferPointer { truth in
                            for j in 0..<n {
                                let g = Int(groundTruth[j])
                                if g == 255 { continue }
                                counted += 1
                                truth[g] += 1
                                var label = 0
                                var prefix = 0
                                if !planes.isEmpty {
                                    var best = planes[0][j]
                                    var index = 1
                                    for i in 1..<planes.count where planes[i][j] > best {
                                        best = planes[i][j]
                                        index = i + 1
                                    }
                                    label = Int(lookup[index])
                                    prefix = ThresholdSweep.countBelow(best, t)
                                }
                                predicted[label * slots + prefix] += 1
                                if g == label && label != 0 { hits[label * slots + prefix] += 1 }
                                if g == 0 { backgroundTruth[prefix] += 1 }
                            }
                        }
                    }
                }
            }
        }
        imageCount += 1
        pixelCount += counted
    }

    /// Number of thresholds strictly below v (they predict the foreground label).
    @inline(__always)
    static func countBelow(_ v: Float, _ t: UnsafeBufferPointer<Float>) -> Int {
        var lo = 0, hi = t.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if t[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Adds the counts of another sweep over the same thresholds (e.g. from another worker).
    public mutating func merge(_ other: ThresholdSweep) {
        precondition(other.thresholds == thresholds, "merging sweeps over different thresholds")
        for i in predictedHistogram.indices {
            predictedHistogram[i] += other.predictedHistogram[i]
            hitHistogram[i] += other.hitHistogram[i]
        }
        for i in backgroundTruthHistogram.indices { backgroundTruthHistogram[i] += other.backgroundTruthHistogram[i] }
        for i in 0..<256 { truth[i] += other.truth[i] }
        imageCount += other.imageCount
        pixelCount += other.pixelCount
    }

    /// The confusion counts at thresholds[index].
    public func counts(at index: Int) -> ConfusionCounts {
        precondition(index >= 0 && index < thresholds.count, "threshold index \(index) out of range")
        let slots = thresholds.count + 1
        var c = ConfusionCounts()
        c.truth = truth
        for label in 0..<256 {
            for prefix in 0..<slots {
                let count = predictedHistogram[label * slots + prefix]
                // A pixel predicts its label at threshold index i < prefix, background from prefix on.
                if prefix > index {
                    c.predicted[label] += count
                    c.truePositive[label] += hitHistogram[label * slots + prefix]
                } else {
                    c.predicted[0] += count
                }
            }
        }
        for prefix in 0..<(index + 1) { c.truePositive[0] += backgroundTruthHistogram[prefix] }
        return c
    }

    /// Counts at every threshold, in order.
    public func allCounts() -> [ConfusionCounts] { thresholds.indices.map { counts(at: $0) } }
}

/// The reference's greedy walk over the threshold curve (spec §6): starting from a best of 0, it
/// stops at the first threshold whose mIoU (in percent) is not strictly higher than the best so far.
public enum GreedyThreshold {
    /// meanIoUs: mIoU fractions in threshold order. Returns the index of the best threshold (nil when
    /// the first value does not exceed 0, as the reference then reports threshold 0 and mIoU 0) and
    /// how many values the walk looked at (the stopping one included).
    public static func walk(_ meanIoUs: [Double]) -> (best: Int?, evaluated: Int) {
        var best: Int? = nil
        var bestPercent = 0.0
        for (i, m) in meanIoUs.enumerated() {
            let percent = m * 100
            if percent > bestPercent {
                bestPercent = percent
                best = i
            } else {
                return (best, i + 1)
            }
        }
        return (best, meanIoUs.count)
    }
}
