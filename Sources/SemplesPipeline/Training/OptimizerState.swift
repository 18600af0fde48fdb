import Foundation
import SemplesEngine
import SemplesFormats

/// Every training job (WeakTr base and the SemPLeS stages) uses the engine's AdamW (spec §4.1:
/// decoupled, uniform weight decay, β = (0.9, 0.999), ε = 1e-8). What a training checkpoint needs
/// to save and restore of it is added here, beside the file formats it throws errors in.
extension AdamW {
    /// Moments as named views for a checkpoint: "<prefix>m.<name>", "<prefix>v.<name>".
    public func stateTensors(prefix: String = "") -> [(String, TensorView)] {
        var out: [(String, TensorView)] = []
        for (i, p) in parameters.enumerated() {
            out.append((prefix + "m." + p.name, moment1[i].view))
            out.append((prefix + "v." + p.name, moment2[i].view))
        }
        return out
    }

    /// Restores what `stateTensors(prefix:)` and `steps` saved; `source` names the file in errors.
    public func restore(tensors: [String: Tensor], steps saved: [Int], prefix: String = "", source: String) throws {
        guard saved.count == parameters.count else {
            throw FormatError(source, "optimizer state for \(saved.count) parameters, the model has \(parameters.count)")
        }
        for (i, p) in parameters.enumerated() {
            for (key, moment) in [(prefix + "m." + p.name, moment1[i]), (prefix + "v." + p.name, moment2[i])] {
                guard let t = tensors[key], t.count == p.count else {
                    throw FormatError(source, "optimizer state '\(key)' missing or of another size")
                }
                moment.view.copy(from: t.view.reshaped(p.shape.dims))
            }
        }
        restoreSteps(saved)
    }
}
