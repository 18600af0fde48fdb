import Foundation
import SemplesEngine
import SemplesFormats

/// torch.optim.AdamW over the trainable parameters of a store, with its whole state (moments and
/// per-parameter step counts) saved in and restored from training checkpoints.
///
///     p ← p·(1 − lr·wd)                                  (decoupled, every parameter: spec §4.1)
///     m ← m + (1 − β1)(g − m);  v ← β2·v + (1 − β2)·g²
///     p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
///
/// Parameters with `requiresGradient` false are skipped entirely, as torch skips those whose grad
/// is None (no decay either). Moments live in two flat blocks laid out like the store.
public final class TrainingOptimizer {
    public let store: ParameterStore
    public var learningRate: Double
    public let beta1 = 0.9
    public let beta2 = 0.999
    public let eps = 1e-8
    public var weightDecay: Double
    /// Step count per parameter (store order).
    public private(set) var steps: [Int]
    let moment1: Tensor   // flat, store layout
    let moment2: Tensor

    public init(store: ParameterStore, learningRate: Double, weightDecay: Double) {
        precondition(store.values != nil, "optimizer over a store that is not materialised")
        self.store = store
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        steps = [Int](repeating: 0, count: store.parameters.count)
        let n = store.values!.count
        moment1 = Tensor([n])
        moment2 = Tensor([n])
    }

    /// One step with the current learning rate over the parameters' accumulated gradients.
    public func step() {
        for (i, p) in store.parameters.enumerated() {
            guard let g = p.activeGrad else { continue }
            steps[i] += 1
            let t = Double(steps[i])
            let decay = Float(1 - learningRate * weightDecay)
            let oneMinusB1 = Float(1 - beta1), b2 = Float(beta2), oneMinusB2 = Float(1 - beta2)
            let stepSize = Float(learningRate / (1 - pow(beta1, t)))
            let correction2 = Float((1 - pow(beta2, t)).squareRoot())
            let epsilon = Float(eps)
            AdamW.update(parameter: p.value.data, gradient: g.data, moment1: moment1.data + p.offset,
                         moment2: moment2.data + p.offset, count: p.count, decay: decay,
                         oneMinusBeta1: oneMinusB1, beta2: b2, oneMinusBeta2: oneMinusB2, stepSize: stepSize,
                         correction2: correction2, eps: epsilon)
        }
    }

    /// The moments as named tensors for a checkpoint ("adam.m.<name>", "adam.v.<name>").
    public func stateTensors() -> [(String, TensorView)] {
        store.parameters.flatMap { p -> [(String, TensorView)] in
            [("adam.m." + p.name, TensorView(moment1.data + p.offset, p.shape, owner: moment1)),
             ("adam.v." + p.name, TensorView(moment2.data + p.offset, p.shape, owner: moment2))]
        }
    }

    /// Restores moments and step counts saved by `stateTensors()` / `steps`.
    public func restore(tensors: [String: Tensor], steps saved: [Int], source: String) throws {
        guard saved.count == steps.count else {
            throw FormatError(source, "optimizer state for \(saved.count) parameters, the model has \(steps.count)")
        }
        for p in store.parameters {
            for (prefix, block) in [("adam.m.", moment1), ("adam.v.", moment2)] {
                guard let t = tensors[prefix + p.name], t.count == p.count else {
                    throw FormatError(source, "optimizer state '\(prefix + p.name)' missing or of the wrong size")
                }
                (block.data + p.offset).update(from: t.data, count: p.count)
            }
        }
        steps = saved
    }
}
