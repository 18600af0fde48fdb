import Foundation

/// A zip archive read in place (torch checkpoints and TorchScript files are zips whose tensor
/// entries are stored uncompressed). Everything a hostile file controls is checked: the end
/// record and central directory lie inside the file, names are relative paths without `..`,
/// duplicates are refused, each local header matches its directory entry, data ranges lie inside
/// the file, and inflated sizes are bounded by the declared size.
public struct ZipArchive {
    public struct Entry {
        public let name: String
        /// 0 = stored, 8 = deflated.
        public let method: UInt16
        public let compressedSize: Int
        public let size: Int
        public let crc32: UInt32
        /// Offset of the entry's data in the file.
        public let dataOffset: Int
    }

    public let source: ByteSource
    public let entries: [Entry]
    private let index: [String: Int]
    /// Entries with at most this many bytes are checked against their CRC when read.
    static let checksumLimit = 1 << 20
    static let maxEntries = 1_000_000

    public var path: String { source.path }

    public init(source: ByteSource) throws {
        self.source = source
        let path = source.path
        let (count, cdOffset, cdSize) = try ZipArchive.endRecord(source)
        guard count <= ZipArchive.maxEntries else { throw FormatError(path, "zip holds \(count) entries (limit \(ZipArchive.maxEntries))") }
        guard cdOffset >= 0, cdSize >= 0, cdOffset <= source.count, cdSize <= source.count - cdOffset else {
            throw FormatError(path, "zip central directory [\(cdOffset), +\(cdSize)) lies outside the file of \(source.count) bytes")
        }
        var r = ByteReader(path: path, base: source.base, range: cdOffset..<(cdOffset + cdSize))
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let at = r.position
            guard try r.u32() == 0x0201_4B50 else { throw FormatError(path, "zip directory entry at byte \(at) has a bad signature") }
            try r.skip(4)
            let flags = try r.u16()
            let method = try r.u16()
            try r.skip(4)
            let crc = try r.u32()
            var compressed = Int(try r.u32())
            var size = Int(try r.u32())
            let nameLength = Int(try r.u16()), extraLength = Int(try r.u16()), commentLength = Int(try r.u16())
            try r.skip(8)
            var localOffset = Int(try r.u32())
            let name = String(utf8OrLatin1: try r.bytes(nameLength, "an entry name"))
            var extra = ByteReader(path: path, base: source.base, range: r.position..<(r.position + min(extraLength, r.remaining)))
            try r.skip(extraLength)
            try r.skip(commentLength)
            // Zip64 extended sizes: only the fields saturated in the directory entry are present.
            while extra.remaining >= 4 {
                let id = try extra.u16(), length = Int(try extra.u16())
                guard length <= extra.remaining else { break }
                if id == 0x0001 {
                    var z = ByteReader(path: path, base: source.base, range: extra.position..<(extra.position + length))
                    if size == 0xFFFF_FFFF { size = try ZipArchive.int64(&z, path) }
                    if compressed == 0xFFFF_FFFF { compressed = try ZipArchive.int64(&z, path) }
                    if localOffset == 0xFFFF_FFFF { localOffset = try ZipArchive.int64(&z, path) }
                }
                try extra.skip(length)
            }
            try ZipArchive.validate(name: name, path: path)
            guard flags & 1 == 0 else { throw FormatError(path, "zip entry '\(name)' is encrypted") }
            guard method == 0 || method == 8 else {
                throw FormatError(path, "zip entry '\(name)' uses compression method \(method) (only stored and deflated are supported)")
            }
            guard method != 0 || compressed == size else {
                throw FormatError(path, "stored zip entry '\(name)' has compressed size \(compressed) ≠ size \(size)")
            }
            guard localOffset >= 0, localOffset <= cdOffset else {
                throw FormatError(path, "zip entry '\(name)' has a local header offset \(localOffset) outside the data area")
            }
            var local = ByteReader(path: path, base: source.base, range: localOffset..<cdOffset)
            guard try local.u32() == 0x0403_4B50 else { throw FormatError(path, "zip entry '\(name)': bad local header signature at byte \(localOffset)") }
            try local.skip(22)
            let localNameLength = Int(try local.u16()), localExtraLength = Int(try local.u16())
            let localName = String(utf8OrLatin1: try local.bytes(localNameLength, "a local entry name"))
            guard localName == name else { throw FormatError(path, "zip entry '\(name)' is named '\(localName)' in its local header") }
            try local.skip(localExtraLength)
            let dataOffset = local.position
            guard compressed <= cdOffset - dataOffset else {
                throw FormatError(path, "zip entry '\(name)' claims \(compressed) bytes at byte \(dataOffset), past the end of the data area")
            }
            guard index[name] == nil else { throw FormatError(path, "zip holds entry '\(name)' twice") }
            index[name] = entries.count
            entries.append(Entry(name: name, method: method, compressedSize: compressed, size: size, crc32: crc, dataOffset: dataOffset))
        }
        self.entries = entries
        self.index = index
    }

    public init(path: String) throws {
        try self.init(source: try ByteSource(path: path))
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The bytes of a stored entry, in place (no copy). Small entries are checked against their CRC.
    public func storedBytes(_ entry: Entry) throws -> UnsafeRawBufferPointer {
        guard entry.method == 0 else { throw FormatError(path, "zip entry '\(entry.name)' is compressed; tensor data must be stored") }
        let bytes = UnsafeRawBufferPointer(start: source.base + entry.dataOffset, count: entry.size)
        if entry.size <= ZipArchive.checksumLimit, CRC32.checksum(bytes) != entry.crc32 {
            throw FormatError(path, "zip entry '\(entry.name)' fails its CRC check (corrupted)")
        }
        return bytes
    }

    /// The contents of an entry, inflating deflated entries (at most `limit` bytes).
    public func contents(_ entry: Entry, limit: Int = 64 << 20) throws -> Data {
        guard entry.size <= limit else { throw FormatError(path, "zip entry '\(entry.name)' is \(entry.size) bytes (limit \(limit))") }
        if entry.method == 0 { return Data(try storedBytes(entry)) }
        let input = UnsafeRawBufferPointer(start: source.base + entry.dataOffset, count: entry.compressedSize)
        let out = try Inflate.inflate(input, expectedSize: entry.size, path: path, what: "zip entry '\(entry.name)'")
        guard CRC32.checksum(out) == entry.crc32 else {
            throw FormatError(path, "zip entry '\(entry.name)' fails its CRC check (corrupted)")
        }
        return out
    }

    static func int64(_ r: inout ByteReader, _ path: String) throws -> Int {
        let v = try r.u64()
        guard v < UInt64(Int.max) else { throw FormatError(path, "zip64 field \(v) is absurd") }
        return Int(v)
    }

    /// Relative paths only: no absolute paths, `..` components, backslashes or NULs.
    static func validate(name: String, path: String) throws {
        guard !name.isEmpty, name.utf8.count <= 4096 else { throw FormatError(path, "zip entry with an empty or overlong name") }
        guard !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\0"), !name.contains(":") else {
            throw FormatError(path, "zip entry name '\(name)' is not a plain relative path; refused")
        }
        guard !name.split(separator: "/", omittingEmptySubsequences: false).contains("..") else {
            throw FormatError(path, "zip entry name '\(name)' climbs out of the archive with '..'; refused")
        }
    }

    /// (entry count, central directory offset, size) from the end record, zip64 aware.
    static func endRecord(_ source: ByteSource) throws -> (Int, Int, Int) {
        let path = source.path
        let n = source.count
        guard n >= 22 else { throw FormatError(path, "too short to be a zip archive (\(n) bytes)") }
        var at = -1
        var i = n - 22
        let lowest = max(0, n - 22 - 65535)
        while i >= lowest {
            if source.base.loadUnaligned(fromByteOffset: i, as: UInt32.self) == UInt32(0x0605_4B50).littleEndian {
                let commentLength = Int(UInt16(littleEndian: source.base.loadUnaligned(fromByteOffset: i + 20, as: UInt16.self)))
                if i + 22 + commentLength == n { at = i; break }
            }
            i -= 1
        }
        guard at >= 0 else { throw FormatError(path, "not a zip archive (no end-of-directory record; truncated or wrong magic)") }
        var r = ByteReader(path: path, base: source.base, range: at..<n)
        try r.skip(10)
        var count = Int(try r.u16())
        var size = Int(try r.u32())
        var offset = Int(try r.u32())
        if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            guard at >= 20 else { throw FormatError(path, "zip64 locator missing") }
            var loc = ByteReader(path: path, base: source.base, range: (at - 20)..<at)
            guard try loc.u32() == 0x0706_4B50 else { throw FormatError(path, "zip64 locator missing before the end record") }
            try loc.skip(4)
            let recordOffset = try int64(&loc, path)
            guard recordOffset <= at - 56 else { throw FormatError(path, "zip64 end record offset \(recordOffset) is outside the file") }
            var rec = ByteReader(path: path, base: source.base, range: recordOffset..<at)
            guard try rec.u32() == 0x0606_4B50 else { throw FormatError(path, "zip64 end record has a bad signature") }
            try rec.skip(28)
            count = try int64(&rec, path)
            size = try int64(&rec, path)
            offset = try int64(&rec, path)
        }
        return (count, offset, size)
    }
}

/// Builds a zip of stored entries, each aligned to 64 bytes (as torch writes them, so that
/// readers may map tensor data directly).
struct ZipWriter {
    private(set) var out = Data()
    private var central = Data()
    private var count = 0
    static let alignment = 64

    mutating func add(_ name: String, _ bytes: UnsafeRawBufferPointer) {
        let nameBytes = Array(name.utf8)
        let offset = out.count
        let crc = CRC32.checksum(bytes)
        // Pad the local extra field so that the data starts on an alignment boundary.
        let big = bytes.count >= 0xFFFF_FFFF || offset >= 0xFFFF_FFFF
        let zip64Local = big ? 20 : 0
        let header = offset + 30 + nameBytes.count + zip64Local
        var extraLength = (ZipWriter.alignment - header % ZipWriter.alignment) % ZipWriter.alignment
        if extraLength > 0 && extraLength < 4 { extraLength += ZipWriter.alignment }
        let size32 = big ? UInt32(0xFFFF_FFFF) : UInt32(bytes.count)
        put32(&out, 0x0403_4B50)
        put16(&out, big ? 45 : 20); put16(&out, 0); put16(&out, 0); put16(&out, 0); put16(&out, 0x21)
        put32(&out, crc); put32(&out, size32); put32(&out, size32)
        put16(&out, UInt16(nameBytes.count)); put16(&out, UInt16(extraLength + zip64Local))
        out.append(contentsOf: nameBytes)
        if big {
            put16(&out, 0x0001); put16(&out, 16)
            put64(&out, UInt64(bytes.count)); put64(&out, UInt64(bytes.count))
        }
        if extraLength > 0 {
            put16(&out, 0x4246); put16(&out, UInt16(extraLength - 4))
            out.append(Data(repeating: 0x5A, count: extraLength - 4))
        }
        out.append(contentsOf: bytes)

        put32(&central, 0x0201_4B50)
        put16(&central, big ? 45 : 20); put16(&central, big ? 45 : 20); put16(&central, 0); put16(&central, 0)
        put16(&central, 0); put16(&central, 0x21)
        put32(&central, crc); put32(&central, size32); put32(&central, size32)
        put16(&central, UInt16(nameBytes.count)); put16(&central, big ? 28 : 0); put16(&central, 0)
        put16(&central, 0); put16(&central, 0); put32(&central, 0)
        put32(&central, big ? 0xFFFF_FFFF : UInt32(offset))
        central.append(contentsOf: nameBytes)
        if big {
            put16(&central, 0x0001); put16(&central, 24)
            put64(&central, UInt64(bytes.count)); put64(&central, UInt64(bytes.count)); put64(&central, UInt64(offset))
        }
        count += 1
    }

    mutating func add(_ name: String, _ data: Data) {
        data.withUnsafeBytes { add(name, $0) }
    }

    /// Appends the central directory and end records; returns the archive.
    mutating func finish() -> Data {
        let cdOffset = out.count
        out.append(central)
        let cdSize = central.count
        let zip64 = count >= 0xFFFF || cdOffset >= 0xFFFF_FFFF || cdSize >= 0xFFFF_FFFF
        if zip64 {
            let recordOffset = out.count
            put32(&out, 0x0606_4B50); put64(&out, 44)
            put16(&out, 45); put16(&out, 45); put32(&out, 0); put32(&out, 0)
            put64(&out, UInt64(count)); put64(&out, UInt64(count)); put64(&out, UInt64(cdSize)); put64(&out, UInt64(cdOffset))
            put32(&out, 0x0706_4B50); put32(&out, 0); put64(&out, UInt64(recordOffset)); put32(&out, 1)
        }
        put32(&out, 0x0605_4B50); put16(&out, 0); put16(&out, 0)
        put16(&out, zip64 ? 0xFFFF : UInt16(count)); put16(&out, zip64 ? 0xFFFF : UInt16(count))
        put32(&out, zip64 ? 0xFFFF_FFFF : UInt32(cdSize)); put32(&out, zip64 ? 0xFFFF_FFFF : UInt32(cdOffset))
        put16(&out, 0)
        return out
    }

    private func put16(_ d: inout Data, _ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    private func put32(_ d: inout Data, _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    private func put64(_ d: inout Data, _ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
}

/// CRC-32 (IEEE 802.3, reflected), as zip uses; slicing by 8 bytes.
enum CRC32 {
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        guard let base = bytes.baseAddress else { return 0 }
        let n = bytes.count
        tables.withUnsafeBufferPointer { tb in
            let t = tb.baseAddress!
            var i = 0
            while i + 8 <= n {
                let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return c ^ 0xFFFF_FFFF
    }

    static func checksum(_ data: Data) -> UInt32 { data.withUnsafeBytes { checksum($0) } }
}
