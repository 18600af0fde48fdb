import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// GFLOP/s of each GEMM library at the engine's own shapes (DeiT-S at batch 8: 8 × 216 tokens,
/// width 384, cut in two panels as on two threads; attention per head), one thread, single
/// kernels: OpenBLAS, oneDNN and, as a candidate that is measured but not offered as a backend,
/// BLIS (`bli_sgemm` from libblis.so.4, when installed).
public enum GEMMBackendBenchmark {
    public struct Shape: Sendable {
        public var name: String
        public var transA: Bool, transB: Bool, m: Int, n: Int, k: Int
    }

    public static let shapes: [Shape] = [
        Shape(name: "qkv forward", transA: false, transB: true, m: 864, n: 1152, k: 384),
        Shape(name: "proj forward", transA: false, transB: true, m: 864, n: 384, k: 384),
        Shape(name: "fc1 forward", transA: false, transB: true, m: 864, n: 1536, k: 384),
        Shape(name: "fc2 forward", transA: false, transB: true, m: 864, n: 384, k: 1536),
        Shape(name: "fc2 input gradient", transA: false, transB: false, m: 864, n: 1536, k: 384),
        Shape(name: "fc1 weight gradient", transA: true, transB: false, m: 768, n: 384, k: 1728),
        Shape(name: "fc2 weight gradient", transA: true, transB: false, m: 192, n: 1536, k: 1728),
        Shape(name: "attention QKᵀ", transA: false, transB: true, m: 216, n: 216, k: 64),
        Shape(name: "attention PV", transA: false, transB: false, m: 216, n: 64, k: 216),
        Shape(name: "attention Pᵀ·dctx", transA: true, transB: false, m: 216, n: 64, k: 216),
    ]

    public struct Row: Codable, Sendable {
        public var shape: String
        public var m: Int, n: Int, k: Int
        /// GFLOP/s by library name; a library that could not be loaded is absent.
        public var gflops: [String: Double]
    }

    typealias BliSgemm = @convention(c) (Int32, Int32, Int, Int, Int, UnsafePointer<Float>?, UnsafePointer<Float>?, Int, Int,
                                         UnsafePointer<Float>?, Int, Int, UnsafePointer<Float>?,
                                         UnsafeMutablePointer<Float>?, Int, Int) -> Void

    /// BLIS's typed API, loaded privately (its CBLAS layer would resolve to OpenBLAS's symbols).
    static func loadBLIS() -> BliSgemm? {
        for path in ["/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", "/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4",
                     "/usr/lib/x86_64-linux-gnu/blis-serial/libblis.so.4", "libblis.so.4"] {
            guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL), let f = dlsym(h, "bli_sgemm") else { continue }
            if let set = dlsym(h, "bli_thread_set_num_threads") {
                typealias SetThreads = @convention(c) (Int) -> Void
                unsafeBitCast(set, to: SetThreads.self)(1)
            }
            return unsafeBitCast(f, to: BliSgemm.self)
        }
        return nil
    }

    public static func run(seconds: Double = 0.4, log: (String) -> Void) -> (rows: [Row], missing: [String]) {
        let saved = BLAS.backend
        defer { try? BLAS.select(saved) }
        var missing: [String] = []
        var libraries: [(String, (Shape, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void)] = []
        libraries.append(("OpenBLAS", { s, a, b, c in
            try? BLAS.select(.openblas)
            BLAS.fp32Kernel(s.transA, s.transB, s.m, s.n, s.k, 1, a, s.transA ? s.m : s.k, b, s.transB ? s.k : s.n, 0, c, s.n)
        }))
        if let reason = BLAS.availability(.onednn) {
            missing.append("oneDNN: \(reason)")
        } else {
            libraries.append(("oneDNN", { s, a, b, c in
                try? BLAS.select(.onednn)
                BLAS.fp32Kernel(s.transA, s.transB, s.m, s.n, s.k, 1, a, s.transA ? s.m : s.k, b, s.transB ? s.k : s.n, 0, c, s.n)
            }))
        }
        if let bli = loadBLIS() {
            var one: Float = 1, zero: Float = 0
            libraries.append(("BLIS", { s, a, b, c in
                let lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n
                bli(s.transA ? 8 : 0, s.transB ? 8 : 0, s.m, s.n, s.k, &one, a, lda, 1, b, ldb, 1, &zero, c, s.n, 1)
            }))
        } else {
            missing.append("BLIS: libblis.so.4 not installed (Debian: libblis4-openmp)")
        }
        let a = Tensor([2048 * 2048]), b = Tensor([2048 * 2048]), c = Tensor([2048 * 2048])
        var g = SeededGenerator(seed: 4)
        for i in 0..<a.count { a.data[i] = g.nextUniform(); b.data[i] = g.nextUniform() }
        var rows: [Row] = []
        for s in shapes {
            log("gemm: \(s.name) (\(s.m)×\(s.n)×\(s.k))")
            var best: [String: Double] = [:]
            let flops = 2 * Double(s.m) * Double(s.n) * Double(s.k)
            for _ in 0..<3 {   // libraries alternate, best of three rounds each
                for (name, call) in libraries {
                    call(s, a.data, b.data, c.data)   // warm-up
                    var reps = 0
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    var elapsed = 0.0
                    repeat {
                        call(s, a.data, b.data, c.data)
                        reps += 1
                        elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    } while elapsed < seconds / 3
                    best[name] = max(best[name] ?? 0, flops * Double(reps) / elapsed / 1e9)
                }
            }
            rows.append(Row(shape: s.name, m: s.m, n: s.n, k: s.k, gflops: best))
        }
        return (rows, missing)
    }
}
