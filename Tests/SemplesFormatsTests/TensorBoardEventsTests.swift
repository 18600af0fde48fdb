import Foundation
import XCTest
@testable import SemplesFormats

/// The hand-written event files: CRC-32C against its check value, the framing by hand, and the
/// whole file read back by the `tensorboard` package (skipped when no Python has it).
final class TensorBoardEventsTests: XCTestCase {
    func testCRC32CCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    func testRecordsAreFramedWithLengthAndMaskedChecksums() throws {
        let folder = temporaryDirectory(self)
        let writer = try TensorBoardWriter(folder: folder)
        try writer.add(scalar: "train/loss", 0.5, step: 3)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        var offset = 0, records = 0
        while offset < bytes.count {
            let header = Array(bytes[offset..<offset + 8])
            let length = header.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let crc = bytes[offset + 8..<offset + 12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            XCTAssertEqual(crc, CRC32C.masked(header))
            let data = Array(bytes[offset + 12..<offset + 12 + length])
            let dataCRC = bytes[offset + 12 + length..<offset + 16 + length].enumerated()
                .reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            XCTAssertEqual(dataCRC, CRC32C.masked(data))
            offset += 16 + length
            records += 1
        }
        XCTAssertEqual(offset, bytes.count)
        XCTAssertEqual(records, 2)
    }

    func testTensorBoardReadsTheScalarsBack() throws {
        let folder = temporaryDirectory(self)
        let writer = try TensorBoardWriter(folder: folder)
        for step in 0..<5 {
            try writer.add(scalars: [("train/loss", 1.0 / Double(step + 1)), ("train/lr", 1e-3 * Double(step))], step: step)
        }
        try writer.add(scalar: "eval/miou", 0.4375, step: 4)
        let script = """
        import sys
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(sys.argv[1]); acc.Reload()
        for tag in sorted(acc.Tags()["scalars"]):
            print(tag, " ".join("%d:%.6g" % (e.step, e.value) for e in acc.Scalars(tag)))
        """
        let (status, output) = try runPython(script, modules: ["tensorboard"], arguments: [folder])
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n").map(String.init).filter { !$0.contains("Warning") && !$0.isEmpty }
        XCTAssertTrue(lines.contains("eval/miou 4:0.4375"), output)
        XCTAssertTrue(lines.contains("train/loss 0:1 1:0.5 2:0.333333 3:0.25 4:0.2"), output)
        XCTAssertTrue(lines.contains("train/lr 0:0 1:0.001 2:0.002 3:0.003 4:0.004"), output)
    }
}
