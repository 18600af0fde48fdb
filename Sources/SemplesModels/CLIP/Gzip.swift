import CZlib
import Foundation
import SemplesFormats

/// Reading gzip files (the CLIP BPE vocabulary ships as one) through zlib.
enum Gzip {
    /// The decompressed contents of the gzip file at `path`.
    static func read(_ path: String) throws -> Data {
        guard let compressed = FileManager.default.contents(atPath: path) else {
            throw FormatError(path, "cannot be read")
        }
        return try decompress(compressed, path: path)
    }

    /// Decompresses gzip (or zlib) data; `path` only labels errors.
    static func decompress(_ compressed: Data, path: String) throws -> Data {
        var stream = z_stream()
        // 15 window bits + 32: detect gzip or zlib headers automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw FormatError(path, "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunk = 1 << 18
        var buffer = [UInt8](repeating: 0, count: chunk)
        var status: Int32 = Z_OK
        try compressed.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            repeat {
                let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunk - Int(stream.avail_out)
                }
                if status != Z_OK && status != Z_STREAM_END {
                    let reason = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                    throw FormatError(path, "is not valid gzip data at byte \(stream.total_in): \(reason)")
                }
                output.append(contentsOf: buffer[0..<produced])
                if status == Z_OK && produced == 0 && stream.avail_in == 0 {
                    throw FormatError(path, "gzip data ends early after \(stream.total_in) bytes (truncated file?)")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}
