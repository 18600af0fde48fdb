import SemplesEngine
import SemplesFormats

/// Turning an RGB image into the [3, R, R] input of the image encoder for stand-alone scoring.
/// (Training feeds its own ImageNet-normalised, masked tensors and never comes here; spec §2.2.)
public enum CLIPPreprocess {
    /// Per-channel mean and standard deviation applied after scaling to [0, 1].
    public enum Normalisation: String, Sendable, CaseIterable {
        /// CLIP's own statistics, as OpenAI's preprocessing uses them.
        case clip
        /// ImageNet statistics, as SemPLeS feeds its masked images.
        case imagenet

        public var mean: [Float] {
            self == .clip ? [0.48145466, 0.4578275, 0.40821073] : [0.485, 0.456, 0.406]
        }
        public var std: [Float] {
            self == .clip ? [0.26862954, 0.26130258, 0.27577711] : [0.229, 0.224, 0.225]
        }
    }

    /// Resizes the shorter side to `resolution` (PIL bicubic), crops the centre square and
    /// normalises: image → out [3, R, R].
    public static func pixels(_ image: Image8, resolution R: Int, normalisation: Normalisation,
                              into out: TensorView) {
        precondition(out.count == 3 * R * R, "preprocess into \(out.shape) for \(R)px")
        precondition(image.channels == 3, "RGB image expected, got \(image.channels) channels")
        let w = image.width, h = image.height
        // The shorter side becomes R; the longer keeps the aspect ratio, truncated.
        let (rw, rh) = w <= h ? (R, max(R, Int(Double(R) * Double(h) / Double(w)))) :
            (max(R, Int(Double(R) * Double(w) / Double(h))), R)
        let resized = (rw == w && rh == h) ? image : PILResize.bicubic(image, width: rw, height: rh)
        let top = Int((Double(rh - R) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(rw - R) / 2).rounded(.toNearestOrEven))
        let mean = normalisation.mean, std = normalisation.std
        for c in 0..<3 {
            let plane = out.data + c * R * R
            for y in 0..<R {
                for x in 0..<R {
                    let v = Float(resized.pixels[((top + y) * rw + left + x) * 3 + c]) / 255
                    plane[y * R + x] = (v - mean[c]) / std[c]
                }
            }
        }
    }
}
