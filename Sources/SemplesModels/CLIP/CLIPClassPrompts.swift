import Foundation
import SemplesEngine

/// Class names as the prompts spell them (spec §2.3), in label-index order.
public enum CLIPClassNames {
    /// VOC: "player" stands for person; three names take two BPE tokens.
    public static let voc = [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining table",
        "dog", "horse", "motorbike", "player", "potted plant", "sheep", "sofa", "train", "tv monitor",
    ]
    /// COCO: 90 entries indexed by category_id − 1, including the 10 unused ids.
    public static let coco = [
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
        "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
        "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
        "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate",
        "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
        "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
        "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
        "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book",
        "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
    ]

    /// The prompt of one class: "a photo of {name}.".
    public static func prompt(_ name: String) -> String { "a photo of \(name)." }
}

/// L2-normalised text features of fixed prompts, computed once (CLIP is frozen, so they are
/// constant for a whole job; spec §2.3).
public struct CLIPTextFeatures {
    public let texts: [String]
    /// [N, E], each row of unit length.
    public let features: Tensor

    /// Encodes `texts` (e.g. the class prompts) in one batch. Throws when a token id falls
    /// outside the model's vocabulary (weights that do not belong to this tokenizer).
    public init(texts: [String], model: CLIPModel, tokenizer: CLIPTokenizer) throws {
        self.texts = texts
        let ids = texts.map { tokenizer.tokenize($0, contextLength: model.config.contextLength) }
        let V = model.config.vocabularySize
        if let bad = ids.flatMap({ $0 }).first(where: { Int($0) >= V }) {
            throw CLIPVocabularyMismatch(tokenId: bad, vocabularySize: V)
        }
        let T = (CLIPTextEncoder.endPositions(ids).max() ?? 0) + 1
        let arena = Arena(capacity: model.text.arenaSize(batch: max(ids.count, 1), tokens: T, backward: false))
        features = Tensor([texts.count, model.config.embedDimension])
        if !texts.isEmpty { model.text.encode(ids, into: features.view, arena: arena) }
        normaliseRows(features.view)
    }

    /// The class prompts "a photo of {name}." of `names`.
    public init(classNames names: [String], model: CLIPModel, tokenizer: CLIPTokenizer) throws {
        try self.init(texts: names.map(CLIPClassNames.prompt), model: model, tokenizer: tokenizer)
    }
}

/// A token id the model's embedding table does not have.
public struct CLIPVocabularyMismatch: Error, CustomStringConvertible {
    public let tokenId: Int32
    public let vocabularySize: Int
    public var description: String {
        "token id \(tokenId) is outside the model's vocabulary of \(vocabularySize) tokens; the weights do not "
            + "belong to the CLIP BPE vocabulary (OpenAI's models have 49408 tokens)"
    }
}

/// Scales every row of x: [N, E] to unit L2 norm.
public func normaliseRows(_ x: TensorView) {
    let E = x.shape[x.shape.rank - 1], N = x.count / max(E, 1)
    for i in 0..<N {
        let row = x.data + i * E
        let norm = BLAS.dot(count: E, row, row).squareRoot()
        if norm > 0 { BLAS.scale(count: E, alpha: 1 / norm, x: row) }
    }
}
