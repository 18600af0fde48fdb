import CBLAS
import Foundation

/// Every call into BLAS goes through this file.
public enum BLAS {
    /// How a GEMM is spread over threads: by the engine's own worker pool, which cuts C into
    /// row or column panels and runs single-threaded kernels on them (the default), or by the
    /// library's threads ($SEMPLES_GEMM_THREADING=library).
    nonisolated(unsafe) static var splitInEngine: Bool =
        ProcessInfo.processInfo.environment["SEMPLES_GEMM_THREADING"] != "library"

    nonisolated(unsafe) private static var gemmThreads: Int = 1

    /// Sets the number of threads one GEMM may use.
    public static func setThreads(_ n: Int) {
        gemmThreads = max(1, n)
        openblas_set_num_threads(splitInEngine ? 1 : Int32(gemmThreads))
    }

    public static var threads: Int { gemmThreads }

    /// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, row-major.
    /// op(A) is A (lda ≥ k) or Aᵀ (A stored [k,m], lda ≥ m); likewise B.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false,
                            m: Int, n: Int, k: Int,
                            alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        let width = splitInEngine ? min(gemmThreads, panels(m: m, n: n, k: k)) : 1
        if width > 1 {
            // Cut C into `width` panels along its longer side, in multiples of 16 (the kernels'
            // register blocking), and run one single-threaded GEMM per panel.
            let alongRows = m >= n
            let length = alongRows ? m : n
            WorkerPool.shared.run(width: width) { w in
                let lo = w == 0 ? 0 : ((length * w / width) + 8) & ~15
                let hi = w == width - 1 ? length : ((length * (w + 1) / width) + 8) & ~15
                guard lo < hi else { return }
                if alongRows {
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(hi - lo), Int32(n), Int32(k), alpha,
                                a + (transA ? lo : lo * lda), Int32(lda), b, Int32(ldb), beta,
                                c + lo * ldc, Int32(ldc))
                } else {
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(hi - lo), Int32(k), alpha,
                                a, Int32(lda), b + (transB ? lo * ldb : lo), Int32(ldb), beta,
                                c + lo, Int32(ldc))
                }
            }
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// How many panels a GEMM of this size is worth: one per 2 MFLOP of work, at least 32
    /// rows or columns each.
    @inline(__always)
    static func panels(m: Int, n: Int, k: Int) -> Int {
        let work = m * n * max(k, 1)
        return max(1, min(work >> 20, max(m, n) / 32))
    }

    /// y[m] = alpha · op(A) x + beta · y, A row-major [m, n].
    @inline(__always)
    public static func gemv(transA: Bool = false, m: Int, n: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, beta: Float = 0,
                            y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// y += alpha · x
    @inline(__always)
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
    }

    @inline(__always)
    public static func dot(count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(count), x, 1, y, 1)
    }

    @inline(__always)
    public static func scale(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        cblas_sscal(Int32(count), alpha, x, 1)
    }
}
