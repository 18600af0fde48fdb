import SemplesFormats

/// Per-label pixel counts over pixels whose ground truth is not 255 (spec §6): P_c (#pred == c),
/// T_c (#gt == c), TP_c (#pred == c and gt == c), indexed by the byte value c (0…255).
public struct ConfusionCounts: Equatable, Sendable {
    /// P, T and TP by label value.
    public var predicted = [Int64](repeating: 0, count: 256)
    public var truth = [Int64](repeating: 0, count: 256)
    public var truePositive = [Int64](repeating: 0, count: 256)

    /// All counts zero.
    public init() {}

    /// The ignore label of the ground truth.
    public static let ignore: UInt8 = 255

    /// Adds one image: `prediction` and `groundTruth` are [H × W] label maps of equal size.
    public mutating func add(prediction: [UInt8], groundTruth: [UInt8], source: String) throws {
        guard prediction.count == groundTruth.count else {
            throw FormatError(source, "prediction has \(prediction.count) pixels, ground truth \(groundTruth.count)")
        }
        for j in 0..<prediction.count {
            let g = groundTruth[j]
            if g == ConfusionCounts.ignore { continue }
            let p = prediction[j]
            predicted[Int(p)] += 1
            truth[Int(g)] += 1
            if p == g { truePositive[Int(p)] += 1 }
        }
    }

    /// Adds another set of counts (e.g. another worker's images).
    public mutating func merge(_ other: ConfusionCounts) {
        for c in 0..<256 {
            predicted[c] += other.predicted[c]
            truth[c] += other.truth[c]
            truePositive[c] += other.truePositive[c]
        }
    }

    /// IoU_c = TP / (T + P − TP) for c in 0..<classCount; NaN where the class is absent from both.
    public func intersectionOverUnion(classCount: Int) -> [Double] {
        (0..<classCount).map { c in
            let union = truth[c] + predicted[c] - truePositive[c]
            return union == 0 ? .nan : Double(truePositive[c]) / Double(union)
        }
    }

    /// mIoU = nanmean of the per-class IoU (empty classes are dropped).
    public func meanIoU(classCount: Int) -> Double {
        NumericMean.nanMean(intersectionOverUnion(classCount: classCount))
    }
}

/// numpy's float64 reductions, reproduced in their summation order so that equal inputs give
/// bit-equal means (the greedy sweep compares means with a strict `>`).
enum NumericMean {
    /// `np.nanmean`: NaNs replaced by 0 for the sum, divided by the count of non-NaN values.
    static func nanMean(_ values: [Double]) -> Double {
        let zeroed = values.map { $0.isNaN ? 0 : $0 }
        let count = values.filter { !$0.isNaN }.count
        guard count > 0 else { return .nan }
        return zeroed.withUnsafeBufferPointer { pairwiseSum($0.baseAddress!, $0.count) } / Double(count)
    }

    /// numpy's pairwise summation: plain loop under 8 values, eight running sums up to 128
    /// values, recursive halving (at a multiple of 8) above.
    static func pairwiseSum(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
        if n < 8 {
            var s = 0.0
            for i in 0..<n { s += a[i] }
            return s
        } else if n <= 128 {
            var r = (0..<8).map { a[$0] }
            var i = 8
            while i < n - (n % 8) {
                for k in 0..<8 { r[k] += a[i + k] }
                i += 8
            }
            var s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n {
                s += a[i]
                i += 1
            }
            return s
        } else {
            var half = n / 2
            half -= half % 8
            return pairwiseSum(a, half) + pairwiseSum(a + half, n - half)
        }
    }
}
