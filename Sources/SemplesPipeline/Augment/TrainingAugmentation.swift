import Foundation
import SemplesEngine
import SemplesFormats

/// The training transform of spec §4.2 from an 8-bit RGB image to a normalised [3, size, size]
/// float image: random resized crop (bicubic), horizontal flip, optional RandAugment, ToTensor +
/// ImageNet normalisation, optional random erasing. Every draw comes from the generator passed in,
/// in that order, so an image's result depends only on the generator's state.
public struct TrainingAugmentation: Equatable, Sendable {
    public var crop: RandomResizedCrop
    public var flipProbability: Double
    public var randAugment: RandAugment?
    public var erasing: RandomErasing?
    public var mean: [Float]
    public var std: [Float]

    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    public init(crop: RandomResizedCrop = RandomResizedCrop(), flipProbability: Double = 0.5,
                randAugment: RandAugment? = nil, erasing: RandomErasing? = nil,
                mean: [Float] = TrainingAugmentation.imagenetMean, std: [Float] = TrainingAugmentation.imagenetStd) {
        precondition(mean.count == 3 && std.count == 3, "normalisation with \(mean.count) means, \(std.count) stds")
        self.crop = crop
        self.flipProbability = flipProbability
        self.randAugment = randAugment
        self.erasing = erasing
        self.mean = mean
        self.std = std
    }

    /// Stages (a) and (c), and WeakTr's own training: crop, flip, `rand-m9-mstd0.5-inc1`,
    /// normalise, erasing with p = 0.25 in pixel mode.
    public static let stageAC = TrainingAugmentation(randAugment: RandAugment(), erasing: RandomErasing())

    /// Stage (b): crop, flip and normalise only.
    public static let stageB = TrainingAugmentation()

    /// Side of the square output.
    public var size: Int { crop.size }

    /// Floats written by `apply`: 3 · size · size.
    public var outputCount: Int { 3 * crop.size * crop.size }

    /// The 8-bit part: crop, flip, RandAugment.
    public func augmentPixels(_ image: Image8, rng: inout SeededGenerator) -> Image8 {
        precondition(image.channels == 3, "training augmentation of a \(image.channels)-channel image (RGB expected)")
        var out = crop.apply(image, rng: &rng)
        if rng.unitDouble() < flipProbability { out = out.flippedHorizontally() }
        if let ra = randAugment { out = ra.apply(out, rng: &rng) }
        return out
    }

    /// Writes the augmented, normalised image, [3, size, size], into `output`.
    public func apply(_ image: Image8, rng: inout SeededGenerator, into output: UnsafeMutablePointer<Float>) {
        let pixels = augmentPixels(image, rng: &rng)
        Self.normalize(pixels, mean: mean, std: std, into: output)
        if let erasing {
            erasing.apply(to: output, channels: 3, height: pixels.height, width: pixels.width, rng: &rng)
        }
    }

    /// ToTensor then Normalize in single precision: `(v / 255 − mean[c]) / std[c]`, written as
    /// [channels, height, width].
    public static func normalize(_ image: Image8, mean: [Float] = imagenetMean, std: [Float] = imagenetStd,
                                 into output: UnsafeMutablePointer<Float>) {
        let c = image.channels, plane = image.width * image.height
        precondition(mean.count >= c && std.count >= c, "normalisation of \(c) channels with \(mean.count) means")
        image.pixels.withUnsafeBufferPointer { src in
            for k in 0..<c {
                let m = mean[k], s = std[k]
                let dst = output + k * plane
                for i in 0..<plane {
                    dst[i] = (Float(src[i * c + k]) / 255 - m) / s
                }
            }
        }
    }
}
