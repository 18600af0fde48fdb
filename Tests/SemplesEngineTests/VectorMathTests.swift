import Foundation
import XCTest
@testable import SemplesEngine

final class VectorMathTests: XCTestCase {
    func testSoftmaxRowWithTail() {
        let x = Tensor([11], values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1000])
        let p = Tensor([11])
        Softmax.forward(x.view, into: p.view)
        let z = (1...10).map { Foundation.exp(Double($0) - 10) }.reduce(0, +)
        for i in 0..<10 { XCTAssertEqual(Double(p.data[i]), Foundation.exp(Double(i + 1) - 10) / z, accuracy: 1e-7) }
        XCTAssertEqual(p.data[10], 0, accuracy: 1e-30)
    }

    /// Unnormalised rows times their inverse sums give the softmax, for row lengths with and
    /// without a tail.
    func testExponentiateGivesSoftmaxWithInverseSums() {
        var g = SeededGenerator(seed: 5)
        for c in [8, 13, 3] {
            let x = Tensor([4, c]), p = Tensor([4, c]), inverse = Tensor([4])
            for i in 0..<x.count { x.data[i] = 4 * g.nextNormal() }
            Softmax.forward(x.view, into: p.view)
            Softmax.exponentiate(x.view, inverseSums: inverse.view)
            for r in 0..<4 {
                for j in 0..<c { XCTAssertEqual(x.data[r * c + j] * inverse.data[r], p.data[r * c + j], accuracy: 1e-7) }
                XCTAssertEqual(x.view[r].toArray().max(), 1, "row max becomes exp(0)")
            }
        }
    }

    func testBenchmarkRatios() {
        let e = EngineBenchmark.Report(threads: 2, figures: [
            .init(name: "vit_s16_block_forward", medianMilliseconds: 50, minimumMilliseconds: 40, gflops: nil, iterations: 3),
            .init(name: "sgemm", medianMilliseconds: 1, minimumMilliseconds: 1, gflops: 120, iterations: 3)])
        let t = EngineBenchmark.Report(threads: 2, figures: [
            .init(name: "vit_s16_block_forward", medianMilliseconds: 60, minimumMilliseconds: 50, gflops: nil, iterations: 3),
            .init(name: "sgemm", medianMilliseconds: 1, minimumMilliseconds: 1, gflops: 100, iterations: 3)])
        let r = EngineBenchmark.ratios(engine: e, torch: t)
        XCTAssertEqual(r["vit_s16_block_forward"]!, 1.2, accuracy: 1e-12)
        XCTAssertEqual(r["sgemm"]!, 1.2, accuracy: 1e-12)
    }
}
