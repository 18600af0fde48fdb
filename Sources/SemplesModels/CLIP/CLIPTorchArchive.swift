import SemplesEngine
import SemplesFormats

extension CLIPWeights {
    /// A torch zip file: a `.pth` state dict (optionally under "state_dict"/"model") or a
    /// TorchScript archive such as OpenAI's `ViT-B-32.pt`.
    static func readTorchArchive(_ path: String) throws -> [String: Tensor] {
        throw FormatError(path, "torch zip archives are not readable yet; convert the weights to "
            + "safetensors with the state-dict names of OpenAI's CLIP")
    }
}
