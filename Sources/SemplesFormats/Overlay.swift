import Foundation
import SemplesEngine

/// Heat-map pictures of CAMs: the JET colour map blended with the image, as the reference's
/// `--attention-dir` output does (colour map of uint8(255·cam), added to the image in [0, 1],
/// divided by the overall maximum, scaled back to 0…255 with truncation). Channels stay in RGB
/// order here.
public enum CAMOverlay {
    /// The JET colour of level v (0 dark blue … 255 dark red): each channel is a trapezoid
    /// clamp(1.5 − |4·v/255 − c|, 0, 1) with c = 3 (red), 2 (green), 1 (blue). Within one level
    /// of OpenCV's COLORMAP_JET table.
    public static func jetColor(_ v: UInt8) -> (red: UInt8, green: UInt8, blue: UInt8) {
        let x = 4 * Double(v) / 255
        func channel(_ c: Double) -> UInt8 {
            UInt8((min(max(1.5 - abs(x - c), 0), 1) * 255).rounded(.toNearestOrEven))
        }
        return (channel(3), channel(2), channel(1))
    }

    /// cam: [H, W] in [0, 1] (values outside are clamped); image: H×W RGB → the blended RGB image.
    public static func jet(_ cam: TensorView, on image: Image8) -> Image8 {
        precondition(cam.shape.rank == 2 && cam.shape[0] == image.height && cam.shape[1] == image.width,
                     "CAM \(cam.shape) for a \(image.width)x\(image.height) image")
        precondition(image.channels == 3, "overlay needs an RGB image, got \(image.channels) channels")
        let n = image.width * image.height
        var blended = [Float](repeating: 0, count: n * 3)
        var maximum: Float = 0
        for i in 0..<n {
            let level = UInt8(min(max(cam.data[i], 0), 1) * 255)  // truncation, as np.uint8 does
            let (r, g, b) = jetColor(level)
            let heat = [r, g, b]
            for c in 0..<3 {
                let v = Float(heat[c]) / 255 + Float(image.pixels[3 * i + c]) / 255
                blended[3 * i + c] = v
                maximum = max(maximum, v)
            }
        }
        let scale = maximum > 0 ? 255 / maximum : 0
        return Image8(width: image.width, height: image.height, channels: 3,
                      pixels: blended.map { UInt8(min($0 * scale, 255)) })
    }
}
