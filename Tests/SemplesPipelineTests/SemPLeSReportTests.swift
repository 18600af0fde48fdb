import Foundation
import XCTest
@testable import SemplesPipeline

/// The report's co-occurrence error counts: only ground-truth background pixels of images whose
/// background is the labelled class's home count, and only predictions of that class are errors.
final class SemPLeSReportTests: XCTestCase {
    let names = LabelSet.voc.classNames
    let homes = ["cow": "grass", "boat": "water"]

    func testCountsHomeBackgroundPixelsLabelledAsTheClass() {
        var labels = [Float](repeating: 0, count: 20)
        labels[9] = 1   // cow (label value 10)
        labels[3] = 1   // boat (label value 4), whose home is water
        // Pixels: background ×4, cow ×1, ignore ×1.
        let gt: [UInt8] = [0, 0, 0, 0, 10, 255]
        let prediction: [UInt8] = [10, 10, 4, 0, 10, 10]
        var home = [Int](repeating: 0, count: 21), wrong = [Int](repeating: 0, count: 21)
        SemPLeSReport.countCooccurrence(labels: labels, background: "grass", homes: homes, names: names, groundTruth: gt,
                                        prediction: prediction, homePixels: &home, wrong: &wrong)
        XCTAssertEqual(home[10], 4)
        XCTAssertEqual(wrong[10], 2)
        // The boat is away from home here: nothing is counted for it.
        XCTAssertEqual(home[4], 0)
        XCTAssertEqual(wrong[4], 0)
        SemPLeSReport.countCooccurrence(labels: labels, background: "water", homes: homes, names: names, groundTruth: gt,
                                        prediction: prediction, homePixels: &home, wrong: &wrong)
        XCTAssertEqual(home[4], 4)
        XCTAssertEqual(wrong[4], 1)
        XCTAssertEqual(home[10], 4)
    }

    func testTableEndsWithTheHeadline() {
        let row = { (name: String, miou: Double) in
            SemPLeSReport.ModelRow(name: name, checkpoint: "x", threshold: 0.4, validationMIoU: miou, miou: miou,
                                   classIoU: ["background": 0.9, "cow": miou], cooccurrence: ["cow": 0.1], meanCooccurrence: 0.1)
        }
        let report = SemPLeSReport(validationImages: 2, testImages: 3, models: [row("WeakTr base", 0.4), row("stage (a)", 0.42),
                                                                              row("SemPLeS (c)", 0.435)], prompts: [])
        XCTAssertEqual(report.table().split(separator: "\n").last, "SemPLeS CAM mIoU 43.5% vs WeakTr base 40.0% (+3.5 points)")
    }
}
