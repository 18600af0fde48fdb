import XCTest
@testable import SemplesEngine

/// Finite-difference gradient checking shared by every backward test.
///
/// The loss is L = Σ w ⊙ f(inputs) for a fixed random weighting w, so the analytic gradient of an input
/// is the layer's backward applied to dy = w. A few random coordinates of each checked tensor are
/// perturbed by ±h (central difference); L is accumulated in Double.
struct GradientCheck {
    var step: Float = 1e-2
    var relativeTolerance: Double = 2e-2
    var absoluteTolerance: Double = 2e-3
    var samples = 6
    var seed: UInt64 = 7

    struct Failure: CustomStringConvertible {
        let tensor: String, index: Int, analytic: Double, numeric: Double
        var description: String { "\(tensor)[\(index)]: analytic \(analytic) vs numeric \(numeric)" }
    }

    /// `loss()` recomputes the forward and returns Σ w ⊙ output (Double). `checked` lists
    /// (name, value view, analytic gradient view). Returns the mismatches (empty when all agree).
    func run(checked: [(String, TensorView, TensorView)], loss: () -> Double) -> [Failure] {
        var rng = SeededGenerator(seed: seed)
        var failures: [Failure] = []
        for (name, value, grad) in checked {
            let n = value.count
            let picks = n <= samples ? Array(0..<n) : (0..<samples).map { _ in Int(rng.next() % UInt64(n)) }
            for i in picks {
                let saved = value.data[i]
                value.data[i] = saved + step
                let plus = loss()
                value.data[i] = saved - step
                let minus = loss()
                value.data[i] = saved
                let numeric = (plus - minus) / (2 * Double(step))
                let analytic = Double(grad.data[i])
                let tol = absoluteTolerance + relativeTolerance * max(abs(numeric), abs(analytic))
                if !(abs(numeric - analytic) <= tol) {
                    failures.append(Failure(tensor: name, index: i, analytic: analytic, numeric: numeric))
                }
            }
        }
        return failures
    }

    /// Asserts that every checked coordinate agrees.
    func assertGradients(checked: [(String, TensorView, TensorView)], file: StaticString = #filePath,
                         line: UInt = #line, loss: () -> Double) {
        let failures = run(checked: checked, loss: loss)
        XCTAssertTrue(failures.isEmpty, "gradient mismatches: \(failures)", file: file, line: line)
    }
}

/// Σ w ⊙ y in Double.
func weightedSum(_ y: TensorView, _ w: TensorView) -> Double {
    precondition(y.count == w.count)
    var s = 0.0
    for i in 0..<y.count { s += Double(y.data[i]) * Double(w.data[i]) }
    return s
}

/// A tensor filled with N(0, scale²) values.
func randomTensor(_ dims: [Int], _ rng: inout SeededGenerator, scale: Float = 1) -> Tensor {
    let t = Tensor(dims)
    for i in 0..<t.count { t.data[i] = rng.nextNormal() * scale }
    return t
}

func randomize(_ v: TensorView, _ rng: inout SeededGenerator, scale: Float = 1, offset: Float = 0) {
    for i in 0..<v.count { v.data[i] = rng.nextNormal() * scale + offset }
}
