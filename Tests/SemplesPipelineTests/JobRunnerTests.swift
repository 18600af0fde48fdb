import XCTest
@testable import SemplesPipeline
import SemplesFormats

final class JobRunnerTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func readResult(_ out: URL) throws -> JobResult {
        let data = try Data(contentsOf: out.appendingPathComponent("result.json"))
        return try JSONCoding.decoder.decode(JobResult.self, from: data)
    }

    func testInvalidManifestEndsFailedWithExitTwoAndTheReason() throws {
        let manifest = folder.appendingPathComponent("bad.yaml")
        try Data("job: cam\ndata_path: .\nimg_list: bad.yaml\nscales: oops\n".utf8).write(to: manifest)
        let out = folder.appendingPathComponent("out")
        let code = JobRunner.run(manifestPath: manifest.path, outputFolder: out.path, echo: false)
        XCTAssertEqual(code, .badManifest)
        let result = try readResult(out)
        XCTAssertEqual(result.state, "failed")
        XCTAssertTrue(result.error?.contains("bad.yaml") ?? false, "\(String(describing: result.error))")
        let log = try String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(log.contains("invalid manifest"), log)
    }

    func testMissingManifestIsReportedNotCrashed() throws {
        let out = folder.appendingPathComponent("out2")
        let code = JobRunner.run(manifestPath: folder.appendingPathComponent("nowhere.yaml").path,
                                 outputFolder: out.path, echo: false)
        XCTAssertEqual(code, .badManifest)
        XCTAssertEqual(try readResult(out).state, "failed")
    }

    func testLogAppendsAcrossRunsAndProgressIsWritten() throws {
        let out = folder.appendingPathComponent("out3")
        let context = try JobContext(outputFolder: out, echo: false)
        context.begin("unit", total: 4, alreadyDone: 1)
        context.advance()
        context.log("first run")
        let second = try JobContext(outputFolder: out, echo: false)
        second.log("second run")
        let log = try String(contentsOf: out.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(log.contains("first run") && log.contains("second run"))
        let progress = try JSONCoding.decoder.decode(JobContext.Progress.self,
                                                     from: Data(contentsOf: out.appendingPathComponent("progress.json")))
        XCTAssertEqual(progress.total, 4)
        XCTAssertEqual(progress.phase, "unit")
    }

    func testStopFlagStopsAtTheNextCheck() throws {
        let flag = StopFlag()
        let context = try JobContext(outputFolder: folder.appendingPathComponent("out4"), echo: false, stop: flag)
        context.begin("unit", total: 3)
        XCTAssertNoThrow(try context.checkStop())
        flag.set("SIGTERM")
        XCTAssertThrowsError(try context.checkStop()) { error in
            XCTAssertTrue("\(error)".contains("SIGTERM"))
        }
    }
}
