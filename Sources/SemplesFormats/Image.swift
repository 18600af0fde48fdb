import CCodecs
import Foundation

/// An 8-bit image: row-major, channels interleaved (1 = grey or label indices, 3 = RGB).
public struct Image8: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (channels == 1 || channels == 3),
                     "image \(width)x\(height) with \(channels) channels")
        precondition(pixels.count == width * height * channels,
                     "\(pixels.count) bytes for a \(width)x\(height)x\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A zero-filled image.
    public init(width: Int, height: Int, channels: Int) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: 0, count: width * height * channels))
    }

    /// The value at (x, y) of channel c.
    public subscript(x x: Int, y y: Int, c c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }

    /// The image mirrored left to right (`PIL.ImageOps.mirror`, `torch.flip(x, [-1])`).
    public func flippedHorizontally() -> Image8 {
        var out = self
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * width * c
                    for x in 0..<width {
                        let s = row + (width - 1 - x) * c, d = row + x * c
                        for k in 0..<c { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        return out
    }
}

/// JPEG and PNG files through libjpeg and libpng.
public enum ImageIO {
    /// Largest image accepted, in pixels: a guard against decompression bombs.
    nonisolated(unsafe) public static var maxPixels = 100_000_000

    /// Reads a JPEG or PNG as RGB (channels 3): grey and palette images are expanded, alpha dropped.
    public static func read(_ path: String) throws -> Image8 {
        try decode(try ByteSource(path: path), labels: false)
    }

    /// Reads a palette or greyscale PNG as raw values (channels 1): palette indices as stored,
    /// including 255 (the VOC "ignore" label).
    public static func readLabels(_ path: String) throws -> Image8 {
        try decode(try ByteSource(path: path), labels: true)
    }

    /// Decodes image bytes; `source.path` names the file in errors.
    public static func decode(_ source: ByteSource, labels: Bool) throws -> Image8 {
        let path = source.path
        let bytes = source.buffer
        guard bytes.count >= 8 else { throw FormatError(path, "too short to be an image (\(bytes.count) bytes)") }
        let isJPEG = bytes[0] == 0xFF && bytes[1] == 0xD8
        let isPNG = bytes[0] == 0x89 && bytes[1] == 0x50 && bytes[2] == 0x4E && bytes[3] == 0x47
        guard isJPEG || isPNG else { throw FormatError(path, "neither a JPEG nor a PNG file (wrong magic)") }
        if labels && isJPEG { throw FormatError(path, "label images must be PNG, found a JPEG") }
        var img = semples_image()
        let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status = isJPEG
            ? semples_jpeg_decode(base, bytes.count, maxPixels, &img)
            : semples_png_decode(base, bytes.count, labels ? Int32(SEMPLES_PNG_LABELS) : Int32(SEMPLES_PNG_RGB), maxPixels, &img)
        guard status == 0, let pixels = img.pixels else {
            let message = withUnsafeBytes(of: img.error) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw FormatError(path, "\(isJPEG ? "JPEG" : "PNG") decoding failed: \(message)")
        }
        defer { semples_codecs_free(pixels) }
        let w = Int(img.width), h = Int(img.height), c = Int(img.channels)
        return Image8(width: w, height: h, channels: c,
                      pixels: Array(UnsafeBufferPointer(start: pixels, count: w * h * c)))
    }

    /// Encodes grey or RGB pixels as PNG bytes.
    public static func encodePNG(_ image: Image8, palette: [UInt8]? = nil, path: String = "<memory>") throws -> Data {
        guard image.width > 0, image.height > 0 else { throw FormatError(path, "cannot write an empty image") }
        var data: UnsafeMutablePointer<UInt8>?
        var size = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            if let palette {
                return palette.withUnsafeBufferPointer { pal in
                    semples_png_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                       pal.baseAddress, Int32(palette.count / 3), &data, &size, &error, error.count)
                }
            }
            return semples_png_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                      nil, 0, &data, &size, &error, error.count)
        }
        guard status == 0, let data else {
            throw FormatError(path, "PNG encoding failed: \(String(cString: error))")
        }
        defer { semples_codecs_free(data) }
        return Data(bytes: data, count: size)
    }

    /// Encodes grey or RGB pixels as a baseline JPEG (quality 1…100).
    public static func encodeJPEG(_ image: Image8, quality: Int = 90, path: String = "<memory>") throws -> Data {
        guard image.width > 0, image.height > 0 else { throw FormatError(path, "cannot write an empty image") }
        var data: UnsafeMutablePointer<UInt8>?
        var size = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            semples_jpeg_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                Int32(quality), &data, &size, &error, error.count)
        }
        guard status == 0, let data else { throw FormatError(path, "JPEG encoding failed: \(String(cString: error))") }
        defer { semples_codecs_free(data) }
        return Data(bytes: data, count: size)
    }

    /// Writes a JPEG atomically.
    public static func writeJPEG(_ image: Image8, quality: Int = 90, to path: String) throws {
        try AtomicFile.write(try encodeJPEG(image, quality: quality, path: path), to: path)
    }

    /// Writes a grey or RGB PNG atomically.
    public static func writePNG(_ image: Image8, to path: String) throws {
        try AtomicFile.write(try encodePNG(image, path: path), to: path)
    }

    /// Writes label indices (channels 1) as a palette PNG (VOC masks: `vocPalette()`), atomically.
    public static func writePalettePNG(_ labels: Image8, palette: [UInt8], to path: String) throws {
        guard labels.channels == 1 else { throw FormatError(path, "palette images need one channel, got \(labels.channels)") }
        guard palette.count % 3 == 0, (3...768).contains(palette.count) else {
            throw FormatError(path, "palette of \(palette.count) bytes (need 3 per colour, at most 256 colours)")
        }
        try AtomicFile.write(try encodePNG(labels, palette: palette, path: path), to: path)
    }

    /// The PASCAL VOC colour map: 256 RGB entries, 768 bytes. Entry i spreads the bits of i over
    /// the channels from the most significant bit down (0 black, 1 dark red, …, 255 cream).
    public static func vocPalette() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 768)
        for i in 0..<256 {
            var r = 0, g = 0, b = 0, c = i
            for j in 0..<8 {
                r |= ((c >> 0) & 1) << (7 - j)
                g |= ((c >> 1) & 1) << (7 - j)
                b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            }
            out[3 * i] = UInt8(r); out[3 * i + 1] = UInt8(g); out[3 * i + 2] = UInt8(b)
        }
        return out
    }
}
