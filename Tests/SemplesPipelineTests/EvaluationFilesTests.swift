import Foundation
import SemplesEngine
import SemplesFormats
@testable import SemplesPipeline
import XCTest

/// Evaluation from files in the reference's own formats: pickled `.npy` CAM dictionaries and
/// palette PNG ground truth, read through SemplesFormats as the job runner reads them.
final class EvaluationFilesTests: XCTestCase {
    func testCurveFromNpyAndPNGFiles() throws {
        let root = EvaluationFixtures.directory.appendingPathComponent("files")
        let expected = try EvaluationFixtures.json("files/expected.json")
        let list = try String(contentsOf: root.appendingPathComponent("list.txt"), encoding: .utf8)
        let ids = list.split(separator: "\n").map(String.init)
        XCTAssertEqual(ids, expected["image_ids"] as! [String])
        var evaluator = CAMEvaluator(dataSet: .voc, mode: .curve(start: 40, end: 60))
        for id in ids {
            let camPath = root.appendingPathComponent("cams/\(id).npy").path
            let cams = try Npy.readCAMDict(camPath)
            let gt = try ImageIO.readLabels(root.appendingPathComponent("gt/\(id).png").path)
            try evaluator.add(cams: cams, groundTruth: gt, source: camPath)
        }
        let metrics = evaluator.metrics()
        XCTAssertEqual(metrics.bestThreshold, expected["best_threshold"] as! Double)
        XCTAssertEqual(metrics.bestMeanIoU, expected["best_mean_iou"] as! Double, accuracy: 1e-6)
        XCTAssertEqual(metrics.curve.count, expected["evaluated"] as! Int)
        let reference = EvaluationFixtures.optionalDoubles(expected["all_mean_iou"])
        for (point, want) in zip(metrics.curve, reference) {
            XCTAssertEqual(point.meanIoU!, want!, accuracy: 1e-12)
        }
        XCTAssertEqual(metrics.perClass.map(\.truthPixels), (expected["truth"] as! [Int]).map(Int64.init))
    }
}
