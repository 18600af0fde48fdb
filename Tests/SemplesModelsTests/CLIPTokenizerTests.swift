import Foundation
import SemplesFormats
import XCTest
@testable import SemplesModels

/// One reference tokenisation from fixtures/clip/tokenizer.json (scripts/fixtures/clip.py).
private struct TokenizerCase: Decodable {
    let group: String
    let text: String
    let clean: String
    let bpe: [Int32]
    let ids: [Int32]
}

private struct TokenizerFixture: Decodable {
    let context: Int
    let sot: Int32
    let eot: Int32
    let cases: [TokenizerCase]
}

final class CLIPTokenizerTests: XCTestCase {
    private static var cachedTokenizer: CLIPTokenizer?

    private func fixture() throws -> TokenizerFixture {
        let data = try Data(contentsOf: URL(fileURLWithPath: CLIPTestPaths.fixture("tokenizer.json")))
        return try JSONDecoder().decode(TokenizerFixture.self, from: data)
    }

    private func tokenizer() throws -> CLIPTokenizer {
        if let t = Self.cachedTokenizer { return t }
        let t = try CLIPTokenizer(vocabularyPath: try CLIPTestPaths.vocabulary())
        Self.cachedTokenizer = t
        return t
    }

    func testFixtureCoversEveryClassPrompt() throws {
        let f = try fixture()
        XCTAssertEqual(f.cases.filter { $0.group == "voc" }.count, 20)
        XCTAssertEqual(f.cases.filter { $0.group == "coco" }.count, 90)
        XCTAssertGreaterThan(f.cases.filter { $0.group == "awkward" }.count, 30)
        XCTAssertEqual(f.sot, CLIPTokenizer.startOfText)
        XCTAssertEqual(f.eot, CLIPTokenizer.endOfText)
        XCTAssertEqual(f.context, CLIPTokenizer.contextLength)
    }

    func testCleanUpMatchesReference() throws {
        var failures: [String] = []
        // Compared scalar by scalar: String's == would hide a missing normalisation.
        for c in try fixture().cases
        where !CLIPTextCleaner.clean(c.text).unicodeScalars.elementsEqual(c.clean.unicodeScalars) {
            failures.append("\(c.text.debugDescription): got \(CLIPTextCleaner.clean(c.text).debugDescription), "
                + "expected \(c.clean.debugDescription)")
        }
        XCTAssert(failures.isEmpty, failures.joined(separator: "\n"))
    }

    func testIdsMatchReference() throws {
        let tok = try tokenizer()
        var failures: [String] = []
        for c in try fixture().cases {
            let bpe = tok.encode(c.text)
            let ids = tok.tokenize(c.text)
            if bpe != c.bpe || ids != c.ids {
                failures.append("\(c.text.debugDescription): got \(bpe), expected \(c.bpe)")
            }
        }
        XCTAssert(failures.isEmpty, failures.joined(separator: "\n"))
    }

    func testSpecExamples() throws {
        let tok = try tokenizer()
        XCTAssertEqual(Array(tok.tokenize("a photo of cat.").prefix(8)), [49406, 320, 1125, 539, 2368, 269, 49407, 0])
        XCTAssertEqual(tok.encode("dining table"), [8658, 2175])
        XCTAssertEqual(tok.encode("potted plant"), [48581, 3912])
        XCTAssertEqual(tok.encode("tv monitor"), [1583, 10198])
        XCTAssertEqual(tok.encode("aeroplane"), [27735, 3980])
    }

    func testTruncationKeepsEndOfText() throws {
        let tok = try tokenizer()
        let ids = tok.tokenize(String(repeating: "word ", count: 200))
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, CLIPTokenizer.startOfText)
        XCTAssertEqual(ids.last, CLIPTokenizer.endOfText)
        XCTAssertEqual(ids.firstIndex(of: CLIPTokenizer.endOfText), 76)
        let short = tok.tokenize("cat", contextLength: 5)
        XCTAssertEqual(short, [49406, 2368, 49407, 0, 0])
    }

    func testPiecesFollowThePattern() {
        XCTAssertEqual(CLIPTokenizer.pieces(of: "don't 42 a.b!!c <|endoftext|>x ''s"),
                       ["don", "'t", "4", "2", "a", ".", "b", "!!", "c", "<|endoftext|>", "x", "''", "s"])
    }

    func testMissingVocabularySaysWhereAndHow() throws {
        let dir = NSTemporaryDirectory() + "clip-vocab-missing-\(getpid())"
        do {
            _ = try CLIPTokenizer.locateVocabulary(configured: nil, modelFolder: dir, environment: [:])
            XCTFail("expected an error")
        } catch let e as CLIPVocabularyMissing {
            XCTAssert(e.description.contains(dir), e.description)
            XCTAssert(e.description.contains("SEMPLES_CLIP_VOCAB"), e.description)
            XCTAssert(e.description.contains("bpe_simple_vocab_16e6.txt.gz"), e.description)
        }
    }

    func testVocabularyFoundFromEnvironmentAndFolder() throws {
        let real = try CLIPTestPaths.vocabulary()
        XCTAssertEqual(try CLIPTokenizer.locateVocabulary(environment: ["SEMPLES_CLIP_VOCAB": real]), real)
        let folder = URL(fileURLWithPath: real).deletingLastPathComponent().path
        XCTAssertEqual(try CLIPTokenizer.locateVocabulary(modelFolder: folder, environment: [:]), real)
        XCTAssertEqual(try CLIPTokenizer.locateVocabulary(configured: folder, environment: [:]), real)
    }

    func testCorruptVocabularyNamesTheFile() throws {
        let path = NSTemporaryDirectory() + "clip-vocab-corrupt-\(getpid()).txt.gz"
        try Data("not gzip at all".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyPath: path)) { error in
            XCTAssertEqual((error as? FormatError)?.path, path, "\(error)")
        }
        // A valid gzip file that is too short to be the vocabulary.
        let short = try Gzip.decompress(Self.gzipOfHello, path: "inline")
        XCTAssertEqual(String(data: short, encoding: .utf8), "hello\n")
        XCTAssertThrowsError(try CLIPTokenizer(mergesText: "header\na b\n", path: "small.txt")) { error in
            XCTAssert("\(error)".contains("small.txt"), "\(error)")
        }
    }

    /// `printf 'hello\n' | gzip -n`.
    static let gzipOfHello = Data([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48,
                                   0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00,
                                   0x00, 0x00])
}
