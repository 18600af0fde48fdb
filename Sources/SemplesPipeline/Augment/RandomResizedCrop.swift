import Foundation
import SemplesEngine
import SemplesFormats

/// A crop rectangle in pixels: columns `x..<x+width`, rows `y..<y+height`.
public struct CropBox: Equatable, Sendable, Codable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
}

/// `RandomResizedCropAndInterpolation(size, scale, ratio, interpolation=bicubic)` (spec §4.2
/// step 1): a random box of a random area fraction and aspect, cut out, then resized to
/// size × size with Pillow's bicubic (crop first, then resize, as `resized_crop` does).
public struct RandomResizedCrop: Equatable, Sendable {
    public var size: Int
    /// Area fraction of the image, drawn uniformly.
    public var scale: ClosedRange<Double>
    /// Aspect ratio width / height; its logarithm is drawn uniformly.
    public var ratio: ClosedRange<Double>
    /// Draws before falling back to the centre crop.
    public var attempts: Int

    public init(size: Int = 224, scale: ClosedRange<Double> = 0.08...1.0,
                ratio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0), attempts: Int = 10) {
        precondition(size > 0 && scale.lowerBound > 0 && ratio.lowerBound > 0,
                     "crop size \(size), scale \(scale), ratio \(ratio)")
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.attempts = attempts
    }

    /// The box for an image of the given size. Each attempt draws the area fraction, then the
    /// log-aspect; `w = round(√(area·ratio))`, `h = round(√(area/ratio))` (ties to even); a box
    /// that fits is placed at a uniform integer offset (row first, then column). When no attempt
    /// fits: a centred box, the whole image with its aspect clamped into `ratio` (at least one
    /// pixel each way).
    public func box(width: Int, height: Int, rng: inout SeededGenerator) -> CropBox {
        precondition(width > 0 && height > 0, "random crop of a \(width)x\(height) image")
        let area = Double(width * height)
        let logRatio = (Foundation.log(ratio.lowerBound), Foundation.log(ratio.upperBound))
        for _ in 0..<attempts {
            let targetArea = rng.uniform(scale.lowerBound, scale.upperBound) * area
            let aspect = Foundation.exp(rng.uniform(logRatio.0, logRatio.1))
            let w = pythonRound((targetArea * aspect).squareRoot())
            let h = pythonRound((targetArea / aspect).squareRoot())
            // An empty box (only possible on images of a few pixels) counts as a failed attempt.
            if w > 0 && h > 0 && w <= width && h <= height {
                let top = rng.integer(0, height - h)
                let left = rng.integer(0, width - w)
                return CropBox(x: left, y: top, width: w, height: h)
            }
        }
        return fallbackBox(width: width, height: height)
    }

    /// The centre crop used when every attempt fails.
    public func fallbackBox(width: Int, height: Int) -> CropBox {
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = pythonRound(Double(w) / ratio.lowerBound)
        } else if inRatio > ratio.upperBound {
            w = pythonRound(Double(h) * ratio.upperBound)
        }
        w = max(1, w)
        h = max(1, h)
        return CropBox(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// Cuts `box` out of `image` and resizes it to size × size (Pillow bicubic).
    public func resized(_ image: Image8, box: CropBox) -> Image8 {
        let cut = PILOps.crop(image, x: box.x, y: box.y, width: box.width, height: box.height)
        return PILResize.bicubic(cut, width: size, height: size)
    }

    /// Draws a box and returns the resized crop.
    public func apply(_ image: Image8, rng: inout SeededGenerator) -> Image8 {
        resized(image, box: box(width: image.width, height: image.height, rng: &rng))
    }
}
