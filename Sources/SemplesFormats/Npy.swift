import Foundation
import SemplesEngine

/// numpy's `.npy` format: magic `\x93NUMPY`, version, header length, a Python dict literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (H, W), }` padded with spaces to a multiple
/// of 64 and ended by '\n', then the raw data — or, for object arrays (`'|O'`), a pickle of the
/// array. The CAM files (spec §5) and `cls_labels.npy` are 0-d object arrays holding a dict.
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    /// The parsed header of an .npy file.
    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
        var dataOffset: Int
    }

    // MARK: - Reading

    /// Reads any .npy file: numeric arrays are mapped, object arrays are unpickled (restricted).
    public static func readArray(_ path: String) throws -> NDArray {
        try parseArray(try ByteSource(path: path))
    }

    /// Parses .npy bytes (the path in `source` names the file in errors).
    public static func parseArray(_ source: ByteSource) throws -> NDArray {
        let path = source.path
        let header = try parseHeader(source)
        if header.descr == "|O" || header.descr == "O" {
            let value = try Unpickler.load(source, range: header.dataOffset..<source.count)
            guard case .array(let a) = value else {
                throw FormatError(path, "object array pickle holds \(value.kindName), not an ndarray")
            }
            guard a.shape == header.shape else {
                throw FormatError(path, "header shape \(header.shape) but the pickled array has shape \(a.shape)")
            }
            return a
        }
        guard let dtype = DType(numpyDescr: header.descr) else {
            throw FormatError(path, "unsupported dtype '\(header.descr)' (supported: <f4 <f2 <f8 <i8 <i4 |u1 |i1 |b1)")
        }
        guard let n = checkedProduct(header.shape, limit: Int.max / 16) else {
            throw FormatError(path, "header shape \(header.shape) is absurd")
        }
        let available = source.count - header.dataOffset
        guard n * dtype.byteSize == available else {
            throw FormatError(path, "header promises shape \(header.shape) of \(header.descr) = \(n * dtype.byteSize) bytes but the file holds \(available) data bytes")
        }
        return NDArray(dtype: dtype, shape: header.shape, fortranOrder: header.fortranOrder, source: source,
                       offset: header.dataOffset, elements: [])
    }

    /// The Python object inside a 0-d object array (`np.load(..., allow_pickle=True).item()`).
    public static func readObject(_ path: String) throws -> PickleValue {
        let a = try readArray(path)
        guard a.dtype == nil, a.shape.isEmpty, a.elements.count == 1 else {
            throw FormatError(path, "expected a 0-d object array (a pickled dict), found shape \(a.shape) \(a.dtype?.rawValue ?? "object")")
        }
        return a.elements[0]
    }

    /// Reads a CAM file: `{class index: float32 [H, W]}` (spec §5).
    public static func readCAMDict(_ path: String) throws -> [Int: Tensor] {
        let value = try readObject(path)
        guard let entries = value.dictEntries else {
            throw FormatError(path, "expected a dict of class → array, found \(value.kindName)")
        }
        var out: [Int: Tensor] = [:]
        for (k, v) in entries {
            guard let cls = k.intValue else { throw FormatError(path, "CAM key \(k.kindName) is not an integer class index") }
            guard case .array(let a) = v, a.dtype != nil, a.shape.count == 2 else {
                throw FormatError(path, "CAM for class \(cls) is \(v.kindName), expected a 2-D numeric array")
            }
            out[cls] = try a.toFloat32()
        }
        return out
    }

    /// Writes a CAM file numpy loads as the same dict: keys ascending, values float32 [H, W].
    public static func writeCAMDict(_ cams: [Int: TensorView], to path: String) throws {
        var entries: [(key: PickleValue, value: PickleValue)] = []
        for cls in cams.keys.sorted() {
            let v = cams[cls]!
            precondition(v.shape.rank == 2, "CAM for class \(cls) has shape \(v.shape), expected [H, W]")
            entries.append((.int(cls), .array(float32Array(v))))
        }
        try AtomicFile.write(try encodeObject(.dict(entries)), to: path)
    }

    /// Reads `cls_labels.npy`: `{image id: float32 [C] multi-hot}`.
    public static func readLabelDict(_ path: String) throws -> [String: [Float]] {
        let value = try readObject(path)
        guard let entries = value.dictEntries else {
            throw FormatError(path, "expected a dict of image id → label vector, found \(value.kindName)")
        }
        var out: [String: [Float]] = [:]
        out.reserveCapacity(entries.count)
        for (k, v) in entries {
            let key: String
            switch k {
            case .string(let s): key = s
            case .bytes(let b): key = String(decoding: b, as: UTF8.self)
            case .int(let i): key = String(i)
            default: throw FormatError(path, "label key \(k.kindName) is not a string")
            }
            guard case .array(let a) = v, a.dtype != nil, a.shape.count == 1 else {
                throw FormatError(path, "labels of '\(key)' are \(v.kindName), expected a 1-D numeric array")
            }
            out[key] = try a.toFloat32().toArray()
        }
        return out
    }

    /// Writes a plain float32 array (C order).
    public static func writeArray(_ view: TensorView, to path: String) throws {
        try AtomicFile.write(encode(float32Array(view)), to: path)
    }

    /// Writes a plain array of any supported dtype from its raw little-endian bytes.
    public static func writeArray(bytes: Data, dtype: DType, shape: [Int], to path: String) throws {
        guard dtype != .bfloat16 else { throw FormatError(path, "numpy has no bfloat16 dtype") }
        precondition(checkedProduct(shape).map { $0 * dtype.byteSize } == bytes.count,
                     "\(bytes.count) bytes for shape \(shape) of \(dtype.rawValue)")
        let a = NDArray(dtype: dtype, shape: shape, fortranOrder: false, source: ByteSource(data: bytes, path: path),
                        offset: 0, elements: [])
        try AtomicFile.write(encode(a), to: path)
    }

    // MARK: - Encoding

    static func float32Array(_ view: TensorView) -> NDArray {
        NDArray(dtype: .float32, shape: view.shape.dims, fortranOrder: false,
                source: ByteSource(data: Data(bytes: view.data, count: view.count * 4), path: "<memory>"),
                offset: 0, elements: [])
    }

    /// Header text padded so that data starts at a multiple of 64 bytes (numpy's own layout).
    static func headerBytes(descr: String, fortran: Bool, shape: [Int]) -> Data {
        let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)"
            : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
        let total = 10 + text.utf8.count + 1
        text += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data(magic)
        let useV2 = text.utf8.count > 65535
        out.append(contentsOf: [useV2 ? 2 : 1, 0])
        if useV2 {
            withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt16(text.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: Array(text.utf8))
        return out
    }

    /// A numeric array as .npy bytes.
    static func encode(_ a: NDArray) -> Data {
        let dtype = a.dtype!
        var out = headerBytes(descr: (dtype.byteSize == 1 ? "|" : "<") + dtype.numpyKind, fortran: a.fortranOrder, shape: a.shape)
        out.append(Data(bytes: a.source.base + a.offset, count: a.count * dtype.byteSize))
        return out
    }

    /// A Python object stored as a 0-d object array (what `np.save(path, obj)` writes for a dict).
    public static func encodeObject(_ value: PickleValue) throws -> Data {
        var out = headerBytes(descr: "|O", fortran: false, shape: [])
        var w = PickleWriter(protocolVersion: 3)
        try w.write(.array(NDArray(dtype: nil, shape: [], fortranOrder: false,
                                   source: ByteSource(data: Data(), path: "<memory>"), offset: 0, elements: [value])))
        out.append(w.finish())
        return out
    }

    // MARK: - Header parsing

    static func parseHeader(_ source: ByteSource) throws -> Header {
        let path = source.path
        var r = ByteReader(path: path, base: source.base, range: 0..<source.count)
        guard source.count >= 10 else { throw FormatError(path, "too short for an .npy file (\(source.count) bytes)") }
        let m = try r.bytes(6)
        guard Array(m) == magic else { throw FormatError(path, "not an .npy file (wrong magic)") }
        let major = try r.u8()
        _ = try r.u8()
        let length: Int
        switch major {
        case 1: length = Int(try r.u16())
        case 2, 3: length = Int(try r.u32())
        default: throw FormatError(path, "unsupported .npy version \(major)")
        }
        guard length <= 1 << 20 else { throw FormatError(path, "header length \(length) is absurd") }
        let text = String(utf8OrLatin1: try r.bytes(length, "the .npy header"))
        var parser = LiteralParser(path: path, chars: Array(text.unicodeScalars))
        let dict = try parser.parseHeaderDict()
        guard case .string(let descr)? = dict["descr"] else {
            throw FormatError(path, "header lacks a string 'descr' (structured dtypes are not supported)")
        }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw FormatError(path, "header lacks 'fortran_order'") }
        guard case .tuple(let dims)? = dict["shape"] else { throw FormatError(path, "header lacks a 'shape' tuple") }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let i) = d, i >= 0 else { throw FormatError(path, "header shape has a bad dimension") }
            shape.append(i)
        }
        guard shape.count <= 6 else { throw FormatError(path, "array of rank \(shape.count) (at most 6 supported)") }
        return Header(descr: descr, fortranOrder: fortran, shape: shape, dataOffset: r.position)
    }
}

/// A parser for the small Python literal subset of .npy headers: dicts, str, bool, int, tuples.
struct LiteralParser {
    let path: String
    let chars: [Unicode.Scalar]
    var i = 0

    init(path: String, chars: [Unicode.Scalar]) {
        self.path = path
        self.chars = chars
    }

    mutating func parseHeaderDict() throws -> [String: PickleValue] {
        let v = try value(depth: 0)
        skipSpace()
        guard i == chars.count else { throw fail("trailing characters") }
        guard case .dict(let entries) = v else { throw fail("header is not a dict") }
        var out: [String: PickleValue] = [:]
        for (k, v) in entries {
            guard case .string(let s) = k else { throw fail("non-string key") }
            out[s] = v
        }
        return out
    }

    func fail(_ what: String) -> FormatError { FormatError(path, "bad .npy header: \(what) at character \(i)") }

    mutating func skipSpace() { while i < chars.count, chars[i] == " " || chars[i] == "\n" || chars[i] == "\t" { i += 1 } }

    mutating func expect(_ c: Unicode.Scalar) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw fail("expected '\(c)'") }
        i += 1
    }

    mutating func value(depth: Int) throws -> PickleValue {
        guard depth < 8 else { throw fail("nesting too deep") }
        skipSpace()
        guard i < chars.count else { throw fail("unexpected end") }
        let c = chars[i]
        switch c {
        case "{":
            i += 1
            var entries: [(key: PickleValue, value: PickleValue)] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == "}" { i += 1; break }
                let k = try value(depth: depth + 1)
                try expect(":")
                let v = try value(depth: depth + 1)
                entries.append((k, v))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                try expect("}")
                break
            }
            return .dict(entries)
        case "(", "[":
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            i += 1
            var items: [PickleValue] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == close { i += 1; break }
                items.append(try value(depth: depth + 1))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                try expect(close)
                break
            }
            return c == "(" ? .tuple(items) : .list(items)
        case "'", "\"":
            i += 1
            var s = String.UnicodeScalarView()
            while i < chars.count, chars[i] != c { s.append(chars[i]); i += 1 }
            guard i < chars.count else { throw fail("unterminated string") }
            i += 1
            return .string(String(s))
        default:
            var word = ""
            while i < chars.count, chars[i].properties.isAlphabetic || ("0"..."9").contains(chars[i]) || chars[i] == "-" || chars[i] == "_" {
                word.unicodeScalars.append(chars[i]); i += 1
                guard word.count <= 24 else { throw fail("literal too long") }
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                var digits = word
                if digits.hasSuffix("L") { digits.removeLast() }
                guard let n = Int(digits) else { throw fail("unexpected '\(word.prefix(24))'") }
                return .int(n)
            }
        }
    }
}
