import Foundation
import SemplesEngine
import XCTest
@testable import SemplesFormats

final class SafeTensorsTests: XCTestCase {
    func testRoundTripAndMetadata() throws {
        let p = temporaryDirectory(self) + "/w.safetensors"
        let a = Tensor([2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor([4], values: [-1, 0.5, 0.25, 8])
        try SafeTensors.write([("a", a.view), ("b", b.view)], metadata: ["epoch": "3"], to: p)
        let (tensors, metadata) = try SafeTensors.read(p)
        XCTAssertEqual(tensors.map(\.name), ["a", "b"])
        XCTAssertEqual(tensors[0].tensor.toArray(), a.toArray())
        XCTAssertEqual(tensors[0].tensor.shape, a.shape)
        XCTAssertEqual(tensors[1].tensor.toArray(), b.toArray())
        XCTAssertEqual(metadata, ["epoch": "3"])
    }

    func testBadFiles() throws {
        let dir = temporaryDirectory(self)
        let t = Tensor([3], values: [1, 2, 3])
        let good = try SafeTensors.encode([("t", t.view)])
        for cut in [0, 7, 20, good.count - 1] {
            let p = dir + "/cut\(cut).safetensors"
            try good.prefix(cut).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try SafeTensors.read(p)) { XCTAssertEqual(($0 as? FormatError)?.path, p) }
        }
        func withHeader(_ json: String, payload: Int) -> Data {
            var d = Data()
            withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { d.append(contentsOf: $0) }
            d.append(Data(json.utf8))
            d.append(Data(count: payload))
            return d
        }
        let absurd = dir + "/absurd.safetensors"
        try withHeader(#"{"t":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}"#, payload: 4)
            .write(to: URL(fileURLWithPath: absurd))
        assertFormatError(absurd, contains: "too large") { try SafeTensors.read(absurd) }
        let lying = dir + "/lying.safetensors"
        try withHeader(#"{"t":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#, payload: 12)
            .write(to: URL(fileURLWithPath: lying))
        assertFormatError(lying, contains: "do not fit") { try SafeTensors.read(lying) }
        let dtype = dir + "/dtype.safetensors"
        try withHeader(#"{"t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, payload: 8)
            .write(to: URL(fileURLWithPath: dtype))
        assertFormatError(dtype, contains: "unsupported dtype") { try SafeTensors.read(dtype) }
    }
}

final class ConversionTests: XCTestCase {
    func testHalfToFloatIsExactForEveryBitPattern() {
        let bits = (0...0xFFFF).map { UInt16($0) }
        var out = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { convertToFloat32(raw.baseAddress!, dtype: .float16, count: bits.count, into: $0.baseAddress!) }
        }
        for (b, v) in zip(bits, out) {
            let expected = Float(Float16(bitPattern: b))
            if expected.isNaN {
                XCTAssertTrue(v.isNaN, "\(b)")
            } else {
                XCTAssertEqual(v.bitPattern, expected.bitPattern, "half bits \(String(b, radix: 16))")
            }
        }
    }

    func testCRC32MatchesKnownValues() {
        XCTAssertEqual(CRC32.checksum(Data("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum(Data()), 0)
        let long = Data((0..<1000).map { UInt8($0 % 251) })
        // Bytewise reference.
        var c: UInt32 = 0xFFFF_FFFF
        for b in long { c = CRC32.tables[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        XCTAssertEqual(CRC32.checksum(long), c ^ 0xFFFF_FFFF)
    }
}
