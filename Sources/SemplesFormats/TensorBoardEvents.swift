import Foundation

/// TensorBoard event files (`events.out.tfevents.<time>.<host>`) with scalar summaries, written by
/// hand: no protobuf library.
///
/// A file is a sequence of TFRecords, each
///
///     uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
///
/// where mask(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8. Each record's data is a serialised
/// `tensorflow.Event` protobuf: wall_time (field 1, double), step (2, int64), and either
/// file_version (3, string, "brain.Event:2" in the first record) or summary (5, message). A
/// `Summary` holds repeated `value` (1) messages of tag (1, string) and simple_value (2, float).
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle

    /// Creates a new event file in `folder` (made if missing) and writes the version record.
    public init(folder: String, suffix: String = "") throws {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let now = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        // A unique name per writer: TensorBoard reads every events file in the folder.
        var name = "events.out.tfevents.\(Int(now)).\(host)\(suffix)"
        var n = 1
        while FileManager.default.fileExists(atPath: folder + "/" + name) {
            name = "events.out.tfevents.\(Int(now)).\(host)\(suffix).\(n)"
            n += 1
        }
        path = folder + "/" + name
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let h = FileHandle(forWritingAtPath: path) else {
            throw FormatError(path, "cannot be created (is the folder writable?)")
        }
        handle = h
        var event = ProtoWriter()
        event.double(field: 1, now)
        event.string(field: 3, "brain.Event:2")
        try append(event.bytes)
    }

    deinit { try? handle.close() }

    /// One scalar (`tag` at `step`); the record reaches the file at once.
    public func add(scalar tag: String, _ value: Double, step: Int) throws {
        try add(scalars: [(tag, value)], step: step)
    }

    /// Several scalars of one step in one record.
    public func add(scalars: [(String, Double)], step: Int, wallTime: Date = Date()) throws {
        var summary = ProtoWriter()
        for (tag, value) in scalars {
            var v = ProtoWriter()
            v.string(field: 1, tag)
            v.float(field: 2, Float(value))
            summary.message(field: 1, v.bytes)
        }
        var event = ProtoWriter()
        event.double(field: 1, wallTime.timeIntervalSince1970)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.message(field: 5, summary.bytes)
        try append(event.bytes)
    }

    private func append(_ data: [UInt8]) throws {
        var record: [UInt8] = []
        record.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += data
        record += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        do {
            try handle.write(contentsOf: Data(record))
        } catch {
            throw FormatError(path, "cannot be written: \(error.localizedDescription)")
        }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses it.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked form: rotate right by 15 and add a constant.
    public static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// The few protobuf wire-format encodings an Event needs.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: Int) { rawVarint(UInt64(field << 3 | wireType)) }

    mutating func varint(field: Int, _ v: UInt64) {
        key(field, 0)
        rawVarint(v)
    }

    mutating func double(field: Int, _ v: Double) {
        key(field, 1)
        bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }

    mutating func float(field: Int, _ v: Float) {
        key(field, 5)
        bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }

    mutating func message(field: Int, _ payload: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(field: Int, _ s: String) { message(field: field, Array(s.utf8)) }
}
