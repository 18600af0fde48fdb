import Foundation

/// A restricted reader of Python pickles (protocols 0–5, the opcodes torch and numpy emit).
///
/// Nothing is ever executed. A pickle names globals (GLOBAL / STACK_GLOBAL) and calls them
/// (REDUCE / NEWOBJ / BUILD); here only an allowlist of globals is accepted, each interpreted by
/// code in this file: `collections.OrderedDict`, torch's tensor/parameter rebuild functions and
/// storage types, numpy's array/dtype/scalar reconstruction, `_codecs.encode` (how Python 2 pickles
/// carry bytes) and a few builtin containers. Any other global is refused with an error naming it.
/// TorchScript archives add `__torch__.*` classes, which become inert `.object` records.
///
/// Containers are reference objects while reading (pickles mutate a dict after memoising it), then
/// converted once into `PickleValue`; shared sub-objects are converted once, cycles are refused.
public struct Unpickler {
    /// Resolves a persistent id (torch storages) to a storage.
    public typealias PersistentLoad = (PickleValue) throws -> TorchStorage

    let path: String
    var reader: ByteReader
    let persistentLoad: PersistentLoad?
    let allowTorchScript: Bool

    private let pool = NodePool()
    private var stack: [Node] = []
    private var marks: [Int] = []
    private var memo: [Int: Node] = [:]

    /// Reads one pickle from `range` of `source`.
    public static func load(_ source: ByteSource, range: Range<Int>? = nil,
                            persistentLoad: PersistentLoad? = nil,
                            allowTorchScript: Bool = false) throws -> PickleValue {
        var u = Unpickler(path: source.path,
                          reader: ByteReader(path: source.path, base: source.base, range: range ?? 0..<source.count),
                          persistentLoad: persistentLoad, allowTorchScript: allowTorchScript)
        // Hostile pickles can build cycles or very deep chains of nodes: cut every link at the end
        // so that nothing leaks and no release recurses.
        defer { u.pool.clear() }
        let root = try u.run()
        var converter = Converter(path: source.path, source: source)
        return try converter.convert(root, depth: 0)
    }

    /// Parses pickle bytes held in memory.
    public static func load(_ data: Data, path: String, allowTorchScript: Bool = false) throws -> PickleValue {
        try load(ByteSource(data: data, path: path), allowTorchScript: allowTorchScript)
    }

    // MARK: - The opcode loop

    private mutating func run() throws -> Node {
        while true {
            let at = reader.position
            let op = try reader.u8()
            switch op {
            case 0x80: // PROTO
                let p = try reader.u8()
                guard p <= 5 else { throw reader.fail("unsupported pickle protocol \(p)") }
            case 0x95: // FRAME: a length hint only
                _ = try reader.u64()
            case 0x2E: // STOP
                guard let top = stack.last, stack.count == 1 else {
                    throw FormatError(path, "pickle STOP at byte \(at) with \(stack.count) items on the stack (expected 1)")
                }
                return top
            case 0x28: marks.append(stack.count)             // MARK
            case 0x30: _ = try pop(at)                        // POP
            case 0x31: _ = try popMark(at)                    // POP_MARK
            case 0x32: push(try top(at))                      // DUP
            case 0x4E: push(.value(.none))                    // NONE
            case 0x88: push(.value(.bool(true)))              // NEWTRUE
            case 0x89: push(.value(.bool(false)))             // NEWFALSE
            case 0x49: push(.value(try textInt(at)))          // INT
            case 0x4C: push(.value(try textInt(at)))          // LONG
            case 0x4A: push(.value(.int(Int(Int32(bitPattern: try reader.u32())))))  // BININT
            case 0x4B: push(.value(.int(Int(try reader.u8()))))                      // BININT1
            case 0x4D: push(.value(.int(Int(try reader.u16()))))                     // BININT2
            case 0x8A: push(.value(try longBytes(Int(try reader.u8()), at)))         // LONG1
            case 0x8B: push(.value(try longBytes(try length32(at), at)))             // LONG4
            case 0x46: // FLOAT (text)
                let s = String(utf8OrLatin1: try reader.line())
                guard let d = Double(s.trimmingCharacters(in: .whitespaces)) else {
                    throw FormatError(path, "bad FLOAT literal '\(s.prefix(40))' at byte \(at)")
                }
                push(.value(.float(d)))
            case 0x47: // BINFLOAT, big-endian
                let bits = try reader.u64()
                push(.value(.float(Double(bitPattern: UInt64(bigEndian: bits)))))
            case 0x53: // STRING (quoted text)
                push(.value(.string(try quotedString(at))))
            case 0x54: push(.value(.string(try lengthString(try length32(at)))))     // BINSTRING
            case 0x55: push(.value(.string(try lengthString(Int(try reader.u8())))))  // SHORT_BINSTRING
            case 0x58: push(.value(.string(try utf8(try length32(at)))))             // BINUNICODE
            case 0x8C: push(.value(.string(try utf8(Int(try reader.u8())))))          // SHORT_BINUNICODE
            case 0x8D: push(.value(.string(try utf8(try length64(at)))))             // BINUNICODE8
            case 0x56: // UNICODE (raw-unicode-escape text)
                push(.value(.string(String(utf8OrLatin1: try reader.line(limit: 1 << 20)))))
            case 0x42: push(.value(.bytes(try rawBytes(try length32(at)))))          // BINBYTES
            case 0x43: push(.value(.bytes(try rawBytes(Int(try reader.u8())))))       // SHORT_BINBYTES
            case 0x8E, 0x96: push(.value(.bytes(try rawBytes(try length64(at)))))    // BINBYTES8, BYTEARRAY8
            case 0x5D: push(pool.make(.list([])))                                         // EMPTY_LIST
            case 0x29: push(pool.make(.tuple([])))                                        // EMPTY_TUPLE
            case 0x7D: push(pool.make(.dict([], ordered: false)))                         // EMPTY_DICT
            case 0x8F: push(pool.make(.list([])))                                         // EMPTY_SET (kept as a list)
            case 0x6C: push(pool.make(.list(try popMark(at))))                            // LIST
            case 0x74: push(pool.make(.tuple(try popMark(at))))                           // TUPLE
            case 0x85: let a = try pop(at); push(pool.make(.tuple([a])))                  // TUPLE1
            case 0x86: let b = try pop(at), a = try pop(at); push(pool.make(.tuple([a, b])))  // TUPLE2
            case 0x87: // TUPLE3
                let c = try pop(at), b = try pop(at), a = try pop(at)
                push(pool.make(.tuple([a, b, c])))
            case 0x91: push(pool.make(.list(try popMark(at))))                            // FROZENSET
            case 0x64: push(pool.make(.dict(try pairs(try popMark(at), at), ordered: false)))  // DICT
            case 0x61: // APPEND
                let v = try pop(at)
                try append([v], to: try top(at), at)
            case 0x65, 0x90: // APPENDS, ADDITEMS
                let items = try popMark(at)
                try append(items, to: try top(at), at)
            case 0x73: // SETITEM
                let v = try pop(at), k = try pop(at)
                try setItems([(k, v)], in: try top(at), at)
            case 0x75: // SETITEMS
                let items = try pairs(try popMark(at), at)
                try setItems(items, in: try top(at), at)
            case 0x63: // GLOBAL "module\nname\n"
                let module = String(utf8OrLatin1: try reader.line())
                let name = String(utf8OrLatin1: try reader.line())
                push(try global(module, name, at))
            case 0x93: // STACK_GLOBAL
                let n = try pop(at), m = try pop(at)
                guard case .value(.string(let name)) = n.kind, case .value(.string(let module)) = m.kind else {
                    throw FormatError(path, "STACK_GLOBAL at byte \(at) without two strings")
                }
                push(try global(module, name, at))
            case 0x52: // REDUCE
                let args = try pop(at), callable = try pop(at)
                push(try call(callable, args, at))
            case 0x81: // NEWOBJ
                let args = try pop(at), cls = try pop(at)
                push(try newObject(cls, args, at))
            case 0x92: // NEWOBJ_EX
                _ = try pop(at)
                let args = try pop(at), cls = try pop(at)
                push(try newObject(cls, args, at))
            case 0x62: // BUILD
                let state = try pop(at)
                try build(try top(at), state, at)
            case 0x70: // PUT (text index)
                memo[try textIndex(at)] = try top(at)
            case 0x71: memo[Int(try reader.u8())] = try top(at)          // BINPUT
            case 0x72: memo[Int(try reader.u32())] = try top(at)         // LONG_BINPUT
            case 0x94: memo[memo.count] = try top(at)                    // MEMOIZE
            case 0x67: push(try memoGet(try textIndex(at), at))          // GET
            case 0x68: push(try memoGet(Int(try reader.u8()), at))       // BINGET
            case 0x6A: push(try memoGet(Int(try reader.u32()), at))      // LONG_BINGET
            case 0x51: // BINPERSID
                let pid = try pop(at)
                push(try persistent(pid, at))
            case 0x50: // PERSID (text)
                let s = String(utf8OrLatin1: try reader.line())
                push(try persistent(pool.make(.value(.string(s))), at))
            case 0x97, 0x98:
                throw FormatError(path, "pickle uses out-of-band buffers (opcode 0x\(String(op, radix: 16)) at byte \(at)), which cannot be read from a file")
            case 0x69, 0x6F:
                throw FormatError(path, "pickle opcode \(op == 0x69 ? "INST" : "OBJ") at byte \(at) instantiates a class; refused")
            case 0x82, 0x83, 0x84:
                throw FormatError(path, "pickle uses the extension registry (EXT opcode at byte \(at)); refused")
            default:
                throw FormatError(path, "unknown pickle opcode 0x\(String(op, radix: 16)) at byte \(at)")
            }
        }
    }

    // MARK: - Stack helpers

    private mutating func push(_ n: Node) { stack.append(n) }
    private mutating func push(_ k: Node.Kind) { stack.append(pool.make(k)) }

    private mutating func pop(_ at: Int) throws -> Node {
        if let m = marks.last, m >= stack.count {
            throw FormatError(path, "pickle pops past a MARK at byte \(at)")
        }
        guard let n = stack.popLast() else { throw FormatError(path, "pickle stack underflow at byte \(at)") }
        return n
    }

    private func top(_ at: Int) throws -> Node {
        guard let n = stack.last else { throw FormatError(path, "pickle stack empty at byte \(at)") }
        return n
    }

    private mutating func popMark(_ at: Int) throws -> [Node] {
        guard let m = marks.popLast(), m <= stack.count else {
            throw FormatError(path, "pickle has no MARK for the opcode at byte \(at)")
        }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func memoGet(_ i: Int, _ at: Int) throws -> Node {
        guard let n = memo[i] else { throw FormatError(path, "pickle memo entry \(i) missing at byte \(at)") }
        return n
    }

    private func pairs(_ items: [Node], _ at: Int) throws -> [(Node, Node)] {
        guard items.count % 2 == 0 else { throw FormatError(path, "odd number of dict items at byte \(at)") }
        return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    private func append(_ items: [Node], to target: Node, _ at: Int) throws {
        guard case .list(var xs) = target.kind else {
            throw FormatError(path, "APPEND to a non-list at byte \(at)")
        }
        target.kind = .value(.none)  // drop the second reference so the append is in place
        xs.append(contentsOf: items)
        target.kind = .list(xs)
    }

    private func setItems(_ items: [(Node, Node)], in target: Node, _ at: Int) throws {
        guard case .dict(var xs, let ordered) = target.kind else {
            throw FormatError(path, "SETITEM on a non-dict at byte \(at)")
        }
        target.kind = .value(.none)
        xs.append(contentsOf: items)
        target.kind = .dict(xs, ordered: ordered)
    }

    // MARK: - Literals

    private mutating func length32(_ at: Int) throws -> Int { Int(try reader.u32()) }

    private mutating func length64(_ at: Int) throws -> Int {
        let n = try reader.u64()
        guard n <= UInt64(reader.remaining) else {
            throw FormatError(path, "truncated: length \(n) at byte \(at) exceeds the \(reader.remaining) bytes left")
        }
        return Int(n)
    }

    private mutating func rawBytes(_ n: Int) throws -> Data {
        let b = try reader.bytes(n, "a bytes literal")
        return Data(b)
    }

    private mutating func utf8(_ n: Int) throws -> String {
        String(utf8OrLatin1: try reader.bytes(n, "a string literal"))
    }

    private mutating func lengthString(_ n: Int) throws -> String {
        String(utf8OrLatin1: try reader.bytes(n, "a string literal"))
    }

    private mutating func textInt(_ at: Int) throws -> PickleValue {
        var s = String(utf8OrLatin1: try reader.line())
        if s == "01" { return .bool(true) }
        if s == "00" { return .bool(false) }
        if s.hasSuffix("L") { s.removeLast() }
        guard let i = Int(s) else { throw FormatError(path, "bad integer literal '\(s.prefix(40))' at byte \(at)") }
        return .int(i)
    }

    private mutating func textIndex(_ at: Int) throws -> Int {
        let s = String(utf8OrLatin1: try reader.line())
        guard let i = Int(s), i >= 0 else { throw FormatError(path, "bad memo index '\(s.prefix(40))' at byte \(at)") }
        return i
    }

    private mutating func quotedString(_ at: Int) throws -> String {
        var s = String(utf8OrLatin1: try reader.line(limit: 1 << 20))
        guard s.count >= 2, let q = s.first, q == "'" || q == "\"", s.last == q else {
            throw FormatError(path, "bad STRING literal at byte \(at)")
        }
        s.removeFirst(); s.removeLast()
        return s
    }

    /// Two's-complement little-endian integer of n bytes (LONG1/LONG4); at most 8 bytes.
    private mutating func longBytes(_ n: Int, _ at: Int) throws -> PickleValue {
        let b = try reader.bytes(n, "a long integer")
        guard n <= 8 else {
            // Accept wider encodings only when they are sign extensions of a 64-bit value.
            let fill: UInt8 = (b[7] & 0x80) != 0 ? 0xFF : 0
            guard b[8...].allSatisfy({ $0 == fill }) else {
                throw FormatError(path, "integer of \(n) bytes at byte \(at) does not fit 64 bits")
            }
            return try longValue(UnsafeRawBufferPointer(rebasing: b[0..<8]))
        }
        return try longValue(b)
    }

    private func longValue(_ b: UnsafeRawBufferPointer) throws -> PickleValue {
        if b.isEmpty { return .int(0) }
        var v: UInt64 = 0
        for (i, byte) in b.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
        if b.count < 8, (b[b.count - 1] & 0x80) != 0 { v |= ~UInt64(0) << (8 * UInt64(b.count)) }
        return .int(Int(Int64(bitPattern: v)))
    }

    // MARK: - Globals and calls

    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict",
        "argparse.Namespace",  // the training arguments some checkpoints carry: an inert record
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
        "numpy.ndarray", "numpy.dtype",
        "_codecs.encode",
        "builtins.set", "builtins.frozenset", "builtins.list", "builtins.tuple", "builtins.dict",
        "builtins.bytearray", "builtins.bytes",
        "__builtin__.set", "__builtin__.frozenset", "__builtin__.list", "__builtin__.tuple", "__builtin__.dict",
    ]

    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "DoubleStorage": .float64, "LongStorage": .int64, "IntStorage": .int32,
        "ByteStorage": .uint8, "CharStorage": .int8, "BoolStorage": .bool,
    ]

    static let torchScriptHelpers: Set<String> = [
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.restore_type_tag",
    ]

    private func global(_ module: String, _ name: String, _ at: Int) throws -> Node {
        let full = module + "." + name
        if Unpickler.allowedGlobals.contains(full) { return pool.make(.global(module, name)) }
        if module == "torch", Unpickler.storageTypes[name] != nil { return pool.make(.global(module, name)) }
        if allowTorchScript {
            if module.hasPrefix("__torch__") || Unpickler.torchScriptHelpers.contains(full) {
                return pool.make(.global(module, name))
            }
        }
        throw FormatError(path, "pickle refers to global '\(full)' at byte \(at), which is not on the allowlist of data types (refused; nothing was executed)")
    }

    private func args(_ n: Node, _ at: Int) throws -> [Node] {
        guard case .tuple(let xs) = n.kind else { throw FormatError(path, "call arguments are not a tuple at byte \(at)") }
        return xs
    }

    private func call(_ callable: Node, _ argNode: Node, _ at: Int) throws -> Node {
        guard case .global(let module, let name) = callable.kind else {
            throw FormatError(path, "REDUCE at byte \(at) calls something that is not an allowed global")
        }
        let a = try args(argNode, at)
        let full = module + "." + name
        func arg(_ i: Int) throws -> Node {
            guard i < a.count else { throw FormatError(path, "\(full) at byte \(at) given \(a.count) arguments") }
            return a[i]
        }
        switch full {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            var items: [(Node, Node)] = []
            if !a.isEmpty {
                guard case .list(let ps) = a[0].kind else { throw FormatError(path, "\(full) at byte \(at) with a non-list argument") }
                for p in ps {
                    let kv: [Node]
                    switch p.kind {
                    case .tuple(let x), .list(let x): kv = x
                    default: kv = []
                    }
                    guard kv.count == 2 else {
                        throw FormatError(path, "\(full) at byte \(at) with a non-pair item")
                    }
                    items.append((kv[0], kv[1]))
                }
            }
            return pool.make(.dict(items, ordered: full == "collections.OrderedDict"))
        case "builtins.set", "builtins.frozenset", "builtins.list", "builtins.tuple",
             "__builtin__.set", "__builtin__.frozenset", "__builtin__.list", "__builtin__.tuple":
            if a.isEmpty { return pool.make(name == "tuple" ? .tuple([]) : .list([])) }
            switch a[0].kind {
            case .list(let xs), .tuple(let xs): return pool.make(name == "tuple" ? .tuple(xs) : .list(xs))
            default: throw FormatError(path, "\(full) at byte \(at) with a non-sequence argument")
            }
        case "builtins.bytearray", "builtins.bytes":
            if a.isEmpty { return pool.make(.value(.bytes(Data()))) }
            if case .value(.bytes) = a[0].kind { return a[0] }
            return try latin1Encode(a, at)
        case "_codecs.encode":
            return try latin1Encode(a, at)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard case .storage(let storage) = try arg(0).kind else {
                throw FormatError(path, "tensor at byte \(at) is not backed by a storage")
            }
            let offset = try intArg(try arg(1), "storage offset", at)
            let size = try intList(try arg(2), "size", at)
            let stride = try intList(try arg(3), "stride", at)
            return pool.make(.value(.tensor(try TorchTensor(storage: storage, storageOffset: offset, shape: size, strides: stride, path: path))))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            let data = try arg(0)
            guard case .value(.tensor) = data.kind else { throw FormatError(path, "parameter at byte \(at) does not wrap a tensor") }
            return data
        case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
            return pool.make(.ndarray(nil))
        case "numpy.dtype":
            guard case .value(.string(let descr)) = try arg(0).kind else {
                throw FormatError(path, "numpy.dtype at byte \(at) without a type string")
            }
            return pool.make(.dtype(descr, "<"))
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            let dtype = try dtypeOf(try arg(0), at)
            guard case .value(.bytes(let b)) = try arg(1).kind, let dtype, b.count == dtype.byteSize else {
                throw FormatError(path, "numpy scalar at byte \(at) with unsupported dtype or wrong byte count")
            }
            return pool.make(.value(scalarValue(b, dtype)))
        case "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer":
            guard case .value(.bytes(let b)) = try arg(0).kind else {
                throw FormatError(path, "numpy _frombuffer at byte \(at) without bytes")
            }
            let dtype = try dtypeOf(try arg(1), at)
            let shape = try intList(try arg(2), "shape", at)
            var fortran = false
            if a.count > 3, case .value(.string(let order)) = a[3].kind { fortran = order == "F" }
            return pool.make(.value(.array(try makeArray(dtype: dtype, shape: shape, fortran: fortran, bytes: b, at))))
        default:
            if Unpickler.torchScriptHelpers.contains(full) { return try arg(0) }
            throw FormatError(path, "global '\(full)' at byte \(at) cannot be called")
        }
    }

    private func newObject(_ cls: Node, _ argNode: Node, _ at: Int) throws -> Node {
        guard case .global(let module, let name) = cls.kind,
              (module.hasPrefix("__torch__") && allowTorchScript) || (module == "argparse" && name == "Namespace") else {
            throw FormatError(path, "NEWOBJ at byte \(at) on something other than a TorchScript class or argparse.Namespace; refused")
        }
        return pool.make(.object(module + "." + name, nil))
    }

    private func build(_ target: Node, _ state: Node, _ at: Int) throws {
        switch target.kind {
        case .object(let type, _):
            target.kind = .object(type, state)
        case .dtype(let descr, _):
            guard case .tuple(let s) = state.kind, s.count >= 2, case .value(.string(let order)) = s[1].kind else {
                throw FormatError(path, "numpy dtype state at byte \(at) is not understood")
            }
            target.kind = .dtype(descr, order)
        case .ndarray(nil):
            // (version, shape, dtype, is_fortran, data): data is bytes, or a list for object arrays.
            guard case .tuple(let s) = state.kind, s.count == 5 else {
                throw FormatError(path, "numpy array state at byte \(at) is not a 5-tuple")
            }
            let shape = try intList(s[1], "array shape", at)
            let dtype = try dtypeOf(s[2], at)
            let fortran: Bool
            if case .value(.bool(let f)) = s[3].kind { fortran = f } else { fortran = false }
            switch s[4].kind {
            case .value(.bytes(let b)):
                target.kind = .ndarray(try makeArray(dtype: dtype, shape: shape, fortran: fortran, bytes: b, at))
            case .list(let items):
                guard dtype == nil else { throw FormatError(path, "numeric numpy array at byte \(at) holds a list") }
                guard items.count == (checkedProduct(shape) ?? -1) else {
                    throw FormatError(path, "object array of shape \(shape) holds \(items.count) items at byte \(at)")
                }
                target.kind = .objectArray(shape, items)
            default:
                throw FormatError(path, "numpy array data at byte \(at) is neither bytes nor a list")
            }
        case .dict, .value(.tensor):
            break // OrderedDict attributes (_metadata) and parameter state: not needed
        default:
            throw FormatError(path, "BUILD at byte \(at) on an object that takes no state")
        }
    }

    private func persistent(_ pid: Node, _ at: Int) throws -> Node {
        guard let persistentLoad else {
            throw FormatError(path, "pickle uses a persistent id at byte \(at), which this file type does not allow")
        }
        var converter = Converter(path: path, source: nil)
        return pool.make(.storage(try persistentLoad(try converter.convert(pid, depth: 0))))
    }

    private func latin1Encode(_ a: [Node], _ at: Int) throws -> Node {
        guard a.count >= 1, case .value(.string(let s)) = a[0].kind else {
            throw FormatError(path, "_codecs.encode at byte \(at) without a string")
        }
        if a.count > 1 {
            guard case .value(.string(let enc)) = a[1].kind, ["latin1", "latin-1", "iso-8859-1"].contains(enc.lowercased()) else {
                throw FormatError(path, "_codecs.encode at byte \(at) with an encoding other than latin1")
            }
        }
        var out = Data()
        out.reserveCapacity(s.unicodeScalars.count)
        for u in s.unicodeScalars {
            guard u.value < 256 else { throw FormatError(path, "latin1 bytes at byte \(at) contain a character above 255") }
            out.append(UInt8(u.value))
        }
        return pool.make(.value(.bytes(out)))
    }

    private func intArg(_ n: Node, _ what: String, _ at: Int) throws -> Int {
        guard case .value(let v) = n.kind, let i = v.intValue else {
            throw FormatError(path, "\(what) at byte \(at) is not an integer")
        }
        return i
    }

    private func intList(_ n: Node, _ what: String, _ at: Int) throws -> [Int] {
        switch n.kind {
        case .tuple(let xs), .list(let xs): return try xs.map { try intArg($0, what, at) }
        default: throw FormatError(path, "\(what) at byte \(at) is not a tuple of integers")
        }
    }

    /// nil for object dtype.
    private func dtypeOf(_ n: Node, _ at: Int) throws -> DType? {
        guard case .dtype(let descr, let order) = n.kind else {
            throw FormatError(path, "expected a numpy dtype at byte \(at)")
        }
        if descr == "O8" || descr == "O4" || descr == "O" { return nil }
        guard order != ">" || descr.hasSuffix("1"), let d = DType(numpyDescr: descr) else {
            throw FormatError(path, "unsupported numpy dtype '\(order)\(descr)' at byte \(at)")
        }
        return d
    }

    private func makeArray(dtype: DType?, shape: [Int], fortran: Bool, bytes: Data, _ at: Int) throws -> NDArray {
        guard let dtype else { throw FormatError(path, "object array from raw bytes at byte \(at)") }
        guard shape.count <= 6, let n = checkedProduct(shape, limit: Int.max / 16), n * dtype.byteSize == bytes.count else {
            throw FormatError(path, "numpy array of shape \(shape) \(dtype.rawValue) does not match its \(bytes.count) data bytes at byte \(at)")
        }
        return NDArray(dtype: dtype, shape: shape, fortranOrder: fortran, source: ByteSource(data: bytes, path: path),
                       offset: 0, elements: [])
    }

    private func scalarValue(_ b: Data, _ dtype: DType) -> PickleValue {
        let t = Tensor1(b, dtype)
        switch dtype {
        case .float32, .float16, .bfloat16, .float64: return .float(Double(t))
        case .bool: return .bool(t != 0)
        default:
            return .int(b.withUnsafeBytes { raw -> Int in
                switch dtype {
                case .int64: return Int(raw.loadUnaligned(as: Int64.self))
                case .int32: return Int(raw.loadUnaligned(as: Int32.self))
                case .int8: return Int(raw.load(as: Int8.self))
                default: return Int(raw.load(as: UInt8.self))
                }
            })
        }
    }
}

/// One scalar converted through the common float32 path.
private func Tensor1(_ b: Data, _ dtype: DType) -> Float {
    if dtype == .float64 { return b.withUnsafeBytes { Float($0.loadUnaligned(as: Double.self)) } }
    var out: Float = 0
    b.withUnsafeBytes { convertToFloat32($0.baseAddress!, dtype: dtype, count: 1, into: &out) }
    return out
}

/// Every node made while reading one pickle.
final class NodePool {
    private var nodes: [Node] = []

    func make(_ kind: Node.Kind) -> Node {
        let n = Node(kind)
        nodes.append(n)
        return n
    }

    func clear() {
        for n in nodes { n.kind = .value(.none) }
        nodes.removeAll()
    }
}

/// A mutable pickle object while reading.
final class Node {
    enum Kind {
        case value(PickleValue)
        case list([Node])
        case tuple([Node])
        case dict([(Node, Node)], ordered: Bool)
        case global(String, String)
        case object(String, Node?)
        case storage(TorchStorage)
        case ndarray(NDArray?)
        case objectArray([Int], [Node])
        case dtype(String, String)
    }
    var kind: Kind
    init(_ kind: Kind) { self.kind = kind }
}

/// Turns the node graph into values: each node once, with a depth limit and cycle detection.
struct Converter {
    let path: String
    let source: ByteSource?
    var done: [ObjectIdentifier: PickleValue] = [:]
    var inProgress: Set<ObjectIdentifier> = []
    static let maxDepth = 200

    init(path: String, source: ByteSource?) {
        self.path = path
        self.source = source
    }

    mutating func convert(_ n: Node, depth: Int) throws -> PickleValue {
        guard depth < Converter.maxDepth else { throw FormatError(path, "pickle nests deeper than \(Converter.maxDepth) levels") }
        let id = ObjectIdentifier(n)
        if let v = done[id] { return v }
        guard !inProgress.contains(id) else { throw FormatError(path, "pickle holds a recursive structure; refused") }
        inProgress.insert(id)
        defer { inProgress.remove(id) }
        let v: PickleValue
        switch n.kind {
        case .value(let x): v = x
        case .list(let xs): v = .list(try xs.map { try convert($0, depth: depth + 1) })
        case .tuple(let xs): v = .tuple(try xs.map { try convert($0, depth: depth + 1) })
        case .dict(let ps, let ordered):
            let e = try ps.map { (key: try convert($0.0, depth: depth + 1), value: try convert($0.1, depth: depth + 1)) }
            v = ordered ? .orderedDict(e) : .dict(e)
        case .global(let m, let name): v = .global(module: m, name: name)
        case .object(let type, let state):
            v = .object(type: type, state: try state.map { try convert($0, depth: depth + 1) } ?? .none)
        case .storage(let s):
            v = .tensor(try TorchTensor(storage: s, storageOffset: 0, shape: [s.count], strides: [1], path: path))
        case .ndarray(let a):
            guard let a else { throw FormatError(path, "numpy array without state") }
            v = .array(a)
        case .objectArray(let shape, let items):
            let elements = try items.map { try convert($0, depth: depth + 1) }
            v = .array(NDArray(dtype: nil, shape: shape, fortranOrder: false,
                               source: source ?? ByteSource(data: Data(), path: path), offset: 0, elements: elements))
        case .dtype(let d, let order): v = .string(order + d)
        }
        done[id] = v
        return v
    }
}
