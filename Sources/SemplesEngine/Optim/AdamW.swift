import Foundation

/// torch.optim.AdamW (single-tensor path), applied to the parameters of one store:
///
///     p ← p·(1 − lr·wd)                              (decoupled decay)
///     m ← m + (1 − β1)(g − m);  v ← β2·v + (1 − β2)·g²
///     p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
///
/// Weight decay applies to every parameter in the optimizer (spec §4.1: biases, norms and tokens
/// too). Frozen parameters (requiresGradient false, or no gradient) are skipped entirely and keep
/// their own step count, like torch's parameters whose grad is None.
public final class AdamW: @unchecked Sendable {
    public let parameters: [Parameter]
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double
    /// Per-parameter step counts (torch keeps one per parameter).
    public private(set) var steps: [Int]
    /// First and second moments, one tensor per parameter (same order as `parameters`).
    public let moment1: [Tensor]
    public let moment2: [Tensor]

    public init(parameters: [Parameter], learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Double = 1e-8, weightDecay: Double = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        steps = [Int](repeating: 0, count: parameters.count)
        moment1 = parameters.map { Tensor($0.shape.dims) }
        moment2 = parameters.map { Tensor($0.shape.dims) }
    }

    /// Sets the per-parameter step counts, when resuming from a checkpoint.
    public func restoreSteps(_ saved: [Int]) {
        precondition(saved.count == parameters.count, "\(saved.count) step counts for \(parameters.count) parameters")
        steps = saved
    }

    /// One optimizer step with the current learning rate: one parallel region over the elements of
    /// every trained parameter (one hand-off to the workers per step, not one per tensor).
    public func step() {
        var total = 0
        for (i, p) in parameters.enumerated() where p.activeGrad != nil {
            steps[i] += 1
            total += p.count
        }
        let lr = learningRate, wd = weightDecay, b1 = beta1, b2 = beta2, epsilon = Float(eps)
        let parameters = self.parameters, steps = self.steps, moment1 = self.moment1, moment2 = self.moment2
        Parallel.forRanges(total, grain: 65_536,
                           StepRanges(parameters: parameters, steps: steps, moment1: moment1, moment2: moment2,
                                      lr: lr, wd: wd, b1: b1, b2: b2, epsilon: epsilon))
    }

    /// The ranges of `step`: the parameters' elements laid end to end.
    private struct StepRanges: RangeKernel {
        let parameters: [Parameter], steps: [Int], moment1: [Tensor], moment2: [Tensor]
        let lr: Double, wd: Double, b1: Double, b2: Double
        let epsilon: Float

        func run(_ r: Range<Int>) {
            // This worker's range, tensor by tensor.
            var offset = 0
            for (i, p) in parameters.enumerated() {
                guard let g = p.activeGrad else { continue }
                let lo = max(r.lowerBound - offset, 0), hi = min(r.upperBound - offset, p.count)
                offset += p.count
                if lo >= hi { if offset >= r.upperBound { break } else { continue } }
                let t = Double(steps[i])
                AdamW.updateRange(lo..<hi, parameter: p.value.data, gradient: g.data, moment1: moment1[i].data,
                                  moment2: moment2[i].data, decay: Float(1 - lr * wd), oneMinusBeta1: Float(1 - b1),
                                  beta2: Float(b2), oneMinusBeta2: Float(1 - b2),
                                  stepSize: Float(lr / (1 - pow(b1, t))),
                                  correction2: Float((1 - pow(b2, t)).squareRoot()), eps: epsilon)
                if offset >= r.upperBound { break }
            }
        }
    }

    /// The element-wise AdamW update over `count` contiguous floats, split across the engine's
    /// workers. Each lane performs the same float operations in the same order as the scalar form
    ///
    ///     p *= decay;  m = m + (1 − β1)(g − m);  v = v·β2 + ((1 − β2)·g)·g
    ///     p = p − stepSize · (m / (√v / correction2 + eps))
    ///
    /// so results do not depend on the vector width or on the split.
    public static func update(parameter pp: UnsafeMutablePointer<Float>, gradient gp: UnsafePointer<Float>,
                              moment1 mp: UnsafeMutablePointer<Float>, moment2 vp: UnsafeMutablePointer<Float>,
                              count: Int, decay: Float, oneMinusBeta1: Float, beta2: Float,
                              oneMinusBeta2: Float, stepSize: Float, correction2: Float, eps: Float) {
        Parallel.forRanges(count, grain: 65_536,
                           UpdateRanges(pp: pp, gp: gp, mp: mp, vp: vp, decay: decay, oneMinusBeta1: oneMinusBeta1,
                                        beta2: beta2, oneMinusBeta2: oneMinusBeta2, stepSize: stepSize,
                                        correction2: correction2, eps: eps))
    }

    /// The ranges of `update`.
    private struct UpdateRanges: RangeKernel {
        let pp: UnsafeMutablePointer<Float>, gp: UnsafePointer<Float>
        let mp: UnsafeMutablePointer<Float>, vp: UnsafeMutablePointer<Float>
        let decay: Float, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float, stepSize: Float, correction2: Float
        let eps: Float

        func run(_ r: Range<Int>) {
            updateRange(r, parameter: pp, gradient: gp, moment1: mp, moment2: vp, decay: decay,
                        oneMinusBeta1: oneMinusBeta1, beta2: beta2, oneMinusBeta2: oneMinusBeta2,
                        stepSize: stepSize, correction2: correction2, eps: eps)
        }
    }

    /// The update of elements `r` (on the calling thread).
    @inline(__always)
    static func updateRange(_ r: Range<Int>, parameter pp: UnsafeMutablePointer<Float>, gradient gp: UnsafePointer<Float>,
                            moment1 mp: UnsafeMutablePointer<Float>, moment2 vp: UnsafeMutablePointer<Float>,
                            decay: Float, oneMinusBeta1: Float, beta2: Float,
                            oneMinusBeta2: Float, stepSize: Float, correction2: Float, eps: Float) {
        do {
            var j = r.lowerBound
            let end = r.upperBound
            let decay8 = Float8(repeating: decay), c1 = Float8(repeating: oneMinusBeta1)
            let b2 = Float8(repeating: beta2), c2 = Float8(repeating: oneMinusBeta2)
            let step8 = Float8(repeating: stepSize), corr8 = Float8(repeating: correction2)
            let eps8 = Float8(repeating: eps)
            while j + 8 <= end {
                let grad = load8(gp + j)
                let p = load8(pp + j) * decay8
                var m = load8(mp + j)
                m = m + c1 * (grad - m)
                let v = load8(vp + j) * b2 + c2 * grad * grad
                let denom = v.squareRoot() / corr8 + eps8
                store8(m, mp + j)
                store8(v, vp + j)
                store8(p - step8 * (m / denom), pp + j)
                j += 8
            }
            while j < end {
                let grad = gp[j]
                let p = pp[j] * decay
                let m = mp[j] + oneMinusBeta1 * (grad - mp[j])
                let v = vp[j] * beta2 + oneMinusBeta2 * grad * grad
                let denom = v.squareRoot() / correction2 + eps
                mp[j] = m
                vp[j] = v
                pp[j] = p - stepSize * (m / denom)
                j += 1
            }
        }
    }
}
