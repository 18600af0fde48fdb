import Foundation
import SemplesEngine
@testable import SemplesPipeline
import XCTest

final class CRFTests: XCTestCase {
    struct Case {
        let name: String
        let image: [UInt8]
        let labels: [UInt8]
        let refined: [UInt8]
        let height: Int
        let width: Int
        let labelCount: Int
        let parameters: DenseCRFParameters
    }

    func loadCases() throws -> (cases: [Case], tensors: [String: Tensor]) {
        let t = try EvaluationFixtures.tensors("crf.safetensors")
        let meta = try EvaluationFixtures.json("crf.json")
        let cases = meta.keys.sorted().map { name -> Case in
            let m = meta[name] as! [String: Any]
            return Case(name: name,
                        image: t["\(name).image"]!.toArray().map { UInt8($0) },
                        labels: t["\(name).labels"]!.toArray().map { UInt8($0) },
                        refined: t["\(name).refined"]!.toArray().map { UInt8($0) },
                        height: m["height"] as! Int, width: m["width"] as! Int, labelCount: m["labels"] as! Int,
                        parameters: (m["parameters"] as! String) == "coco" ? .coco : .voc)
        }
        return (cases, t)
    }

    /// The refined label maps agree with pydensecrf on all but under 1% of the pixels.
    func testAgreesWithPydensecrf() throws {
        let (cases, _) = try loadCases()
        XCTAssertGreaterThanOrEqual(cases.count, 4)
        var differing = 0, total = 0, changedByCRF = 0
        for c in cases {
            let out = DenseCRF.refine(labels: c.labels, labelCount: c.labelCount, image: c.image,
                                      width: c.width, height: c.height, parameters: c.parameters)
            let diff = zip(out, c.refined).filter { $0 != $1 }.count
            changedByCRF += zip(c.refined, c.labels).filter { $0 != $1 }.count
            XCTAssertLessThan(Double(diff), 0.01 * Double(out.count), "case \(c.name): \(diff) of \(out.count) pixels differ")
            differing += diff
            total += out.count
        }
        // The CRF must actually change the input for the comparison to mean anything.
        XCTAssertGreaterThan(Double(changedByCRF), 0.05 * Double(total))
        print("dense CRF: \(differing) of \(total) pixels differ from pydensecrf (\(String(format: "%.4f", 100 * Double(differing) / Double(total)))%)")
    }

    /// The marginals themselves match after one and after ten mean-field iterations.
    func testMarginalsMatchPydensecrf() throws {
        let (cases, t) = try loadCases()
        let c = cases.first { $0.name == "a" }!
        let n = c.width * c.height
        for (iterations, key) in [(1, "a.q1"), (10, "a.q10")] {
            var p = c.parameters
            p.iterations = iterations
            let q = DenseCRF.marginals(labels: c.labels, labelCount: c.labelCount, image: c.image,
                                       width: c.width, height: c.height, parameters: p)
            let reference = t[key]!.toArray()  // [L, H, W]
            XCTAssertTrue(q.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
            var worst: Float = 0, total: Float = 0
            for i in 0..<n {
                for l in 0..<c.labelCount {
                    let difference = abs(q[i * c.labelCount + l] - reference[l * n + i])
                    if !(difference <= worst) { worst = difference }
                    total += reference[l * n + i]
                }
            }
            XCTAssertEqual(total, Float(n), accuracy: 0.01 * Float(n), "reference marginals sum to one per pixel")
            XCTAssertLessThan(worst, 1e-4, "\(iterations) iterations: largest marginal difference \(worst)")
            print("dense CRF marginals after \(iterations) iterations: largest difference from pydensecrf \(worst); q[5] \(q[5]) vs \(reference[(5 % c.labelCount) * n + 5 / c.labelCount])")
        }
    }

    func testUnaryFromLabels() {
        let u = DenseCRF.unaryFromLabels([0, 2], labelCount: 3, confidence: 0.7)
        let given = Float(-log(0.7)), other = Float(-log(0.15))
        XCTAssertEqual(u, [given, other, other, other, other, given])
    }

    /// The lattice's normalised response approximates a true Gaussian filter: compare with a
    /// brute-force sum over all pairs on a small point set.
    func testLatticeApproximatesGaussianFilter() {
        var rng = SeededGenerator(seed: 7)
        let n = 300, d = 3
        var features = [Float](repeating: 0, count: n * d)
        for i in 0..<(n * d) { features[i] = rng.nextUniform() * 4 }
        var values = [Float](repeating: 0, count: n)
        for i in 0..<n { values[i] = features[i * d] > 2 ? 1 : 0 }
        let lattice = features.withUnsafeBufferPointer { PermutohedralLattice(features: $0.baseAddress!, dimension: d, count: n) }
        var filtered = [Float](repeating: 0, count: n), ones = [Float](repeating: 1, count: n), norm = [Float](repeating: 0, count: n)
        values.withUnsafeBufferPointer { x in filtered.withUnsafeMutableBufferPointer { lattice.filter(x.baseAddress!, into: $0.baseAddress!, valueSize: 1) } }
        ones.withUnsafeBufferPointer { x in norm.withUnsafeMutableBufferPointer { lattice.filter(x.baseAddress!, into: $0.baseAddress!, valueSize: 1) } }
        var worst: Float = 0
        for i in 0..<n {
            var num: Float = 0, den: Float = 0
            for j in 0..<n {
                var dist: Float = 0
                for k in 0..<d { dist += (features[i * d + k] - features[j * d + k]) * (features[i * d + k] - features[j * d + k]) }
                let w = expf(-dist / 2)
                num += w * values[j]
                den += w
            }
            // Weighted averages (filter(v)/filter(1)) lie close to the exact ones.
            worst = max(worst, abs(filtered[i] / norm[i] - num / den))
        }
        XCTAssertLessThan(worst, 0.15, "largest difference of normalised averages \(worst)")
    }

    func testUniformLabelsStayUniform() {
        let (w, h) = (9, 7)
        let image = [UInt8](repeating: 90, count: w * h * 3)
        let labels = [UInt8](repeating: 1, count: w * h)
        XCTAssertEqual(DenseCRF.refine(labels: labels, labelCount: 3, image: image, width: w, height: h, parameters: .coco), labels)
    }
}

/// Timing of the CRF on a VOC-sized image; runs only when SEMPLES_CRF_BENCH is set (speed is
/// reported, never asserted).
final class CRFBenchmarkTests: XCTestCase {
    func testTimeOnVOCSizedImage() throws {
        guard ProcessInfo.processInfo.environment["SEMPLES_CRF_BENCH"] != nil else {
            throw XCTSkip("set SEMPLES_CRF_BENCH=1 to time the dense CRF on a 500×375 image")
        }
        let (w, h, labelCount) = (500, 375, 3)
        var rng = SeededGenerator(seed: 3)
        var image = [UInt8](repeating: 0, count: w * h * 3)
        var labels = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let inside = (x - 250) * (x - 250) / 4 + (y - 180) * (y - 180) < 90 * 90
                let base: Float = inside ? 180 : 70
                for c in 0..<3 { image[(y * w + x) * 3 + c] = UInt8(max(0, min(255, base + 20 * rng.nextNormal()))) }
                labels[y * w + x] = inside ? (x < 250 ? 1 : 2) : 0
                if rng.nextUniform() < 0.1 { labels[y * w + x] = UInt8(Int(rng.nextUniform() * 2.999)) }
            }
        }
        let start = Date()
        let cpuStart = clock()
        let out = DenseCRF.refine(labels: labels, labelCount: labelCount, image: image, width: w, height: h, parameters: .voc)
        let seconds = Date().timeIntervalSince(start)
        let cpu = Double(clock() - cpuStart) / Double(CLOCKS_PER_SEC)
        XCTAssertEqual(out.count, w * h)
        print("dense CRF 500×375, 3 labels, 10 iterations: \(String(format: "%.3f", seconds)) s wall, \(String(format: "%.3f", cpu)) s CPU")
        // Phases: lattice construction and one filtering pass of each kernel.
        var t0 = Date()
        let bilateral = NormalizedKernel(features: DenseCRF.bilateralFeatures(image: image, width: w, height: h, sxy: 83, srgb: 5),
                                         dimension: 5, count: w * h)
        let build5 = Date().timeIntervalSince(t0)
        t0 = Date()
        let gaussian = NormalizedKernel(features: DenseCRF.positionFeatures(width: w, height: h, sxy: 4), dimension: 2, count: w * h)
        let build2 = Date().timeIntervalSince(t0)
        let q = [Float](repeating: 0.3, count: w * h * labelCount)
        var filtered = [Float](repeating: 0, count: w * h * labelCount)
        t0 = Date()
        q.withUnsafeBufferPointer { x in filtered.withUnsafeMutableBufferPointer { bilateral.apply(x.baseAddress!, into: $0.baseAddress!, valueSize: labelCount) } }
        let filter5 = Date().timeIntervalSince(t0)
        t0 = Date()
        q.withUnsafeBufferPointer { x in filtered.withUnsafeMutableBufferPointer { gaussian.apply(x.baseAddress!, into: $0.baseAddress!, valueSize: labelCount) } }
        let filter2 = Date().timeIntervalSince(t0)
        print(String(format: "  bilateral lattice %.3f s (%d vertices), Gaussian lattice %.3f s (%d vertices), filter %.4f / %.4f s",
                     build5, bilateral.lattice.vertexCount, build2, gaussian.lattice.vertexCount, filter5, filter2))
    }
}
