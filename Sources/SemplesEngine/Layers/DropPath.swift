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
        forEachSample(count: branch.count, scales: scales, AddScaled(bp: branch.data, rp: residual.data, yp: y.data))
    }

    /// d[b] (+)= scales[b] · dy[b]. dy, d: [B, ...].
    public static func scale(_ dy: TensorView, scales: TensorView, into d: TensorView, accumulate: Bool = false) {
        precondition(d.count == dy.count, "drop path backward \(dy.shape) into \(d.shape)")
        forEachSample(count: dy.count, scales: scales, Scale(gp: dy.data, dp: d.data, accumulate: accumulate))
    }

    /// Runs body(offset, lanes, scale) over `count` floats laid out as [B, count/B] in runs of up to
    /// 8 lanes that never cross a sample, split across the engine's workers; scale = scales[b].
    private static func forEachSample(count: Int, scales: TensorView, _ body: some SampleLanes) {
        let B = scales.count
        let inner = count / max(B, 1)
        precondition(inner * B == count, "drop path over \(count) floats with \(B) per-sample scales")
        let sp = scales.data
        withExtendedLifetime(scales) {
            Parallel.forRanges(count, SampleRuns(sp: sp, inner: inner, body: body))
        }
    }
}

/// A body of `DropPath.forEachSample`: lanes offset ..< offset + lanes of one sample, whose scale is `s`.
private protocol SampleLanes {
    func run(_ o: Int, _ lanes: Int, _ s: Float)
}

/// The ranges of `DropPath.forEachSample`: each cut at sample boundaries into runs of 8 lanes.
private struct SampleRuns<Body: SampleLanes>: RangeKernel {
    let sp: UnsafeMutablePointer<Float>
    let inner: Int
    let body: Body

    func run(_ r: Range<Int>) {
        var i = r.lowerBound
        while i < r.upperBound {
            let b = i / inner
            let end = min(r.upperBound, (b + 1) * inner)
            let s = sp[b]
            map8(end - i) { j, lanes in body.run(i + j, lanes, s) }
            i = end
        }
    }
}

/// The lanes of `DropPath.addScaled`.
private struct AddScaled: SampleLanes {
    let bp: UnsafeMutablePointer<Float>, rp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>

    func run(_ o: Int, _ lanes: Int, _ s: Float) {
        storePartial(loadPartial(rp + o, lanes) + s * loadPartial(bp + o, lanes), yp + o, lanes)
    }
}

/// The lanes of `DropPath.scale`.
private struct Scale: SampleLanes {
    let gp: UnsafeMutablePointer<Float>, dp: UnsafeMutablePointer<Float>
    let accumulate: Bool

    func run(_ o: Int, _ lanes: Int, _ s: Float) {
        var v = s * loadPartial(gp + o, lanes)
        if accumulate { v += loadPartial(dp + o, lanes) }
        storePartial(v, dp + o, lanes)
    }
}
