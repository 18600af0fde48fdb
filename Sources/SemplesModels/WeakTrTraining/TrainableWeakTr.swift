import Foundation
import SemplesEngine
import SemplesFormats

/// The three MultiLabelSoftMargin terms of WeakTr's training loss (spec §3.4).
public struct WeakTrLossTerms: Sendable, Equatable, Codable {
    public var classToken: Float
    public var coarse: Float
    public var fine: Float
    public var total: Float { classToken + coarse + fine }

    public init(classToken: Float, coarse: Float, fine: Float) {
        self.classToken = classToken
        self.coarse = coarse
        self.fine = fine
    }
}

/// WeakTr (spec §2.1) built from engine layers for training: batched forward in train mode that
/// keeps what backward needs, and backward with the gradient paths of WeakTr:`models.py`
/// (spec §2.1.6, §3.4):
///
/// - the class-token term reaches the backbone;
/// - the coarse term reaches the head and, through the non-detached patch tokens, the backbone;
/// - the fine term reaches the AAF parameters only: the attention maps and attention outputs fed to
///   AAF are detached, and so is the ReLU(head) copy inside the fused CAM.
///
/// Parameters live in one `ParameterStore` under engine names; `referenceKey(_:)` maps them to the
/// checkpoint keys of spec §7.1. The final LayerNorm `norm` is declared (it is in every checkpoint)
/// but never applied, so it gets no gradient and the optimizer skips it, as torch does.
public final class TrainableWeakTr {
    public let config: WeakTrConfig
    public let store: ParameterStore
    /// Largest DropPath rate (last block); block i has rate·i/(depth − 1).
    public let dropPathRate: Float

    let classToken: Parameter          // [1, C, D]
    let positionEmbedding: Parameter   // [1, C + g², D]
    let patchEmbed: Conv2d             // [D, 3, 16, 16]
    public let blocks: [TransformerBlock]
    let finalNorm: LayerNorm           // [D], never applied
    let head: Conv2d                   // [C, D, 3, 3], padding 1
    let featureDown: Linear            // attn_feat_ffn.0: [hd/8, hd] + bias
    let featureOut: Linear             // attn_feat_ffn.1: [1, hd/8] + bias
    let channelDown: Linear            // attn_head_ffn.0: [L·H/r, L·H], no bias
    let channelUp: Linear              // attn_head_ffn.2: [L·H, L·H/r], no bias

    private(set) var workspace: WeakTrTrainingWorkspace?
    private var arena = Arena(capacity: 0)
    private var arenaBatch = 0

    /// Declares every parameter (zero values) for `config`; fill them with `load(stateDict:source:)`.
    public init(config: WeakTrConfig, dropPathRate: Float = 0.1) {
        precondition(config.channelHidden >= 1, "AAF reduction \(config.reduction) leaves no hidden units")
        self.config = config
        self.dropPathRate = dropPathRate
        let D = config.embedDimension, C = config.classCount, g = config.gridSide
        let s = ParameterStore(gradients: true)
        store = s
        classToken = s.declare("cls_token", [1, C, D])
        positionEmbedding = s.declare("pos_embed", [1, C + g * g, D])
        patchEmbed = Conv2d(s, "patch_embed.proj", inChannels: 3, outChannels: D, kernel: 16, stride: 16)
        let L = config.depth
        blocks = (0..<L).map { i in
            let rate = L > 1 ? dropPathRate * Float(i) / Float(L - 1) : 0
            return TransformerBlock(s, prefix: "blocks.\(i).", TransformerBlock.Configuration(
                dimension: D, headCount: config.headCount, hiddenDimension: config.mlpHidden,
                eps: config.layerNormEpsilon, activation: .gelu, dropPathRate: rate))
        }
        finalNorm = LayerNorm(s, "norm", channels: D, eps: config.layerNormEpsilon)
        head = Conv2d(s, "head", inChannels: D, outChannels: C, kernel: 3, stride: 1, padding: 1)
        let aaf = "adaptive_attention_fusion."
        featureDown = Linear(s, aaf + "attn_feat_ffn.0", inFeatures: config.headDimension, outFeatures: config.featureHidden)
        featureOut = Linear(s, aaf + "attn_feat_ffn.1", inFeatures: config.featureHidden, outFeatures: 1)
        channelDown = Linear(s, aaf + "attn_head_ffn.0", inFeatures: config.channelCount,
                             outFeatures: config.channelHidden, bias: false)
        channelUp = Linear(s, aaf + "attn_head_ffn.2", inFeatures: config.channelHidden,
                           outFeatures: config.channelCount, bias: false)
        s.materialise()
        // Never applied (spec §2.1.1): no gradient, and so no optimizer step or weight decay.
        s.setRequiresGradient(false, prefix: "norm.")
    }

    // MARK: Checkpoint keys

    /// Engine parameter name → reference state-dict key (spec §7.1).
    public static func referenceKey(_ engineName: String) -> String {
        engineName.replacingOccurrences(of: ".attention.projection.", with: ".attn.proj.")
            .replacingOccurrences(of: ".attention.qkv.", with: ".attn.qkv.")
    }

    /// The parameters keyed by reference name.
    public var parametersByReferenceKey: [String: Parameter] {
        Dictionary(uniqueKeysWithValues: store.parameters.map { (Self.referenceKey($0.name), $0) })
    }

    /// The state dict in checkpoint order (views into the store; copy before the next step).
    public func stateDict() -> [(String, TensorView)] {
        let byKey = parametersByReferenceKey
        return config.expectedShapes.map { ($0.0, byKey[$0.0]!.value) }
    }

    /// Copies a full state dict in, checking every key and shape (all problems reported at once).
    public func load(stateDict: [String: Tensor], source: String) throws {
        var problems: [String] = []
        let expected = config.expectedShapes
        for (name, shape) in expected {
            guard let t = stateDict[name] else { problems.append("missing in file: '\(name)' (in model \(shape))"); continue }
            if t.shape.dims != shape {
                problems.append("shape mismatch for '\(name)': in file \(t.shape.dims), in model \(shape)")
            }
        }
        let names = Set(expected.map { $0.0 })
        for name in stateDict.keys.sorted() where !names.contains(name) {
            problems.append("unexpected in file: '\(name)' \(stateDict[name]!.shape.dims) (not in model)")
        }
        guard problems.isEmpty else { throw WeakTrLoadError(path: source, problems: problems) }
        let byKey = parametersByReferenceKey
        for (name, _) in expected { byKey[name]!.value.copy(from: stateDict[name]!.view) }
    }

    /// The eval-mode model with the current weights (for CAM generation).
    public func evaluationModel() throws -> WeakTr {
        var dict: [String: Tensor] = [:]
        for (name, view) in stateDict() {
            let t = Tensor(view.shape.dims)
            t.view.copy(from: view)
            dict[name] = t
        }
        return try WeakTr(stateDict: dict, classCount: config.classCount, reduction: config.reduction,
                          pooling: config.pooling, source: "<training weights>")
    }

    // MARK: Workspace

    /// Sets up (once per batch size) the activation memory of a training step on `batch` images of
    /// the checkpoint grid (gridSide·16 square).
    public func prepare(batch: Int) -> WeakTrTrainingWorkspace {
        if let ws = workspace, ws.batch == batch { return ws }
        let floats = WeakTrTrainingWorkspace.floats(model: self, batch: batch)
        if floats > arena.capacity { arena = Arena(capacity: floats) }
        arena.reset()
        let ws = WeakTrTrainingWorkspace(model: self, batch: batch, arena: arena)
        workspace = ws
        return ws
    }

    /// Image side the model trains on (the position grid as is, spec §2.1.3 case 1).
    public var inputSide: Int { config.gridSide * config.patchSize }
}
