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
            let pp = p.value.data, gp = g.data, mp = moment1[i].data, vp = moment2[i].data
            Parallel.forRanges(p.count) { r in
                for j in r {
                    let grad = gp[j]
                    pp[j] *= decay
                    // torch's lerp with weight < 0.5: m + w·(g − m)
                    mp[j] = mp[j] + oneMinusB1 * (grad - mp[j])
                    vp[j] = vp[j] * b2 + oneMinusB2 * grad * grad
                    let denom = vp[j].squareRoot() / correction2 + epsilon
                    pp[j] = pp[j] - stepSize * (mp[j] / denom)
                }
            }
        }
    }
}
