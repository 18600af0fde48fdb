import Foundation
import SemplesEngine
import XCTest
@testable import SemplesFormats

/// The repository root, found from this file's location.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A committed fixture made by scripts/fixtures/formats.py.
func fixture(_ relative: String) -> String {
    repoRoot.appendingPathComponent("fixtures/formats/" + relative).path
}

/// The shared real data folder, or a skip when it is absent.
func sharedData(_ relative: String) throws -> String {
    let p = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/" + relative).path
    guard FileManager.default.fileExists(atPath: p) else {
        throw XCTSkip("shared data '\(relative)' not found at \(p)")
    }
    return p
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("semples-formats-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// A uint8 array fixture (.npy) as an image: [H, W, 3] → RGB, [H, W] → 1 channel.
func npyImage(_ relative: String) throws -> Image8 {
    let a = try Npy.readArray(fixture(relative))
    XCTAssertEqual(a.dtype, .uint8)
    let bytes = [UInt8](a.rawBytes)
    return Image8(width: a.shape[1], height: a.shape[0], channels: a.shape.count == 3 ? a.shape[2] : 1, pixels: bytes)
}

/// The largest absolute difference between two images of the same layout.
func maxDifference(_ a: Image8, _ b: Image8) -> Int {
    precondition(a.width == b.width && a.height == b.height && a.channels == b.channels,
                 "\(a.width)x\(a.height)x\(a.channels) vs \(b.width)x\(b.height)x\(b.channels)")
    return zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
}

/// Asserts that `body` throws a FormatError naming `path` whose detail contains `expected`.
func assertFormatError<T>(_ path: String, contains expected: String, file: StaticString = #filePath, line: UInt = #line,
                          _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected an error containing '\(expected)'", file: file, line: line)
    } catch let e as FormatError {
        XCTAssertEqual(e.path, path, file: file, line: line)
        XCTAssertTrue(e.detail.lowercased().contains(expected.lowercased()), "error was: \(e)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
}

/// Runs a Python script with the first interpreter (SEMPLES_PYTHON, the torch venv, python3) that
/// has `modules`; skips the test when none has them. Returns (exit status, output).
func runPython(_ script: String, modules: [String], arguments: [String]) throws -> (Int32, String) {
    var candidates: [String] = []
    if let p = ProcessInfo.processInfo.environment["SEMPLES_PYTHON"] { candidates.append(p) }
    candidates += [repoRoot.appendingPathComponent(".venv-torch/bin/python").path, "python3"]
    let guarded = """
    import sys
    try:
    \(modules.map { "    import \($0)" }.joined(separator: "\n"))
    except ImportError:
        sys.exit(77)
    """ + "\n" + script
    for p in candidates where !p.contains("/") || FileManager.default.isExecutableFile(atPath: p) {
        let (status, out) = runProcess(p, ["-c", guarded] + arguments)
        if status == 77 || status == -1 || (status == 127 && !p.contains("/")) { continue }
        return (status, out)
    }
    throw XCTSkip("no python with \(modules.joined(separator: ", ")) found (set SEMPLES_PYTHON)")
}

/// Runs a program, returning its exit status and standard output (stderr appended).
func runProcess(_ program: String, _ arguments: [String]) -> (Int32, String) {
    let process = Process()
    if program.contains("/") {
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Reads a JSON fixture.
func jsonFixture(_ relative: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture(relative))))
}
