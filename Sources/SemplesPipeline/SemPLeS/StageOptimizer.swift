import Foundation
import SemplesEngine
import SemplesFormats

/// AdamW with state that a checkpoint saves and restores (moments and per-parameter step counts):
/// torch's update, as `SemplesEngine.AdamW` (spec §4.1: decoupled, uniform weight decay,
/// β = (0.9, 0.999), ε = 1e-8); parameters without a gradient are skipped.
public final class StageOptimizer {
    public let parameters: [Parameter]
    public var learningRate: Double
    public let weightDecay: Double
    public let beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    public private(set) var steps: [Int]
    let moment1: [Tensor]
    let moment2: [Tensor]

    public init(parameters: [Parameter], learningRate: Double, weightDecay: Double) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        steps = [Int](repeating: 0, count: parameters.count)
        moment1 = parameters.map { Tensor($0.shape.dims) }
        moment2 = parameters.map { Tensor($0.shape.dims) }
    }

    /// p ← p·(1 − lr·wd); m, v updates; p ← p − lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + ε).
    public func step() {
        for (i, p) in parameters.enumerated() {
            guard let g = p.activeGrad else { continue }
            steps[i] += 1
            let t = Double(steps[i])
            let decay = Float(1 - learningRate * weightDecay)
            let b1 = Float(1 - beta1), b2 = Float(beta2), oneMinusB2 = Float(1 - beta2)
            let stepSize = Float(learningRate / (1 - pow(beta1, t)))
            let correction2 = Float((1 - pow(beta2, t)).squareRoot())
            let epsilon = Float(eps)
            AdamW.update(parameter: p.value.data, gradient: g.data, moment1: moment1[i].data,
                         moment2: moment2[i].data, count: p.count, decay: decay, oneMinusBeta1: b1,
                         beta2: b2, oneMinusBeta2: oneMinusB2, stepSize: stepSize,
                         correction2: correction2, eps: epsilon)
        }
    }

    /// Moments as named views for a checkpoint: "m.<name>", "v.<name>".
    public func stateTensors() -> [(String, TensorView)] {
        var out: [(String, TensorView)] = []
        for (i, p) in parameters.enumerated() {
            out.append(("m." + p.name, moment1[i].view))
            out.append(("v." + p.name, moment2[i].view))
        }
        return out
    }

    /// Restores what `stateTensors` and `steps` saved.
    public func restore(tensors: [String: Tensor], steps saved: [Int], source: String) throws {
        guard saved.count == parameters.count else {
            throw FormatError(source, "optimizer state for \(saved.count) parameters, the model has \(parameters.count)")
        }
        for (i, p) in parameters.enumerated() {
            for (key, moment) in [("m." + p.name, moment1[i]), ("v." + p.name, moment2[i])] {
                guard let t = tensors[key], t.count == p.count else {
                    throw FormatError(source, "optimizer state '\(key)' missing or of another size")
                }
                moment.view.copy(from: t.view.reshaped(p.shape.dims))
            }
        }
        steps = saved
    }
}
