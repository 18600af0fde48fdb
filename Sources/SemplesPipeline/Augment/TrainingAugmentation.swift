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

    /// The augmentation the reference's training flags select (timm's `transforms_imagenet_train`):
    /// `--aa` (a `rand-…` policy; nil, "" or "None" for none), `--color-jitter` (applied by the
    /// reference only without an auto-augment policy; only 0 is supported then), `--reprob`,
    /// `--remode` (pixel, rand or const) and `--recount` (1; 0 also means 1, as in timm).
    /// Throws `AugmentationFlagError` for values outside that.
    public init(size: Int = 224, autoAugment: String?, colorJitter: Double = 0, reprob: Double, remode: String = "pixel",
                recount: Int = 1) throws {
        var ra: RandAugment?
        if let aa = autoAugment, !aa.isEmpty, aa != "None", aa != "none" {
            do {
                ra = try RandAugment(config: aa)
            } catch let e as RandAugmentConfigError {
                throw AugmentationFlagError(flag: "aa", detail: e.description)
            }
        } else if colorJitter > 0 {
            throw AugmentationFlagError(flag: "color_jitter", detail: "colour jitter \(colorJitter) without an auto-augment policy is not implemented (use 0, or set aa)")
        }
        guard reprob >= 0 && reprob <= 1 else {
            throw AugmentationFlagError(flag: "reprob", detail: "probability \(reprob) is outside [0, 1]")
        }
        guard let mode = RandomErasing.Mode(rawValue: remode) else {
            throw AugmentationFlagError(flag: "remode", detail: "'\(remode)' is not one of pixel, rand, const")
        }
        guard recount == 0 || recount == 1 else {
            throw AugmentationFlagError(flag: "recount", detail: "\(recount) erasures per image are not implemented (0 or 1)")
        }
        guard size > 0 else { throw AugmentationFlagError(flag: "input_size", detail: "size \(size) is not positive") }
        self.init(crop: RandomResizedCrop(size: size), randAugment: ra,
                  erasing: reprob > 0 ? RandomErasing(probability: reprob, mode: mode) : nil)
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

    /// The steps after crop and flip (RandAugment, random erasing), for a data path that crops,
    /// flips and normalises itself.
    public var postCrop: PostCropAugmentation {
        PostCropAugmentation(randAugment: randAugment, erasing: erasing)
    }

    /// The 8-bit part: crop, flip, RandAugment.
    public func augmentPixels(_ image: Image8, rng: inout SeededGenerator) -> Image8 {
        precondition(image.channels == 3, "training augmentation of a \(image.channels)-channel image (RGB expected)")
        var out = crop.apply(image, rng: &rng)
        if rng.unitDouble() < flipProbability { out = out.flippedHorizontally() }
        return postCrop.augment(out, generator: &rng)
    }

    /// Writes the augmented, normalised image into `output: [3, size, size]`.
    public func apply(_ image: Image8, rng: inout SeededGenerator, into output: TensorView) {
        precondition(output.count == outputCount, "augmented \(size)×\(size) image into \(output.shape)")
        let pixels = augmentPixels(image, rng: &rng)
        Self.normalize(pixels, mean: mean, std: std, into: output.data)
        postCrop.augment(normalized: output.reshaped(Shape(3, pixels.height, pixels.width)), generator: &rng)
    }

    /// Crop, flip and normalise only (stage (b); WeakTr training with `aa: none`, `reprob: 0`).
    public static func cropAndFlip(size: Int) -> TrainingAugmentation {
        TrainingAugmentation(crop: RandomResizedCrop(size: size))
    }

    /// The stage (a)/(c) augmentation at another input size.
    public static func stageAC(size: Int) -> TrainingAugmentation {
        var a = stageAC
        a.crop.size = size
        return a
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

/// A training-augmentation flag the implementation cannot honour.
public struct AugmentationFlagError: Error, CustomStringConvertible, Equatable {
    public let flag: String
    public let detail: String
    public var description: String { "augmentation flag '\(flag)': \(detail)" }
}

/// RandAugment on the cropped and flipped 8-bit image, then random erasing on the normalised
/// [3, S, S] image: the part of spec §4.2 that follows crop and flip. Both draw only from the
/// generator passed in.
public struct PostCropAugmentation: Equatable, Sendable {
    public var randAugment: RandAugment?
    public var erasing: RandomErasing?

    public init(randAugment: RandAugment? = nil, erasing: RandomErasing? = nil) {
        self.randAugment = randAugment
        self.erasing = erasing
    }

    /// RandAugment (unchanged image when off).
    public func augment(_ image: Image8, generator: inout SeededGenerator) -> Image8 {
        randAugment?.apply(image, rng: &generator) ?? image
    }

    /// Random erasing in place on a normalised [C, H, W] image (nothing when off).
    public func augment(normalized image: TensorView, generator: inout SeededGenerator) {
        guard let erasing else { return }
        let dims = image.shape.dims
        precondition(dims.count == 3, "erasing of a \(image.shape) tensor ([C, H, W] expected)")
        erasing.apply(to: image.data, channels: dims[0], height: dims[1], width: dims[2], rng: &generator)
    }
}

