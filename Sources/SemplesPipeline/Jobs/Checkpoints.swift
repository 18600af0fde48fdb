import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// Loading model checkpoints in the formats users bring.
public enum Checkpoints {
    /// A WeakTr/SemPLeS checkpoint: a `.pth` holding `{'model': state_dict, …}` or a bare state dict,
    /// or a `.safetensors` state dict. Keys and shapes are checked strictly.
    public static func loadWeakTr(_ path: String, classCount: Int, reduction: Int,
                                  pooling: WeakTrPooling) throws -> WeakTr {
        try WeakTr(stateDict: try readStateDict(path), classCount: classCount, reduction: reduction, pooling: pooling,
                   source: path)
    }

    /// The float32 tensors of a `.pth` ({'model': state_dict, …} or a bare state dict) or a
    /// `.safetensors` file, by name; throws when it holds none.
    public static func readStateDict(_ path: String) throws -> [String: Tensor] {
        var dict: [String: Tensor] = [:]
        if path.hasSuffix(".safetensors") {
            for t in try SafeTensors.read(path).tensors { dict[t.name] = t.tensor }
        } else {
            let archive = try Pth.open(path)
            let hasModel = archive.root.dictEntries?.contains(where: { $0.key.stringValue == "model" }) == true
            for (name, t) in try Pth.tensors(of: archive, key: hasModel ? "model" : nil) { dict[name] = t.toFloat32() }
        }
        guard !dict.isEmpty else { throw FormatError(path, "holds no tensors; expected a WeakTr state dict") }
        return dict
    }
}
