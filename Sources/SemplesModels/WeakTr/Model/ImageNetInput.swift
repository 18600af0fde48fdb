import SemplesEngine

/// ToTensor + ImageNet Normalize of an interleaved RGB byte image, as the reference's input
/// transform: ((v / 255) − mean) / std per channel, optionally mirrored left–right.
public enum ImageNetInput {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// rgb: height·width·3 bytes → out: [3, height, width].
    public static func normalize(_ rgb: UnsafePointer<UInt8>, width: Int, height: Int, flipped: Bool = false,
                                 into out: TensorView) {
        precondition(out.shape.dims == [3, height, width], "normalise into \(out.shape), expected [3, \(height), \(width)]")
        for c in 0..<3 {
            let m = mean[c], s = std[c]
            let plane = out.data + c * height * width
            for y in 0..<height {
                let src = rgb + y * width * 3 + c
                let dst = plane + y * width
                for x in 0..<width {
                    let sx = flipped ? width - 1 - x : x
                    dst[x] = (Float(src[sx * 3]) / 255 - m) / s
                }
            }
        }
    }
}
