import Foundation
import SemplesEngine

/// `RandomErasing(probability, mode, count 1)` on a normalised [C, H, W] float image (spec §4.2
/// step 5): with probability p, up to `attempts` draws of an area fraction and a log-aspect;
/// `h = round(√(area·aspect))`, `w = round(√(area/aspect))`; the first box strictly smaller than
/// the image is placed at a uniform offset and filled.
public struct RandomErasing: Equatable, Sendable {
    public enum Mode: String, Sendable, Codable {
        /// Every value of the box an independent N(0, 1) draw.
        case pixel
        /// One N(0, 1) draw per channel.
        case rand
        /// Zeros.
        case const
    }

    public var probability: Double
    public var area: ClosedRange<Double>
    public var aspect: ClosedRange<Double>
    public var mode: Mode
    public var attempts: Int

    public init(probability: Double = 0.25, area: ClosedRange<Double> = 0.02...(1.0 / 3.0),
                aspect: ClosedRange<Double> = 0.3...(1.0 / 0.3), mode: Mode = .pixel, attempts: Int = 10) {
        precondition(area.lowerBound >= 0 && aspect.lowerBound > 0, "erasing area \(area), aspect \(aspect)")
        self.probability = probability
        self.area = area
        self.aspect = aspect
        self.mode = mode
        self.attempts = attempts
    }

    /// The box to erase in an image of the given size, or nil (not drawn, or no attempt fit).
    public func box(width: Int, height: Int, rng: inout SeededGenerator) -> CropBox? {
        if rng.unitDouble() > probability { return nil }
        let total = Double(width * height)
        let logAspect = (Foundation.log(aspect.lowerBound), Foundation.log(aspect.upperBound))
        for _ in 0..<attempts {
            let target = rng.uniform(area.lowerBound, area.upperBound) * total
            let a = Foundation.exp(rng.uniform(logAspect.0, logAspect.1))
            let h = pythonRound((target * a).squareRoot())
            let w = pythonRound((target / a).squareRoot())
            if w < width && h < height {
                let top = rng.integer(0, height - h)
                let left = rng.integer(0, width - w)
                return CropBox(x: left, y: top, width: w, height: h)
            }
        }
        return nil
    }

    /// Erases in place; `image` is [channels, height, width]. Returns the erased box.
    @discardableResult
    public func apply(to image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                      rng: inout SeededGenerator) -> CropBox? {
        guard let b = box(width: width, height: height, rng: &rng) else { return nil }
        for c in 0..<channels {
            let channelValue: Float = mode == .rand ? rng.nextNormal() : 0
            for y in b.y..<(b.y + b.height) {
                let row = image + (c * height + y) * width
                for x in b.x..<(b.x + b.width) {
                    row[x] = mode == .pixel ? rng.nextNormal() : channelValue
                }
            }
        }
        return b
    }
}
