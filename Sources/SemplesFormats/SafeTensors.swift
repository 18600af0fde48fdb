import Foundation
import SemplesEngine

/// Element types a tensor file can hold. Everything is converted to float32 on load, except
/// integer arrays which callers may read raw.
public enum DType: String, Sendable, Codable {
    case float32 = "F32", float16 = "F16", bfloat16 = "BF16", float64 = "F64"
    case int64 = "I64", int32 = "I32", uint8 = "U8", int8 = "I8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16: return 2
        case .uint8, .int8, .bool: return 1
        }
    }
}

/// A named tensor read from a file, already converted to float32.
public struct NamedTensor {
    public let name: String
    public let dtype: DType
    public let tensor: Tensor
}

/// Converts `count` elements of `dtype` at `src` (little-endian) into float32.
public func convertToFloat32(_ src: UnsafeRawPointer, dtype: DType, count: Int,
                             into dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .float32:
        memcpy(dst, src, count * 4)
    case .float16:
        // Exact and branch-free (vectorises): half bits shifted into float position and scaled by
        // 2^112 give every finite value, subnormals included; infinities and NaNs are patched.
        let scale = Float(bitPattern: 0x7780_0000)
        for i in 0..<count {
            let h = UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            let magnitude = h & 0x7FFF
            let finite = Float(bitPattern: magnitude << 13) * scale
            let special = Float(bitPattern: 0x7F80_0000 | ((magnitude & 0x03FF) << 13))
            let value = magnitude >= 0x7C00 ? special : finite
            dst[i] = Float(bitPattern: value.bitPattern | ((h & 0x8000) << 16))
        }
    case .bfloat16:
        for i in 0..<count {
            let bits = src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
            dst[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    case .float64:
        for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
    case .int64:
        for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
    case .int32:
        for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
    case .uint8, .bool:
        for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
    case .int8:
        for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
    }
}

/// The safetensors format: u64 little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then raw data.
public enum SafeTensors {
    /// Largest header accepted (the format's own limit is 100 MB).
    static let maxHeaderBytes = 100_000_000

    /// Reads every tensor of a safetensors file (memory-mapped), converting to float32. Order
    /// follows the data offsets.
    public static func read(_ path: String) throws -> (tensors: [NamedTensor], metadata: [String: String]) {
        let source = try ByteSource(path: path)
        return try parse(source.buffer, path: path)
    }

    public static func parse(_ data: Data, path: String) throws -> (tensors: [NamedTensor], metadata: [String: String]) {
        try data.withUnsafeBytes { try parse($0, path: path) }
    }

    static func parse(_ data: UnsafeRawBufferPointer, path: String) throws -> (tensors: [NamedTensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw FormatError(path, "too short for a safetensors header (\(data.count) bytes)") }
        let headerLength = UInt64(littleEndian: data.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maxHeaderBytes), Int(headerLength) <= data.count - 8 else {
            throw FormatError(path, "header length \(headerLength) exceeds the file size \(data.count)")
        }
        let headerData = Data(UnsafeRawBufferPointer(rebasing: data[8..<(8 + Int(headerLength))]))
        guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw FormatError(path, "header is not a JSON object")
        }
        let payloadStart = 8 + Int(headerLength)
        let payloadSize = data.count - payloadStart
        var metadata: [String: String] = [:]
        var entries: [(String, DType, [Int], Int, Int)] = []
        for (name, value) in json {
            if name == "__metadata__" {
                if let m = value as? [String: String] { metadata = m }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FormatError(path, "tensor '\(name)': header entry lacks dtype, shape or data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError(path, "tensor '\(name)': unsupported dtype '\(dtypeName)'")
            }
            guard shape.count <= 6, shape.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
                throw FormatError(path, "tensor '\(name)': unsupported shape \(shape)")
            }
            guard let count = checkedProduct(shape + [dtype.byteSize], limit: Int.max / 2) else {
                throw FormatError(path, "tensor '\(name)': shape \(shape) is too large")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= payloadSize, end - begin == count else {
                throw FormatError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] do not fit shape \(shape) of \(dtypeName) in \(payloadSize) data bytes")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        entries.sort { $0.3 < $1.3 }
        let tensors = entries.map { (name, dtype, shape, begin, _) -> NamedTensor in
            let t = Tensor(shape)
            convertToFloat32(data.baseAddress! + payloadStart + begin, dtype: dtype, count: t.count, into: t.data)
            return NamedTensor(name: name, dtype: dtype, tensor: t)
        }
        return (tensors, metadata)
    }

    /// Serialises float32 tensors (in the given order) with optional metadata.
    public static func encode(_ tensors: [(String, TensorView)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for (name, view) in tensors {
            header[name] = ["dtype": "F32", "shape": view.shape.dims, "data_offsets": [offset, offset + view.count * 4]] as [String: Any]
            offset += view.count * 4
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerData.count % 8 != 0 { headerData.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + headerData.count + offset)
        var len = UInt64(headerData.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(headerData)
        for (_, view) in tensors {
            out.append(UnsafeBufferPointer(start: view.data, count: view.count))
        }
        return out
    }

    /// Writes atomically: a temporary file beside the target, fsync, rename, fsync of the folder.
    public static func write(_ tensors: [(String, TensorView)], metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(try encode(tensors, metadata: metadata), to: path)
    }
}

/// Writes a file so that readers see either the old contents or the complete new contents.
public enum AtomicFile {
    /// Runs right before a written file is renamed into place (the moment it becomes visible).
    /// A job running under a daemon's lease sets it to check the lease there and end the process
    /// without publishing anything once another host has taken the job over.
    nonisolated(unsafe) public static var beforeCommit: (String) -> Void = { _ in }

    /// Writes `data` to a temporary dot-file beside `path`, fsyncs it, renames it into place and
    /// fsyncs the folder: readers see the old file or the whole new one, never a part.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError(path, "cannot create '\(tmp)': \(String(cString: strerror(errno)))") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        let writeErrno = errno
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok else {
            unlink(tmp)
            throw FormatError(path, "write failed: \(String(cString: strerror(writeErrno)))")
        }
        beforeCommit(path)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw FormatError(path, "rename into place failed: \(String(cString: strerror(e)))")
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
