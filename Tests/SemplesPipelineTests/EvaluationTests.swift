import Foundation
import SemplesEngine
import SemplesFormats
@testable import SemplesPipeline
import XCTest

final class EvaluationTests: XCTestCase {
    /// The one-pass sweep must reproduce the literal per-threshold numpy evaluation.
    func checkSweep(_ name: String, labelSet: LabelSet) throws {
        let (images, expected) = try EvaluationFixtures.sweepImages(name)
        let start = expected["start"] as! Int, end = expected["end"] as! Int
        XCTAssertEqual(expected["num_classes"] as! Int, labelSet.classCount)
        var sweep = ThresholdSweep(thresholds: ThresholdSweep.curveThresholds(start: start, end: end))
        for image in images {
            try sweep.add(CAMStack(image.cams, source: image.id), groundTruth: image.groundTruth, source: image.id)
        }
        XCTAssertEqual(sweep.imageCount, images.count)
        let means = sweep.allCounts().map { $0.meanIoU(classCount: labelSet.classCount) }
        let reference = EvaluationFixtures.optionalDoubles(expected["all_mean_iou"])
        XCTAssertEqual(means.count, reference.count)
        for (m, r) in zip(means, reference) {
            XCTAssertEqual(m, r!, accuracy: 1e-12)
        }

        let walk = GreedyThreshold.walk(means)
        XCTAssertEqual(walk.best, expected["best_index"] as? Int)
        XCTAssertEqual(walk.evaluated, expected["evaluated"] as! Int)
        XCTAssertLessThan(walk.evaluated, end - start, "the fixture should exercise the early stop")

        var evaluator = CAMEvaluator(dataSet: labelSet, mode: .curve(start: start, end: end))
        for image in images {
            try evaluator.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height,
                              width: image.width, source: image.id)
        }
        let metrics = evaluator.metrics()
        XCTAssertEqual(metrics.bestThreshold, expected["best_threshold"] as! Double)
        XCTAssertEqual(metrics.bestMeanIoU, expected["best_mean_iou"] as! Double, accuracy: 1e-6)
        XCTAssertEqual(metrics.curve.count, walk.evaluated)
        XCTAssertEqual(metrics.imageCount, images.count)
        let perClass = EvaluationFixtures.optionalDoubles(expected["per_class_iou"])
        XCTAssertEqual(metrics.perClass.count, labelSet.classCount)
        for (got, want) in zip(metrics.perClass, perClass) {
            if let w = want { XCTAssertEqual(got.iou!, w, accuracy: 1e-12, "class \(got.label)") } else { XCTAssertNil(got.iou) }
        }
        XCTAssertTrue(perClass.contains { $0 == nil }, "the fixture should have empty classes")
        let best = sweep.counts(at: walk.best!)
        let classes = labelSet.classCount
        XCTAssertEqual(Array(best.predicted[0..<classes]), (expected["predicted"] as! [Int]).map(Int64.init))
        XCTAssertEqual(Array(best.truth[0..<classes]), (expected["truth"] as! [Int]).map(Int64.init))
        XCTAssertEqual(Array(best.truePositive[0..<classes]), (expected["true_positive"] as! [Int]).map(Int64.init))

        var fixed = CAMEvaluator(dataSet: labelSet, mode: .fixed(threshold: expected["fixed_threshold"] as! Double))
        for image in images {
            let prediction = try fixed.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height,
                                           width: image.width, source: image.id)
            XCTAssertEqual(prediction?.count, image.height * image.width)
        }
        XCTAssertEqual(fixed.metrics().bestMeanIoU, expected["fixed_mean_iou"] as! Double, accuracy: 1e-6)
        XCTAssertEqual(fixed.metrics().mode, "fixed")

        // Two workers' evaluators merged give the single evaluator's report.
        var workers = [CAMEvaluator(dataSet: labelSet, mode: .curve(start: start, end: end)),
                       CAMEvaluator(dataSet: labelSet, mode: .curve(start: start, end: end))]
        for (j, image) in images.enumerated() {
            try workers[j % 2].add(cams: image.cams, groundTruth: image.groundTruth, height: image.height,
                                   width: image.width, source: image.id)
        }
        workers[0].merge(workers[1])
        XCTAssertEqual(workers[0].metrics(), metrics)
    }

    func testSweepMatchesReferenceVOC() throws { try checkSweep("voc", labelSet: .voc) }
    func testSweepMatchesReferenceCOCO() throws { try checkSweep("coco", labelSet: .coco) }

    /// Accumulating every threshold in one pass equals evaluating each threshold on its own.
    func testOnePassEqualsPerThresholdEvaluation() throws {
        let (images, _) = try EvaluationFixtures.sweepImages("voc")
        let thresholds = ThresholdSweep.curveThresholds(start: 0, end: 100)
        var sweep = ThresholdSweep(thresholds: thresholds)
        var direct = [ConfusionCounts](repeating: ConfusionCounts(), count: thresholds.count)
        for image in images {
            let stack = try CAMStack(image.cams, source: image.id)
            try sweep.add(stack, groundTruth: image.groundTruth, source: image.id)
            for (i, t) in thresholds.enumerated() {
                try direct[i].add(prediction: stack.labels(threshold: t), groundTruth: image.groundTruth, source: image.id)
            }
        }
        for i in thresholds.indices {
            XCTAssertEqual(sweep.counts(at: i), direct[i], "threshold \(thresholds[i])")
        }
        // Split across two accumulators and merged: the same counts.
        var first = ThresholdSweep(thresholds: thresholds), second = ThresholdSweep(thresholds: thresholds)
        for (j, image) in images.enumerated() {
            let stack = try CAMStack(image.cams, source: image.id)
            if j % 2 == 0 {
                try first.add(stack, groundTruth: image.groundTruth, source: image.id)
            } else {
                try second.add(stack, groundTruth: image.groundTruth, source: image.id)
            }
        }
        first.merge(second)
        XCTAssertEqual(first.allCounts(), sweep.allCounts())
        XCTAssertEqual(first.pixelCount, sweep.pixelCount)
    }

    func testGreedyWalkStopsAtFirstNonIncrease() {
        XCTAssertEqual(GreedyThreshold.walk([0.5, 0.6, 0.6, 0.7]).best, 1)
        XCTAssertEqual(GreedyThreshold.walk([0.5, 0.6, 0.6, 0.7]).evaluated, 3)
        XCTAssertEqual(GreedyThreshold.walk([0.5, 0.4, 0.9]).best, 0)
        XCTAssertEqual(GreedyThreshold.walk([0.1, 0.2, 0.3]).best, 2)
        XCTAssertEqual(GreedyThreshold.walk([0.1, 0.2, 0.3]).evaluated, 3)
        XCTAssertNil(GreedyThreshold.walk([0.0, 0.5]).best)
        XCTAssertNil(GreedyThreshold.walk([.nan, 0.5]).best)
        XCTAssertEqual(GreedyThreshold.walk([0.3, .nan, 0.5]).evaluated, 2)
    }

    /// A CAM value equal to the threshold goes to background; equal classes go to the lower key.
    func testTiesGoToBackgroundAndLowerClass() throws {
        let t = 0.43
        let a = Tensor([1, 4], values: [Float(t), 0.9, 0.2, 0.7])
        let b = Tensor([1, 4], values: [0.1, 0.9, 0.1, 0.8])
        let stack = try CAMStack([14: b, 2: a], source: "tie")
        XCTAssertEqual(stack.classIndices, [2, 14])
        XCTAssertEqual(stack.labels(threshold: t), [0, 3, 0, 15])
        var sweep = ThresholdSweep(thresholds: [0.2, t, 0.8])
        try sweep.add(stack, groundTruth: [0, 3, 255, 15], source: "tie")
        var direct = ConfusionCounts()
        try direct.add(prediction: stack.labels(threshold: t), groundTruth: [0, 3, 255, 15], source: "tie")
        XCTAssertEqual(sweep.counts(at: 1), direct)
        XCTAssertEqual(direct.predicted[0], 1)
        XCTAssertEqual(direct.truePositive[3], 1)
        // At 0.8 the last pixel (max 0.8) turns background: 0.8 == Float(0.8).
        XCTAssertEqual(sweep.counts(at: 2).predicted[15], 0)
    }

    /// Ground-truth values outside the class range are counted as pixels but in no class's T.
    func testOutOfRangeTruthAndEmptyClasses() throws {
        var counts = ConfusionCounts()
        try counts.add(prediction: [1, 1, 0, 0], groundTruth: [1, 30, 0, 255], source: "x")
        let iou = counts.intersectionOverUnion(classCount: 21)
        XCTAssertEqual(iou[0], 1.0)
        XCTAssertEqual(iou[1], 0.5)
        XCTAssertTrue(iou[2].isNaN)
        XCTAssertEqual(counts.meanIoU(classCount: 21), 0.75)
    }

    func testNanMeanUsesPairwiseOrder() {
        // numpy sums 8 running partial sums for 8…128 values; check against a plain left fold.
        let values = (0..<91).map { i -> Double in i % 7 == 3 ? .nan : 1.0 / Double(i + 3) }
        let kept = values.filter { !$0.isNaN }
        let plain = kept.reduce(0, +) / Double(kept.count)
        XCTAssertEqual(NumericMean.nanMean(values), plain, accuracy: 1e-15)
        XCTAssertTrue(NumericMean.nanMean([.nan, .nan]).isNaN)
    }

    func testBadInputThrowsNamingTheSource() throws {
        let a = Tensor([3, 4]), b = Tensor([3, 5])
        XCTAssertThrowsError(try CAMStack([0: a, 1: b], source: "cams/2007_000032.npy")) { error in
            XCTAssertTrue("\(error)".contains("2007_000032"), "\(error)")
        }
        let stack = try CAMStack([0: a], source: "s")
        var sweep = ThresholdSweep(thresholds: [0.4])
        XCTAssertThrowsError(try sweep.add(stack, groundTruth: [UInt8](repeating: 0, count: 11), source: "gt/x.png")) { error in
            XCTAssertTrue("\(error)".contains("gt/x.png"), "\(error)")
        }
        XCTAssertThrowsError(try CAMStack([0: Tensor([12])], source: "flat.npy"))
        XCTAssertThrowsError(try CAMStack([300: a], source: "key.npy"))
        var evaluator = CAMEvaluator(dataSet: .voc, mode: .fixed(threshold: 0.4), crf: .voc)
        XCTAssertThrowsError(try evaluator.add(cams: [0: a], groundTruth: [UInt8](repeating: 0, count: 12),
                                               height: 3, width: 4, image: nil, source: "no-image"))
    }

    /// An image without class maps predicts background everywhere.
    func testEmptyDictionaryIsBackground() throws {
        var evaluator = CAMEvaluator(dataSet: .voc, mode: .curve(start: 40, end: 45))
        try evaluator.add(cams: [:], groundTruth: [0, 0, 5, 255], height: 2, width: 2, source: "empty")
        let m = evaluator.metrics()
        XCTAssertEqual(m.perClass[0].iou, 2.0 / 3.0)
        XCTAssertEqual(m.perClass[5].iou, 0)
        XCTAssertEqual(m.bestMeanIoU, 1.0 / 3.0, accuracy: 1e-15)
        // Every threshold gives the same mIoU, so the walk stops at the second one.
        XCTAssertEqual(m.curve.count, 2)
        XCTAssertEqual(m.bestThreshold, 0.40)
    }

    func testMetricsJSONRoundTripWithNulls() throws {
        var evaluator = CAMEvaluator(dataSet: .coco, mode: .fixed(threshold: 0.42))
        try evaluator.add(cams: [0: Tensor([1, 2], values: [0.9, 0.1])], groundTruth: [1, 0], height: 1, width: 2, source: "j")
        let metrics = evaluator.metrics()
        let data = try metrics.jsonData()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"dataSet\" : \"COCO\""), text)
        XCTAssertTrue(text.contains("\"name\" : \"toothbrush\""))
        XCTAssertTrue(text.contains("null"))
        let decoded = try JSONDecoder().decode(EvaluationMetrics.self, from: data)
        XCTAssertEqual(decoded, metrics)
        XCTAssertEqual(metrics.perClass.count, 91)
        XCTAssertEqual(metrics.bestMeanIoU, 1.0)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).json").path
        try metrics.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try JSONDecoder().decode(EvaluationMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: path))), metrics)
    }

    func testClassNames() {
        XCTAssertEqual(LabelSet.voc.classNames.count, 21)
        XCTAssertEqual(LabelSet.coco.classNames.count, 91)
        XCTAssertEqual(LabelSet.voc.classNames[15], "person")
        XCTAssertEqual(LabelSet.coco.classNames[1], "person")
        XCTAssertEqual(LabelSet.coco.classNames[90], "toothbrush")
    }

    /// Threshold-at-a-time passes driven by ThresholdWalk give the one-pass curve's report.
    func testThresholdWalkMatchesOnePassCurve() throws {
        let (images, _) = try EvaluationFixtures.sweepImages("voc")
        var curve = CAMEvaluator(dataSet: .voc, mode: .curve(start: 35, end: 60))
        for image in images {
            try curve.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height, width: image.width, source: image.id)
        }
        var walk = ThresholdWalk(start: 35)
        var passes = 0
        while let t = walk.next {
            var pass = CAMEvaluator(dataSet: .voc, mode: .fixed(threshold: t))
            for image in images {
                try pass.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height, width: image.width, source: image.id)
            }
            walk.record(pass.fixedCounts, dataSet: .voc)
            passes += 1
        }
        XCTAssertEqual(passes, curve.metrics().curve.count)
        XCTAssertEqual(walk.metrics(dataSet: .voc, crf: false, imageCount: images.count), curve.metrics())
        XCTAssertEqual(curve.metrics().summary["best_threshold"], 0.44)
    }

    /// A curve with CRF in one evaluator (CRF at every threshold) reports what per-threshold
    /// passes with the greedy stop report.
    func testCurveWithCRFMatchesThresholdWalk() throws {
        let (images, _) = try EvaluationFixtures.sweepImages("coco")
        let subset = Array(images.prefix(2))
        let rgb = subset.map { image in
            (0..<(image.height * image.width * 3)).map { i -> UInt8 in
                let g = image.groundTruth[i / 3]
                return (g == 0 || g == 255 ? 50 : UInt8(90 + 25 * Int(g % 6))) &+ UInt8((i * 11) % 23)
            }
        }
        var curve = CAMEvaluator(dataSet: .coco, mode: .curve(start: 36, end: 48), crf: .coco)
        for (image, pixels) in zip(subset, rgb) {
            let returned = try curve.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height,
                                         width: image.width, image: pixels, source: image.id)
            XCTAssertNil(returned)
        }
        var walk = ThresholdWalk(start: 36, end: 48)
        while let t = walk.next {
            var pass = CAMEvaluator(dataSet: .coco, mode: .fixed(threshold: t), crf: .coco)
            for (image, pixels) in zip(subset, rgb) {
                try pass.add(cams: image.cams, groundTruth: image.groundTruth, height: image.height,
                             width: image.width, image: pixels, source: image.id)
            }
            walk.record(pass.fixedCounts, dataSet: .coco)
        }
        let metrics = curve.metrics()
        XCTAssertEqual(metrics, walk.metrics(dataSet: .coco, crf: true, imageCount: subset.count))
        XCTAssertTrue(metrics.crf)
        XCTAssertEqual(metrics.mode, "curve")
    }

    /// A curve starting at or after its end evaluates nothing and reports 0 and 0, as the reference.
    func testEmptyCurve() throws {
        var evaluator = CAMEvaluator(dataSet: .voc, mode: .curve(start: 75, end: 60))
        try evaluator.add(cams: [0: Tensor([1, 2], values: [0.9, 0.1])], groundTruth: [1, 0], height: 1, width: 2, source: "e")
        let metrics = evaluator.metrics()
        XCTAssertEqual(metrics.bestThreshold, 0)
        XCTAssertEqual(metrics.bestMeanIoU, 0)
        XCTAssertTrue(metrics.curve.isEmpty)
        XCTAssertNoThrow(try metrics.jsonData())
        XCTAssertNoThrow(metrics.meanIoUChart().render())
        // A fixed threshold over an image whose pixels are all ignored: mIoU reported as 0, not NaN.
        var ignored = CAMEvaluator(dataSet: .voc, mode: .fixed(threshold: 0.4))
        try ignored.add(cams: [:], groundTruth: [255, 255], height: 1, width: 2, source: "i")
        XCTAssertEqual(ignored.metrics().bestMeanIoU, 0)
        XCTAssertNoThrow(try ignored.metrics().jsonData())
    }

    /// With CRF, the fixed-threshold prediction is the CRF of the argmax indices mapped to labels.
    func testFixedThresholdWithCRF() throws {
        let (images, _) = try EvaluationFixtures.sweepImages("coco")
        let image = images[0]
        var rgb = [UInt8](repeating: 0, count: image.height * image.width * 3)
        let stack = try CAMStack(image.cams, source: image.id)
        let plain = stack.labels(threshold: 0.42)
        for i in 0..<(image.height * image.width) {
            // Colours follow the ground truth, which the thresholded CAM only roughly matches.
            let g = image.groundTruth[i]
            let v: UInt8 = g == 0 || g == 255 ? 40 : UInt8(100 + 30 * Int(g % 5))
            for c in 0..<3 { rgb[i * 3 + c] = v &+ UInt8((i * 7 + c * 13) % 17) }
        }
        var evaluator = CAMEvaluator(dataSet: .coco, mode: .fixed(threshold: 0.42), crf: .coco)
        let gt = Image8(width: image.width, height: image.height, channels: 1, pixels: image.groundTruth)
        let rgbImage = Image8(width: image.width, height: image.height, channels: 3, pixels: rgb)
        let prediction = try evaluator.add(cams: image.cams, groundTruth: gt, image: rgbImage, source: image.id)!
        var indices = [UInt8](repeating: 0, count: plain.count)
        indices.withUnsafeMutableBufferPointer { stack.argmaxIndices(threshold: 0.42, into: $0) }
        let refined = DenseCRF.refine(labels: indices, labelCount: stack.stackCount, image: rgb,
                                      width: image.width, height: image.height, parameters: .coco)
        XCTAssertEqual(prediction, refined.map { stack.labelLookup[Int($0)] })
        let changed = zip(prediction, plain).filter { $0 != $1 }.count
        XCTAssertGreaterThan(changed, 0, "the CRF should change some pixels")
        XCTAssertTrue(evaluator.metrics().crf)
        // A three-channel ground truth or a mis-sized image is refused.
        XCTAssertThrowsError(try evaluator.add(cams: image.cams, groundTruth: rgbImage, image: rgbImage, source: "x"))
        let small = Image8(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 0, count: 12))
        XCTAssertThrowsError(try evaluator.add(cams: image.cams, groundTruth: gt, image: small, source: "x"))
    }
}
