import Foundation
import SemplesManifest
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
    /// The parsed manifest, paths absolute.
    public var manifest: Manifest
}

/// Manifest validation for the spool, behind one function so the spool's checks and the job
/// runner's `semples run` agree on what is valid.
public enum ManifestCheck {
    /// Checks the bytes of a manifest submitted under `name`: size, UTF-8, then the job's own
    /// validation (`Manifest.parse`). With `folder`, relative paths are resolved there and every
    /// named file must exist; without, files are not checked.
    public static func validate(bytes: [UInt8], name: String, folder: String? = nil, limit: Int = 1 << 20) throws -> ManifestSummary {
        if bytes.count > limit {
            throw ManifestProblem(kind: .content, file: name,
                                  detail: "file is \(bytes.count) bytes, more than the limit of \(limit) bytes; a manifest names its data, it does not contain it")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = firstInvalidUTF8(bytes)
            throw ManifestProblem(kind: .syntax, file: name, detail: "not valid UTF-8 (byte offset \(offset)); save it as UTF-8 text")
        }
        // The job's own validation: keys, types, and that every named file exists. Relative paths
        // are taken from `folder` (where the manifest was submitted).
        do {
            let manifest = try Manifest.parse(text, file: folder.map { joinPath($0, name) } ?? name, checkFiles: folder != nil)
            do { _ = try SlurmResources.of(manifest: bytes, name: name) } catch let e as ConfigError {
                throw ManifestProblem(kind: .content, file: name, detail: "key 'resources': " + e.detail)
            }
            return ManifestSummary(job: manifest.job.rawValue, manifest: manifest)
        } catch let e as ManifestError {
            let syntax = e.key == nil && (e.problem.hasPrefix("not valid YAML") || e.problem.hasPrefix("expected a mapping"))
            throw ManifestProblem(kind: syntax ? .syntax : .content, file: name,
                                  detail: e.key.map { "key '\($0)': \(e.problem)" } ?? e.problem)
        }
    }

    /// The manifest text with every relative path the job resolved made absolute, so it runs the
    /// same from wherever the daemon keeps it. Unchanged bytes when nothing was relative.
    public static func resolvingPaths(_ bytes: [UInt8], manifest: Manifest) -> [UInt8] {
        guard let text = String(validating: bytes, as: UTF8.self) else { return bytes }
        var resolved: [String: String] = [:]
        collectStrings(manifest, into: &resolved, depth: 0)
        // Every absolute value already written as such: nothing to rewrite (the common case).
        if resolved.values.allSatisfy({ !$0.hasPrefix("/") || text.contains($0) }) { return bytes }
        guard var map = (try? Yams.load(yaml: text)) as? [String: Any] else { return bytes }
        var changed = false
        for (key, value) in map {
            guard let raw = value as? String, !raw.hasPrefix("/"), let full = resolved[camelCase(key)],
                  full != raw, full.hasPrefix("/") else { continue }
            map[key] = full
            changed = true
        }
        guard changed, let dumped = try? Yams.dump(object: map, sortKeys: true) else { return bytes }
        return Array(("# paths made absolute by semples\n" + dumped).utf8)
    }

    /// The manifest's string properties by name, including those of the per-job sections
    /// (`weaktr`, `semples` …), whose keys are top-level keys of the file too.
    static func collectStrings(_ value: Any, into out: inout [String: String], depth: Int) {
        guard depth < 4 else { return }
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            var inner: Any = child.value
            let mirror = Mirror(reflecting: inner)
            if mirror.displayStyle == .optional {
                guard let some = mirror.children.first?.value else { continue }
                inner = some
            }
            if let s = inner as? String { out[label] = out[label] ?? s }
            else if Mirror(reflecting: inner).displayStyle == .struct { collectStrings(inner, into: &out, depth: depth + 1) }
        }
    }

    static func camelCase(_ key: String) -> String {
        let parts = key.split(separator: "_")
        guard let first = parts.first else { return key }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }


    /// Validates a file on disk, refusing symbolic links and files over `limit` before reading them.
    /// `name` is how the file is named in messages (default: its base name).
    /// `folder` is where relative paths are taken from (default: the file's own folder).
    public static func validate(path: String, name displayName: String? = nil, folder: String? = nil, limit: Int = 1 << 20) throws -> ManifestSummary {
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
        return try validate(bytes: bytes, name: name, folder: folder ?? directoryName(absolutePath(path, relativeTo: Sys.currentDirectory())), limit: limit)
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

/// The `job:` and `shards:` keys of an accepted manifest, read without validating it again: how
/// the daemon and the status commands learn that a job runs sharded.
public enum ManifestShards {
    /// (job kind, shards) of a manifest's bytes; shards 1 when the key is absent.
    public static func read(_ bytes: [UInt8]) -> (job: String, shards: Int)? {
        guard let text = String(validating: bytes, as: UTF8.self),
              let map = (try? Yams.load(yaml: text)) as? [String: Any], let job = map["job"] as? String else { return nil }
        return (job, map["shards"] as? Int ?? 1)
    }

    /// `shards:` of a `cam` or `pipeline` manifest; nil for other jobs.
    public static func count(_ bytes: [UInt8]) -> Int? {
        guard let (job, shards) = read(bytes), job == "cam" || job == "pipeline" else { return nil }
        return shards
    }
}
