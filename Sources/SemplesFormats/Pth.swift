import Foundation
import SemplesEngine

/// PyTorch checkpoints (`torch.save`, zip format since PyTorch 1.6) and TorchScript archives
/// (`torch.jit.save`, e.g. OpenAI CLIP's `.pt` files).
///
/// Layout: `<archive>/data.pkl` (the pickled object), `<archive>/data/<key>` (one stored entry
/// per storage, raw little-endian), `<archive>/version`, `<archive>/byteorder`. Tensors in the
/// pickle are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` where storage is
/// the persistent id `('storage', torch.<Type>Storage, key, location, numel)`. TorchScript archives
/// pickle module objects (`__torch__.*` classes with attribute dicts) and also carry `code/`.
/// The file is memory-mapped; tensors are converted to float32 straight from the map.
public enum Pth {
    /// An opened checkpoint: the archive and its unpickled root object.
    public struct Archive {
        public let zip: ZipArchive
        /// The top folder of every entry (torch names it after the file).
        public let prefix: String
        public let root: PickleValue
        public let isTorchScript: Bool
    }

    /// Loads the pickled object of a `.pth`/`.pt` file (tensors stay mapped until converted).
    public static func load(_ path: String) throws -> PickleValue {
        try open(path).root
    }

    /// Opens and unpickles a checkpoint (restricted unpickler; nothing is executed).
    public static func open(_ path: String) throws -> Archive {
        try open(source: try ByteSource(path: path))
    }

    /// Opens checkpoint bytes already in memory or mapped.
    public static func open(source: ByteSource) throws -> Archive {
        let path = source.path
        if source.count >= 2, source.base.load(as: UInt8.self) == 0x80 {
            throw FormatError(path, "legacy torch.save format (a bare pickle, before PyTorch 1.6) is not supported; re-save it with a current torch")
        }
        let zip = try ZipArchive(source: source)
        guard let pkl = zip.entries.first(where: { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2 }) else {
            throw FormatError(path, "not a torch checkpoint: no '<archive>/data.pkl' entry")
        }
        let prefix = String(pkl.name.dropLast("/data.pkl".count))
        let isTorchScript = zip.entry(prefix + "/constants.pkl") != nil
            || zip.entries.contains { $0.name.hasPrefix(prefix + "/code/") }
        if let order = zip.entry(prefix + "/byteorder") {
            let text = String(decoding: try zip.contents(order, limit: 64), as: UTF8.self)
            guard text == "little" else { throw FormatError(path, "byte order '\(text)' (only little-endian is supported)") }
        }
        var storages: [String: TorchStorage] = [:]
        let pickleBytes = try zip.storedOrInflated(pkl)
        let root = try Unpickler.load(pickleBytes, persistentLoad: { pid in
            try storage(pid, zip: zip, prefix: prefix, cache: &storages)
        }, allowTorchScript: isTorchScript)
        return Archive(zip: zip, prefix: prefix, root: root, isTorchScript: isTorchScript)
    }

    /// Resolves `('storage', torch.XStorage, key, location, numel)` to the mapped bytes of `data/<key>`.
    static func storage(_ pid: PickleValue, zip: ZipArchive, prefix: String,
                        cache: inout [String: TorchStorage]) throws -> TorchStorage {
        let path = zip.path
        guard case .tuple(let t) = pid, t.count == 5, t[0].stringValue == "storage",
              case .global(let module, let typeName) = t[1], module == "torch",
              let key = t[2].stringValue, let numel = t[4].intValue else {
            throw FormatError(path, "persistent id \(pid.kindName) is not a torch storage reference")
        }
        guard let dtype = Unpickler.storageTypes[typeName] else {
            throw FormatError(path, "storage type 'torch.\(typeName)' is not supported")
        }
        if let s = cache[key] {
            guard s.dtype == dtype else { throw FormatError(path, "storage '\(key)' used as \(s.dtype.rawValue) and \(dtype.rawValue)") }
            return s
        }
        guard let entry = zip.entry(prefix + "/data/" + key) else {
            throw FormatError(path, "storage '\(key)' has no entry '\(prefix)/data/\(key)'")
        }
        guard entry.method == 0 else { throw FormatError(path, "storage '\(key)' is compressed; expected a stored entry") }
        guard numel >= 0, let bytes = checkedProduct([numel, dtype.byteSize]), bytes <= entry.size else {
            throw FormatError(path, "storage '\(key)' claims \(numel) elements of \(dtype.rawValue) but its entry holds \(entry.size) bytes")
        }
        let s = TorchStorage(dtype: dtype, source: zip.source, offset: entry.dataOffset, count: numel, key: key)
        cache[key] = s
        return s
    }

    /// The tensors of a checkpoint by name, converted to float32. `key` selects a sub-dict
    /// (e.g. "model"); nil takes the root (a plain state dict, or a TorchScript module's tensors).
    public static func stateDict(_ path: String, key: String? = nil) throws -> [String: NamedTensor] {
        var out: [String: NamedTensor] = [:]
        for t in try orderedStateDict(path, key: key) { out[t.name] = t }
        return out
    }

    /// Like `stateDict`, in file order.
    public static func orderedStateDict(_ path: String, key: String? = nil) throws -> [NamedTensor] {
        let archive = try open(path)
        return try tensors(of: archive, key: key).map {
            NamedTensor(name: $0.0, dtype: $0.1.dtype, tensor: $0.1.toFloat32())
        }
    }

    /// The (name, tensor) pairs of an opened archive without converting them.
    public static func tensors(of archive: Archive, key: String?) throws -> [(String, TorchTensor)] {
        let path = archive.zip.path
        var value = archive.root
        if let key {
            guard let v = value[key] else {
                let keys = (value.dictEntries ?? []).compactMap { $0.key.stringValue }
                throw FormatError(path, "no key '\(key)' in the checkpoint (keys: \(keys.map { "'\($0)'" }.joined(separator: ", ")))")
            }
            value = v
        }
        if case .object = value {
            let declared = archive.isTorchScript ? TorchScriptCode(archive: archive) : nil
            var out: [(String, TorchTensor)] = []
            var budget = 1_000_000
            try collectModuleTensors(value, prefix: "", declared: declared, into: &out, depth: 0, budget: &budget, path: path)
            return out
        }
        guard let entries = value.dictEntries else {
            throw FormatError(path, "expected a state dict, found \(value.kindName)\(key.map { " under '\($0)'" } ?? "")")
        }
        var out: [(String, TorchTensor)] = []
        for (k, v) in entries {
            guard let name = k.stringValue else { throw FormatError(path, "state dict key \(k.kindName) is not a string") }
            guard case .tensor(let t) = v else {
                throw FormatError(path, "state dict entry '\(name)' is \(v.kindName), not a tensor")
            }
            out.append((name, t))
        }
        return out
    }

    /// Walks TorchScript module records: parameters and buffers by dotted attribute path (the
    /// names `state_dict()` gives). Tensor attributes the module code does not declare as
    /// parameters or buffers are left out, as `state_dict()` leaves them out.
    static func collectModuleTensors(_ v: PickleValue, prefix: String, declared: TorchScriptCode?,
                                     into out: inout [(String, TorchTensor)], depth: Int, budget: inout Int,
                                     path: String) throws {
        guard depth < 64 else { throw FormatError(path, "TorchScript modules nest deeper than 64 levels") }
        // Shared sub-modules are visited once per path; a hostile file could make that exponential.
        budget -= 1
        guard budget >= 0 else { throw FormatError(path, "TorchScript module tree has more than a million paths") }
        guard case .object(let type, let state) = v, let entries = state.dictEntries else { return }
        let names = declared?.tensorNames(ofClass: type)
        for (k, value) in entries {
            guard let name = k.stringValue else { continue }
            switch value {
            case .tensor(let t):
                if names == nil || names!.contains(name) { out.append((prefix + name, t)) }
            case .object:
                try collectModuleTensors(value, prefix: prefix + name + ".", declared: declared, into: &out,
                                         depth: depth + 1, budget: &budget, path: path)
            default:
                continue
            }
        }
    }

    // MARK: - Writing

    /// Writes `value` as a zip checkpoint that `torch.load` reads. Tensors become storages under
    /// `archive/data/`; tensors sharing a storage share it in the file.
    public static func save(_ value: PickleValue, to path: String) throws {
        try AtomicFile.write(try encode(value, path: path), to: path)
    }

    /// Writes `{key: OrderedDict(state dict), extras…}` (e.g. `{'model': …, 'epoch': 7, 'miou': 0.61}`),
    /// or the bare OrderedDict when `key` is nil (e.g. `btp.pth` = `{'prompts': …}`).
    public static func save(stateDict: [(String, TensorView)], key: String? = "model",
                            extras: [(String, PickleValue)] = [], to path: String) throws {
        let sd = PickleValue.orderedDict(stateDict.enumerated().map { (i, e) in
            (key: .string(e.0), value: .tensor(TorchTensor(copying: e.1, key: String(i))))
        })
        let value: PickleValue
        if let key {
            value = .dict([(key: .string(key), value: sd)] + extras.map { (key: .string($0.0), value: $0.1) })
        } else {
            precondition(extras.isEmpty, "extras need a key for the state dict")
            value = sd
        }
        try save(value, to: path)
    }

    static func encode(_ value: PickleValue, path: String) throws -> Data {
        var writer = PickleWriter(protocolVersion: 2)
        do { try writer.write(value) } catch let e as FormatError { throw FormatError(path, e.detail) }
        let pickle = writer.finish()
        let archive = "archive"
        var zip = ZipWriter()
        zip.add(archive + "/data.pkl", pickle)
        zip.add(archive + "/byteorder", Data("little".utf8))
        for (key, storage) in writer.storages {
            zip.add(archive + "/data/" + key, UnsafeRawBufferPointer(start: storage.pointer, count: storage.byteCount))
        }
        zip.add(archive + "/version", Data("3\n".utf8))
        return zip.finish()
    }
}

extension ZipArchive {
    /// Entry bytes as a source the unpickler can read (in place when stored).
    func storedOrInflated(_ entry: Entry) throws -> ByteSource {
        ByteSource(data: try contents(entry), path: path)
    }
}

/// The `__parameters__` and `__buffers__` lists of each TorchScript class, read from the
/// archive's `code/` files. Classes whose code or lists cannot be found keep all their tensors.
final class TorchScriptCode {
    private let archive: Pth.Archive
    /// code file → class name → declared names (only classes that declare lists).
    private var files: [String: [String: Set<String>]] = [:]

    init(archive: Pth.Archive) { self.archive = archive }

    /// nil when unknown (then every tensor attribute counts).
    func tensorNames(ofClass qualified: String) -> Set<String>? {
        guard let dot = qualified.lastIndex(of: ".") else { return nil }
        let module = String(qualified[..<dot]), name = String(qualified[qualified.index(after: dot)...])
        let file = archive.prefix + "/code/" + module.replacingOccurrences(of: ".", with: "/") + ".py"
        if let classes = files[file] { return classes[name] }
        var classes: [String: Set<String>] = [:]
        if let entry = archive.zip.entry(file), let data = try? archive.zip.contents(entry, limit: 16 << 20) {
            classes = TorchScriptCode.parse(String(decoding: data, as: UTF8.self))
        }
        files[file] = classes
        return classes[name]
    }

    /// class name → declared parameter and buffer names, for classes that declare both lists.
    static func parse(_ text: String) -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        var seen: [String: Int] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("class ") {
                current = String(line.dropFirst(6).prefix { $0 != "(" && $0 != ":" })
            } else if let c = current, line.hasPrefix("  __parameters__ = [") || line.hasPrefix("  __buffers__ = [") {
                guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { continue }
                let items = line[line.index(after: open)..<close].split(separator: ",").map {
                    $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
                }.filter { !$0.isEmpty }
                out[c, default: []].formUnion(items)
                seen[c, default: 0] += 1
            }
        }
        return out.filter { seen[$0.key] == 2 }
    }
}
