import Foundation

/// Writes plain values as a pickle that Python's own unpickler reads: dicts, OrderedDicts, lists,
/// tuples, scalars, strings, bytes, numpy arrays (as numpy pickles them, via
/// `numpy.core.multiarray._reconstruct`, which numpy 1.x and 2.x both load) and torch tensors (as
/// `torch._utils._rebuild_tensor_v2` over persistent-id storages, the form `torch.save` uses).
struct PickleWriter {
    private(set) var out = Data()
    let protocolVersion: UInt8
    /// Storages referenced by tensors, in first-use order, with the keys given to them.
    private(set) var storages: [(key: String, storage: TorchStorage)] = []
    private var storageKeys: [ObjectIdentifier: String] = [:]

    init(protocolVersion: UInt8) {
        self.protocolVersion = protocolVersion
        out.append(contentsOf: [0x80, protocolVersion])
    }

    mutating func finish() -> Data {
        out.append(0x2E) // STOP
        return out
    }

    mutating func write(_ v: PickleValue) throws {
        switch v {
        case .none: out.append(0x4E)
        case .bool(let b): out.append(b ? 0x88 : 0x89)
        case .int(let i): writeInt(i)
        case .float(let d):
            out.append(0x47)
            appendBig(d.bitPattern)
        case .string(let s): writeString(s)
        case .bytes(let b): writeBytes(b)
        case .list(let xs):
            out.append(0x5D) // EMPTY_LIST
            for chunk in stride(from: 0, to: xs.count, by: 1000) {
                out.append(0x28)
                for x in xs[chunk..<min(chunk + 1000, xs.count)] { try write(x) }
                out.append(0x65) // APPENDS
            }
        case .tuple(let xs): try writeTuple(xs)
        case .dict(let e):
            out.append(0x7D)
            try writeItems(e)
        case .orderedDict(let e):
            writeGlobal("collections", "OrderedDict")
            out.append(contentsOf: [0x29, 0x52]) // EMPTY_TUPLE REDUCE
            try writeItems(e)
        case .tensor(let t): try writeTensor(t)
        case .array(let a): try writeArray(a)
        case .global(let m, let n): writeGlobal(m, n)
        case .object(let type, _):
            throw FormatError("<pickle>", "cannot write a TorchScript object '\(type)'")
        }
    }

    // MARK: - Pieces

    private mutating func writeItems(_ e: [(key: PickleValue, value: PickleValue)]) throws {
        for chunk in stride(from: 0, to: e.count, by: 1000) {
            out.append(0x28)
            for (k, v) in e[chunk..<min(chunk + 1000, e.count)] { try write(k); try write(v) }
            out.append(0x75) // SETITEMS
        }
    }

    private mutating func writeTuple(_ xs: [PickleValue]) throws {
        switch xs.count {
        case 0: out.append(0x29)
        case 1...3:
            for x in xs { try write(x) }
            out.append([0x85, 0x86, 0x87][xs.count - 1])
        default:
            out.append(0x28)
            for x in xs { try write(x) }
            out.append(0x74)
        }
    }

    private mutating func writeInt(_ i: Int) {
        if i >= 0 && i < 256 {
            out.append(contentsOf: [0x4B, UInt8(i)])
        } else if i >= 0 && i < 65536 {
            out.append(0x4D)
            appendLittle(UInt16(i))
        } else if i >= Int(Int32.min) && i <= Int(Int32.max) {
            out.append(0x4A)
            appendLittle(UInt32(bitPattern: Int32(i)))
        } else {
            out.append(contentsOf: [0x8A, 8]) // LONG1, 8 bytes two's complement
            appendLittle(UInt64(bitPattern: Int64(i)))
        }
    }

    private mutating func writeString(_ s: String) {
        let u = Array(s.utf8)
        out.append(0x58)
        appendLittle(UInt32(u.count))
        out.append(contentsOf: u)
    }

    private mutating func writeBytes(_ b: Data) {
        if protocolVersion >= 3 {
            out.append(0x42) // BINBYTES
            appendLittle(UInt32(b.count))
            out.append(b)
        } else {
            // Protocol 2 has no bytes type: _codecs.encode(latin1 text, 'latin1'), as Python does.
            writeGlobal("_codecs", "encode")
            writeString(String(b.map { Character(Unicode.Scalar($0)) }))
            writeString("latin1")
            out.append(contentsOf: [0x86, 0x52])
        }
    }

    private mutating func writeGlobal(_ module: String, _ name: String) {
        out.append(0x63)
        out.append(contentsOf: Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A])
    }

    private mutating func writeTensor(_ t: TorchTensor) throws {
        let id = ObjectIdentifier(t.storage)
        let key: String
        if let k = storageKeys[id] {
            key = k
        } else {
            key = String(storages.count)
            storageKeys[id] = key
            storages.append((key, t.storage))
        }
        guard let typeName = Unpickler.storageTypes.first(where: { $0.value == t.dtype })?.key else {
            throw FormatError("<pickle>", "no torch storage type for dtype \(t.dtype.rawValue)")
        }
        writeGlobal("torch._utils", "_rebuild_tensor_v2")
        out.append(0x28) // MARK: arguments
        // Persistent id ('storage', type, key, location, numel).
        out.append(0x28)
        writeString("storage")
        writeGlobal("torch", typeName)
        writeString(key)
        writeString("cpu")
        writeInt(t.storage.count)
        out.append(0x74) // TUPLE
        out.append(0x51) // BINPERSID
        writeInt(t.storageOffset)
        try writeTuple(t.shape.map { .int($0) })
        try writeTuple(t.strides.map { .int($0) })
        out.append(0x89) // requires_grad False
        writeGlobal("collections", "OrderedDict")
        out.append(contentsOf: [0x29, 0x52]) // backward hooks: OrderedDict()
        out.append(0x74) // TUPLE
        out.append(0x52) // REDUCE
    }

    private mutating func writeDType(_ kind: String, order: String) {
        writeGlobal("numpy", "dtype")
        writeString(kind)
        out.append(contentsOf: [0x89, 0x88, 0x87, 0x52]) // (kind, False, True) REDUCE
        out.append(0x28)
        writeInt(3)
        writeString(order)
        out.append(contentsOf: [0x4E, 0x4E, 0x4E])
        writeInt(-1)
        writeInt(-1)
        writeInt(kind == "O8" ? 63 : 0)
        out.append(0x74)
        out.append(0x62) // BUILD
    }

    private mutating func writeArray(_ a: NDArray) throws {
        writeGlobal("numpy.core.multiarray", "_reconstruct")
        writeGlobal("numpy", "ndarray")
        try writeTuple([.int(0)])
        writeBytes(Data([0x62]))
        out.append(contentsOf: [0x87, 0x52]) // TUPLE3 REDUCE
        out.append(0x28)
        writeInt(1)
        try writeTuple(a.shape.map { .int($0) })
        if let dtype = a.dtype {
            guard dtype != .bfloat16 else { throw FormatError("<pickle>", "numpy has no bfloat16 dtype") }
            writeDType(dtype.numpyKind, order: dtype.byteSize == 1 ? "|" : "<")
            out.append(a.fortranOrder ? 0x88 : 0x89)
            writeBytes(Data(bytes: a.source.base + a.offset, count: a.count * dtype.byteSize))
        } else {
            writeDType("O8", order: "|")
            out.append(0x89)
            try write(.list(a.elements))
        }
        out.append(0x74) // TUPLE
        out.append(0x62) // BUILD
    }

    private mutating func appendLittle<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private mutating func appendBig<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }
}
