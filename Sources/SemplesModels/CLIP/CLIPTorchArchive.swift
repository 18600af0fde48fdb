import SemplesEngine
import SemplesFormats

extension CLIPWeights {
    /// A torch zip file: OpenAI's TorchScript archive (`ViT-B-32.pt`, fp16 tensors found by their
    /// state-dict names) or a `.pth` state dict, at the root or under "state_dict" / "model".
    static func readTorchArchive(_ path: String) throws -> [String: Tensor] {
        let archive = try Pth.open(path)
        var key: String? = nil
        if !archive.isTorchScript, let entries = archive.root.dictEntries {
            let names = entries.compactMap { $0.key.stringValue }
            let holdsTensors = entries.contains { if case .tensor = $0.value { return true } else { return false } }
            if !holdsTensors {
                key = ["state_dict", "model"].first { names.contains($0) }
                guard key != nil else {
                    throw FormatError(path, "holds no tensors at its root and no 'state_dict' or 'model' entry "
                        + "(keys: \(names.prefix(12).map { "'\($0)'" }.joined(separator: ", "))); "
                        + "expected a CLIP state dict or OpenAI's TorchScript archive")
                }
            }
        }
        var out: [String: Tensor] = [:]
        for (name, tensor) in try Pth.tensors(of: archive, key: key) {
            // Tensors stored in fp16 (OpenAI's release) become float32 here; that is exact.
            out[name] = tensor.toFloat32()
        }
        guard !out.isEmpty else {
            throw FormatError(path, "contains no tensors; expected CLIP weights")
        }
        return out
    }
}
