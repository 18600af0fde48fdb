import CBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every call into BLAS goes through this file.
///
/// GEMMs run on one of two backends, chosen by $SEMPLES_BLAS (`openblas`, the default, or
/// `onednn`) before the first GEMM, or by `BLAS.select`: OpenBLAS, linked in, or oneDNN's
/// `dnnl_sgemm` (libdnnl.so.2, loaded at run time, so nothing is needed where it is not used).
/// The other level-1/2 routines always come from OpenBLAS.
public enum BLAS {
    /// A GEMM library.
    public enum Backend: String, CaseIterable, Sendable {
        case openblas, onednn
    }

    public struct BackendError: Error, CustomStringConvertible {
        public let description: String
    }

    /// How a GEMM is spread over threads: by the engine's own worker pool, which cuts C into
    /// row or column panels and runs single-threaded kernels on them (the default), or by the
    /// library's threads ($SEMPLES_GEMM_THREADING=library; OpenBLAS only).
    nonisolated(unsafe) static var splitInEngine: Bool =
        ProcessInfo.processInfo.environment["SEMPLES_GEMM_THREADING"] != "library"

    /// Who spreads one GEMM over threads.
    public enum Threading: String, Sendable { case engine, library }

    public static var threading: Threading {
        get { splitInEngine ? .engine : .library }
        set {
            splitInEngine = newValue == .engine
            setThreads(gemmThreads)
        }
    }

    /// Runs body on the engine's set-up before the training-speed work (the `baseline` figures of
    /// `semples bench`): OpenBLAS with library-threaded GEMMs and the element-wise kernels for the
    /// x86-64 baseline, then restores the choice. (Huge pages for large buffers stay on.)
    public static func withBaseline<T>(_ body: () throws -> T) rethrows -> T {
        let (savedBackend, savedThreading, savedKernels) = (backend, threading, ElementwiseKernels.active)
        backend = .openblas
        threading = .library
        ElementwiseKernels.select(.generic)
        defer { backend = savedBackend; threading = savedThreading; ElementwiseKernels.select(savedKernels) }
        return try body()
    }

    nonisolated(unsafe) private static var gemmThreads: Int = 1

    /// The backend in use. Set from $SEMPLES_BLAS on first use; a bad value stops the program
    /// with the reason (a job must not silently run on another library than it was told).
    nonisolated(unsafe) public private(set) static var backend: Backend = initialBackend()
    nonisolated(unsafe) private static var dnnlSgemm: DnnlSgemm?

    typealias DnnlSgemm = @convention(c) (CChar, CChar, Int64, Int64, Int64, Float, UnsafePointer<Float>?, Int64,
                                          UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Int32

    private static func initialBackend() -> Backend {
        guard let name = ProcessInfo.processInfo.environment["SEMPLES_BLAS"], !name.isEmpty else { return .openblas }
        do {
            guard let chosen = Backend(rawValue: name.lowercased()) else {
                throw BackendError(description: "SEMPLES_BLAS='\(name)' is not a GEMM backend; known: "
                                   + Backend.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if chosen == .onednn { dnnlSgemm = try loadOneDNN() }
            return chosen
        } catch {
            FileHandle.standardError.write(Data("semples: \(error)\n".utf8))
            exit(78)   // EX_CONFIG
        }
    }

    /// Switches the GEMM backend (tests and `semples bench`); throws when the library cannot be loaded.
    public static func select(_ choice: Backend) throws {
        if choice == .onednn, dnnlSgemm == nil { dnnlSgemm = try loadOneDNN() }
        backend = choice
    }

    /// Whether a backend can be used on this machine, and if not, why.
    public static func availability(_ choice: Backend) -> String? {
        guard choice == .onednn, dnnlSgemm == nil else { return nil }
        do { dnnlSgemm = try loadOneDNN(); return nil } catch { return "\(error)" }
    }

    /// A short name of the backend and its version, for reports.
    public static var backendDescription: String {
        switch backend {
        case .openblas:
            // openblas_get_config() reads e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64".
            guard let config = openblas_get_config() else { return "OpenBLAS" }
            let text = String(cString: config)
            return text.hasPrefix("OpenBLAS") ? text : "OpenBLAS " + text
        case .onednn:
            return "oneDNN " + (oneDNNVersion ?? "")
        }
    }

    nonisolated(unsafe) private static var oneDNNVersion: String?
    nonisolated(unsafe) static var oneDNNHandle: UnsafeMutableRawPointer?

    private static func loadOneDNN() throws -> DnnlSgemm {
        // Each GEMM panel runs on one engine worker: oneDNN's own OpenMP threads must stay at one.
        // libgomp reads this when it is loaded, which is here.
        setenv("OMP_NUM_THREADS", "1", 1)
        guard let handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            throw BackendError(description: "the oneDNN GEMM backend needs libdnnl.so.2 (Debian: apt install libdnnl2): \(reason)")
        }
        guard let symbol = dlsym(handle, "dnnl_sgemm") else {
            throw BackendError(description: "libdnnl.so.2 has no dnnl_sgemm")
        }
        oneDNNHandle = handle
        if let v = dlsym(handle, "dnnl_version") {
            typealias VersionFn = @convention(c) () -> UnsafePointer<Int32>?
            if let p = unsafeBitCast(v, to: VersionFn.self)() { oneDNNVersion = "\(p[0]).\(p[1]).\(p[2])" }
        }
        return unsafeBitCast(symbol, to: DnnlSgemm.self)
    }

    /// Sets the number of threads one GEMM may use.
    public static func setThreads(_ n: Int) {
        gemmThreads = max(1, n)
        openblas_set_num_threads(splitInEngine ? 1 : Int32(gemmThreads))
    }

    public static var threads: Int { gemmThreads }

    /// One single-threaded GEMM on the chosen backend, in the chosen precision.
    @inline(__always)
    static func kernel(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                       _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        if precision == .bf16 && k > 0 {
            bf16Kernel(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else {
            fp32Kernel(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// One single-threaded float32 GEMM on the chosen backend.
    @inline(__always)
    static func fp32Kernel(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                       _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        if backend == .onednn, let sgemm = dnnlSgemm {
            let status = sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                               a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
            precondition(status == 0, "dnnl_sgemm failed with status \(status) (m \(m) n \(n) k \(k))")
            return
        }
        var beta = beta
        if beta == 0 && k > 0 {
            // OpenBLAS clears C for beta = 0 with its own loop (sgemm_beta), slower than memset by
            // 0.3–1.3 ms on the block's large GEMMs and 20–25 % of the small per-head ones; cleared
            // here, the GEMM accumulates into zeros. Same result: beta = 0 ignores C's contents.
            if ldc == n {
                c.update(repeating: 0, count: m * n)
            } else {
                for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) }
            }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

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
            var job = GEMMPanels(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, width: width)
            withUnsafePointer(to: &job) { address in
                WorkerPool.shared.run(width: width, job: UnsafeRawPointer(address), entry: GEMMPanels.entry)
            }
            return
        }
        kernel(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// One GEMM cut into `width` panels of C along its longer side, in multiples of 16 (the
    /// kernels' register blocking), each a single-threaded GEMM on one worker.
    struct GEMMPanels {
        var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float
        var a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int
        var beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, width: Int

        static let entry: @convention(c) (UnsafeRawPointer, Int) -> Void = { address, w in
            address.assumingMemoryBound(to: GEMMPanels.self).pointee.run(panel: w)
        }

        func run(panel w: Int) {
            let alongRows = m >= n
            let length = alongRows ? m : n
            let lo = w == 0 ? 0 : ((length * w / width) + 8) & ~15
            let hi = w == width - 1 ? length : ((length * (w + 1) / width) + 8) & ~15
            guard lo < hi else { return }
            if alongRows {
                BLAS.kernel(transA, transB, hi - lo, n, k, alpha, a + (transA ? lo : lo * lda), lda, b, ldb,
                            beta, c + lo * ldc, ldc)
            } else {
                BLAS.kernel(transA, transB, m, hi - lo, k, alpha, a, lda, b + (transB ? lo * ldb : lo), ldb,
                            beta, c + lo, ldc)
            }
        }
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
