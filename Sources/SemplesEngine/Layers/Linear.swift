/// y = x·Wᵀ + b, as torch.nn.Linear. Weight keeps PyTorch's [out, in] layout.
public struct Linear: Sendable {
    public let weight: Parameter  // [out, in]
    public let bias: Parameter?   // [out]

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public init(weight: Parameter, bias: Parameter?) {
        precondition(weight.shape.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        precondition(bias == nil || bias!.shape == Shape([weight.shape[0]]),
                     "Linear bias \(bias!.shape) does not match weight \(weight.shape)")
        self.weight = weight
        self.bias = bias
    }

    /// Declares `name.weight` [out, in] and (optionally) `name.bias` [out] on the store.
    public init(_ store: ParameterStore, _ name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        self.init(weight: store.declare(name + ".weight", [outFeatures, inFeatures]),
                  bias: bias ? store.declare(name + ".bias", [outFeatures]) : nil)
    }

    /// x: [N, in] → y: [N, out]. Overwrites y.
    public func forward(_ x: TensorView, into y: TensorView) {
        forwardWithoutBias(x, into: y)
        if let b = bias { addRowVector(b.value, to: y) }
    }

    /// y = x·Wᵀ only; the caller adds the bias (fused with an activation, see Activation.forwardAddingBias).
    public func forwardWithoutBias(_ x: TensorView, into y: TensorView) {
        let n = x.count / inFeatures
        precondition(x.count == n * inFeatures && y.count == n * outFeatures,
                     "Linear \(weight.shape): x \(x.shape), y \(y.shape)")
        BLAS.gemm(transB: true, m: n, n: outFeatures, k: inFeatures,
                  a: x.data, lda: inFeatures, b: weight.value.data, ldb: inFeatures,
                  beta: 0, c: y.data, ldc: outFeatures)
    }

    /// dy: [N, out], x: [N, in]. dx (+)= dy·W (skipped when nil); weight.grad += dyᵀ·x; bias.grad += Σ rows dy.
    /// Parameter gradients are skipped when `parameterGradients` is false or the parameter is frozen.
    public func backward(_ dy: TensorView, x: TensorView, dx: TensorView?, accumulate: Bool = true,
                         parameterGradients: Bool = true) {
        let n = x.count / inFeatures
        precondition(dy.count == n * outFeatures, "Linear backward dy \(dy.shape) for x \(x.shape)")
        if let dx = dx {
            precondition(dx.count == x.count, "Linear backward dx \(dx.shape) for x \(x.shape)")
            BLAS.gemm(m: n, n: inFeatures, k: outFeatures,
                      a: dy.data, lda: outFeatures, b: weight.value.data, ldb: inFeatures,
                      beta: accumulate ? 1 : 0, c: dx.data, ldc: inFeatures)
        }
        guard parameterGradients else { return }
        if let gw = weight.activeGrad {
            BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: n,
                      a: dy.data, lda: outFeatures, b: x.data, ldb: inFeatures,
                      beta: 1, c: gw.data, ldc: inFeatures)
        }
        if let gb = bias?.activeGrad { sumRows(dy, into: gb) }
    }
}

/// y[i, :] += v for every row i. y: [N, C], v: [C].
public func addRowVector(_ v: TensorView, to y: TensorView) {
    let c = v.count
    let n = y.count / max(c, 1)
    precondition(n * c == y.count, "row vector \(v.shape) does not divide \(y.shape)")
    Parallel.forRanges(n, grain: max(1, 16_384 / max(c, 1)), AddRowVector(vp: v.data, yp: y.data, c: c))
}

/// The rows of `addRowVector`.
private struct AddRowVector: RangeKernel {
    let vp: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>
    let c: Int

    func run(_ rows: Range<Int>) {
        for i in rows {
            let row = yp + i * c
            map8(c) { j, lanes in storePartial(loadPartial(row + j, lanes) + loadPartial(vp + j, lanes), row + j, lanes) }
        }
    }
}

/// g[j] += Σ_i dy[i, j]. dy: [N, C], g: [C].
public func sumRows(_ dy: TensorView, into g: TensorView) {
    let c = g.count
    let n = dy.count / max(c, 1)
    precondition(n * c == dy.count, "sumRows \(dy.shape) into \(g.shape)")
    forEachColumnLanes(c, SumRows(dp: dy.data, gp: g.data, n: n, c: c))
}

/// The column groups of `sumRows`.
private struct SumRows: ColumnLanesKernel {
    let dp: UnsafeMutablePointer<Float>, gp: UnsafeMutablePointer<Float>
    let n: Int, c: Int

    func run(_ j: Int, lanes: Int) {
        var acc = Float8(repeating: 0)
        for i in 0..<n { acc += loadPartial(dp + i * c + j, lanes) }
        storePartial(acc + loadPartial(gp + j, lanes), gp + j, lanes)
    }
}

/// Runs body(j, lanes) for the 8-lane column groups j, j + 8, … of 0..<c (lanes < 8 only for the
/// last), in 64-column blocks spread over the workers: for column reductions over all rows, where
/// each worker owns its columns and so never races. The body must not call BLAS.
func forEachColumnLanes(_ c: Int, _ body: (Int, Int) -> Void) {
    let blocks = (c + 63) / 64
    Parallel.forEachWithoutBLAS(blocks) { blk in
        let hi = min(c, blk * 64 + 64)
        for j in stride(from: blk * 64, to: hi, by: 8) { body(j, min(8, hi - j)) }
    }
}

/// The body of the kernel form of `forEachColumnLanes`: one 8-lane column group.
protocol ColumnLanesKernel {
    /// Columns j ..< j + lanes (lanes < 8 only for the last group).
    func run(_ j: Int, lanes: Int)
}

/// `forEachColumnLanes` with a kernel: the same 64-column blocks over the workers, and no heap
/// allocation at any thread count (see `RangeKernel`).
func forEachColumnLanes(_ c: Int, _ body: some ColumnLanesKernel) {
    Parallel.forEachWithoutBLAS((c + 63) / 64, ColumnBlocks(c: c, body: body))
}

/// The 64-column blocks of `forEachColumnLanes`, one per index.
private struct ColumnBlocks<Body: ColumnLanesKernel>: IndexKernel {
    let c: Int
    let body: Body

    func run(_ blk: Int) {
        let hi = min(c, blk * 64 + 64)
        for j in stride(from: blk * 64, to: hi, by: 8) { body.run(j, lanes: min(8, hi - j)) }
    }
}
