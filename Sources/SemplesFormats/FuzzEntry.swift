import Foundation

/// One entry point per parser for fuzzing: any bytes must give a value or a FormatError naming
/// the input, never a crash, a hang or unbounded memory. Used by the libFuzzer harness
/// (Fuzz/, scripts/fuzz.sh) and by the mutation tests.
public enum FuzzEntry {
    public static let targets = ["pickle", "npy", "zip", "pth", "safetensors", "png", "jpeg", "labels", "inflate"]

    /// The name errors must carry.
    public static let inputName = "fuzz-input"

    /// Parses `data` as `target`; returns the error thrown, if any.
    public static func run(_ target: String, _ data: Data) -> Error? {
        do {
            try parse(target, data)
            return nil
        } catch {
            return error
        }
    }

    static func parse(_ target: String, _ data: Data) throws {
        let source = ByteSource(data: data, path: inputName)
        switch target {
        case "pickle":
            var storages: [String: TorchStorage] = [:]
            let backing = ByteSource(data: Data(count: 4096), path: inputName)
            let value = try Unpickler.load(source, persistentLoad: { pid in
                // Any storage of up to 1024 float32 elements, keyed like torch's.
                guard case .tuple(let t) = pid, t.count == 5, let key = t[2].stringValue, let n = t[4].intValue,
                      n >= 0, n <= 1024 else { throw FormatError(inputName, "bad storage reference") }
                if let s = storages[key] { return s }
                let s = TorchStorage(dtype: .float32, source: backing, offset: 0, count: n, key: key)
                storages[key] = s
                return s
            }, allowTorchScript: true)
            try touch(value, depth: 0)
        case "npy":
            let a = try Npy.parseArray(source)
            if a.dtype != nil { _ = try a.toFloat32() }
        case "zip":
            let zip = try ZipArchive(source: source)
            for e in zip.entries { _ = try? zip.contents(e, limit: 1 << 20) }
        case "pth":
            let archive = try Pth.open(source: source)
            for (_, t) in try Pth.tensors(of: archive, key: nil) where t.count <= 1 << 20 { _ = t.toFloat32() }
        case "safetensors":
            _ = try SafeTensors.parse(data, path: inputName)
        case "png", "jpeg":
            _ = try ImageIO.decode(source, labels: false)
        case "labels":
            _ = try ImageIO.decode(source, labels: true)
        case "inflate":
            guard data.count >= 2 else { return }
            let expected = Int(data[data.startIndex]) << 8 | Int(data[data.startIndex + 1])
            _ = try Inflate.inflate(UnsafeRawBufferPointer(rebasing: source.buffer[2...]), expectedSize: expected,
                                    path: inputName, what: "stream")
        default:
            preconditionFailure("unknown fuzz target '\(target)'")
        }
    }

    /// Walks a value (bounded), converting tensors and arrays, as consumers would.
    static func touch(_ v: PickleValue, depth: Int) throws {
        guard depth < 8 else { return }
        switch v {
        case .list(let xs), .tuple(let xs): for x in xs.prefix(64) { try touch(x, depth: depth + 1) }
        case .dict(let e), .orderedDict(let e):
            for (k, x) in e.prefix(64) { try touch(k, depth: depth + 1); try touch(x, depth: depth + 1) }
        case .tensor(let t): if t.count <= 1 << 20 { _ = t.toFloat32() }
        case .array(let a): if a.dtype != nil && a.count <= 1 << 20 { _ = try a.toFloat32() }
        case .object(_, let state): try touch(state, depth: depth + 1)
        default: break
        }
    }
}
