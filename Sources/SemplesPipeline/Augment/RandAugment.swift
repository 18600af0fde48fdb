import Foundation
import SemplesEngine
import SemplesFormats

/// The operations of RandAugment's "increasing" set (spec §4.2 step 3), in the reference's order.
public enum RandAugmentOp: String, CaseIterable, Sendable, Codable {
    case autoContrast = "AutoContrast"
    case equalize = "Equalize"
    case invert = "Invert"
    case rotate = "Rotate"
    case posterizeIncreasing = "PosterizeIncreasing"
    case solarizeIncreasing = "SolarizeIncreasing"
    case solarizeAdd = "SolarizeAdd"
    case colorIncreasing = "ColorIncreasing"
    case contrastIncreasing = "ContrastIncreasing"
    case brightnessIncreasing = "BrightnessIncreasing"
    case sharpnessIncreasing = "SharpnessIncreasing"
    case shearX = "ShearX"
    case shearY = "ShearY"
    case translateXRel = "TranslateXRel"
    case translateYRel = "TranslateYRel"

    /// The 15 operations `inc1` selects.
    public static let increasing: [RandAugmentOp] = allCases

    /// Whether the operation's argument takes a random sign.
    public var isSigned: Bool {
        switch self {
        case .rotate, .colorIncreasing, .contrastIncreasing, .brightnessIncreasing,
             .sharpnessIncreasing, .shearX, .shearY, .translateXRel, .translateYRel:
            return true
        default:
            return false
        }
    }

    /// The argument at magnitude `m` (0…10), before the sign: degrees for Rotate, the enhance
    /// offset 0.9·m/10 from 1, the shear 0.3·m/10, the translation 0.45·m/10 of the image size,
    /// bits kept 4 − ⌊4m/10⌋, the solarize threshold 256 − ⌊256m/10⌋, the solarize-add
    /// ⌊110m/10⌋; nil for the operations without one.
    public func level(magnitude m: Double) -> Double? {
        let f = m / 10.0
        switch self {
        case .autoContrast, .equalize, .invert: return nil
        case .rotate: return f * 30.0
        case .posterizeIncreasing: return Double(4 - Int(f * 4))
        case .solarizeIncreasing: return Double(256 - Int(f * 256))
        case .solarizeAdd: return Double(Int(f * 110))
        case .colorIncreasing, .contrastIncreasing, .brightnessIncreasing, .sharpnessIncreasing: return f * 0.9
        case .shearX, .shearY: return f * 0.3
        case .translateXRel, .translateYRel: return f * 0.45
        }
    }

    /// The operation at magnitude `m` with the given sign choice (`negate` flips the signed
    /// arguments; enhance factors are 1 ± level, at least 0.1).
    public func apply(_ image: Image8, magnitude m: Double, negate: Bool, fill: [UInt8]) -> Image8 {
        let raw = level(magnitude: m) ?? 0
        let signed = isSigned && negate ? -raw : raw
        switch self {
        case .autoContrast: return PILOps.autocontrast(image)
        case .equalize: return PILOps.equalize(image)
        case .invert: return PILOps.invert(image)
        case .rotate: return PILOps.rotate(image, degrees: signed, fill: fill)
        case .posterizeIncreasing: return PILOps.posterize(image, bits: Int(raw))
        case .solarizeIncreasing: return PILOps.solarize(image, threshold: Int(raw))
        case .solarizeAdd: return PILOps.solarizeAdd(image, add: Int(raw))
        case .colorIncreasing: return PILOps.color(image, factor: max(0.1, 1 + signed))
        case .contrastIncreasing: return PILOps.contrast(image, factor: max(0.1, 1 + signed))
        case .brightnessIncreasing: return PILOps.brightness(image, factor: max(0.1, 1 + signed))
        case .sharpnessIncreasing: return PILOps.sharpness(image, factor: max(0.1, 1 + signed))
        case .shearX: return PILOps.shearX(image, factor: signed, fill: fill)
        case .shearY: return PILOps.shearY(image, factor: signed, fill: fill)
        case .translateXRel: return PILOps.translateX(image, pixels: signed * Double(image.width), fill: fill)
        case .translateYRel: return PILOps.translateY(image, pixels: signed * Double(image.height), fill: fill)
        }
    }
}

/// Where a RandAugment configuration string is wrong.
public struct RandAugmentConfigError: Error, CustomStringConvertible, Equatable {
    public let config: String
    public let detail: String
    public var description: String { "auto-augment '\(config)': \(detail)" }
}

/// RandAugment as `rand-m9-mstd0.5-inc1` configures it (spec §4.2 step 3): `layers` operations
/// drawn uniformly with replacement; each fires with `probability`, at a magnitude drawn from
/// N(magnitude, magnitudeStd) clipped to [0, 10], with a 50/50 sign for the signed ones.
public struct RandAugment: Equatable, Sendable {
    public var ops: [RandAugmentOp]
    public var layers: Int
    public var probability: Double
    public var magnitude: Double
    public var magnitudeStd: Double
    /// Fill of the geometric operations: the ImageNet mean in 8 bits, (124, 116, 104).
    public var fill: [UInt8]

    public init(ops: [RandAugmentOp] = RandAugmentOp.increasing, layers: Int = 2, probability: Double = 0.5,
                magnitude: Double = 9, magnitudeStd: Double = 0.5, fill: [UInt8] = [124, 116, 104]) {
        precondition(!ops.isEmpty && layers >= 0, "RandAugment with \(ops.count) ops, \(layers) layers")
        self.ops = ops
        self.layers = layers
        self.probability = probability
        self.magnitude = magnitude
        self.magnitudeStd = magnitudeStd
        self.fill = fill
    }

    /// Parses `rand-m<M>[-n<N>][-mstd<S>][-inc<0|1>]`; the increasing set needs `inc1` (the only
    /// set implemented). Throws for anything else.
    public init(config: String, fill: [UInt8] = [124, 116, 104]) throws {
        let parts = config.split(separator: "-").map(String.init)
        guard parts.first == "rand" else {
            throw RandAugmentConfigError(config: config, detail: "only 'rand-…' policies are supported")
        }
        var m = 10.0, n = 2, std = 0.0, increasing = false
        for part in parts.dropFirst() {
            guard let split = part.firstIndex(where: { $0.isNumber }) else {
                throw RandAugmentConfigError(config: config, detail: "'\(part)' has no value")
            }
            let key = String(part[..<split]), value = String(part[split...])
            switch key {
            case "m":
                guard let v = Int(value) else { throw RandAugmentConfigError(config: config, detail: "magnitude '\(value)' is not an integer") }
                m = Double(v)
            case "n":
                guard let v = Int(value), v >= 0 else { throw RandAugmentConfigError(config: config, detail: "layer count '\(value)' is not a count") }
                n = v
            case "mstd":
                guard let v = Double(value), v >= 0, v.isFinite else { throw RandAugmentConfigError(config: config, detail: "magnitude std '\(value)' is not a finite non-negative number") }
                std = v
            case "inc":
                guard let v = Int(value) else { throw RandAugmentConfigError(config: config, detail: "inc '\(value)' is not 0 or 1") }
                increasing = v != 0
            default:
                throw RandAugmentConfigError(config: config, detail: "unknown key '\(key)' (expected m, n, mstd, inc)")
            }
        }
        guard increasing else {
            throw RandAugmentConfigError(config: config, detail: "only the increasing operation set (inc1) is implemented")
        }
        self.init(layers: n, magnitude: m, magnitudeStd: std, fill: fill)
    }

    /// One fired operation: which, at what magnitude, with which sign.
    public struct Step: Equatable, Sendable {
        public var op: RandAugmentOp
        public var magnitude: Double
        public var negate: Bool
    }

    /// Draws the operations to apply, in order: the `layers` choices first, then per choice the
    /// firing draw and, when it fires, the magnitude and (for signed operations) the sign.
    public func draw(rng: inout SeededGenerator) -> [Step] {
        let chosen = (0..<layers).map { _ in ops[rng.integer(0, ops.count - 1)] }
        var steps: [Step] = []
        for op in chosen {
            if probability < 1 && rng.unitDouble() > probability { continue }
            var m = magnitude
            if magnitudeStd > 0 { m = rng.gaussian(mean: magnitude, std: magnitudeStd) }
            m = max(0, min(m, 10))
            let negate = op.isSigned ? rng.unitDouble() > 0.5 : false
            steps.append(Step(op: op, magnitude: m, negate: negate))
        }
        return steps
    }

    public func apply(_ image: Image8, rng: inout SeededGenerator) -> Image8 {
        var out = image
        for step in draw(rng: &rng) {
            out = step.op.apply(out, magnitude: step.magnitude, negate: step.negate, fill: fill)
        }
        return out
    }
}
