import Foundation
import XCTest
import SemplesEngine
import SemplesFormats

/// A fixture file from fixtures/engine (written by scripts/fixtures/engine.py).
struct Fixture {
    let name: String
    let tensors: [String: Tensor]
    let metadata: [String: String]

    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/engine")
    }

    init(_ name: String) throws {
        self.name = name
        let (list, meta) = try SafeTensors.read(Fixture.directory.appendingPathComponent(name + ".safetensors").path)
        var map: [String: Tensor] = [:]
        for t in list { map[t.name] = t.tensor }
        tensors = map
        metadata = meta
    }

    subscript(_ key: String) -> Tensor {
        guard let t = tensors[key] else { preconditionFailure("fixture \(name) has no tensor '\(key)'") }
        return t
    }

    /// A copy (so that a test can modify it).
    func copy(_ key: String) -> Tensor {
        let t = self[key]
        let c = Tensor(t.shape.dims)
        c.view.copy(from: t.view)
        return c
    }
}

/// Asserts |a − e| ≤ rtol·(|e| + max|e|·floor) element-wise (the floor scales with the tensor's magnitude,
/// so values near zero in a large tensor are compared against its scale, not against themselves).
func assertClose(_ actual: TensorView, _ expected: TensorView, _ label: String, rtol: Float = 1e-5, floor: Float = 0.1,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(label): \(actual.count) values vs \(expected.count) expected", file: file, line: line)
        return
    }
    var scale: Float = 0
    for i in 0..<expected.count { scale = max(scale, abs(expected.data[i])) }
    var worst: Float = 0, worstAt = -1
    for i in 0..<expected.count {
        let e = expected.data[i], a = actual.data[i]
        let excess = abs(a - e) / (rtol * (abs(e) + scale * floor) + 1e-30)
        if !(excess <= 1) && (worstAt < 0 || excess > worst) { worst = excess; worstAt = i }
        if a.isNaN { worstAt = i; break }
    }
    if worstAt >= 0 {
        XCTFail("\(label): element \(worstAt) is \(actual.data[worstAt]), expected \(expected.data[worstAt]) "
                + "(\(worst)× the tolerance, scale \(scale))", file: file, line: line)
    }
}
