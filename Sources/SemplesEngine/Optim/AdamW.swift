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

    /// One optimizer step with the current learning rate.
    public func step() {
        for (i, p) in parameters.enumerated() {
            guard let g = p.activeGrad else { continue }
            steps[i] += 1
            let t = Double(steps[i])
            let decay = Float(1 - learningRate * weightDecay)
            let oneMinusB1 = Float(1 - beta1)
            let b2 = Float(beta2), oneMinusB2 = Float(1 - beta2)
            let stepSize = Float(learningRate / (1 - pow(beta1, t)))
            let correction2 = Float((1 - pow(beta2, t)).squareRoot())
            let epsilon = Float(eps)
            AdamW.update(parameter: p.value.data, gradient: g.data, moment1: moment1[i].data,
                         moment2: moment2[i].data, count: p.count, decay: decay, oneMinusBeta1: oneMinusB1,
                         beta2: b2, oneMinusBeta2: oneMinusB2, stepSize: stepSize,
                         correction2: correction2, eps: epsilon)
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
        Parallel.forRanges(count, grain: 65_536) { r in
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
