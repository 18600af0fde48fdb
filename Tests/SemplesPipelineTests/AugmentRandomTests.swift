import Foundation
import SemplesEngine
import SemplesFormats
@testable import SemplesPipeline
import XCTest

/// The random parts of the training augmentation: distributions and bounds of the draws, the
/// fallbacks, the presets and repeatability from a seed. (Streams cannot match the reference's,
/// spec §4.1, so these check the laws the draws follow.)
final class AugmentRandomTests: XCTestCase {
    /// Expected acceptance rate and mean accepted area fraction of one crop attempt on a W×H
    /// image, by integrating over the area fraction and the log-aspect on a fine grid.
    func cropExpectation(width: Int, height: Int) -> (acceptance: Double, meanArea: Double) {
        let n = 600, m = 200
        let lo = log(3.0 / 4.0), hi = log(4.0 / 3.0)
        var accepted = 0.0, areaSum = 0.0
        let area = Double(width * height)
        for i in 0..<n {
            let s = 0.08 + (1.0 - 0.08) * (Double(i) + 0.5) / Double(n)
            for j in 0..<m {
                let r = exp(lo + (hi - lo) * (Double(j) + 0.5) / Double(m))
                let w = (s * area * r).squareRoot().rounded(), h = (s * area / r).squareRoot().rounded()
                if w <= Double(width) && h <= Double(height) {
                    accepted += 1
                    areaSum += s
                }
            }
        }
        return (accepted / Double(n * m), areaSum / accepted)
    }

    func testRandomResizedCropGeometry() {
        let crop = RandomResizedCrop()
        var rng = SeededGenerator(seed: 11)
        let width = 500, height = 375, draws = 4000
        var areaSum = 0.0, offsetX = 0.0, offsetY = 0.0, offsets = 0
        var minArea = 1.0, maxArea = 0.0, wide = 0, tall = 0
        for _ in 0..<draws {
            let b = crop.box(width: width, height: height, rng: &rng)
            XCTAssertTrue(b.x >= 0 && b.y >= 0 && b.x + b.width <= width && b.y + b.height <= height, "\(b)")
            let fraction = Double(b.width * b.height) / Double(width * height)
            areaSum += fraction
            minArea = min(minArea, fraction)
            maxArea = max(maxArea, fraction)
            // Aspect within [3/4, 4/3] up to the rounding of each side.
            let aspect = Double(b.width) / Double(b.height)
            let slack = 1.0 / Double(min(b.width, b.height))
            XCTAssertGreaterThanOrEqual(aspect, 0.75 * (1 - slack) - 1e-9, "\(b)")
            XCTAssertLessThanOrEqual(aspect, 4.0 / 3.0 * (1 + slack) + 1e-9, "\(b)")
            if aspect > 1.2 { wide += 1 }
            if aspect < 1 / 1.2 { tall += 1 }
            if b.width < width { offsetX += Double(b.x) / Double(width - b.width) }
            if b.height < height { offsetY += Double(b.y) / Double(height - b.height); offsets += 1 }
        }
        let expected = cropExpectation(width: width, height: height)
        let mean = areaSum / Double(draws)
        // The area fraction is roughly uniform on its accepted range: σ ≈ 0.27/√4000 ≈ 0.004.
        XCTAssertEqual(mean, expected.meanArea, accuracy: 0.015, "mean area fraction")
        XCTAssertLessThan(minArea, 0.1)
        XCTAssertGreaterThan(maxArea, 0.7)
        XCTAssertGreaterThanOrEqual(minArea, 0.079)
        XCTAssertGreaterThan(wide, draws / 10)
        XCTAssertGreaterThan(tall, draws / 20)
        XCTAssertEqual(offsetX / Double(draws), 0.5, accuracy: 0.03, "horizontal offsets uniform")
        XCTAssertEqual(offsetY / Double(offsets), 0.5, accuracy: 0.03, "vertical offsets uniform")
        print("random resized crop on \(width)x\(height): mean area \(mean), expected \(expected.meanArea), "
              + "acceptance per attempt \(expected.acceptance)")
    }

    func testRandomResizedCropFallback() {
        let crop = RandomResizedCrop()
        var rng = SeededGenerator(seed: 3)
        // Too wide for any attempt: the smallest area (8 % of 2000×50) needs a height over 50.
        for _ in 0..<20 {
            XCTAssertEqual(crop.box(width: 2000, height: 50, rng: &rng), CropBox(x: 966, y: 0, width: 67, height: 50))
            XCTAssertEqual(crop.box(width: 40, height: 900, rng: &rng), CropBox(x: 0, y: 423, width: 40, height: 53))
        }
        // An aspect inside the range keeps the whole image.
        XCTAssertEqual(crop.fallbackBox(width: 100, height: 90), CropBox(x: 0, y: 0, width: 100, height: 90))
        // Too wide: the height kept, the width 30 · 4/3 = 40, centred.
        XCTAssertEqual(crop.fallbackBox(width: 300, height: 30), CropBox(x: 130, y: 0, width: 40, height: 30))
        XCTAssertEqual(pythonRound(2.5), 2)
        XCTAssertEqual(pythonRound(3.5), 4)
        // Images of a few pixels never give an empty box.
        for (w, h) in [(1, 1), (2, 1), (1, 3), (2, 2)] {
            for _ in 0..<200 {
                let b = crop.box(width: w, height: h, rng: &rng)
                XCTAssertTrue(b.width >= 1 && b.height >= 1 && b.x + b.width <= w && b.y + b.height <= h, "\(b) in \(w)x\(h)")
            }
        }
        // The output always has the requested size, even from the fallback.
        let image = Image8(width: 2000, height: 50, channels: 3,
                           pixels: (0..<(2000 * 50 * 3)).map { UInt8($0 % 251) })
        let out = crop.apply(image, rng: &rng)
        XCTAssertEqual([out.width, out.height, out.channels], [224, 224, 3])
    }

    func testRandomErasingBounds() {
        let erasing = RandomErasing()
        var rng = SeededGenerator(seed: 5)
        let side = 224, draws = 6000
        var erased = 0, areaSum = 0.0, tall = 0, wide = 0
        for _ in 0..<draws {
            guard let b = erasing.box(width: side, height: side, rng: &rng) else { continue }
            erased += 1
            XCTAssertTrue(b.x >= 0 && b.y >= 0 && b.x + b.width <= side && b.y + b.height <= side, "\(b)")
            XCTAssertTrue(b.width < side && b.height < side, "\(b)")
            // Area in [0.02, 1/3] and aspect h/w in [0.3, 1/0.3], up to the rounding of each side.
            let w = Double(b.width), h = Double(b.height), total = Double(side * side)
            XCTAssertGreaterThanOrEqual((w + 1) * (h + 1), 0.02 * total, "\(b)")
            XCTAssertLessThanOrEqual(max(w - 1, 0) * max(h - 1, 0), total / 3, "\(b)")
            XCTAssertGreaterThanOrEqual((h + 0.5) / max(w - 0.5, 0.5), 0.3, "\(b)")
            XCTAssertLessThanOrEqual(max(h - 0.5, 0) / (w + 0.5), 1 / 0.3, "\(b)")
            areaSum += w * h / total
            if h > 2 * w { tall += 1 }
            if w > 2 * h { wide += 1 }
        }
        // p = 0.25: σ of the rate over 6000 draws ≈ 0.0056.
        XCTAssertEqual(Double(erased) / Double(draws), 0.25, accuracy: 0.025)
        XCTAssertEqual(areaSum / Double(erased), (0.02 + 1.0 / 3.0) / 2, accuracy: 0.02, "mean erased area")
        XCTAssertGreaterThan(tall, erased / 20)
        XCTAssertGreaterThan(wide, erased / 20)
    }

    func testRandomErasingFill() {
        let erasing = RandomErasing(probability: 1)
        var rng = SeededGenerator(seed: 9)
        let c = 3, h = 64, w = 48
        var image = [Float](repeating: 7, count: c * h * w)
        let b = image.withUnsafeMutableBufferPointer {
            erasing.apply(to: $0.baseAddress!, channels: c, height: h, width: w, rng: &rng)
        }
        guard let b else { return XCTFail("p = 1 must erase") }
        var inside: [Float] = []
        for k in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let v = image[(k * h + y) * w + x]
                    if x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height {
                        inside.append(v)
                    } else {
                        XCTAssertEqual(v, 7, "outside the box at \(k),\(y),\(x)")
                    }
                }
            }
        }
        XCTAssertEqual(inside.count, c * b.width * b.height)
        let mean = inside.reduce(0, +) / Float(inside.count)
        let variance = inside.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(inside.count)
        XCTAssertEqual(mean, 0, accuracy: 6 / Float(inside.count).squareRoot())
        XCTAssertEqual(variance, 1, accuracy: 0.15)
        XCTAssertEqual(Set(inside).count, inside.count, "pixel mode: independent values")
        XCTAssertNil(RandomErasing(probability: 0).box(width: 10, height: 10, rng: &rng))
    }

    func testRandAugmentDraws() {
        let ra = RandAugment()
        var rng = SeededGenerator(seed: 21)
        let draws = 20000
        var fired = 0, counts = [RandAugmentOp: Int](), magnitudeSum = 0.0, negated = 0, signed = 0
        for _ in 0..<draws {
            for step in ra.draw(rng: &rng) {
                fired += 1
                counts[step.op, default: 0] += 1
                XCTAssertTrue(step.magnitude >= 0 && step.magnitude <= 10)
                magnitudeSum += step.magnitude
                if step.op.isSigned {
                    signed += 1
                    if step.negate { negated += 1 }
                } else {
                    XCTAssertFalse(step.negate)
                }
            }
        }
        // Two layers, each firing with p = 0.5: one operation per image on average.
        XCTAssertEqual(Double(fired) / Double(draws), 1.0, accuracy: 0.03)
        XCTAssertEqual(Set(counts.keys), Set(RandAugmentOp.allCases))
        for (op, n) in counts {
            XCTAssertEqual(Double(n) / Double(fired), 1.0 / 15.0, accuracy: 0.012, op.rawValue)
        }
        // N(9, 0.5) clipped to [0, 10]: the mean stays at 9 to within 0.001.
        XCTAssertEqual(magnitudeSum / Double(fired), 9.0, accuracy: 0.02)
        XCTAssertEqual(Double(negated) / Double(signed), 0.5, accuracy: 0.02)
    }

    func testRandAugmentLevels() {
        XCTAssertEqual(RandAugmentOp.rotate.level(magnitude: 9)!, 27, accuracy: 1e-12)
        XCTAssertEqual(RandAugmentOp.shearX.level(magnitude: 9)!, 0.27, accuracy: 1e-12)
        XCTAssertEqual(RandAugmentOp.translateYRel.level(magnitude: 10)!, 0.45, accuracy: 1e-12)
        XCTAssertEqual(RandAugmentOp.colorIncreasing.level(magnitude: 9)!, 0.81, accuracy: 1e-12)
        XCTAssertEqual(RandAugmentOp.posterizeIncreasing.level(magnitude: 9), 1)
        XCTAssertEqual(RandAugmentOp.posterizeIncreasing.level(magnitude: 10), 0)
        XCTAssertEqual(RandAugmentOp.posterizeIncreasing.level(magnitude: 4.9), 3)
        XCTAssertEqual(RandAugmentOp.solarizeIncreasing.level(magnitude: 9), 26)
        XCTAssertEqual(RandAugmentOp.solarizeAdd.level(magnitude: 9), 99)
        XCTAssertNil(RandAugmentOp.equalize.level(magnitude: 9))
        // Magnitude 10 posterizes to zero bits: black.
        let image = Image8(width: 2, height: 1, channels: 3, pixels: [255, 128, 7, 200, 100, 50])
        XCTAssertEqual(RandAugmentOp.posterizeIncreasing.apply(image, magnitude: 10, negate: false, fill: [0, 0, 0]).pixels,
                       [0, 0, 0, 0, 0, 0])
    }

    func testRandAugmentConfig() throws {
        XCTAssertEqual(try RandAugment(config: "rand-m9-mstd0.5-inc1"), RandAugment())
        let r = try RandAugment(config: "rand-m7-n3-mstd0-inc1")
        XCTAssertEqual([r.magnitude, Double(r.layers), r.magnitudeStd], [7, 3, 0])
        for bad in ["", "original", "rand-m9-mstd0.5", "rand-m9-inc1-x3", "rand-mX-inc1", "rand-m9-mstd-1-inc1"] {
            XCTAssertThrowsError(try RandAugment(config: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("'\(bad)'"), "\(error)")
            }
        }
    }

    func testPresets() {
        let ac = TrainingAugmentation.stageAC, b = TrainingAugmentation.stageB
        XCTAssertEqual(ac.crop, RandomResizedCrop(size: 224, scale: 0.08...1, ratio: 0.75...(4.0 / 3.0)))
        XCTAssertEqual(ac.flipProbability, 0.5)
        XCTAssertEqual(ac.randAugment, RandAugment(ops: RandAugmentOp.increasing, layers: 2, probability: 0.5,
                                                   magnitude: 9, magnitudeStd: 0.5, fill: [124, 116, 104]))
        XCTAssertEqual(ac.erasing, RandomErasing(probability: 0.25, area: 0.02...(1.0 / 3.0), aspect: 0.3...(1 / 0.3),
                                                 mode: .pixel))
        XCTAssertEqual(b.crop, ac.crop)
        XCTAssertNil(b.randAugment)
        XCTAssertNil(b.erasing)
        XCTAssertEqual(ac.outputCount, 3 * 224 * 224)
    }

    func testFromReferenceFlags() throws {
        // main1/main3 (and WeakTr) defaults, then main2's.
        XCTAssertEqual(try TrainingAugmentation(autoAugment: "rand-m9-mstd0.5-inc1", colorJitter: 0.4, reprob: 0.25,
                                                remode: "pixel", recount: 1), .stageAC)
        XCTAssertEqual(try TrainingAugmentation(autoAugment: "None", colorJitter: 0, reprob: 0, recount: 0), .stageB)
        XCTAssertEqual(try TrainingAugmentation(autoAugment: nil, reprob: 0), .stageB)
        XCTAssertEqual(try TrainingAugmentation(size: 192, autoAugment: "", reprob: 0.5, remode: "const").erasing?.mode, .const)
        let bad: [(String, () throws -> TrainingAugmentation)] = [
            ("aa", { try TrainingAugmentation(autoAugment: "v0", reprob: 0) }),
            ("color_jitter", { try TrainingAugmentation(autoAugment: nil, colorJitter: 0.4, reprob: 0) }),
            ("reprob", { try TrainingAugmentation(autoAugment: nil, reprob: 1.5) }),
            ("remode", { try TrainingAugmentation(autoAugment: nil, reprob: 0.25, remode: "noise") }),
            ("recount", { try TrainingAugmentation(autoAugment: nil, reprob: 0.25, recount: 3) }),
        ]
        for (flag, make) in bad {
            XCTAssertThrowsError(try make(), flag) { error in
                XCTAssertEqual((error as? AugmentationFlagError)?.flag, flag, "\(error)")
            }
        }
    }

    /// A constant image stays constant through crop, flip and resize: every output value is the
    /// normalised colour, channel-major.
    func testStageBOnConstantImage() {
        let colour: [UInt8] = [200, 30, 120]
        var pixels = [UInt8](repeating: 0, count: 90 * 70 * 3)
        for i in 0..<pixels.count { pixels[i] = colour[i % 3] }
        let image = Image8(width: 90, height: 70, channels: 3, pixels: pixels)
        var rng = SeededGenerator(seed: 1)
        var out = [Float](repeating: .nan, count: TrainingAugmentation.stageB.outputCount)
        out.withUnsafeMutableBufferPointer { TrainingAugmentation.stageB.apply(image, rng: &rng, into: TensorView($0.baseAddress!, [$0.count])) }
        let plane = 224 * 224
        for (k, v) in colour.enumerated() {
            let expected = (Float(v) / 255 - TrainingAugmentation.imagenetMean[k]) / TrainingAugmentation.imagenetStd[k]
            XCTAssertTrue(out[(k * plane)..<((k + 1) * plane)].allSatisfy { $0 == expected }, "channel \(k)")
        }
    }

    func testFlipProbability() {
        // A crop that always takes the whole square image, so only the flip changes it.
        let aug = TrainingAugmentation(crop: RandomResizedCrop(size: 6, scale: 1...1, ratio: 1...1))
        let image = Image8(width: 6, height: 6, channels: 3, pixels: (0..<108).map { UInt8($0) })
        let mirrored = image.flippedHorizontally()
        var rng = SeededGenerator(seed: 2)
        var flipped = 0
        for _ in 0..<2000 {
            let out = aug.augmentPixels(image, rng: &rng)
            if out == mirrored { flipped += 1 } else { XCTAssertEqual(out, image) }
        }
        XCTAssertEqual(Double(flipped) / 2000, 0.5, accuracy: 0.04)
    }

    func testRepeatableFromSeed() {
        var pixels = [UInt8](repeating: 0, count: 71 * 53 * 3)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 37 + i / 213) % 256) }
        let image = Image8(width: 71, height: 53, channels: 3, pixels: pixels)
        let aug = TrainingAugmentation.stageAC
        func run(seed: UInt64, count: Int) -> ([[Float]], SeededGenerator) {
            var rng = SeededGenerator(seed: seed)
            var outs: [[Float]] = []
            for _ in 0..<count {
                var out = [Float](repeating: .nan, count: aug.outputCount)
                out.withUnsafeMutableBufferPointer { aug.apply(image, rng: &rng, into: TensorView($0.baseAddress!, [$0.count])) }
                XCTAssertFalse(out.contains { !$0.isFinite })
                outs.append(out)
            }
            return (outs, rng)
        }
        let (a, ra) = run(seed: 42, count: 3)
        let (b, rb) = run(seed: 42, count: 3)
        XCTAssertEqual(a, b)
        XCTAssertEqual(ra, rb)
        XCTAssertNotEqual(a[0], a[1])
        let (c, _) = run(seed: 43, count: 1)
        XCTAssertNotEqual(a[0], c[0])
        // Restarting from a saved generator state continues the same sequence.
        var rng = SeededGenerator(seed: 42)
        var scratch = [Float](repeating: 0, count: aug.outputCount)
        scratch.withUnsafeMutableBufferPointer { aug.apply(image, rng: &rng, into: TensorView($0.baseAddress!, [$0.count])) }
        let saved = try! JSONDecoder().decode(SeededGenerator.self, from: JSONEncoder().encode(rng))
        var resumed = saved
        var next = [Float](repeating: 0, count: aug.outputCount)
        next.withUnsafeMutableBufferPointer { aug.apply(image, rng: &resumed, into: TensorView($0.baseAddress!, [$0.count])) }
        XCTAssertEqual(next, a[1])
    }

    /// A data path that crops, flips and normalises itself and calls the post-crop seam in the
    /// same order gets the recipe's result.
    func testPostCropSeamMatchesRecipe() {
        var pixels = [UInt8](repeating: 0, count: 80 * 60 * 3)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 13 + i / 240 * 7) % 256) }
        let image = Image8(width: 80, height: 60, channels: 3, pixels: pixels)
        let recipe = TrainingAugmentation.stageAC
        for seed: UInt64 in [1, 2, 3, 4] {
            var g1 = SeededGenerator(seed: seed), g2 = g1
            var whole = [Float](repeating: 0, count: recipe.outputCount)
            whole.withUnsafeMutableBufferPointer { recipe.apply(image, rng: &g1, into: TensorView($0.baseAddress!, [$0.count])) }
            var parts = [Float](repeating: 0, count: recipe.outputCount)
            var px = recipe.crop.apply(image, rng: &g2)
            if g2.unitDouble() < recipe.flipProbability { px = px.flippedHorizontally() }
            px = recipe.postCrop.augment(px, generator: &g2)
            parts.withUnsafeMutableBufferPointer { buf in
                TrainingAugmentation.normalize(px, into: buf.baseAddress!)
                recipe.postCrop.augment(normalized: TensorView(buf.baseAddress!, [3, 224, 224]), generator: &g2)
            }
            XCTAssertEqual(whole, parts, "seed \(seed)")
            XCTAssertEqual(g1, g2)
        }
        XCTAssertEqual(TrainingAugmentation.stageB.postCrop, PostCropAugmentation())
    }

    /// The data path's augmentation: crop and flip alone draws nothing more than the crop and
    /// the flip; the stage (a)/(c) one repeats from a seed and does change images.
    func testStageAugmentationRepeatsAndChangesImages() {
        var pixels = [UInt8](repeating: 0, count: 90 * 64 * 3)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 29 + i / 270 * 11) % 256) }
        let image = Image8(width: 90, height: 64, channels: 3, pixels: pixels)
        func run(_ t: TrainingAugmentation, seed: UInt64) -> ([Float], SeededGenerator) {
            var g = SeededGenerator(seed: seed)
            let out = Tensor([3, 224, 224])
            t.apply(image, rng: &g, into: out.view)
            return (out.toArray(), g)
        }
        var changed = 0
        for seed: UInt64 in 1...6 {
            let plain = run(.cropAndFlip(size: 224), seed: seed)
            let empty = run(TrainingAugmentation(crop: RandomResizedCrop(size: 224), randAugment: nil, erasing: nil), seed: seed)
            XCTAssertEqual(plain.0, empty.0)
            XCTAssertEqual(plain.1, empty.1)
            let full = TrainingAugmentation.stageAC(size: 224)
            let a = run(full, seed: seed), b = run(full, seed: seed)
            XCTAssertEqual(a.0, b.0)
            XCTAssertFalse(a.0.contains { !$0.isFinite })
            if a.0 != plain.0 { changed += 1 }
        }
        // Some operation fires or an erasure happens with probability 1 − 0.5² · 0.75 ≈ 0.81 per
        // image, and nearly every one of them changes this image.
        XCTAssertGreaterThan(changed, 1)
    }
}
