import Foundation
import SemplesEngine
import SemplesFormats

/// Which WeakTr parameters keep gradient memory.
public enum WeakTrGradients: Sendable {
    /// None: inference only (CAM generation).
    case none
    /// Every parameter: WeakTr's own training.
    case all
    /// The head and AAF only: the SemPLeS head stage (spec §3.5), the backbone frozen.
    case headAndFusion
}

/// WeakTr (spec §2.1): a DeiT backbone with C class tokens, AAF-fused attention and a 3×3 conv
/// head. One set of parameters and layers serves every use of the network:
///
/// - inference, `forward(_:patchAttention:)`: CAM generation in eval mode, no activations kept;
/// - the frozen feature pass of SemPLeS stages (a)/(c), `backboneFeatures`: the same code, with
///   DropPath on;
/// - the SemPLeS head stage, `WeakTrHeadAAF`: trains `head` and `fusion` on those features;
/// - WeakTr's own training, `prepare(batch:)`, `forward(_:generator:)` and `lossAndBackward`: a
///   workspace keeps what backward needs.
///
/// Parameters live in one `ParameterStore` under engine names; `referenceKey(_:)` maps them to the
/// checkpoint keys of spec §7.1. The final LayerNorm `norm` is declared (it is in every checkpoint)
/// but never applied (spec §2.1.1), so it gets no gradient and the optimizer skips it, as torch does.
public final class WeakTr {
    public let config: WeakTrConfig
    public let store: ParameterStore
    /// Largest DropPath rate (last block) in training; block i has rate·i/(depth − 1).
    public let dropPathRate: Float
    /// Where inference keeps the attention maps (spec §9.3).
    public var attentionMemory: WeakTrAttentionMemory = .standard

    let classToken: Parameter          // [1, C, D]
    let positionEmbedding: Parameter   // [1, C + g², D]
    let patchEmbed: Conv2d             // [D, 3, 16, 16]
    public let blocks: [TransformerBlock]
    let finalNorm: LayerNorm           // [D], never applied
    let head: Conv2d                   // [C, D, 3, 3], padding 1
    let fusion: AdaptiveAttentionFusion

    /// Inference workspace, grown to the largest input seen (one pass at a time).
    var inferenceArena: Arena?
    /// Training workspace, set up per batch size.
    var trainingWorkspace: WeakTrTrainingWorkspace?
    var trainingArena = Arena(capacity: 0)

    /// Declares every parameter (zero values) for `config`; fill them with `load(stateDict:source:)`.
    /// `gradients` says which parameters get gradient memory; the others are frozen.
    public init(config: WeakTrConfig, dropPathRate: Float = 0.1, gradients: WeakTrGradients = .all) {
        precondition(config.channelHidden >= 1, "AAF reduction \(config.reduction) leaves no hidden units")
        self.config = config
        self.dropPathRate = dropPathRate
        let D = config.embedDimension, C = config.classCount, g = config.gridSide, L = config.depth
        let s = ParameterStore(gradients: gradients != .none, only: gradients != .headAndFusion ? nil : {
            $0.hasPrefix("head.") || $0.hasPrefix(AdaptiveAttentionFusion.prefix)
        })
        store = s
        classToken = s.declare("cls_token", [1, C, D])
        positionEmbedding = s.declare("pos_embed", [1, C + g * g, D])
        patchEmbed = Conv2d(s, "patch_embed.proj", inChannels: 3, outChannels: D, kernel: config.patchSize,
                            stride: config.patchSize)
        blocks = (0..<L).map { i in
            TransformerBlock(s, prefix: "blocks.\(i).", TransformerBlock.Configuration(
                dimension: D, headCount: config.headCount, hiddenDimension: config.mlpHidden,
                eps: config.layerNormEpsilon, activation: .gelu,
                dropPathRate: L > 1 ? dropPathRate * Float(i) / Float(L - 1) : 0))
        }
        finalNorm = LayerNorm(s, "norm", channels: D, eps: config.layerNormEpsilon)
        head = Conv2d(s, "head", inChannels: D, outChannels: C, kernel: 3, stride: 1, padding: 1)
        fusion = AdaptiveAttentionFusion(s, config: config)
        s.materialise()
        // Never applied (spec §2.1.1): no gradient, and so no optimizer step or weight decay.
        s.setRequiresGradient(false, prefix: "norm.")
    }

    /// Builds the model from a state dict, checking every key and shape (spec §7.1). D, depth,
    /// heads and widths are read from the shapes; C, reduction and pooling are given. By default
    /// the model keeps no gradient memory (CAM generation).
    public convenience init(stateDict: [String: Tensor], classCount: Int, reduction: Int, pooling: WeakTrPooling,
                            source: String, gradients: WeakTrGradients = .none) throws {
        let shapes = stateDict.mapValues { $0.shape.dims }
        let config = WeakTrConfig.inferred(from: shapes, classCount: classCount, reduction: reduction, pooling: pooling)
        let problems = config.loadProblems(shapes: shapes)
        guard problems.isEmpty else { throw WeakTrLoadError(path: source, problems: problems) }
        self.init(config: config, gradients: gradients)
        try load(stateDict: stateDict, source: source)
    }

    /// Loads a `.safetensors` file holding the state dict under the reference key names.
    public static func load(safetensors path: String, classCount: Int, reduction: Int,
                            pooling: WeakTrPooling) throws -> WeakTr {
        let (tensors, _) = try SafeTensors.read(path)
        var dict: [String: Tensor] = [:]
        for t in tensors { dict[t.name] = t.tensor }
        return try WeakTr(stateDict: dict, classCount: classCount, reduction: reduction, pooling: pooling,
                          source: path)
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
        let problems = config.loadProblems(shapes: stateDict.mapValues { $0.shape.dims })
        guard problems.isEmpty else { throw WeakTrLoadError(path: source, problems: problems) }
        for (name, p) in parametersByReferenceKey { p.value.copy(from: stateDict[name]!.view) }
    }

    // MARK: DropPath

    /// DropPath rates of the blocks: linspace(0, rate, depth) (spec §2.1.1).
    public func dropPathRates(maximum rate: Float = 0.1) -> [Float] {
        (0..<config.depth).map { dropPathRate(block: $0, maximum: rate) }
    }

    /// The DropPath rate of block l: linspace(0, rate, depth)[l].
    func dropPathRate(block l: Int, maximum rate: Float) -> Float {
        let L = config.depth
        return L > 1 ? rate * Float(l) / Float(L - 1) : 0
    }

    /// Per-sample DropPath scales of one image: [2·L] (attention branch, MLP branch of each block),
    /// each 0 or 1/(1 − p) with probability p of 0, drawn from the generator in block order.
    public func sampleDropPathScales(maximum rate: Float = 0.1, generator: inout SeededGenerator) -> [Float] {
        var scales: [Float] = []
        sampleDropPathScales(maximum: rate, generator: &generator, into: &scales)
        return scales
    }

    /// `sampleDropPathScales` into `scales` (made [2·L] when it is not), so that a training loop
    /// drawing them per image reuses one array instead of making one each time.
    public func sampleDropPathScales(maximum rate: Float = 0.1, generator: inout SeededGenerator,
                                     into scales: inout [Float]) {
        let L = config.depth
        if scales.count != 2 * L { scales = [Float](repeating: 1, count: 2 * L) }
        scales.withUnsafeMutableBufferPointer { buffer in
            for l in 0..<L {
                DropPath(rate: dropPathRate(block: l, maximum: rate))
                    .sample(into: TensorView(buffer.baseAddress! + 2 * l, Shape(2)), generator: &generator)
            }
        }
    }
}
