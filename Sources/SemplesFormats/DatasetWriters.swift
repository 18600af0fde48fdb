import CCodecs
import Foundation
import SemplesEngine

extension ImageIO {
    /// Encodes grey or RGB pixels as a baseline JPEG.
    public static func encodeJPEG(_ image: Image8, quality: Int = 92, path: String = "<memory>") throws -> Data {
        guard image.width > 0, image.height > 0 else { throw FormatError(path, "cannot write an empty image") }
        guard image.pixels.count == image.width * image.height * image.channels else {
            throw FormatError(path, "\(image.pixels.count) bytes for a \(image.width)x\(image.height)x\(image.channels) image")
        }
        var data: UnsafeMutablePointer<UInt8>?
        var size = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            semples_jpeg_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                Int32(max(1, min(100, quality))), &data, &size, &error, error.count)
        }
        guard status == 0, let data else { throw FormatError(path, "JPEG encoding failed: \(String(cString: error))") }
        defer { semples_codecs_free(data) }
        return Data(bytes: data, count: size)
    }

    /// Writes a JPEG atomically.
    public static func writeJPEG(_ image: Image8, quality: Int = 92, to path: String) throws {
        try AtomicFile.write(try encodeJPEG(image, quality: quality, path: path), to: path)
    }
}

extension Npy {
    /// Writes a label dictionary `{image id: float32 [C]}` as the reference's `cls_labels.npy`
    /// (a pickled dict in a 0-d object array), ids in sorted order.
    public static func writeLabelDict(_ labels: [String: [Float]], to path: String) throws {
        var entries: [(key: PickleValue, value: PickleValue)] = []
        for id in labels.keys.sorted() {
            let vector = labels[id]!
            let t = vector.withUnsafeBufferPointer { buf -> PickleValue in
                let view = TensorView(UnsafeMutablePointer(mutating: buf.baseAddress!), [vector.count])
                return .array(float32Array(view))
            }
            entries.append((.string(id), t))
        }
        try AtomicFile.write(try encodeObject(.dict(entries)), to: path)
    }
}
