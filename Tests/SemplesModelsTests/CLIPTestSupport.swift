import Foundation
import XCTest

/// Paths the CLIP tests use: committed fixtures and the shared data folder beside the repository.
enum CLIPTestPaths {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ name: String) -> String {
        repositoryRoot.appendingPathComponent("fixtures/clip").appendingPathComponent(name).path
    }

    /// The real vocabulary in `<repo>/../shared/data/clip`, or a skip when it is absent.
    static func vocabulary() throws -> String {
        let path = repositoryRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/data/clip/bpe_simple_vocab_16e6.txt.gz").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("CLIP vocabulary not found at '\(path)'; the shared data folder is absent")
        }
        return path
    }
}
