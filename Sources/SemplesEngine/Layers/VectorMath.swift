/// Vectorised float32 kernels shared by the layers: exp, erf and SIMD load/store helpers.
///
/// exp uses the classic range reduction x = n·ln2 + r with a degree-6 polynomial (about 1 ulp);
/// erf uses a rational approximation on [−4, 4] (|error| < 4e-7), saturating to ±1 outside.

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

/// Clamps each lane to [lo, hi] (written with masks: the generic SIMD `clamped` is scalarised).
@inline(__always) func clamp8(_ v: Float8, _ lo: Float, _ hi: Float) -> Float8 {
    var r = v.replacing(with: lo, where: v .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// e^x for 8 lanes; inputs below −87.3 give ~1e-38 (not 0), inputs above 88.3 saturate.
///
/// n = round(x·log2 e) comes from adding 1.5·2²³ + 127: the sum's low mantissa bits then hold
/// n + 127, which shifted into the exponent field gives 2^n. (Float→Int SIMD conversions and
/// `rounded` are scalarised by the compiler; this stays in vector registers.)
@inline(__always) public func exp8(_ x0: Float8) -> Float8 {
    let x = clamp8(x0, -87.3, 88.3)
    let t = x * 1.442_695_04 + 12_583_039
    let n = t - 12_583_039
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var y = Float8(repeating: 1.987_569_15e-4)
    y = y * r + 1.398_199_95e-3
    y = y * r + 8.333_451_9e-3
    y = y * r + 4.166_579_59e-2
    y = y * r + 1.666_666_55e-1
    y = y * r + 5.000_000_12e-1
    y = y * (r * r) + r + 1
    let bits = unsafeBitCast(t, to: SIMD8<UInt32>.self) &<< 23
    return y * unsafeBitCast(bits, to: Float8.self)
}

/// Scalar e^x through the same polynomial as `exp8` (so vector bodies and tails agree).
@inline(__always) public func expScalar(_ x: Float) -> Float {
    exp8(Float8(repeating: x))[0]
}

/// erf(x) for 8 lanes.
@inline(__always) public func erf8(_ x0: Float8) -> Float8 {
    let x = clamp8(x0, -4, 4)
    let x2 = x * x
    var p = Float8(repeating: -2.726_142_258_013_06e-10)
    p = p * x2 + 2.770_681_424_959_02e-08
    p = p * x2 - 2.101_024_020_825_08e-06
    p = p * x2 - 5.692_506_394_623_46e-05
    p = p * x2 - 7.349_906_303_268_55e-04
    p = p * x2 - 2.954_599_808_540_25e-03
    p = p * x2 - 1.609_603_332_624_15e-02
    p = p * x
    var q = Float8(repeating: -1.456_607_184_649_96e-05)
    q = q * x2 - 2.133_740_552_789_05e-04
    q = q * x2 - 1.682_826_974_382_03e-03
    q = q * x2 - 7.373_329_167_204_68e-03
    q = q * x2 - 1.426_473_905_141_89e-02
    return p / q
}

@inline(__always) public func erfScalar(_ x: Float) -> Float {
    erf8(Float8(repeating: x))[0]
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
