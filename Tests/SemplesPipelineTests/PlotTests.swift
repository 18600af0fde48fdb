import Foundation
import SemplesEngine
import SemplesFormats
@testable import SemplesPipeline
import XCTest

final class PlotTests: XCTestCase {
    func testNiceTicks() {
        let a = LineChart.niceTicks(range: 0.40...0.59, target: 8)
        XCTAssertEqual(a.values.first!, 0.40, accuracy: 1e-12)
        XCTAssertEqual(a.values.last!, 0.60, accuracy: 1e-12)
        XCTAssertEqual(a.decimals, 2)
        XCTAssertTrue(a.values.count >= 5 && a.values.count <= 12, "\(a.values)")
        let b = LineChart.niceTicks(range: 0...1234, target: 6)
        XCTAssertEqual(b.values, [0, 250, 500, 750, 1000, 1250])
        XCTAssertEqual(b.decimals, 0)
        XCTAssertEqual(LineChart.format(0.455, decimals: 2), "0.46")
    }

    func testEveryPrintableGlyphIsDefined() {
        for code in 32...126 {
            let c = Character(Unicode.Scalar(code)!)
            XCTAssertNotNil(BitmapFont.table[c], "glyph for '\(c)'")
        }
    }

    /// A '1' drawn at scale 1 puts exactly its 5×7 pattern on the canvas.
    func testTextDrawsTheGlyphBits() {
        var canvas = Canvas(width: 10, height: 12)
        canvas.text("1", x: 2, y: 1, .black)
        let expected = ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."]
        for (row, line) in expected.enumerated() {
            for (column, ch) in line.enumerated() {
                XCTAssertEqual(canvas.pixel(x: 2 + column, y: 1 + row) == .black, ch == "#", "row \(row) column \(column)")
            }
        }
        XCTAssertEqual(canvas.pixel(x: 0, y: 0), .white)
    }

    func testLineCoverage() {
        var canvas = Canvas(width: 20, height: 20)
        canvas.line(2, 10, 17, 10, .black, thickness: 1)
        XCTAssertEqual(canvas.pixel(x: 9, y: 10), .black)
        XCTAssertEqual(canvas.pixel(x: 9, y: 12), .white)
        XCTAssertEqual(canvas.pixel(x: 19, y: 10), .white)
        // A polyline through a joint does not darken the joint beyond full coverage of its colour.
        canvas.polyline([(2, 2), (8, 2), (8, 8)], RGB(0, 114, 178), thickness: 2)
        XCTAssertEqual(canvas.pixel(x: 8, y: 2), RGB(0, 114, 178))
    }

    /// A two-series chart with a legend and an annotation renders every series colour and
    /// round-trips through PNG.
    func testChartRendersAndWritesPNG() throws {
        func decay(_ epoch: Int, _ scale: Double, _ rate: Double, _ floor: Double) -> (x: Double, y: Double?) {
            let x = Double(epoch)
            let y: Double = scale * exp(-x / rate) + floor
            return (x: x, y: y)
        }
        let loss = (0..<60).map { decay($0, 2.5, 15, 0.2) }
        var validation = (0..<60).map { decay($0, 2.6, 18, 0.3) }
        validation[30].y = nil
        var chart = LineChart(title: "Training loss", xLabel: "epoch", yLabel: "loss",
                              series: [LineChart.Series(name: "train", points: loss),
                                       LineChart.Series(name: "validation", points: validation)])
        chart.annotations = [LineChart.Annotation(x: 40, y: 0.9, text: "note")]
        let canvas = chart.render()
        XCTAssertEqual(canvas.width, 720)
        var seen = Set<Int>()
        for y in 0..<canvas.height {
            for x in 0..<canvas.width {
                let p = canvas.pixel(x: x, y: y)
                if p == RGB.palette[0] { seen.insert(0) }
                if p == RGB.palette[1] { seen.insert(1) }
            }
        }
        XCTAssertEqual(seen, [0, 1])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chart-\(UUID().uuidString).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try chart.writePNG(to: path)
        let back = try ImageIO.read(path)
        XCTAssertEqual(back.width, 720)
        XCTAssertEqual(back.height, 460)
        XCTAssertEqual(back.pixels, canvas.pixels)
        if let dir = ProcessInfo.processInfo.environment["SEMPLES_PLOT_DIR"] {
            try chart.writePNG(to: dir + "/loss-curves.png")
        }
    }

    func testMeanIoUChartMarksTheBestThreshold() throws {
        let (images, _) = try EvaluationFixtures.sweepImages("voc")
        var evaluator = CAMEvaluator(dataSet: .voc, mode: .curve(start: 35, end: 60))
        for image in images {
            try evaluator.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height, width: image.width, source: image.id)
        }
        let metrics = evaluator.metrics()
        let chart = metrics.meanIoUChart()
        XCTAssertEqual(chart.series[0].points.count, metrics.curve.count)
        XCTAssertEqual(chart.annotations.count, 1)
        XCTAssertTrue(chart.annotations[0].text.contains("0.44"), chart.annotations[0].text)
        let canvas = chart.render()
        XCTAssertTrue(canvas.pixels.contains(200), "annotation colour drawn")
        if let dir = ProcessInfo.processInfo.environment["SEMPLES_PLOT_DIR"] {
            try chart.writePNG(to: dir + "/miou-curve.png")
        }
    }

    /// A fixed-threshold report has one point; its chart still gets a sensible x range.
    func testSinglePointChart() throws {
        var evaluator = CAMEvaluator(dataSet: .coco, mode: .fixed(threshold: 0.42))
        try evaluator.add(cams: [0: Tensor([1, 3], values: [0.9, 0.1, 0.5])], groundTruth: [1, 0, 0], height: 1, width: 3, source: "p")
        let chart = evaluator.metrics().meanIoUChart()
        XCTAssertEqual(chart.xRange!.lowerBound, 0.37, accuracy: 1e-12)
        let canvas = chart.render()
        XCTAssertEqual(chart.annotations.first?.text, "t=0.42  50.00%")
        XCTAssertTrue(canvas.pixels.contains(200), "the marked point is drawn")
        if let dir = ProcessInfo.processInfo.environment["SEMPLES_PLOT_DIR"] {
            try chart.writePNG(to: dir + "/single-point.png")
        }
    }
}
