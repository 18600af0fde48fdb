import Foundation
import XCTest
@testable import SemplesFormats

/// A short, deterministic fuzz run inside the test suite: real files mutated (bit flips, cuts,
/// inserted and overwritten bytes, spliced copies) and fed to every parser. Each input must give a
/// value or a FormatError naming the input. The long libFuzzer runs live in scripts/fuzz.sh.
final class FuzzSmokeTests: XCTestCase {
    struct Mutator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

        mutating func mutate(_ input: Data) -> Data {
            var d = [UInt8](input)
            for _ in 0..<(1 + below(4)) {
                guard !d.isEmpty else { d = [UInt8(below(256))]; continue }
                let i = below(d.count)
                switch below(6) {
                case 0: d[i] ^= UInt8(1 << below(8))
                case 1: d = Array(d.prefix(i))
                case 2: d.insert(contentsOf: (0..<(1 + below(8))).map { _ in UInt8(below(256)) }, at: i)
                case 3: d[i] = [0x00, 0xFF, 0x7F, 0x80, 0x01][below(5)]
                case 4:
                    // Overwrite four bytes with a large little-endian length.
                    for k in 0..<4 where i + k < d.count { d[i + k] = [0xFF, 0xFF, 0xFF, 0x7F][k] }
                default:
                    let j = below(d.count), n = min(1 + below(64), d.count - j)
                    d.insert(contentsOf: d[j..<(j + n)], at: i)
                }
            }
            return Data(d)
        }
    }

    func seeds(_ names: [String]) throws -> [Data] {
        try names.map { try Data(contentsOf: URL(fileURLWithPath: fixture($0))) }
    }

    func fuzz(_ target: String, _ seeds: [Data], rounds: Int) {
        var m = Mutator(state: 0x5EED ^ UInt64(target.utf8.count))
        var refused = 0
        for s in seeds {
            for _ in 0..<rounds {
                let input = m.mutate(s)
                if let error = FuzzEntry.run(target, input) {
                    refused += 1
                    guard let e = error as? FormatError else { return XCTFail("\(target): \(error) is not a FormatError") }
                    XCTAssertEqual(e.path, FuzzEntry.inputName)
                    XCTAssertFalse(e.detail.isEmpty)
                }
            }
        }
        // The mutations must actually reach the error paths.
        XCTAssertGreaterThan(refused, 0, target)
    }

    func testNpy() throws {
        fuzz("npy", try seeds(["npy/cam.npy", "npy/labels_p2.npy", "npy/f4.npy", "npy/fortran.npy"]), rounds: 600)
    }

    func testPickle() throws {
        let npy = try seeds(["npy/labels_p2.npy", "npy/cam.npy"]).map { d in d[(d.firstIndex(of: 0x0A)! + 1)...] }
        fuzz("pickle", npy.map { Data($0) } + (try seeds(["bad/evil.pkl"])), rounds: 600)
    }

    func testCheckpoints() throws {
        let files = try seeds(["torch/checkpoint.pth", "torch/btp.pth", "bad/dotdot.pth"])
        fuzz("pth", files, rounds: 400)
        fuzz("zip", files, rounds: 400)
    }

    func testSafeTensors() throws {
        fuzz("safetensors", try seeds(["torch/btp.expected.safetensors"]), rounds: 400)
    }

    func testImages() throws {
        fuzz("png", try seeds(["images/rgb.png", "images/labels_4bit.png"]), rounds: 400)
        fuzz("labels", try seeds(["images/labels_palette.png"]), rounds: 400)
        fuzz("jpeg", try seeds(["images/photo.jpg", "images/progressive.jpg"]), rounds: 200)
    }
}
