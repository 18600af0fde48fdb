import Foundation
import SemplesEngine
import SemplesFormats

/// A CLIP ViT model: both encoders over one parameter store whose names are the state-dict keys
/// of spec §7.1. Frozen by default (no gradient memory: only input gradients are formed, as the
/// SemPLeS stages need); `trainable: true` keeps a gradient per parameter for contrastive training
/// (`CLIPContrastiveLoss`, `job: clip`).
///
/// Use in training (spec §3):
/// - class prompts once per job: `CLIPTextFeatures(classNames:model:tokenizer:)` (unit rows);
/// - masked images: `image.forward(x, into: f, arena:, keepActivations: true)` → pass, then
///   `image.backward(dF, pass:, imagesGradient: dX, arena:)` adds ∂L/∂pixels;
/// - background prompts [C, L, W]: `text.encodeBackgroundPrompts(p, into: f, arena:,
///   keepActivations: true)` and `text.backwardBackgroundPrompts(dF, pass:, promptsGradient:, arena:)`.
/// Arena sizes come from `image.arenaSize(batch:backward:)` / `text.arenaSize(batch:tokens:backward:)`.
public final class CLIPModel {
    public let config: CLIPConfig
    public let store: ParameterStore
    public let image: CLIPImageEncoder
    public let text: CLIPTextEncoder

    /// A model with zeroed parameters; fill them with `load(stateDict:path:)`.
    public init(config: CLIPConfig, trainable: Bool = false) {
        self.config = config
        store = ParameterStore(gradients: trainable)
        image = CLIPImageEncoder(store, config: config)
        text = CLIPTextEncoder(store, config: config)
        store.declare("logit_scale", [])
        store.materialise()
    }

    /// Keys OpenAI's files may carry besides the parameters; they are not weights.
    /// `logit_scale` (a scalar): the log of the contrastive temperature's inverse.
    public var logitScale: Parameter { store["logit_scale"]! }

    /// The state dict with spec §7.1's names (copies), for saving a trained model.
    public func stateDict() -> [(String, Tensor)] {
        store.parameters.map { p in
            let t = Tensor(p.shape.dims)
            t.view.copy(from: p.value)
            return (p.name, t)
        }
    }

    static let ignoredKeys: Set<String> = ["input_resolution", "context_length", "vocab_size"]

    /// Copies a state dict in, strictly: every missing, unexpected and mis-shaped key is reported
    /// at once. `logit_scale` may be absent (the encoders do not use it). `path` labels errors.
    public func load(stateDict: [String: Tensor], path: String) throws {
        var missing: [String] = [], misshaped: [String] = []
        for p in store.parameters {
            guard let t = stateDict[p.name] else {
                if p.name != "logit_scale" { missing.append(p.name) }
                continue
            }
            // A scalar (logit_scale) may be stored as [] or [1].
            let scalarMatch = p.shape.rank == 0 && t.count == 1
            if t.shape != p.shape && !scalarMatch {
                misshaped.append("'\(p.name)': \(t.shape) in file, \(p.shape) in model")
            }
        }
        let unexpected = stateDict.keys.filter { store[$0] == nil && !Self.ignoredKeys.contains($0) }.sorted()
        if !(missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty) {
            var lines: [String] = []
            if !missing.isEmpty {
                lines.append("\(missing.count) key(s) in model but not in file: " + Self.list(missing))
            }
            if !unexpected.isEmpty {
                lines.append("\(unexpected.count) key(s) in file but not in model: " + Self.list(unexpected))
            }
            if !misshaped.isEmpty {
                lines.append("\(misshaped.count) key(s) with another shape: " + misshaped.joined(separator: "; "))
            }
            throw FormatError(path, "does not match the CLIP model (\(config.describe())):\n  "
                + lines.joined(separator: "\n  ")
                + "\n  Check that the file is a CLIP ViT checkpoint of this size with OpenAI's key names.")
        }
        for p in store.parameters {
            if let t = stateDict[p.name] { p.value.copy(from: t.view.reshaped(p.shape.dims)) }
        }
    }

    static func list(_ keys: [String]) -> String {
        let shown = keys.prefix(12).map { "'\($0)'" }.joined(separator: ", ")
        return keys.count > 12 ? shown + ", … (\(keys.count - 12) more)" : shown
    }

    /// Reads a CLIP model from safetensors, a `.pth` state dict or an OpenAI TorchScript archive.
    /// The configuration is read from the weights' shapes unless given.
    public static func load(_ path: String, config: CLIPConfig? = nil) throws -> CLIPModel {
        let stateDict = try CLIPWeights.read(path)
        let shapes = stateDict.mapValues { $0.shape.dims }
        let model = CLIPModel(config: try config ?? CLIPConfig.inferred(from: shapes, path: path))
        try model.load(stateDict: stateDict, path: path)
        return model
    }
}

extension CLIPConfig {
    func describe() -> String {
        "image \(imageResolution)px/\(patchSize), width \(visionWidth)×\(visionLayers), text width "
            + "\(textWidth)×\(textLayers), embedding \(embedDimension)"
    }
}

/// Reading CLIP weight files into a flat state dict (float32).
public enum CLIPWeights {
    /// name → float32 tensor, from any supported file kind (decided by the file's content).
    public static func read(_ path: String) throws -> [String: Tensor] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FormatError(path, "cannot be opened (missing or unreadable)")
        }
        let head = handle.readData(ofLength: 4)
        try? handle.close()
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return try readTorchArchive(path)
        }
        if head.count == 4, head.starts(with: [0x80]) || path.hasSuffix(".pth") || path.hasSuffix(".pt") {
            throw FormatError(path, "is a legacy (non-zip) torch file; re-save it with torch.save in the zip "
                + "format (the default since torch 1.6) or convert it to safetensors")
        }
        var out: [String: Tensor] = [:]
        for t in try SafeTensors.read(path).tensors { out[t.name] = t.tensor }
        return out
    }
}
