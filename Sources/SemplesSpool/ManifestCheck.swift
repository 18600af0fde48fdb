import Foundation
import Yams

/// Why a manifest was refused: names the file, the key when there is one, and what to do.
public struct ManifestProblem: Error, CustomStringConvertible {
    public enum Kind { case unreadable, syntax, content }
    public let kind: Kind
    public let file: String
    public let detail: String
    public var description: String { "manifest '\(file)': \(detail)" }
}

/// What the spool needs to know about a valid manifest.
public struct ManifestSummary {
    /// The `job:` kind (cam, evaluate, train, pipeline …).
    public var job: String
}

/// Manifest validation for the spool, behind one function so the spool's checks and the job
/// runner's `semples run` agree on what is valid.
public enum ManifestCheck {
    /// Checks the bytes of a manifest submitted under `name`: size, UTF-8, YAML or JSON syntax, a
    /// top-level mapping with a `job:` string.
    public static func validate(bytes: [UInt8], name: String, limit: Int = 1 << 20) throws -> ManifestSummary {
        if bytes.count > limit {
            throw ManifestProblem(kind: .content, file: name,
                                  detail: "file is \(bytes.count) bytes, more than the limit of \(limit) bytes; a manifest names its data, it does not contain it")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = firstInvalidUTF8(bytes)
            throw ManifestProblem(kind: .syntax, file: name, detail: "not valid UTF-8 (byte offset \(offset)); save it as UTF-8 text")
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ManifestProblem(kind: .syntax, file: name, detail: "not valid YAML or JSON: \(error)")
        }
        guard let map = node as? [String: Any] else {
            throw ManifestProblem(kind: .syntax, file: name, detail: "expected a mapping of keys at the top level (job: cam, …), found \(node.map { "\(type(of: $0))" } ?? "an empty document")")
        }
        guard let job = map["job"] else {
            throw ManifestProblem(kind: .content, file: name, detail: "missing key 'job' (the kind of job: cam, evaluate, train or pipeline)")
        }
        guard let kind = job as? String, !kind.isEmpty else {
            throw ManifestProblem(kind: .content, file: name, detail: "key 'job': expected a string such as cam or evaluate, found '\(job)'")
        }
        return ManifestSummary(job: kind)
    }

    /// Validates a file on disk, refusing symbolic links and files over `limit` before reading them.
    /// `name` is how the file is named in messages (default: its base name).
    public static func validate(path: String, name displayName: String? = nil, limit: Int = 1 << 20) throws -> ManifestSummary {
        let name = displayName ?? baseName(path)
        guard let info = Sys.info(path) else {
            throw ManifestProblem(kind: .unreadable, file: path, detail: "no such file")
        }
        if info.isSymlink {
            throw ManifestProblem(kind: .content, file: name, detail: "is a symbolic link; submit the file itself")
        }
        guard info.isRegular else { throw ManifestProblem(kind: .content, file: name, detail: "not a regular file") }
        if info.size > Int64(limit) {
            throw ManifestProblem(kind: .content, file: name,
                                  detail: "file is \(info.size) bytes, more than the limit of \(limit) bytes; a manifest names its data, it does not contain it")
        }
        let bytes: [UInt8]
        do { bytes = try Sys.read(path, limit: limit) } catch {
            throw ManifestProblem(kind: .unreadable, file: name, detail: "\(error)")
        }
        return try validate(bytes: bytes, name: name, limit: limit)
    }

    /// The offset of the first byte that does not start a valid UTF-8 sequence.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int {
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            let length = b < 0x80 ? 1 : b & 0xE0 == 0xC0 ? 2 : b & 0xF0 == 0xE0 ? 3 : b & 0xF8 == 0xF0 ? 4 : 0
            if length == 0 || i + length > bytes.count || String(validating: bytes[i..<(i + length)], as: UTF8.self) == nil { return i }
            i += length
        }
        return i
    }
}
