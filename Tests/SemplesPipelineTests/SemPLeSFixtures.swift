import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// The tiny WeakTr, tiny CLIP and the reference iterations written by scripts/fixtures/semples.py.
enum SemPLeSFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/semples")

    static let classCount = 3
    static let promptLength = 4
    static let hypers: [String: [Float]] = ["a": [2.4], "b": [0.3], "c": [2.4, 0.5]]
    static let learningRates: [String: Double] = ["a": 2e-3, "b": 5e-2, "c": 2e-3]
    static let weightDecay = 0.03
    static let template = CLIPPromptTemplate(start: 510, prefix: [320, 125, 39], period: 13, end: 511)
    static let clipConfig = CLIPConfig(imageResolution: 64, patchSize: 32, visionWidth: 32, visionLayers: 2,
                                       visionHeads: 2, embedDimension: 24, contextLength: 77, vocabularySize: 512,
                                       textWidth: 32, textLayers: 2, textHeads: 4)

    static func tensors(_ name: String) throws -> [String: Tensor] {
        let (list, _) = try SafeTensors.read(folder.appendingPathComponent(name).path)
        var dict: [String: Tensor] = [:]
        for t in list { dict[t.name] = t.tensor }
        return dict
    }

    static func terms() throws -> [String: [String: Double]] {
        let data = try Data(contentsOf: folder.appendingPathComponent("stages.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json["terms"] as! [String: [String: Any]]).mapValues { $0.mapValues { ($0 as! NSNumber).doubleValue } }
    }

    static func weakTrStateDict() throws -> [String: Tensor] { try tensors("weaktr.safetensors") }

    /// The fixture's WeakTr, with gradient memory for the head stage (head and AAF).
    static func weakTr() throws -> WeakTr {
        try WeakTr(stateDict: weakTrStateDict(), classCount: classCount, reduction: 2, pooling: .max,
                   source: "weaktr.safetensors", gradients: .headAndFusion)
    }

    static func clip() throws -> CLIPModel {
        let model = CLIPModel(config: clipConfig)
        try model.load(stateDict: tensors("clip.safetensors"), path: "clip.safetensors")
        return model
    }

    /// [C, E] unit rows of the class-text ids of the fixture.
    static func classText(_ clip: CLIPModel, _ stages: [String: Tensor]) -> Tensor {
        let ids = stages["text_ids"]!
        let rows = (0..<classCount).map { k in (0..<77).map { Int32(ids.data[k * 77 + $0]) } }
        let out = Tensor([classCount, clipConfig.embedDimension])
        let arena = Arena(capacity: clip.text.arenaSize(batch: classCount, tokens: 77, backward: false))
        clip.text.encode(rows, into: out.view, arena: arena)
        normaliseRows(out.view)
        return out
    }

    static func maxRelativeError(_ got: TensorView, _ want: Tensor) -> Float {
        precondition(got.count == want.count, "\(got.shape) vs \(want.shape)")
        var scale: Float = 0
        for i in 0..<want.count { scale = max(scale, abs(want.data[i])) }
        var worst: Float = 0
        for i in 0..<want.count { worst = max(worst, abs(got.data[i] - want.data[i])) }
        return worst / max(scale, 1e-12)
    }
}
