import Foundation
import SemplesEngine
import SemplesFormats

/// The stages' optimizer is the engine's AdamW (spec §4.1: decoupled, uniform weight decay,
/// β = (0.9, 0.999), ε = 1e-8); what a checkpoint needs to save and restore is added here.
public typealias StageOptimizer = AdamW

extension AdamW {
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
        restoreSteps(saved)
    }
}
