import Foundation
import XCTest
import SemplesEngine
import SemplesFormats
import SemplesModels
@testable import SemplesPipeline

/// A whole `job: cam` over several images, against the float64 PyTorch reference of
/// scripts/fixtures/weaktr_cam_job.py: four images of different sizes and aspect ratios (odd widths,
/// one tall, one square), two or three classes each, class 14 in all of them, scales 1.0 and 1.2 with
/// flips, all in one job so that buffers are reused from image to image. Every map must be finite, in
/// [0, 1], of the image's size, equal to the same image run alone, and close to the reference; the
/// same job twice writes the same bytes; 1 and 2 threads.
///
/// This is the test that catches a map read after its storage was freed (the first floats of a
/// freed block hold the allocator's free-list pointers) and state leaking from one image to the next.
final class CAMJobIntegrityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/weaktr")
    static let ids = ["j0", "j1", "j2", "j3"]

    var folder: URL!
    var reference: [String: Tensor] = [:]
    var previousThreads = Parallel.threads

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("camjob-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for t in try SafeTensors.read(Self.fixtures.appendingPathComponent("cam_job.safetensors").path).tensors {
            reference[t.name] = t.tensor
        }
        previousThreads = Parallel.threads
    }

    override func tearDownWithError() throws {
        Parallel.configure(threads: previousThreads)
        try? FileManager.default.removeItem(at: folder)
    }

    func image(_ id: String) -> Image8 {
        let t = reference["\(id).image"]!
        return Image8(width: t.shape[1], height: t.shape[0], channels: 3, pixels: t.toArray().map { UInt8($0) })
    }

    func labels(_ id: String) -> [Float] { reference["\(id).labels"]!.toArray() }

    /// A VOC-layout dataset holding the fixture's images losslessly (PNG bytes: the reader goes by
    /// content, not by the .jpg name) and a job manifest over it.
    func writeJob() throws -> String {
        let root = folder.appendingPathComponent("data")
        let images = root.appendingPathComponent("voc12/VOCdevkit/VOC2012/JPEGImages")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        var dict: [String: [Float]] = [:]
        for id in Self.ids {
            try ImageIO.writePNG(image(id), to: images.appendingPathComponent("\(id).jpg").path)
            dict[id] = labels(id)
        }
        try Npy.writeLabelDict(dict, to: root.appendingPathComponent("voc12/cls_labels.npy").path)
        try Data((Self.ids.joined(separator: "\n") + "\n").utf8)
            .write(to: root.appendingPathComponent("voc12/list.txt"))
        let manifest = folder.appendingPathComponent("cam.yaml")
        try Data("""
        job: cam
        data_set: VOC12
        data_path: data
        img_list: data/voc12/list.txt
        resume: \(Self.fixtures.appendingPathComponent("cam_job_model.safetensors").path)
        reduction: 2
        pool_type: max
        scales: [1.0, 1.2]
        """.utf8).write(to: manifest)
        return manifest.path
    }

    func runJob(threads: Int, into name: String) throws -> [String: Data] {
        let manifest = try writeJob()
        let out = folder.appendingPathComponent(name)
        XCTAssertEqual(JobRunner.run(manifestPath: manifest, outputFolder: out.path, threads: threads, echo: false),
                       .succeeded, (try? String(contentsOf: out.appendingPathComponent("log.txt"))) ?? "")
        var files: [String: Data] = [:]
        for id in Self.ids {
            files[id] = try Data(contentsOf: out.appendingPathComponent("cams/\(id).npy"))
        }
        return files
    }

    /// The error bound of a normalised map: the model runs in float32 (unit roundoff 6e-8) through
    /// dot products of up to 4·48 terms, two blocks, softmax and a bicubic/bilinear chain; its relative
    /// error is measured at ~1e-6 and bounded here by 1e-5 of the largest |S|. Min-max normalisation
    /// divides by (max S − min S), so the bound on the normalised map is 1e-5 · max|S| / (max S − min S)
    /// ("spread" in the fixture), times 2 for the two ends of the range.
    func tolerance(_ id: String, _ k: Int) -> Float {
        2 * 1e-5 * reference["\(id).spread\(k)"]!.data[0]
    }

    static var modelPath: String { fixtures.appendingPathComponent("cam_job_model.safetensors").path }

    func check(_ files: [String: Data], threads: Int) throws {
        for id in Self.ids {
            let path = folder.appendingPathComponent("check-\(id).npy").path
            try files[id]!.write(to: URL(fileURLWithPath: path))
            let cams = try Npy.readCAMDict(path)
            let img = image(id), lab = labels(id)
            let positives = (0..<20).filter { lab[$0] > 0 }
            XCTAssertEqual(cams.keys.sorted(), positives, "\(id): classes")
            // The same image alone: a fresh model and generator, nothing carried over from others.
            let model = try Checkpoints.loadWeakTr(Self.modelPath, classCount: 20, reduction: 2, pooling: .max)
            let single = CAMGenerator(model: model, scales: [1.0, 1.2]).cams(for: img, labels: lab)
            for k in positives {
                guard let cam = cams[k] else { continue }
                XCTAssertEqual(cam.shape.dims, [img.height, img.width], "\(id) class \(k): shape")
                let got = cam.toArray()
                let bad = got.firstIndex { !$0.isFinite || $0 < 0 || $0 > 1 }
                XCTAssertNil(bad, "\(id) class \(k) (\(threads) threads): value \(bad.map { got[$0] } ?? 0) at \(bad ?? 0)")
                XCTAssertEqual(got, single[k]!.toArray(), "\(id) class \(k) (\(threads) threads): differs from the image run alone")
                let want = reference["\(id).cam\(k)"]!.toArray()
                var worst: Float = 0, at = 0
                for i in 0..<want.count where abs(got[i] - want[i]) > worst { worst = abs(got[i] - want[i]); at = i }
                XCTAssertLessThanOrEqual(worst, tolerance(id, k),
                                         "\(id) class \(k) (\(threads) threads): max error \(worst) at pixel \(at)")
            }
        }
    }

    func testJobOverSeveralImagesMatchesReferenceAloneAndAgain() throws {
        for threads in [1, 2] {
            let first = try runJob(threads: threads, into: "out-\(threads)-a")
            let second = try runJob(threads: threads, into: "out-\(threads)-b")
            XCTAssertEqual(first, second, "the same job twice (\(threads) threads) must write the same bytes")
            Parallel.configure(threads: threads)
            try check(first, threads: threads)
        }
    }

    /// The output check before result.json: a CAM file with a non-finite or out-of-range value, or
    /// of the wrong size, fails the job with a reason naming the file.
    func testOutputCheckRejectsBadMaps() throws {
        let good = Tensor([3, 5])
        XCTAssertNoThrow(try OutputCheck.camMaps([4: good.view], width: 5, height: 3, file: "a.npy"))
        good.data[7] = .nan
        XCTAssertThrowsError(try OutputCheck.camMaps([4: good.view], width: 5, height: 3, file: "a.npy")) {
            XCTAssertTrue("\($0)".contains("'a.npy'") && "\($0)".contains("class 4"), "\($0)")
        }
        good.data[7] = 1.5
        XCTAssertThrowsError(try OutputCheck.camMaps([4: good.view], width: 5, height: 3, file: "a.npy"))
        good.data[7] = 0.5
        XCTAssertThrowsError(try OutputCheck.camMaps([4: good.view], width: 3, height: 5, file: "a.npy")) {
            XCTAssertTrue("\($0)".contains("3×5"), "\($0)")
        }
    }
}
