import Foundation

/// How AAF pools the attention-output features over the tokens (`--pool-type`).
public enum WeakTrPooling: String, Sendable, CaseIterable {
    case max, avg
}

/// WeakTr geometry. D, depth, heads and the MLP width come from the checkpoint's tensor shapes;
/// the class count, AAF reduction and pooling come from the caller (the manifest).
public struct WeakTrConfig: Equatable, Sendable {
    public var classCount: Int          // C (VOC 20, COCO 90)
    public var embedDimension: Int      // D (DeiT-S 384)
    public var depth: Int               // L (12)
    public var headCount: Int           // H (6)
    public var mlpHidden: Int           // 4·D
    public var reduction: Int           // AAF r: hidden = Int(L·H / r)
    public var pooling: WeakTrPooling
    public var featureHidden: Int       // AAF attn_feat_ffn width: head dimension / 8
    public var gridSide: Int            // position-embedding grid (14)
    public let patchSize = 16
    public let layerNormEpsilon: Float = 1e-6

    public var headDimension: Int { embedDimension / headCount }
    /// AAF channel count L·H (72 for DeiT-S).
    public var channelCount: Int { depth * headCount }
    /// AAF attn_head_ffn hidden width, Int(L·H / r) as in the reference.
    public var channelHidden: Int { Int(Double(channelCount) / Double(reduction)) }

    /// DeiT-Small geometry with the caller's class count, reduction and pooling.
    public static func deitSmall(classCount: Int, reduction: Int = 8, pooling: WeakTrPooling = .max) -> WeakTrConfig {
        WeakTrConfig(classCount: classCount, embedDimension: 384, depth: 12, headCount: 6, mlpHidden: 1536,
                     reduction: reduction, pooling: pooling, featureHidden: 8, gridSide: 14)
    }

    public init(classCount: Int, embedDimension: Int, depth: Int, headCount: Int, mlpHidden: Int,
                reduction: Int, pooling: WeakTrPooling, featureHidden: Int, gridSide: Int) {
        self.classCount = classCount
        self.embedDimension = embedDimension
        self.depth = depth
        self.headCount = headCount
        self.mlpHidden = mlpHidden
        self.reduction = reduction
        self.pooling = pooling
        self.featureHidden = featureHidden
        self.gridSide = gridSide
    }

    /// Every state-dict key of spec §7.1 with its shape, in checkpoint order.
    public var expectedShapes: [(String, [Int])] {
        let D = embedDimension, C = classCount
        var keys: [(String, [Int])] = [
            ("cls_token", [1, C, D]),
            ("pos_embed", [1, gridSide * gridSide + C, D]),
            ("patch_embed.proj.weight", [D, 3, patchSize, patchSize]),
            ("patch_embed.proj.bias", [D]),
        ]
        for i in 0..<depth {
            let p = "blocks.\(i)."
            keys += [
                (p + "norm1.weight", [D]), (p + "norm1.bias", [D]),
                (p + "attn.qkv.weight", [3 * D, D]), (p + "attn.qkv.bias", [3 * D]),
                (p + "attn.proj.weight", [D, D]), (p + "attn.proj.bias", [D]),
                (p + "norm2.weight", [D]), (p + "norm2.bias", [D]),
                (p + "mlp.fc1.weight", [mlpHidden, D]), (p + "mlp.fc1.bias", [mlpHidden]),
                (p + "mlp.fc2.weight", [D, mlpHidden]), (p + "mlp.fc2.bias", [D]),
            ]
        }
        keys += [
            ("norm.weight", [D]), ("norm.bias", [D]),
            ("head.weight", [C, D, 3, 3]), ("head.bias", [C]),
            ("adaptive_attention_fusion.attn_head_ffn.0.weight", [channelHidden, channelCount]),
            ("adaptive_attention_fusion.attn_head_ffn.2.weight", [channelCount, channelHidden]),
            ("adaptive_attention_fusion.attn_feat_ffn.0.weight", [featureHidden, headDimension]),
            ("adaptive_attention_fusion.attn_feat_ffn.0.bias", [featureHidden]),
            ("adaptive_attention_fusion.attn_feat_ffn.1.weight", [1, featureHidden]),
            ("adaptive_attention_fusion.attn_feat_ffn.1.bias", [1]),
        ]
        return keys
    }

    /// Reads D, depth, heads, MLP width, AAF feature width and the position grid from the tensor
    /// shapes of a state dict. Missing keys fall back to DeiT-S so that strict loading can still
    /// list every problem at once.
    public static func inferred(from shapes: [String: [Int]], classCount: Int, reduction: Int,
                                pooling: WeakTrPooling) -> WeakTrConfig {
        var config = deitSmall(classCount: classCount, reduction: reduction, pooling: pooling)
        if let s = shapes["patch_embed.proj.weight"], s.count == 4 { config.embedDimension = s[0] }
        else if let s = shapes["cls_token"], s.count == 3 { config.embedDimension = s[2] }
        var depth = 0
        while shapes["blocks.\(depth).attn.qkv.weight"] != nil { depth += 1 }
        if depth > 0 { config.depth = depth }
        if let s = shapes["blocks.0.mlp.fc1.weight"], s.count == 2 { config.mlpHidden = s[0] }
        // Head count is not a tensor dimension; the AAF feature MLP takes one head's width.
        if let s = shapes["adaptive_attention_fusion.attn_feat_ffn.0.weight"], s.count == 2, s[1] > 0,
           config.embedDimension % s[1] == 0 {
            config.headCount = config.embedDimension / s[1]
            config.featureHidden = s[0]
        } else {
            config.headCount = max(1, config.embedDimension / 64)
            config.featureHidden = config.headDimension / 8
        }
        if let s = shapes["pos_embed"], s.count == 3 {
            let side = Int(Double(max(s[1] - classCount, 0)).squareRoot().rounded())
            if side * side == s[1] - classCount, side > 0 { config.gridSide = side }
        }
        return config
    }
}

/// A checkpoint that does not fit the model: every missing, unexpected and mis-shaped key.
public struct WeakTrLoadError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problems: [String]
    public var description: String {
        "'\(path)': checkpoint does not match the WeakTr model (\(problems.count) problem"
            + (problems.count == 1 ? "" : "s") + "):\n  " + problems.joined(separator: "\n  ")
    }
}

extension WeakTrConfig {
    /// Every missing, unexpected and mis-shaped key of a state dict with these tensor shapes, and an
    /// AAF reduction that leaves no hidden units; empty when the state dict fits (spec §7.1).
    public func loadProblems(shapes: [String: [Int]]) -> [String] {
        var problems: [String] = []
        let expected = expectedShapes
        for (name, shape) in expected {
            guard let found = shapes[name] else {
                problems.append("missing in file: '\(name)' (in model \(shape))")
                continue
            }
            if found != shape { problems.append("shape mismatch for '\(name)': in file \(found), in model \(shape)") }
        }
        let names = Set(expected.map { $0.0 })
        for name in shapes.keys.sorted() where !names.contains(name) {
            problems.append("unexpected in file: '\(name)' \(shapes[name]!) (not in model)")
        }
        if channelHidden < 1 {
            problems.append("reduction \(reduction) leaves no AAF hidden units for \(channelCount) channels")
        }
        return problems
    }
}
