import CKernels

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

    /// x: [N, in] → y: [N, out]. Overwrites y. With a bias, y's rows start as the bias and the
    /// GEMM accumulates onto them (one pass over y instead of a clearing pass and a bias pass).
    public func forward(_ x: TensorView, into y: TensorView) {
        guard bias != nil else { return forwardWithoutBias(x, into: y) }
        layRows(of: y, residual: nil)
        multiply(x, into: y, beta: 1)
    }

    /// y = residual + x·Wᵀ + b in one pass over y before the GEMM (y must not alias x; it may
    /// alias residual). For a residual connection after the layer.
    public func forward(_ x: TensorView, addingTo residual: TensorView, into y: TensorView) {
        precondition(residual.count == y.count, "Linear \(weight.shape): residual \(residual.shape), y \(y.shape)")
        layRows(of: y, residual: residual)
        multiply(x, into: y, beta: 1)
    }

    /// y = x·Wᵀ only; the caller adds the bias (fused with an activation, see Activation.forwardAddingBias).
    public func forwardWithoutBias(_ x: TensorView, into y: TensorView) {
        multiply(x, into: y, beta: 0)
    }

    /// y's rows become residual (or 0) + bias (when there is one), before a GEMM adds onto them.
    private func layRows(of y: TensorView, residual: TensorView?) {
        precondition(y.count % max(outFeatures, 1) == 0, "Linear \(weight.shape): y \(y.shape)")
        Parallel.forRanges(y.count / max(outFeatures, 1), grain: max(1, 16_384 / max(outFeatures, 1)),
                           FillRows(yp: y.data, vp: bias?.value.data, residual: residual?.data, c: outFeatures))
    }

    /// y = x·Wᵀ + beta·y.
    private func multiply(_ x: TensorView, into y: TensorView, beta: Float) {
        let n = x.count / inFeatures
        precondition(x.count == n * inFeatures && y.count == n * outFeatures,
                     "Linear \(weight.shape): x \(x.shape), y \(y.shape)")
        BLAS.gemm(transB: true, m: n, n: outFeatures, k: inFeatures,
                  a: x.data, lda: inFeatures, b: weight.value.data, ldb: inFeatures,
                  beta: beta, c: y.data, ldc: outFeatures)
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

/// The rows of `Linear.forward`: y[i, :] = residual[i, :] (or 0) + v (when given).
private struct FillRows: RangeKernel {
    let yp: UnsafeMutablePointer<Float>, vp: UnsafeMutablePointer<Float>?, residual: UnsafeMutablePointer<Float>?
    let c: Int

    func run(_ rows: Range<Int>) {
        for i in rows {
            let row = yp + i * c
            switch (residual, vp) {
            case let (r?, v?):
                let rr = r + i * c
                map8(c) { j, lanes in storePartial(loadPartial(rr + j, lanes) + loadPartial(v + j, lanes), row + j, lanes) }
            case let (r?, nil):
                if r != yp { row.update(from: r + i * c, count: c) }
            case let (nil, v?):
                row.update(from: v, count: c)
            case (nil, nil):
                row.update(repeating: 0, count: c)
            }
        }
    }
}

/// g[j] += Σ_i dy[i, j]. dy: [N, C], g: [C]. Rows are added in order for each column (the
/// C kernel sweeps 32 columns down the rows at a time, reading whole cache lines).
public func sumRows(_ dy: TensorView, into g: TensorView) {
    let c = g.count
    let n = dy.count / max(c, 1)
    precondition(n * c == dy.count, "sumRows \(dy.shape) into \(g.shape)")
    forEachColumnBlock(c, SumRows(dp: dy.data, gp: g.data, n: n, c: c))
}

/// The column blocks of `sumRows`.
private struct SumRows: ColumnBlockKernel {
    let dp: UnsafeMutablePointer<Float>, gp: UnsafeMutablePointer<Float>
    let n: Int, c: Int

    func run(columns: Range<Int>) {
        semples_column_sums(dp, n, c, gp, columns.lowerBound, columns.upperBound)
    }
}

/// A column reduction's body for one block of columns (see `forEachColumnBlock`).
protocol ColumnBlockKernel {
    func run(columns: Range<Int>)
}

/// Runs body on the 64-column blocks of 0..<c, spread over the workers: for column reductions
/// over all rows, where each worker owns its columns and so never races. No heap allocation.
func forEachColumnBlock(_ c: Int, _ body: some ColumnBlockKernel) {
    Parallel.forEachWithoutBLAS((c + 63) / 64, ColumnBlockRuns(c: c, body: body))
}

private struct ColumnBlockRuns<Body: ColumnBlockKernel>: IndexKernel {
    let c: Int
    let body: Body

    func run(_ blk: Int) { body.run(columns: blk * 64 ..< min(c, blk * 64 + 64)) }
}
