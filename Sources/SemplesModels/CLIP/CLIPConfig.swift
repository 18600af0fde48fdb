import SemplesFormats

/// Sizes of a CLIP ViT model (image tower and text tower).
public struct CLIPConfig: Equatable, Sendable, Codable {
    public var imageResolution: Int
    public var patchSize: Int
    public var visionWidth: Int
    public var visionLayers: Int
    public var visionHeads: Int
    /// Width of the joint embedding (`visual.proj` and `text_projection` columns).
    public var embedDimension: Int
    public var contextLength: Int
    public var vocabularySize: Int
    public var textWidth: Int
    public var textLayers: Int
    public var textHeads: Int
    /// LayerNorm epsilon (torch default 1e-5 throughout CLIP).
    public var layerNormEpsilon: Float = 1e-5

    public init(imageResolution: Int, patchSize: Int, visionWidth: Int, visionLayers: Int, visionHeads: Int,
                embedDimension: Int, contextLength: Int, vocabularySize: Int, textWidth: Int, textLayers: Int,
                textHeads: Int, layerNormEpsilon: Float = 1e-5) {
        self.imageResolution = imageResolution
        self.patchSize = patchSize
        self.visionWidth = visionWidth
        self.visionLayers = visionLayers
        self.visionHeads = visionHeads
        self.embedDimension = embedDimension
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
        self.textWidth = textWidth
        self.textLayers = textLayers
        self.textHeads = textHeads
        self.layerNormEpsilon = layerNormEpsilon
    }

    /// OpenAI's ViT-B/32 (spec §2.2, §2.3).
    public static let vitB32 = CLIPConfig(imageResolution: 224, patchSize: 32, visionWidth: 768, visionLayers: 12,
                                          visionHeads: 12, embedDimension: 512, contextLength: 77,
                                          vocabularySize: 49408, textWidth: 512, textLayers: 12, textHeads: 8)
    /// OpenAI's ViT-B/16: the same with 16-pixel patches (196 + 1 tokens).
    public static let vitB16: CLIPConfig = {
        var c = vitB32
        c.patchSize = 16
        return c
    }()

    /// Patches per side.
    public var grid: Int { imageResolution / patchSize }
    /// Image tokens: the class token and one per patch.
    public var imageTokens: Int { grid * grid + 1 }

    /// Every state-dict key of this configuration with its shape, in model order (spec §7.1).
    /// `logit_scale` is listed too: OpenAI's files carry it although the encoders do not use it.
    public var parameterShapes: [(key: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        let vw = visionWidth, tw = textWidth
        out.append(("visual.class_embedding", [vw]))
        out.append(("visual.positional_embedding", [imageTokens, vw]))
        out.append(("visual.proj", [vw, embedDimension]))
        out.append(("visual.conv1.weight", [vw, 3, patchSize, patchSize]))
        out.append(("visual.ln_pre.weight", [vw]))
        out.append(("visual.ln_pre.bias", [vw]))
        for i in 0..<visionLayers { out += Self.blockShapes("visual.transformer.resblocks.\(i).", width: vw) }
        out.append(("visual.ln_post.weight", [vw]))
        out.append(("visual.ln_post.bias", [vw]))
        out.append(("token_embedding.weight", [vocabularySize, tw]))
        out.append(("positional_embedding", [contextLength, tw]))
        for i in 0..<textLayers { out += Self.blockShapes("transformer.resblocks.\(i).", width: tw) }
        out.append(("ln_final.weight", [tw]))
        out.append(("ln_final.bias", [tw]))
        out.append(("text_projection", [tw, embedDimension]))
        out.append(("logit_scale", []))
        return out
    }

    static func blockShapes(_ prefix: String, width w: Int) -> [(String, [Int])] {
        [(prefix + "attn.in_proj_weight", [3 * w, w]), (prefix + "attn.in_proj_bias", [3 * w]),
         (prefix + "attn.out_proj.weight", [w, w]), (prefix + "attn.out_proj.bias", [w]),
         (prefix + "ln_1.weight", [w]), (prefix + "ln_1.bias", [w]),
         (prefix + "mlp.c_fc.weight", [4 * w, w]), (prefix + "mlp.c_fc.bias", [4 * w]),
         (prefix + "mlp.c_proj.weight", [w, 4 * w]), (prefix + "mlp.c_proj.bias", [w]),
         (prefix + "ln_2.weight", [w]), (prefix + "ln_2.bias", [w])]
    }

    /// The configuration a state dict describes, read from its shapes as OpenAI's loader does
    /// (heads = width / 64). `path` labels errors.
    public static func inferred(from shapes: [String: [Int]], path: String) throws -> CLIPConfig {
        func shape(_ key: String, rank: Int) throws -> [Int] {
            guard let s = shapes[key] else {
                let found = shapes.keys.sorted().prefix(6).map { "'\($0)'" }.joined(separator: ", ")
                throw FormatError(path, "has no '\(key)': not a CLIP ViT state dict (found \(shapes.count) "
                    + "tensors: \(found)\(shapes.count > 6 ? ", …" : "")). Expected OpenAI's CLIP ViT names such as "
                    + "'visual.conv1.weight' and 'token_embedding.weight' (ResNet CLIP models are not supported).")
            }
            guard s.count == rank else {
                throw FormatError(path, "'\(key)' has shape \(s), expected rank \(rank)")
            }
            return s
        }
        func layers(_ prefix: String) -> Int {
            var n = 0
            while shapes[prefix + "\(n).attn.in_proj_weight"] != nil { n += 1 }
            return n
        }
        let conv = try shape("visual.conv1.weight", rank: 4)
        let pos = try shape("visual.positional_embedding", rank: 2)
        let proj = try shape("text_projection", rank: 2)
        let tok = try shape("token_embedding.weight", rank: 2)
        let tpos = try shape("positional_embedding", rank: 2)
        let grid = Int(Double(pos[0] - 1).squareRoot().rounded())
        guard grid * grid + 1 == pos[0] else {
            throw FormatError(path, "'visual.positional_embedding' has \(pos[0]) rows, expected a square grid plus one")
        }
        return CLIPConfig(imageResolution: grid * conv[2], patchSize: conv[2], visionWidth: conv[0],
                          visionLayers: layers("visual.transformer.resblocks."), visionHeads: max(1, conv[0] / 64),
                          embedDimension: proj[1], contextLength: tpos[0], vocabularySize: tok[0],
                          textWidth: tok[1], textLayers: layers("transformer.resblocks."),
                          textHeads: max(1, tok[1] / 64))
    }
}
