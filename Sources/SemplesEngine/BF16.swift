import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Arithmetic precision of the GEMMs of a training job (manifest key `precision`).
public enum Precision: String, CaseIterable, Sendable, Codable {
    /// float32 everywhere (the default).
    case fp32
    /// Mixed precision, as the reference's CUDA AMP does for its matrix products: the operands of
    /// every GEMM are rounded to bfloat16 and multiplied with float32 accumulation; weights,
    /// gradients, optimizer state, reductions and every other operation stay float32.
    case bf16
}

extension BLAS {
    /// How bf16 GEMMs are carried out.
    public enum BF16Mode: String, Sendable {
        /// oneDNN's `dnnl_gemm_bf16bf16f32` on a CPU with AVX-512 BF16 instructions.
        case hardware
        /// Operands rounded to bfloat16 values and multiplied by the float32 kernels: the same
        /// products (a product of two bfloat16 numbers is exact in float32) and float32 sums, on any
        /// CPU, but no faster. Only with $SEMPLES_BF16=emulate, to measure what bf16 does to
        /// training where the instructions are missing.
        case emulated
    }

    nonisolated(unsafe) public private(set) static var precision: Precision = .fp32
    nonisolated(unsafe) public private(set) static var bf16Mode: BF16Mode?
    nonisolated(unsafe) private static var dnnlBF16: DnnlBF16Gemm?

    typealias DnnlBF16Gemm = @convention(c) (CChar, CChar, Int64, Int64, Int64, Float, UnsafePointer<UInt16>?, Int64,
                                             UnsafePointer<UInt16>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Int32

    public struct PrecisionError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sets the GEMM precision for the rest of the process (a job sets it once, before training).
    /// bf16 needs a CPU with AVX-512 BF16 and oneDNN's bf16 GEMM; elsewhere it throws the reason,
    /// unless $SEMPLES_BF16=emulate asks for the emulated products.
    public static func setPrecision(_ p: Precision) throws {
        guard p == .bf16 else {
            precision = .fp32
            bf16Mode = nil
            return
        }
        if ProcessInfo.processInfo.environment["SEMPLES_BF16"] == "emulate" {
            bf16Mode = .emulated
            precision = .bf16
            return
        }
        if let reason = bf16Unavailable() { throw PrecisionError(description: reason) }
        bf16Mode = .hardware
        precision = .bf16
    }

    /// Nil when bf16 GEMMs can run on this machine's hardware, else why not.
    public static func bf16Unavailable() -> String? {
        let cpu = CPUInfo.current
        guard cpu.flags.contains("avx512_bf16") else {
            return "precision: bf16 needs a CPU with AVX-512 BF16 instructions (avx512_bf16), and this one"
                + " (\(cpu.model)) has none; use precision: fp32 (or set SEMPLES_BF16=emulate to measure"
                + " bf16's effect on training without its speed)"
        }
        if dnnlBF16 == nil {
            if BLAS.availability(.onednn) != nil || BLAS.oneDNNHandle == nil {
                return "precision: bf16 runs on oneDNN's bf16 GEMM, which cannot be loaded: "
                    + (BLAS.availability(.onednn) ?? "libdnnl.so.2 not loaded")
            }
            guard let symbol = dlsym(BLAS.oneDNNHandle, "dnnl_gemm_bf16bf16f32") else {
                return "precision: bf16: libdnnl.so.2 has no dnnl_gemm_bf16bf16f32"
            }
            let gemm = unsafeBitCast(symbol, to: DnnlBF16Gemm.self)
            // A 16×16 product of ones, to be sure the library runs it on this CPU.
            var a = [UInt16](repeating: 0x3F80, count: 256)
            var c = [Float](repeating: 0, count: 256)
            let status = a.withUnsafeMutableBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(78, 78, 16, 16, 16, 1, pa.baseAddress, 16, pa.baseAddress, 16, 0, pc.baseAddress, 16)
                }
            }
            guard status == 0, c[0] == 16 else {
                return "precision: bf16: oneDNN's bf16 GEMM does not run on this CPU (status \(status))"
            }
            dnnlBF16 = gemm
        }
        return nil
    }

    /// The bfloat16 nearest to x (ties to even), as its 16 bits; NaN stays NaN.
    @inline(__always)
    public static func bf16Bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// x rounded to the nearest bfloat16, as a float32.
    @inline(__always)
    public static func roundedToBF16(_ x: Float) -> Float {
        Float(bitPattern: UInt32(bf16Bits(x)) << 16)
    }

    /// One GEMM with bfloat16 operands and float32 accumulation (on the calling thread).
    static func bf16Kernel(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                           _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                           _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        // op(A) stored as [m, k] (or [k, m] when transposed); copied compactly, rounded.
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        let scratch = BF16Scratch.forThisThread(floats: aRows * aCols + bRows * bCols)
        let hardware = bf16Mode == .hardware && dnnlBF16 != nil
        if hardware {
            let a16 = UnsafeMutableRawPointer(scratch.memory).bindMemory(to: UInt16.self, capacity: aRows * aCols + bRows * bCols)
            let b16 = a16 + aRows * aCols
            copyRounded(a, lda, aRows, aCols, into: a16, bf16Bits)
            copyRounded(b, ldb, bRows, bCols, into: b16, bf16Bits)
            let status = dnnlBF16!(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                                   a16, Int64(aCols), b16, Int64(bCols), beta, c, Int64(ldc))
            precondition(status == 0, "dnnl_gemm_bf16bf16f32 failed with status \(status) (m \(m) n \(n) k \(k))")
        } else {
            let aR = scratch.memory, bR = scratch.memory + aRows * aCols
            copyRounded(a, lda, aRows, aCols, into: aR, roundedToBF16)
            copyRounded(b, ldb, bRows, bCols, into: bR, roundedToBF16)
            fp32Kernel(transA, transB, m, n, k, alpha, aR, aCols, bR, bCols, beta, c, ldc)
        }
    }

    /// Copies a [rows, cols] block with leading dimension `ld` compactly into dst, each value
    /// converted by `round` (to a bfloat16 value as float32, or to its 16 bits).
    @inline(__always)
    private static func copyRounded<T>(_ src: UnsafePointer<Float>, _ ld: Int, _ rows: Int, _ cols: Int,
                                       into dst: UnsafeMutablePointer<T>, _ round: (Float) -> T) {
        for r in 0..<rows {
            let s = src + r * ld, d = dst + r * cols
            for j in 0..<cols { d[j] = round(s[j]) }
        }
    }
}

/// Per-thread memory for the rounded operands of bf16 GEMMs; grows (allocates) only when a larger
/// GEMM comes, so a training loop allocates nothing after its first step.
final class BF16Scratch {
    private(set) var memory: UnsafeMutablePointer<Float>
    private var capacity: Int

    private init(floats: Int) {
        capacity = max(floats, 1 << 16)
        memory = .allocate(capacity: capacity)
    }

    deinit { memory.deallocate() }

    nonisolated(unsafe) private static var key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            if let raw { Unmanaged<BF16Scratch>.fromOpaque(raw).release() }
        }
        return k
    }()

    static func forThisThread(floats: Int) -> BF16Scratch {
        if let raw = pthread_getspecific(key) {
            let s = Unmanaged<BF16Scratch>.fromOpaque(raw).takeUnretainedValue()
            if s.capacity < floats {
                s.memory.deallocate()
                s.capacity = floats
                s.memory = .allocate(capacity: floats)
            }
            return s
        }
        let s = BF16Scratch(floats: floats)
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }
}

/// What /proc/cpuinfo says about this CPU (the first processor's model name and flags).
public struct CPUInfo: Sendable {
    public var model: String
    public var flags: Set<String>

    public static let current: CPUInfo = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return CPUInfo(model: "unknown CPU", flags: [])
        }
        var model = "unknown CPU", flags: Set<String> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            if key == "model name", model == "unknown CPU" { model = value }
            if key == "flags", flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
            if model != "unknown CPU" && !flags.isEmpty { break }
        }
        return CPUInfo(model: model, flags: flags)
    }()
}
