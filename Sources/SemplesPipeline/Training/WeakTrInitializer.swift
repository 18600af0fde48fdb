import Foundation
import SemplesEngine
import SemplesModels

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
