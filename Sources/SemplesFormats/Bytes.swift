import Foundation

/// Read-only bytes of a file or buffer that outlive any view taken from them: a memory-mapped file
/// or an owned heap copy. Parsers take views of it; tensors are converted straight out of it, so a
/// large checkpoint is read once and never copied twice.
public final class ByteSource: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let count: Int
    private let release: () -> Void

    /// Memory-maps `path` read-only (small files are read instead).
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatError(path, "cannot open the file: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw FormatError(path, "cannot stat the file: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError(path, "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
            base = UnsafeRawPointer(p)
            count = 0
            release = { p.deallocate() }
            return
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw FormatError(path, "cannot map the file: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(m)
        count = size
        release = { munmap(m, size) }
    }

    /// An owned copy of `data`, labelled `path` in errors (used for in-memory parsing and fuzzing).
    public init(data: Data, path: String) {
        self.path = path
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.withUnsafeBytes { if $0.count > 0 { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        base = UnsafeRawPointer(p)
        count = data.count
        release = { p.deallocate() }
    }

    deinit { release() }

    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Bytes [offset, offset+length) as Data (a copy; for small pieces only).
    func data(_ offset: Int, _ length: Int) -> Data { Data(bytes: base + offset, count: length) }
}

/// A bounds-checked little-endian cursor over a byte range. Every read checks what is left and
/// throws a FormatError naming the file and the offset.
struct ByteReader {
    let path: String
    let base: UnsafeRawPointer
    let start: Int
    let end: Int
    var position: Int

    init(path: String, base: UnsafeRawPointer, range: Range<Int>) {
        self.path = path
        self.base = base
        start = range.lowerBound
        end = range.upperBound
        position = range.lowerBound
    }

    var remaining: Int { end - position }
    var atEnd: Bool { position >= end }

    func fail(_ what: String) -> FormatError {
        FormatError(path, "\(what) at byte \(position)")
    }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw FormatError(path, "truncated: \(what()) needs \(n) bytes at byte \(position), \(remaining) left")
        }
    }

    mutating func u8() throws -> UInt8 {
        try need(1, "a byte")
        defer { position += 1 }
        return base.load(fromByteOffset: position, as: UInt8.self)
    }

    mutating func u16() throws -> UInt16 {
        try need(2, "a 16-bit field")
        defer { position += 2 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt16.self))
    }

    mutating func u32() throws -> UInt32 {
        try need(4, "a 32-bit field")
        defer { position += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    mutating func u64() throws -> UInt64 {
        try need(8, "a 64-bit field")
        defer { position += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    mutating func bytes(_ n: Int, _ what: @autoclosure () -> String = "data") throws -> UnsafeRawBufferPointer {
        try need(n, what())
        defer { position += n }
        return UnsafeRawBufferPointer(start: base + position, count: n)
    }

    mutating func skip(_ n: Int) throws {
        try need(n, "a skipped field")
        position += n
    }

    /// Bytes up to (not including) the next '\n', which is consumed; at most `limit` bytes.
    mutating func line(limit: Int = 4096) throws -> UnsafeRawBufferPointer {
        var i = position
        let stop = min(end, position + limit + 1)
        while i < stop, base.load(fromByteOffset: i, as: UInt8.self) != 0x0A { i += 1 }
        guard i < stop else { throw fail("missing newline within \(limit) bytes") }
        let out = UnsafeRawBufferPointer(start: base + position, count: i - position)
        position = i + 1
        return out
    }
}

/// Multiplies sizes, returning nil on overflow or when the product exceeds `limit`.
func checkedProduct(_ values: [Int], limit: Int = Int.max) -> Int? {
    var n = 1
    for v in values {
        guard v >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: v)
        guard !o, p <= limit else { return nil }
        n = p
    }
    return n
}

extension String {
    /// Decodes bytes as UTF-8, falling back to Latin-1 (never fails).
    init(utf8OrLatin1 bytes: UnsafeRawBufferPointer) {
        if let s = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) {
            self = s
        } else {
            self = String(bytes.map { Character(Unicode.Scalar($0)) })
        }
    }
}
