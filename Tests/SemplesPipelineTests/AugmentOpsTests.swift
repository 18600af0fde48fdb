import Foundation
import SemplesEngine
import SemplesFormats
@testable import SemplesPipeline
import XCTest

/// Loads fixtures/augment (written by scripts/fixtures/augment.py with Pillow).
enum AugmentFixtures {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("fixtures/augment")
    }()

    static func tensors(_ name: String) throws -> [String: NamedTensor] {
        let (list, _) = try SafeTensors.read(directory.appendingPathComponent(name).path)
        return Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
    }

    /// An [H, W, 3] or [H, W] uint8 tensor as an image.
    static func image(_ t: NamedTensor) -> Image8 {
        let dims = t.tensor.shape.dims
        let channels = dims.count == 3 ? dims[2] : 1
        let values = t.tensor.view.toArray()
        return Image8(width: dims[1], height: dims[0], channels: channels, pixels: values.map { UInt8($0) })
    }
}

/// Geometric operations (rotate, shear, translate, general affine) are held to at most one level
/// on at least 99% of values: they evaluate trigonometry and double-precision cubic weights whose
/// last bits could differ between C libraries; on the reference machine they agree exactly.
/// Everything else must agree exactly.
///
/// Agreement of two images: largest level difference and the share of values within one level.
struct Agreement {
    var maxDiff = 0
    var values = 0
    var exact = 0
    var withinOne = 0

    mutating func add(_ a: Image8, _ b: Image8) {
        precondition(a.pixels.count == b.pixels.count)
        for i in 0..<a.pixels.count {
            let d = abs(Int(a.pixels[i]) - Int(b.pixels[i]))
            maxDiff = max(maxDiff, d)
            values += 1
            if d == 0 { exact += 1 }
            if d <= 1 { withinOne += 1 }
        }
    }

    var withinOneShare: Double { values == 0 ? 1 : Double(withinOne) / Double(values) }
    var summary: String { "max \(maxDiff), exact \(exact)/\(values), within 1: \(withinOne)/\(values)" }
}

final class AugmentOpsTests: XCTestCase {
    static let fill: [UInt8] = [124, 116, 104]

    struct Case {
        let name: String
        let params: [String: Any]
        let input: Image8
        let expected: Image8
    }

    static let cases: [Case] = {
        do {
            let t = try AugmentFixtures.tensors("ops.safetensors")
            let data = try Data(contentsOf: AugmentFixtures.directory.appendingPathComponent("ops.json"))
            let json = try JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
            return json.keys.sorted().map { key in
                let p = json[key]!
                let input = AugmentFixtures.image(t["image.\(p["image"] as! String)"]!)
                return Case(name: key, params: p, input: input, expected: AugmentFixtures.image(t[key]!))
            }
        } catch {
            fatalError("augment fixtures: \(error)")
        }
    }()

    static func cases(op: String) -> [Case] { cases.filter { $0.params["op"] as? String == op } }

    /// Runs every case of `op` and checks each one.
    func check(_ op: String, geometric: Bool = false, _ run: (Case) -> Image8) {
        let list = Self.cases(op: op)
        XCTAssertFalse(list.isEmpty, "no fixture cases for \(op)")
        var total = Agreement()
        for c in list {
            let out = run(c)
            XCTAssertEqual(out.width, c.expected.width, c.name)
            XCTAssertEqual(out.height, c.expected.height, c.name)
            XCTAssertEqual(out.channels, c.expected.channels, c.name)
            guard out.pixels.count == c.expected.pixels.count else { continue }
            var a = Agreement()
            a.add(out, c.expected)
            total.add(out, c.expected)
            if geometric {
                XCTAssertGreaterThanOrEqual(a.withinOneShare, 0.99, "\(c.name): \(a.summary)")
            } else {
                // Integer and single-precision arithmetic in Pillow's order: exact.
                XCTAssertEqual(a.maxDiff, 0, "\(c.name): \(a.summary)")
            }
        }
        print("augment agreement \(op) (\(list.count) cases): \(total.summary)")
    }

    func testAutocontrast() { check("autocontrast") { PILOps.autocontrast($0.input) } }
    func testEqualize() { check("equalize") { PILOps.equalize($0.input) } }
    func testInvert() { check("invert") { PILOps.invert($0.input) } }
    func testLuma() { check("luma") { PILOps.luma($0.input) } }
    func testSmooth() { check("smooth") { PILOps.smooth($0.input) } }

    func testPosterize() {
        check("posterize") { PILOps.posterize($0.input, bits: $0.params["bits"] as! Int) }
    }

    func testSolarize() {
        check("solarize") { PILOps.solarize($0.input, threshold: $0.params["threshold"] as! Int) }
        check("solarize_add") { PILOps.solarizeAdd($0.input, add: $0.params["add"] as! Int) }
    }

    func testEnhance() {
        check("color") { PILOps.color($0.input, factor: $0.params["factor"] as! Double) }
        check("contrast") { PILOps.contrast($0.input, factor: $0.params["factor"] as! Double) }
        check("brightness") { PILOps.brightness($0.input, factor: $0.params["factor"] as! Double) }
        check("sharpness") { PILOps.sharpness($0.input, factor: $0.params["factor"] as! Double) }
    }

    func testRotate() {
        check("rotate", geometric: true) {
            PILOps.rotate($0.input, degrees: $0.params["degrees"] as! Double, fill: Self.fill)
        }
    }

    func testAffine() {
        check("affine", geometric: true) {
            PILOps.affine($0.input, matrix: $0.params["matrix"] as! [Double], fill: Self.fill)
        }
    }

    func testResizedCrop() {
        check("resized_crop") { c in
            let b = c.params["box"] as! [Int]
            let crop = RandomResizedCrop(size: c.params["size"] as! Int)
            return crop.resized(c.input, box: CropBox(x: b[0], y: b[1], width: b[2], height: b[3]))
        }
    }

    /// Each RandAugment operation through its level mapping, at magnitudes 0, 4.7, 9 and 10 with
    /// both signs.
    func testRandAugmentOperations() {
        let ops = Set(Self.cases(op: "randaug").map { $0.params["ra_op"] as! String })
        XCTAssertEqual(ops, Set(RandAugmentOp.allCases.map(\.rawValue)))
        for op in RandAugmentOp.allCases {
            let geometric = [.rotate, .shearX, .shearY, .translateXRel, .translateYRel].contains(op)
            let list = Self.cases(op: "randaug").filter { $0.params["ra_op"] as? String == op.rawValue }
            XCTAssertEqual(list.count, 16, op.rawValue)
            var total = Agreement()
            for c in list {
                let out = op.apply(c.input, magnitude: c.params["magnitude"] as! Double,
                                   negate: c.params["negate"] as! Bool, fill: Self.fill)
                var a = Agreement()
                a.add(out, c.expected)
                total.add(out, c.expected)
                if geometric {
                    XCTAssertGreaterThanOrEqual(a.withinOneShare, 0.99, "\(c.name): \(a.summary)")
                } else {
                    XCTAssertEqual(a.maxDiff, 0, "\(c.name): \(a.summary)")
                }
            }
            print("augment agreement RandAugment \(op.rawValue): \(total.summary)")
        }
    }

    /// The comparison is not vacuous: a wrong parameter is caught.
    func testComparisonHasTeeth() {
        let c = Self.cases(op: "rotate").first { ($0.params["degrees"] as! Double) == 27.0 }!
        var a = Agreement()
        a.add(PILOps.rotate(c.input, degrees: 26.0, fill: Self.fill), c.expected)
        XCTAssertLessThan(a.withinOneShare, 0.99)
        let e = Self.cases(op: "contrast").first { ($0.params["factor"] as! Double) == 1.45 }!
        var b = Agreement()
        b.add(PILOps.contrast(e.input, factor: 1.5), e.expected)
        XCTAssertGreaterThan(b.maxDiff, 1)
    }

    func testNormalizeMatchesTorch() throws {
        let t = try AugmentFixtures.tensors("normalize.safetensors")
        let image = AugmentFixtures.image(t["image"]!)
        let expected = t["tensor"]!.tensor.view.toArray()
        var out = [Float](repeating: .nan, count: expected.count)
        out.withUnsafeMutableBufferPointer { TrainingAugmentation.normalize(image, into: $0.baseAddress!) }
        var maxDiff: Float = 0
        for i in 0..<out.count { maxDiff = max(maxDiff, abs(out[i] - expected[i])) }
        XCTAssertEqual(maxDiff, 0, "ToTensor + Normalize differs by up to \(maxDiff)")
    }
}
