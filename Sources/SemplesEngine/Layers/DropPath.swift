/// Stochastic depth per sample, as timm's drop_path: in training each sample's residual branch is
/// zeroed with probability `rate` and otherwise scaled by 1/(1 − rate); identity in evaluation.
///
/// The per-sample scales are drawn once per forward into a [B] view and reused by backward.
public struct DropPath: Sendable, Equatable {
    public let rate: Float

    public init(rate: Float) {
        precondition(rate >= 0 && rate < 1, "drop path rate \(rate) outside [0, 1)")
        self.rate = rate
    }

    /// Fills scales [B] with 0 or 1/(1 − rate), drawn from the generator (all 1 when rate is 0).
    public func sample(into scales: TensorView, generator: inout SeededGenerator) {
        if rate == 0 { scales.fill(1); return }
        let keep = 1 - rate
        for b in 0..<scales.count {
            scales.data[b] = generator.nextUniform() < keep ? 1 / keep : 0
        }
    }

    /// True when every scale is exactly 1 (evaluation, or rate 0): the branch gradient is then dy itself.
    public static func allOnes(_ scales: TensorView) -> Bool {
        for b in 0..<scales.count where scales.data[b] != 1 { return false }
        return true
    }

    /// y[b] = residual[b] + scales[b] · branch[b]. residual, branch, y: [B, ...]; y may alias either.
    public static func addScaled(_ branch: TensorView, scales: TensorView, to residual: TensorView, into y: TensorView) {
        precondition(branch.count == residual.count && y.count == branch.count,
                     "drop path add: branch \(branch.shape), residual \(residual.shape), scales \(scales.shape)")
        let bp = branch.data, rp = residual.data, yp = y.data
        forEachSample(count: branch.count, scales: scales) { o, lanes, s in
            storePartial(loadPartial(rp + o, lanes) + s * loadPartial(bp + o, lanes), yp + o, lanes)
        }
    }

    /// d[b] (+)= scales[b] · dy[b]. dy, d: [B, ...].
    public static func scale(_ dy: TensorView, scales: TensorView, into d: TensorView, accumulate: Bool = false) {
        precondition(d.count == dy.count, "drop path backward \(dy.shape) into \(d.shape)")
        let gp = dy.data, dp = d.data
        forEachSample(count: dy.count, scales: scales) { o, lanes, s in
            var v = s * loadPartial(gp + o, lanes)
            if accumulate { v += loadPartial(dp + o, lanes) }
            storePartial(v, dp + o, lanes)
        }
    }

    /// Runs body(offset, lanes, scale) over `count` floats laid out as [B, count/B] in runs of up to
    /// 8 lanes that never cross a sample, split across the engine's workers; scale = scales[b].
    private static func forEachSample(count: Int, scales: TensorView, _ body: (Int, Int, Float) -> Void) {
        let B = scales.count
        let inner = count / max(B, 1)
        precondition(inner * B == count, "drop path over \(count) floats with \(B) per-sample scales")
        let sp = scales.data
        withExtendedLifetime(scales) {
            Parallel.forRanges(count) { r in
                var i = r.lowerBound
                while i < r.upperBound {
                    let b = i / inner
                    let end = min(r.upperBound, (b + 1) * inner)
                    let s = sp[b]
                    map8(end - i) { j, lanes in body(i + j, lanes, s) }
                    i = end
                }
            }
        }
    }
}
