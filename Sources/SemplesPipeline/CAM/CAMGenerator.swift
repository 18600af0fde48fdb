import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// An interleaved 8-bit RGB image already rescaled for one CAM scale (raw-buffer form of Image8).
public struct CAMInput {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]      // height·width·3, row-major

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(pixels.count) bytes for a \(width)×\(height) RGB image")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Multi-scale CAM generation of spec §5 with one WeakTr model: for each scale the image and its
/// mirror go through the model; each fine CAM is stretched (bilinear, align_corners false) to the
/// first entry's size, absent classes are dropped, flips are undone, everything is summed and each
/// positive class is min-max normalised. Buffers are reused from image to image; one generator
/// serves one thread at a time. Check inputs from files with `checkInput` first.
public final class CAMGenerator {
    public let model: WeakTr
    public let scales: [Double]
    private var arena = Arena(capacity: 0)

    public init(model: WeakTr, scales: [Double]) {
        precondition(!scales.isEmpty && scales.allSatisfy { $0 > 0 }, "scales must be positive, got \(scales)")
        self.model = model
        self.scales = scales
    }

    /// Throws when `image` cannot go through the model at every scale: it must be RGB and at
    /// least one 16×16 patch in each direction after rescaling. `source` names the file.
    public func checkInput(_ image: Image8, source: String) throws {
        guard image.channels == 3 else {
            throw FormatError(source, "CAM input has \(image.channels) channels, expected RGB")
        }
        for s in scales {
            let size = Self.scaledSize(width: image.width, height: image.height, scale: s)
            guard size.width >= model.config.patchSize, size.height >= model.config.patchSize else {
                throw FormatError(source, "image \(image.width)×\(image.height) is \(size.width)×\(size.height) at scale \(s), smaller than one \(model.config.patchSize)×\(model.config.patchSize) patch")
            }
        }
    }

    /// The size an image of width×height takes at `scale`: Python's round(), half to even.
    public static func scaledSize(width: Int, height: Int, scale: Double) -> (width: Int, height: Int) {
        (Int((Double(width) * scale).rounded(.toNearestOrEven)), Int((Double(height) * scale).rounded(.toNearestOrEven)))
    }

    /// CAMs {class k: [H, W] in [0, 1]} for every class with label > 0 of an RGB image: each scale
    /// is made with PIL bicubic (the image itself when the size is unchanged). H×W is the size at
    /// the first scale (the image's own size for scale 1.0).
    public func cams(for image: Image8, labels: [Float]) -> [Int: Tensor] {
        precondition(image.channels == 3, "CAM input must be RGB, got \(image.channels) channels")
        let inputs = scales.map { s -> Image8 in
            let size = Self.scaledSize(width: image.width, height: image.height, scale: s)
            if size.width == image.width && size.height == image.height { return image }
            return PILResize.bicubic(image, width: size.width, height: size.height)
        }
        return cams(scaledImages: inputs, labels: labels)
    }

    /// The same from raw RGB buffers already rescaled for each of `scales`.
    public func cams(scaledImages inputs: [CAMInput], labels: [Float]) -> [Int: Tensor] {
        cams(scaledImages: inputs.map { Image8(width: $0.width, height: $0.height, channels: 3, pixels: $0.pixels) },
             labels: labels)
    }

    /// The same from images already rescaled for each of `scales` (same order). Empty when no
    /// label is positive.
    public func cams(scaledImages inputs: [Image8], labels: [Float]) -> [Int: Tensor] {
        precondition(inputs.count == scales.count, "\(inputs.count) inputs for \(scales.count) scales")
        let C = model.config.classCount
        precondition(labels.count == C, "\(labels.count) labels for \(C) classes")
        let positives = (0..<C).filter { labels[$0] > 0 }
        guard !positives.isEmpty else { return [:] }
        let outH = inputs[0].height, outW = inputs[0].width

        let largest = inputs.map { 3 * $0.width * $0.height }.max()!
        let need = roundUp(largest) + roundUp(positives.count * outH * outW) + roundUp(outW * 2) + 64
        if arena.capacity < need { arena = Arena(capacity: need) }
        arena.reset()
        let sums = arena.zeros([positives.count, outH, outW])
        let rowScratch = arena.allocate(Shape(2, outW))
        let inputMark = arena.mark

        for input in inputs {
            precondition(input.channels == 3, "CAM input must be RGB, got \(input.channels) channels")
            for flipped in [false, true] {
                arena.release(to: inputMark)
                let x = arena.allocate(Shape(3, input.height, input.width))
                input.pixels.withUnsafeBufferPointer {
                    ImageNetInput.normalize($0.baseAddress!, width: input.width, height: input.height,
                                            flipped: flipped, into: x)
                }
                let out = model.forward(x)
                let hp = out.patchRows, wp = out.patchColumns
                for (slot, k) in positives.enumerated() {
                    CAMResize.bilinearAdd(out.fineCAM.data + k * hp * wp, height: hp, width: wp,
                                          into: sums[slot].data, outHeight: outH, outWidth: outW,
                                          weight: labels[k], mirrored: flipped, scratch: rowScratch)
                }
            }
        }

        var result: [Int: Tensor] = [:]
        for (slot, k) in positives.enumerated() {
            let cam = Tensor([outH, outW])
            CAMResize.minMaxNormalise(sums[slot].data, count: outH * outW, into: cam.data, epsilon: 1e-8)
            result[k] = cam
        }
        return result
    }

    private func roundUp(_ n: Int) -> Int { (n + 15) & ~15 }
}

/// Resampling and normalisation helpers of the CAM pipeline.
public enum CAMResize {
    /// dst[outH, outW] += weight · bilinear(src[h, w]) with torch's align_corners=False sampling
    /// (source = (i + 0.5)·in/out − 0.5, clamped at 0), written mirrored left–right if asked.
    /// scratch: at least 2·outW floats.
    public static func bilinearAdd(_ src: UnsafePointer<Float>, height h: Int, width w: Int,
                                   into dst: UnsafeMutablePointer<Float>, outHeight H: Int, outWidth W: Int,
                                   weight: Float, mirrored: Bool, scratch: TensorView) {
        precondition(scratch.count >= 2 * W, "resize scratch too small")
        let x0s = scratch.data, lx = scratch.data + W     // left tap index (exact as a float) and weight
        let sx = Float(w) / Float(W), sy = Float(h) / Float(H)
        for i in 0..<W {
            let real = max(sx * (Float(i) + 0.5) - 0.5, 0)
            let x0 = min(Int(real), w - 1)
            x0s[i] = Float(x0)
            lx[i] = real - Float(x0)
        }
        for j in 0..<H {
            let realY = max(sy * (Float(j) + 0.5) - 0.5, 0)
            let y0 = min(Int(realY), h - 1)
            let y1 = y0 + (y0 < h - 1 ? 1 : 0)
            let l1y = realY - Float(y0), l0y = 1 - l1y
            let r0 = src + y0 * w, r1 = src + y1 * w
            let out = dst + j * W
            for i in 0..<W {
                let x0 = Int(x0s[i])
                let x1 = x0 + (x0 < w - 1 ? 1 : 0)
                let l1x = lx[i], l0x = 1 - l1x
                let v = l0y * (l0x * r0[x0] + l1x * r0[x1]) + l1y * (l0x * r1[x0] + l1x * r1[x1])
                out[mirrored ? W - 1 - i : i] += weight * v
            }
        }
    }

    /// out = (x − min) / (max − min + epsilon) over `count` values.
    public static func minMaxNormalise(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>,
                                       epsilon: Float) {
        var lo = Float.infinity, hi = -Float.infinity
        for i in 0..<count { lo = min(lo, x[i]); hi = max(hi, x[i]) }
        let range = hi - lo + epsilon
        for i in 0..<count { out[i] = (x[i] - lo) / range }
    }
}
