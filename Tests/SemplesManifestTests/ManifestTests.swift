import XCTest
@testable import SemplesManifest

final class ManifestTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("data/cams"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: folder.appendingPathComponent("data/train_id.txt").path, contents: Data("2007_000032\n".utf8))
        FileManager.default.createFile(atPath: folder.appendingPathComponent("model.pth").path, contents: Data([1]))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func write(_ text: String) -> String {
        let path = folder.appendingPathComponent("job.yaml").path
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    func testCamManifestResolvesRelativePathsAndDefaults() throws {
        let path = write("""
        job: cam
        data_set: VOC12
        data_path: data
        img_list: data/train_id.txt
        resume: model.pth
        scales: [1.0, 1.2]
        """)
        let m = try Manifest.load(path: path)
        XCTAssertEqual(m.job, .cam)
        XCTAssertEqual(m.dataPath, folder.appendingPathComponent("data").standardizedFileURL.path)
        XCTAssertEqual(m.resume, folder.appendingPathComponent("model.pth").standardizedFileURL.path)
        XCTAssertEqual(m.scales, [1.0, 1.2])
        XCTAssertEqual(m.reduction, 8)
        XCTAssertEqual(m.poolType, .max)
    }

    func testJSONManifestIsAccepted() throws {
        let path = write(#"{"job": "evaluate", "data_path": "data", "img_list": "data/train_id.txt", "predict_dir": "data/cams", "curve": false, "t": 0.43}"#)
        let m = try Manifest.load(path: path)
        XCTAssertEqual(m.job, .evaluate)
        XCTAssertEqual(m.t, 0.43)
        XCTAssertFalse(m.curve)
    }

    func assertRejected(_ text: String, key: String?, contains fragment: String, line: UInt = #line) {
        let path = write(text)
        XCTAssertThrowsError(try Manifest.load(path: path), line: line) { error in
            guard let e = error as? ManifestError else { return XCTFail("not a ManifestError: \(error)", line: line) }
            XCTAssertEqual(e.key, key, line: line)
            XCTAssertTrue(e.description.contains(fragment), "'\(e)' lacks '\(fragment)'", line: line)
            XCTAssertTrue(e.description.contains(path), "'\(e)' does not name the file", line: line)
        }
    }

    func testBadManifestsNameTheKeyAndProblem() {
        let base = "data_path: data\nimg_list: data/train_id.txt\n"
        assertRejected("job: cam\n" + base, key: "resume", contains: "missing")
        assertRejected("job: cam\nresume: model.pth\nscale: [1.0]\n" + base, key: "scale", contains: "did you mean 'scales'")
        assertRejected("job: cam\nresume: model.pth\nreduction: eight\n" + base, key: "reduction", contains: "expected an integer")
        assertRejected("job: cam\nresume: nowhere.pth\n" + base, key: "resume", contains: "does not exist")
        assertRejected("job: bake\n" + base, key: "job", contains: "not a job kind")
        assertRejected("job: evaluate\npredict_dir: data/cams\ncurve: false\n" + base, key: "t", contains: "fixed threshold")
        assertRejected("job: evaluate\npredict_dir: data/cams\nresume: model.pth\n" + base, key: "resume", contains: "not used by 'evaluate'")
        assertRejected("job: cam\nresume: model.pth\ndata_path: data/train_id.txt\nimg_list: data/train_id.txt\n", key: "data_path", contains: "not a folder")
        assertRejected("- just\n- a list\n", key: nil, contains: "mapping")
        assertRejected("job: [unclosed\n", key: nil, contains: "not valid YAML")
    }

    /// `shards`: an integer 1…1024, for `cam` (and the CAM step of `pipeline`) only; default 1.
    func testShardsKey() throws {
        let base = "job: cam\nresume: model.pth\ndata_path: data\nimg_list: data/train_id.txt\n"
        XCTAssertEqual(try Manifest.load(path: write(base)).shards, 1)
        XCTAssertEqual(try Manifest.load(path: write(base + "shards: 8\n")).shards, 8)
        XCTAssertEqual(try Manifest.load(path: write(base + "shards: 1024\n")).shards, 1024)
        assertRejected(base + "shards: 0\n", key: "shards", contains: "out of range 1…1024")
        assertRejected(base + "shards: 1025\n", key: "shards", contains: "out of range 1…1024")
        assertRejected(base + "shards: 2.5\n", key: "shards", contains: "expected an integer")
        assertRejected(base + "shards: four\n", key: "shards", contains: "expected an integer")
        assertRejected("job: evaluate\npredict_dir: data/cams\nshards: 2\ndata_path: data\nimg_list: data/train_id.txt\n",
                       key: "shards", contains: "only 'cam' jobs and the CAM step of 'pipeline' jobs run sharded")
    }

    func testEditDistance() {
        XCTAssertEqual(editDistance("scales", "scale"), 1)
        XCTAssertEqual(editDistance("kitten", "sitting"), 3)
    }
}
