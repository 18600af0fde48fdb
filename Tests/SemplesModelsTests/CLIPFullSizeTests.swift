import Foundation
import SemplesEngine
import SemplesFormats
import XCTest
@testable import SemplesModels

/// Optional: ViT-B/32 at full size with random weights against PyTorch. The data (about 300 MB)
/// is made by `python scripts/fixtures/clip.py full DIR` and not committed; set
/// SEMPLES_CLIP_FULL_CHECK=DIR to run.
final class CLIPFullSizeTests: XCTestCase {
    func testViTB32AgainstPyTorch() throws {
        guard let dir = ProcessInfo.processInfo.environment["SEMPLES_CLIP_FULL_CHECK"] else {
            throw XCTSkip("set SEMPLES_CLIP_FULL_CHECK to a folder made by scripts/fixtures/clip.py full")
        }
        let model = try CLIPModel.load(dir + "/vitb32_weights.safetensors")
        XCTAssertEqual(model.config, .vitB32)
        var g: [String: Tensor] = [:]
        for t in try SafeTensors.read(dir + "/vitb32_golden.safetensors").tensors { g[t.name] = t.tensor }
        let image = CLIPModelTests.checkImage(model, g)
        let text = CLIPModelTests.checkText(model, g)
        let prompts = CLIPModelTests.checkPrompts(model, g, .semples)
        print("ViT-B/32 relative errors: image \(image), text \(text), prompts \(prompts)")
        XCTAssertLessThan(image.0, 1e-4)
        XCTAssertLessThan(image.1, 1e-3)
        XCTAssertLessThan(text.0, 1e-4)
        XCTAssertLessThan(text.1, 1e-3)
        XCTAssertLessThan(prompts.0, 1e-4)
        XCTAssertLessThan(prompts.1, 1e-3)
    }
}
