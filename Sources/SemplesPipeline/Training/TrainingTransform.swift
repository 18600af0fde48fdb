import Foundation
import SemplesEngine
import SemplesFormats

/// Where the rest of the training augmentation of spec §4.2 plugs in (RandAugment on the pixels
/// after crop and flip; RandomErasing on the normalised tensor). Implementations draw only from
/// the generator they are given, so a run repeats from its seed.
public protocol AugmentationStage: Sendable {
    /// Applied to the cropped, resized and flipped RGB image, before normalisation.
    func augment(_ image: Image8, generator: inout SeededGenerator) -> Image8
    /// Applied to the normalised [3, S, S] image in place.
    func augment(normalized image: TensorView, generator: inout SeededGenerator)
}

/// Steps 1, 2 and 4 of spec §4.2: RandomResizedCrop (scale (0.08, 1), ratio (3/4, 4/3), PIL
/// bicubic), horizontal flip with p = 0.5, ImageNet normalisation; then the optional extra stage.
public struct TrainingTransform: Sendable {
    public var size: Int
    public var scale: ClosedRange<Double> = 0.08...1.0
    public var ratio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0)
    public var flipProbability: Double = 0.5
    public var extra: (any AugmentationStage)?

    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    public init(size: Int, extra: (any AugmentationStage)? = nil) {
        self.size = size
        self.extra = extra
    }

    /// The crop (x, y, width, height) of torchvision's RandomResizedCrop.get_params.
    public func cropBox(width W: Int, height H: Int, generator g: inout SeededGenerator) -> (x: Int, y: Int, width: Int, height: Int) {
        let area = Double(W * H)
        let logLo = log(ratio.lowerBound), logHi = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + Double(g.nextUniform()) * (scale.upperBound - scale.lowerBound))
            let aspect = exp(logLo + Double(g.nextUniform()) * (logHi - logLo))
            let w = Int((target * aspect).squareRoot().rounded())
            let h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && h > 0 && w <= W && h <= H {
                let y = Int(g.next() % UInt64(H - h + 1))
                let x = Int(g.next() % UInt64(W - w + 1))
                return (x, y, w, h)
            }
        }
        let inRatio = Double(W) / Double(H)
        var w = W, h = H
        if inRatio < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded())
        } else if inRatio > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded())
        }
        return ((W - w) / 2, (H - h) / 2, w, h)
    }

    /// Augments one RGB image into `output: [3, size, size]` (normalised).
    public func apply(_ image: Image8, into output: TensorView, generator g: inout SeededGenerator) {
        precondition(image.channels == 3 && output.count == 3 * size * size, "transform of \(image.channels)-channel image into \(output.shape)")
        let box = cropBox(width: image.width, height: image.height, generator: &g)
        var crop = Image8(width: box.width, height: box.height, channels: 3)
        image.pixels.withUnsafeBufferPointer { src in
            crop.pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<box.height {
                    let from = ((box.y + y) * image.width + box.x) * 3
                    for i in 0..<(box.width * 3) { dst[y * box.width * 3 + i] = src[from + i] }
                }
            }
        }
        var resized = PILResize.bicubic(crop, width: size, height: size)
        if Double(g.nextUniform()) < flipProbability { resized = resized.flippedHorizontally() }
        if let extra { resized = extra.augment(resized, generator: &g) }
        let S = size
        resized.pixels.withUnsafeBufferPointer { px in
            for c in 0..<3 {
                let plane = output.data + c * S * S
                let m = Self.mean[c], s = Self.std[c]
                for i in 0..<(S * S) { plane[i] = (Float(px[i * 3 + c]) / 255 - m) / s }
            }
        }
        extra?.augment(normalized: output, generator: &g)
    }
}
