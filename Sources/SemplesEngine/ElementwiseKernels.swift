import CKernels

/// The compiled variants of the element-wise kernels (activations, softmax rows) in `CKernels`:
/// one for every x86-64 CPU and one for CPUs with AVX2 and FMA, chosen from the CPU's flags at the
/// first call. `SEMPLES_SIMD=generic` forces the first (for comparing them on one machine).
public enum ElementwiseKernels {
    public enum Variant: String, CaseIterable, Sendable {
        case generic
        case avx2FMA = "avx2+fma"

        var code: Int32 { self == .generic ? Int32(SEMPLES_ISA_GENERIC) : Int32(SEMPLES_ISA_AVX2_FMA) }
    }

    /// The variant in use.
    public static var active: Variant {
        semples_kernels_isa() == Int32(SEMPLES_ISA_AVX2_FMA) ? .avx2FMA : .generic
    }

    /// The variants this CPU can run.
    public static var available: [Variant] {
        Variant.allCases.filter { semples_kernels_supported($0.code) != 0 }
    }

    /// Switches every later kernel call to `variant`; false (and no change) when this CPU cannot
    /// run it. Not for use while other threads run kernels.
    @discardableResult
    public static func select(_ variant: Variant) -> Bool {
        semples_kernels_set_isa(variant.code) != 0
    }

    /// e^x and erf(x) through the active variant's polynomials.
    public static func exp(_ x: [Float]) -> [Float] { map(x, semples_exp) }
    public static func erf(_ x: [Float]) -> [Float] { map(x, semples_erf) }

    private static func map(_ x: [Float], _ f: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in f(xs.baseAddress, ys.baseAddress, x.count) }
        }
        return y
    }
}
