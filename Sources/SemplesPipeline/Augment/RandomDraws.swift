import Foundation
import SemplesEngine

/// The draws the augmentation makes, each from `SeededGenerator` alone so that a run repeats from
/// its seed. The shapes of the distributions follow Python's `random` module as the reference uses
/// it; the streams themselves cannot match another framework's (spec §4.1).
extension SeededGenerator {
    /// Uniform in [0, 1) with 53 bits (`random.random()`).
    mutating func unitDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in [a, b) (`random.uniform(a, b)` = a + (b − a)·random()).
    mutating func uniform(_ a: Double, _ b: Double) -> Double {
        a + (b - a) * unitDouble()
    }

    /// Uniform integer in `low…high`, both ends included (`random.randint`); unbiased by
    /// rejection.
    mutating func integer(_ low: Int, _ high: Int) -> Int {
        precondition(high >= low, "integer draw from \(low)...\(high)")
        let span = UInt64(high - low) &+ 1
        if span == 0 { return low &+ Int(bitPattern: UInt(next())) }  // the full 64-bit range
        let limit = UInt64.max - (UInt64.max % span)
        while true {
            let r = next()
            if r < limit { return low + Int(r % span) }
        }
    }

    /// Normal with the given mean and standard deviation (`random.gauss`).
    mutating func gaussian(mean: Double, std: Double) -> Double {
        mean + std * Double(nextNormal())
    }
}

/// Python's `round(x)` for the non-negative sizes here: to nearest, ties to even.
@inline(__always) func pythonRound(_ x: Double) -> Int {
    Int(x.rounded(.toNearestOrEven))
}
