import Foundation
import SemplesEngine
import SemplesModels
import SemplesFormats

/// A freshly initialised WeakTr state dict (spec §2.1.1): transformer linear layers
/// truncated-normal(0.02) with zero bias, LayerNorms 1/0, class tokens and position embedding
/// truncated-normal(0.02); the patch convolution, the head convolution and the AAF linears keep
/// PyTorch's default init (uniform ±1/√fan_in for weights and biases).
public enum WeakTrInitializer {
    public static func stateDict(config: WeakTrConfig, seed: UInt64) -> [(String, Tensor)] {
        var rng = SeededGenerator(seed: seed)
        return config.expectedShapes.map { name, shape in
            let t = Tensor(shape)
            let n = t.count
            func truncatedNormal(_ std: Float) {
                for i in 0..<n {
                    var v: Float
                    repeat { v = rng.nextNormal() } while abs(v) > 2
                    t.data[i] = v * std
                }
            }
            func uniform(fanIn: Int) {
                let bound = 1 / Float(fanIn).squareRoot()
                for i in 0..<n { t.data[i] = (rng.nextUniform() * 2 - 1) * bound }
            }
            let isNorm = name.contains("norm")
            if isNorm {
                if name.hasSuffix(".weight") { t.view.fill(1) }
            } else if name == "cls_token" || name == "pos_embed" {
                truncatedNormal(0.02)
            } else if name.hasPrefix("blocks.") {
                if name.hasSuffix(".weight") { truncatedNormal(0.02) }
            } else if name.hasPrefix("patch_embed.") {
                uniform(fanIn: 3 * 16 * 16)
            } else if name.hasPrefix("head.") {
                uniform(fanIn: config.embedDimension * 9)
            } else if name.hasPrefix("adaptive_attention_fusion.") {
                // Weight [out, in]: fan-in is the last dimension; a bias takes its layer's fan-in.
                let fanIn: Int
                switch name {
                case let s where s.contains("attn_head_ffn.0"): fanIn = config.channelCount
                case let s where s.contains("attn_head_ffn.2"): fanIn = config.channelHidden
                case let s where s.contains("attn_feat_ffn.0"): fanIn = config.headDimension
                default: fanIn = config.featureHidden
                }
                uniform(fanIn: fanIn)
            }
            return (name, t)
        }
    }
}

extension WeakTrInitializer {
    /// The backbone of a DeiT ImageNet checkpoint (`{'model': …}` or a bare state dict) in WeakTr
    /// keys (spec §4.3): the class token and the class row of the position embedding are tiled C
    /// times, `head.*` (and a distillation token / head, if any) is dropped. Every other key must
    /// fit the model; the head and AAF keep their initialisation.
    public static func deitStateDict(_ path: String, config: WeakTrConfig) throws -> [String: Tensor] {
        let archive = try Pth.open(path)
        let hasModel = archive.root.dictEntries?.contains(where: { $0.key.stringValue == "model" }) == true
        var source: [String: Tensor] = [:]
        for (name, t) in try Pth.tensors(of: archive, key: hasModel ? "model" : nil) { source[name] = t.toFloat32() }
        let expected = Dictionary(uniqueKeysWithValues: config.expectedShapes.map { ($0.0, $0.1) })
        let C = config.classCount, D = config.embedDimension, g = config.gridSide
        var out: [String: Tensor] = [:]
        var problems: [String] = []
        for name in source.keys.sorted() {
            let t = source[name]!
            if name.hasPrefix("head.") || name.hasPrefix("head_dist.") || name == "dist_token" { continue }
            switch name {
            case "cls_token":
                guard t.shape.dims == [1, 1, D] else { problems.append("shape mismatch for 'cls_token': in file \(t.shape.dims), expected [1, 1, \(D)]"); continue }
                let r = Tensor([1, C, D])
                for c in 0..<C { (r.data + c * D).update(from: t.data, count: D) }
                out[name] = r
            case "pos_embed":
                guard t.shape.dims == [1, 1 + g * g, D] else {
                    problems.append("shape mismatch for 'pos_embed': in file \(t.shape.dims), expected [1, \(1 + g * g), \(D)] (a \(g)×\(g) grid: input_size \(g * 16))")
                    continue
                }
                let r = Tensor([1, C + g * g, D])
                for c in 0..<C { (r.data + c * D).update(from: t.data, count: D) }
                (r.data + C * D).update(from: t.data + D, count: g * g * D)
                out[name] = r
            default:
                guard let shape = expected[name] else { problems.append("unexpected in file: '\(name)' \(t.shape.dims) (not in model)"); continue }
                guard t.shape.dims == shape else {
                    problems.append("shape mismatch for '\(name)': in file \(t.shape.dims), in model \(shape)")
                    continue
                }
                out[name] = t
            }
        }
        for (name, _) in config.expectedShapes where out[name] == nil && source[name] == nil
            && !name.hasPrefix("head.") && !name.hasPrefix("adaptive_attention_fusion.") {
            problems.append("missing in file: '\(name)'")
        }
        guard problems.isEmpty else {
            throw FormatError(path, "DeiT checkpoint does not fit the model (\(problems.count) problems):\n  " + problems.joined(separator: "\n  "))
        }
        return out
    }
}
