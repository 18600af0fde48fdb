/// SIMD load/store helpers shared by the layers' Swift loops. (exp and erf, with the activations
/// and softmax built on them, are C kernels: `Sources/CKernels`, `ElementwiseKernels`.)

public typealias Float8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always) func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

/// Applies `body(v)` to count elements in 8-lane blocks; the tail is padded through a local buffer
/// so that every element sees the same arithmetic.
@inline(__always) func map8(_ count: Int, _ body: (Int, Int) -> Void) {
    // body(i, lanes): process elements i ..< i+lanes (lanes == 8 except for the tail).
    var i = 0
    while i + 8 <= count { body(i, 8); i += 8 }
    if i < count { body(i, count - i) }
}

/// Loads `lanes` (≤ 8) elements, padding with `pad`.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ lanes: Int, pad: Float = 0) -> Float8 {
    if lanes == 8 { return load8(p) }
    var v = Float8(repeating: pad)
    for l in 0..<lanes { v[l] = p[l] }
    return v
}

@inline(__always) func storePartial(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
    if lanes == 8 { store8(v, p); return }
    for l in 0..<lanes { p[l] = v[l] }
}

/// y = xᵀ: x [R, C] → y [C, R] (token rows to channel planes and back). Overwrites y.
public func transpose(_ x: TensorView, into y: TensorView) {
    let R = x.shape[0], C = x.count / max(R, 1)
    precondition(y.count == x.count && R * C == x.count && x.data != y.data, "transpose \(x.shape) into \(y.shape)")
    let xp = x.data, yp = y.data
    for r in 0..<R {
        for c in 0..<C { yp[c * R + r] = xp[r * C + c] }
    }
}
