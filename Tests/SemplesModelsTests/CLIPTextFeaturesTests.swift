import Foundation
import SemplesEngine
import XCTest
@testable import SemplesModels

final class CLIPTextFeaturesTests: XCTestCase {
    /// A small random model with OpenAI's vocabulary size, so real token ids fit. Widths of 64
    /// give one head each, as a configuration read from the weights' shapes has.
    static func smallModel() -> CLIPModel {
        let config = CLIPConfig(imageResolution: 16, patchSize: 8, visionWidth: 64, visionLayers: 1, visionHeads: 1,
                                embedDimension: 8, contextLength: 77, vocabularySize: 49408, textWidth: 64,
                                textLayers: 2, textHeads: 1)
        let model = CLIPModel(config: config)
        CLIPBenchmark.randomise(model, seed: 7)
        // Larger embeddings than the benchmark's, so that tokens differ visibly in the features.
        let table = model.text.tokenEmbedding.value
        for i in 0..<table.count { table.data[i] *= 20 }
        return model
    }

    func testClassPromptFeaturesEqualOnePromptAtATime() throws {
        let tokenizer = try CLIPTokenizer(vocabularyPath: try CLIPTestPaths.vocabulary())
        let model = Self.smallModel()
        let all = try CLIPTextFeatures(classNames: CLIPClassNames.voc, model: model, tokenizer: tokenizer)
        XCTAssertEqual(all.texts[10], "a photo of dining table.")
        XCTAssertEqual(all.features.shape, Shape([20, 8]))
        for k in [0, 10, 14, 19] {
            // One prompt alone runs only to its own EOT; in the batch it runs to the longest
            // prompt's EOT. Causality makes both the same.
            let ids = [tokenizer.tokenize(CLIPClassNames.prompt(CLIPClassNames.voc[k]))]
            let T = CLIPTextEncoder.endPositions(ids)[0] + 1
            let arena = Arena(capacity: model.text.arenaSize(batch: 1, tokens: T, backward: false))
            let one = Tensor([1, 8])
            model.text.encode(ids, into: one.view, arena: arena)
            normaliseRows(one.view)
            let row = all.features.view[k].toArray()
            for (a, b) in zip(one.toArray(), row) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            XCTAssertEqual(row.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
        }
        // Different classes give different features.
        XCTAssertNotEqual(all.features.view[0].toArray(), all.features.view[1].toArray())
    }

    func testIdsOutsideTheVocabularyAreAnError() throws {
        let tokenizer = try CLIPTokenizer(vocabularyPath: try CLIPTestPaths.vocabulary())
        let (config, _) = try CLIPModelTests.tiny()
        let model = CLIPModel(config: config)
        XCTAssertThrowsError(try CLIPTextFeatures(texts: ["a photo of cat."], model: model, tokenizer: tokenizer)) {
            XCTAssert("\($0)".contains("512"), "\($0)")
        }
    }
}
