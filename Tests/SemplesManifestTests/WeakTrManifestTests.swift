import XCTest
@testable import SemplesManifest

/// The keys of `job: weaktr`: defaults, the default lists, the model sizes, and refusals that name
/// the key at fault.
final class WeakTrManifestTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("weaktr-manifest-\(UUID().uuidString)")
        let voc = folder.appendingPathComponent("data/voc12")
        try FileManager.default.createDirectory(at: voc, withIntermediateDirectories: true)
        for name in ["train_aug_id.txt", "train_id.txt"] {
            FileManager.default.createFile(atPath: voc.appendingPathComponent(name).path, contents: Data("a\n".utf8))
        }
        FileManager.default.createFile(atPath: voc.appendingPathComponent("cls_labels.npy").path, contents: Data([1]))
        FileManager.default.createFile(atPath: folder.appendingPathComponent("deit.pth").path, contents: Data([1]))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func load(_ body: String) throws -> Manifest {
        let path = folder.appendingPathComponent("job.yaml").path
        FileManager.default.createFile(atPath: path, contents: Data(("job: weaktr\ndata_path: data\n" + body).utf8))
        return try Manifest.load(path: path)
    }

    func assertRejected(_ body: String, key: String, contains fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try load(body), line: line) { error in
            guard let e = error as? ManifestError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.key, key, "\(e)", line: line)
            XCTAssertTrue(e.description.contains(fragment), "\(e)", line: line)
        }
    }

    func testDefaultsFollowTheReference() throws {
        let m = try load("cls_labels: data/voc12/cls_labels.npy\n")
        let voc = folder.appendingPathComponent("data/voc12").standardizedFileURL.path
        XCTAssertEqual(m.imgList, voc + "/train_aug_id.txt")
        let w = try XCTUnwrap(m.weaktr)
        XCTAssertEqual(w.imgMsList, voc + "/train_id.txt")
        XCTAssertEqual(w.epochs, 60)
        XCTAssertEqual(w.batchSize, 64)
        XCTAssertEqual(w.lr, 6e-4)
        XCTAssertEqual(w.minLr, 1e-5)
        XCTAssertEqual(w.warmupEpochs, 5)
        XCTAssertEqual(w.weightDecay, 0.03)
        XCTAssertEqual(w.dropPath, 0.1)
        XCTAssertEqual(w.inputSize, 224)
        XCTAssertEqual([w.embedDim, w.depth, w.numHeads], [384, 12, 6])
        XCTAssertNil(w.finetune)
        XCTAssertEqual(w.evalScales, [1.0])
        XCTAssertEqual(m.reduction, 8)
        XCTAssertEqual(m.poolType, .max)
        XCTAssertEqual(m.seed, 504)
        XCTAssertEqual(w.aa, "rand-m9-mstd0.5-inc1")
        XCTAssertEqual(w.reprob, 0.25)
    }

    func testSmallModelAndFlags() throws {
        let m = try load("""
        epochs: 12
        batch_size: 16
        lr: 0.01
        min_lr: 0
        warmup_epochs: 0
        weight_decay: 0.05
        drop_path: 0.0
        input_size: 112
        embed_dim: 96
        depth: 4
        num_heads: 3
        reduction: 4
        pool_type: avg
        finetune: deit.pth
        eval_scales: [1.0, 0.5]
        eval_start: 20
        checkpoint_minutes: 2
        img_ms_list: data/voc12/train_id.txt
        """)
        let w = try XCTUnwrap(m.weaktr)
        XCTAssertEqual(w.model, "custom")
        XCTAssertEqual([w.embedDim, w.depth, w.numHeads, w.inputSize, w.epochs, w.batchSize], [96, 4, 3, 112, 12, 16])
        XCTAssertEqual(w.finetune, folder.appendingPathComponent("deit.pth").standardizedFileURL.path)
        XCTAssertEqual(w.evalScales, [1.0, 0.5])
        XCTAssertEqual(w.evalStart, 20)
        XCTAssertEqual(w.checkpointMinutes, 2)
        XCTAssertEqual(m.poolType, .avg)
        XCTAssertEqual(m.reduction, 4)
        let tiny = try load("model: deit_tiny\n")
        XCTAssertEqual([tiny.weaktr!.embedDim, tiny.weaktr!.depth, tiny.weaktr!.numHeads], [192, 12, 3])
    }

    func testBadValuesNameTheKey() {
        assertRejected("input_size: 100\n", key: "input_size", contains: "multiple of the 16")
        assertRejected("embed_dim: 100\nnum_heads: 3\n", key: "embed_dim", contains: "not divisible")
        assertRejected("embed_dim: 32\nnum_heads: 8\n", key: "num_heads", contains: "below 8")
        assertRejected("depth: 1\nnum_heads: 2\nembed_dim: 32\nreduction: 4\n", key: "reduction", contains: "exceeds")
        assertRejected("model: vit_huge\n", key: "model", contains: "deit_small")
        assertRejected("batch_size: 0\n", key: "batch_size", contains: "out of range")
        assertRejected("lr: fast\n", key: "lr", contains: "expected a number")
        assertRejected("drop_path: 1.5\n", key: "drop_path", contains: "out of range")
        assertRejected("finetune: nowhere.pth\n", key: "finetune", contains: "does not exist")
        assertRejected("eval_scales: []\n", key: "eval_scales", contains: "one or more")
        assertRejected("epochs: 3\nscales: [1.0]\n", key: "scales", contains: "not used by 'weaktr'")
        assertRejected("reprob: 2\n", key: "reprob", contains: "out of range")
        assertRejected("data_set: COCO\n", key: "img_list", contains: "default training list")
    }

    func testTrainingKeysAreRefusedForOtherJobs() throws {
        let path = folder.appendingPathComponent("cam.yaml").path
        FileManager.default.createFile(atPath: path, contents: Data("""
        job: cam
        data_path: data
        img_list: data/voc12/train_id.txt
        resume: deit.pth
        epochs: 3
        """.utf8))
        XCTAssertThrowsError(try Manifest.load(path: path)) {
            XCTAssertEqual(($0 as? ManifestError)?.key, "epochs", "\($0)")
        }
    }

    func testPrecisionKey() throws {
        XCTAssertEqual(try load("").precision, "fp32")
        XCTAssertEqual(try load("precision: bf16\n").precision, "bf16")
        assertRejected("precision: fp16\n", key: "precision", contains: "expected fp32 or bf16")
        let path = folder.appendingPathComponent("cam-precision.yaml").path
        FileManager.default.createFile(atPath: path, contents: Data("""
        job: cam
        data_path: data
        img_list: data/voc12/train_id.txt
        resume: deit.pth
        precision: bf16
        """.utf8))
        XCTAssertThrowsError(try Manifest.load(path: path)) {
            XCTAssertEqual(($0 as? ManifestError)?.key, "precision", "\($0)")
        }
    }
}
