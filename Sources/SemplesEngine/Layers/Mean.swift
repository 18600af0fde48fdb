/// Mean over the last axis as a forward/backward pair: x: [R, W] → y: [R] (WeakTr's class-token
/// and CAM predictions, spec §2.1.5). Runs on the calling thread: R·W is small where it is used.
public enum LastAxisMean {
    /// y[r] = (1/W) Σ_i x[r, i], summed in order. Overwrites y.
    public static func forward(_ x: TensorView, into y: TensorView) {
        let rows = y.count, width = x.count / max(rows, 1)
        precondition(rows * width == x.count, "mean of \(x.shape) into \(y.shape)")
        for r in 0..<rows {
            let row = x.data + r * width
            var s: Float = 0
            for i in 0..<width { s += row[i] }
            y.data[r] = s / Float(width)
        }
    }

    /// dx[r, i] = dy[r] / W. Overwrites dx.
    public static func backward(_ dy: TensorView, dx: TensorView) {
        let rows = dy.count, width = dx.count / max(rows, 1)
        precondition(rows * width == dx.count, "mean backward \(dy.shape) into \(dx.shape)")
        for r in 0..<rows { (dx.data + r * width).update(repeating: dy.data[r] / Float(width), count: width) }
    }
}
