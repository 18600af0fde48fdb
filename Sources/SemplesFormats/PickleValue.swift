import Foundation
import SemplesEngine

/// A value read from (or to be written to) a Python pickle. Only plain data: nothing in a pickle is
/// ever called; the few allowed constructors (OrderedDict, torch tensors, numpy arrays) are
/// interpreted here.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Data)
    case list([PickleValue])
    case tuple([PickleValue])
    /// A plain dict, in insertion order.
    case dict([(key: PickleValue, value: PickleValue)])
    /// A `collections.OrderedDict` (what `state_dict()` returns).
    case orderedDict([(key: PickleValue, value: PickleValue)])
    case tensor(TorchTensor)
    case array(NDArray)
    /// A reference to an allowed global (e.g. a storage type), kept as data.
    case global(module: String, name: String)
    /// A TorchScript module record: its class name and attribute state (never executed).
    case object(type: String, state: PickleValue)

    /// Entries of a dict or OrderedDict (nil for anything else).
    public var dictEntries: [(key: PickleValue, value: PickleValue)]? {
        switch self {
        case .dict(let e), .orderedDict(let e): return e
        default: return nil
        }
    }

    /// The value under a string key of a dict, OrderedDict or TorchScript object state.
    public subscript(key: String) -> PickleValue? {
        if case .object(_, let state) = self { return state[key] }
        guard let entries = dictEntries else { return nil }
        for (k, v) in entries { if case .string(let s) = k, s == key { return v } }
        return nil
    }

    /// An int (or bool as 0/1), else nil.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// A float or int as Double, else nil.
    public var doubleValue: Double? {
        switch self {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }

    /// A str, else nil.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A short description for error messages.
    public var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .orderedDict: return "OrderedDict"
        case .tensor(let t): return "tensor \(t.dtype.rawValue) \(t.shape)"
        case .array(let a): return "ndarray \(a.dtype.map { $0.rawValue } ?? "object") \(a.shape)"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let t, _): return "object \(t)"
        }
    }
}

/// Bytes of one torch storage: a typed range inside a file map or an owned buffer.
public final class TorchStorage: @unchecked Sendable {
    public let dtype: DType
    public let source: ByteSource
    public let offset: Int
    /// Number of elements.
    public let count: Int
    /// The storage's key in the archive (its file name under `data/`).
    public let key: String

    /// `count` elements of `dtype` at byte `offset` of `source` (must lie inside it).
    public init(dtype: DType, source: ByteSource, offset: Int, count: Int, key: String) {
        precondition(offset >= 0 && count >= 0 && offset + count * dtype.byteSize <= source.count,
                     "storage range outside its source")
        self.dtype = dtype
        self.source = source
        self.offset = offset
        self.count = count
        self.key = key
    }

    /// A storage holding a copy of float32 values (for writing).
    public convenience init(float32 view: TensorView, key: String) {
        let data = Data(bytes: view.data, count: view.count * 4)
        self.init(dtype: .float32, source: ByteSource(data: data, path: "<memory>"), offset: 0,
                  count: view.count, key: key)
    }

    var pointer: UnsafeRawPointer { source.base + offset }
    var byteCount: Int { count * dtype.byteSize }
}

/// A torch tensor: a strided view of a storage. Converted to float32 on demand, straight from the
/// mapped file.
public struct TorchTensor {
    public let storage: TorchStorage
    public let storageOffset: Int
    public let shape: [Int]
    public let strides: [Int]
    public var dtype: DType { storage.dtype }
    public var count: Int { shape.reduce(1, *) }

    /// Checks that every element addressed by shape/strides lies inside the storage.
    public init(storage: TorchStorage, storageOffset: Int, shape: [Int], strides: [Int], path: String) throws {
        guard shape.count == strides.count else {
            throw FormatError(path, "tensor size \(shape) and stride \(strides) differ in rank")
        }
        guard shape.count <= 6 else { throw FormatError(path, "tensor of rank \(shape.count) (at most 6 supported)") }
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), storageOffset >= 0 else {
            throw FormatError(path, "tensor with negative size, stride or offset: \(shape) \(strides) +\(storageOffset)")
        }
        guard let n = checkedProduct(shape, limit: 1 << 40) else {
            throw FormatError(path, "tensor size \(shape) is too large")
        }
        // Broadcast (stride 0) tensors may address fewer elements than they hold; bound them.
        guard n <= max(storage.count, 1 << 28) else {
            throw FormatError(path, "tensor \(shape) expands storage '\(storage.key)' of \(storage.count) elements to \(n)")
        }
        if n > 0 {
            var last = storageOffset
            for (d, s) in zip(shape, strides) {
                let (m, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else { throw FormatError(path, "tensor strides \(strides) overflow") }
                last = sum
            }
            guard last < storage.count else {
                throw FormatError(path, "tensor \(shape) stride \(strides) offset \(storageOffset) reaches element \(last) of storage '\(storage.key)' holding \(storage.count)")
            }
        }
        self.storage = storage
        self.storageOffset = storageOffset
        self.shape = shape
        self.strides = strides
    }

    /// A contiguous float32 tensor from float32 values (for writing checkpoints).
    public init(copying view: TensorView, key: String) {
        storage = TorchStorage(float32: view, key: key)
        storageOffset = 0
        shape = view.shape.dims
        strides = TorchTensor.contiguousStrides(shape)
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// Row-major without gaps (size-1 axes may have any stride).
    public var isContiguous: Bool {
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != acc { return false }
            acc *= shape[i]
        }
        return true
    }

    /// Converts to an owning float32 tensor (one pass over the source bytes).
    public func toFloat32() -> Tensor {
        let out = Tensor(shape)
        let n = count
        if n == 0 { return out }
        let size = dtype.byteSize
        if isContiguous {
            convertToFloat32(storage.pointer + storageOffset * size, dtype: dtype, count: n, into: out.data)
            return out
        }
        // Strided: convert runs along the last axis.
        let rank = shape.count
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var written = 0
        while written < n {
            var offset = storageOffset
            for a in 0..<(rank - 1) { offset += index[a] * strides[a] }
            for i in 0..<inner {
                convertToFloat32(storage.pointer + (offset + i * innerStride) * size, dtype: dtype, count: 1,
                                 into: out.data + written + i)
            }
            written += inner
            var a = rank - 2
            while a >= 0 {
                index[a] += 1
                if index[a] < shape[a] { break }
                index[a] = 0
                a -= 1
            }
        }
        return out
    }
}

/// A numpy array from a pickle or a .npy file. Numeric data is little-endian; object arrays keep
/// their elements.
public struct NDArray {
    /// nil for object arrays.
    public let dtype: DType?
    public let shape: [Int]
    public let fortranOrder: Bool
    public let source: ByteSource
    public let offset: Int
    public let elements: [PickleValue]

    public var count: Int { shape.reduce(1, *) }

    /// The raw little-endian element bytes of a numeric array, in its stored order (empty for
    /// object arrays). Valid while the array (and so its source) is alive.
    public var rawBytes: UnsafeRawBufferPointer {
        guard let dtype else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: source.base + offset, count: count * dtype.byteSize)
    }

    /// Converts a numeric array to float32 in C order.
    public func toFloat32() throws -> Tensor {
        guard let dtype else { throw FormatError(source.path, "object array cannot be read as numbers") }
        let t = Tensor(shape)
        if count == 0 { return t }
        if fortranOrder && shape.count > 1 {
            // Element i (C order) sits at the Fortran-order position of the same index.
            let tmp = Tensor([count])
            convertToFloat32(source.base + offset, dtype: dtype, count: count, into: tmp.data)
            var fstrides = [Int](repeating: 1, count: shape.count)
            for i in 1..<shape.count { fstrides[i] = fstrides[i - 1] * shape[i - 1] }
            var index = [Int](repeating: 0, count: shape.count)
            for i in 0..<count {
                var f = 0
                for a in 0..<shape.count { f += index[a] * fstrides[a] }
                t.data[i] = tmp.data[f]
                var a = shape.count - 1
                while a >= 0 { index[a] += 1; if index[a] < shape[a] { break }; index[a] = 0; a -= 1 }
            }
            return t
        }
        convertToFloat32(source.base + offset, dtype: dtype, count: count, into: t.data)
        return t
    }
}

extension DType {
    /// The numpy type string (without byte order) for this dtype.
    var numpyKind: String {
        switch self {
        case .float32: return "f4"
        case .float16: return "f2"
        case .bfloat16: return "V2"
        case .float64: return "f8"
        case .int64: return "i8"
        case .int32: return "i4"
        case .uint8: return "u1"
        case .int8: return "i1"
        case .bool: return "b1"
        }
    }

    /// Parses a numpy descr such as '<f4', '|u1', 'f4' (native little-endian assumed).
    init?(numpyDescr d: String) {
        var s = Substring(d)
        if let c = s.first, "<|=>".contains(c) {
            if c == ">" && !(s.hasSuffix("1")) { return nil }
            s = s.dropFirst()
        }
        switch s {
        case "f4": self = .float32
        case "f2": self = .float16
        case "f8": self = .float64
        case "i8": self = .int64
        case "i4": self = .int32
        case "u1": self = .uint8
        case "i1": self = .int8
        case "b1": self = .bool
        default: return nil
        }
    }
}
