import Foundation
import Glibc

/// The spool's folders. Users see incoming/, outbox/, rejected/ and control/; `.state/` is the daemon's.
///
/// Protocol (every step is one rename or one atomically written file, so a crash between any two
/// steps leaves each job exactly once):
///  1. A complete file `incoming/NAME` is claimed by renaming it to
///     `.state/claimed/ID@HOST@PID@START@NAME` (the owner follows the ID, which was reserved by
///     creating `.state/ids/ID` exclusively); of two daemons racing for the file, one rename
///     succeeds and the other sees ENOENT.
///  2. The claimed manifest is validated. Invalid: `rejected/NAME.error.txt` is written, then the
///     file is renamed to `rejected/NAME`. Valid: the outbox folder and its manifest copy, the
///     manifest the job runs (`.state/manifests/ID.EXT`), the record `.state/jobs/ID.json` and the
///     ticket `.state/queue/ID` are written, each atomically (temporary name, rename); then one
///     syncfs makes the whole batch durable, and only then are the claimed files removed. A daemon
///     starting up finishes whatever claimed files it finds from the step they reached.
///  3. The ticket's folder says who may act on the job: `queue/ID` (waiting or waiting to retry),
///     `held/ID`, `running/ID@HOST@PID@START` (owned by that daemon). Moving a ticket is a rename,
///     so two daemons never start, cancel or hold the same job at once; the mover then rewrites
///     the record. A running ticket whose daemon is gone is requeued by the next daemon on that host.
///  4. Finishing: `result.json` in the outbox (atomic), then the terminal record, then the ticket
///     is deleted. Every transition is appended to `.state/journal.jsonl`.
public struct SpoolLayout {
    public let root: String
    public init(root: String) { self.root = root }

    public var incoming: String { root + "/incoming" }
    public var outbox: String { root + "/outbox" }
    public var rejected: String { root + "/rejected" }
    public var control: String { root + "/control" }
    public var state: String { root + "/.state" }
    public var claimed: String { state + "/claimed" }
    public var queue: String { state + "/queue" }
    public var running: String { state + "/running" }
    public var held: String { state + "/held" }
    public var jobs: String { state + "/jobs" }
    public var manifests: String { state + "/manifests" }
    public var cancels: String { state + "/cancel" }
    public var daemons: String { state + "/daemons" }
    /// One empty file per job ID ever issued: the reservation that keeps IDs unique.
    public var ids: String { state + "/ids" }
    public var journal: String { state + "/journal.jsonl" }

    public func record(_ id: String) -> String { jobs + "/" + id + ".json" }

    /// Creates every folder (the daemon's start-up; the CLI never creates a spool).
    public func create() throws {
        for folder in [incoming, outbox, rejected, control] { try Sys.makeDirectories(folder, mode: 0o775) }
        for folder in [claimed, queue, running, held, jobs, manifests, cancels, daemons, ids] {
            try Sys.makeDirectories(folder, mode: 0o755)
        }
    }

    /// True when `root` looks like a spool.
    public var exists: Bool { Sys.info(incoming)?.isDirectory == true }
}

/// Where a job is in its life.
public enum JobState: String, Codable, CaseIterable {
    case queued, running, held, retrying, succeeded, failed, cancelled
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// The persisted state of one job, `.state/jobs/ID.json`.
public struct JobRecord: Codable, Equatable {
    public var id: String
    /// The file name as submitted ("cam voc.yaml").
    public var name: String
    /// The outbox folder name (NAME-ID) under outbox/.
    public var outbox: String
    /// The manifest the job runs, relative to .state/.
    public var manifest: String
    public var state: JobState
    /// Why a job waits, or why it ended as it did.
    public var reason: String?
    public var attempts: Int = 0
    /// Attempts that count against the retry limit start after this one (a manual retry resets it).
    public var retryBase: Int = 0
    public var submitted: Double
    public var updated: Double
    public var started: Double?
    public var finished: Double?
    /// Retry not before this time.
    public var notBefore: Double?
    public var host: String?
    public var pid: Int32?
    public var pidStart: UInt64?
    public var exitCode: Int32?
    public var signal: Int32?
    public var error: String?
    /// FNV-1a of the manifest bytes, so `submit` can find its job.
    public var fingerprint: String?
    public var size: Int?
    /// The inode the file had in incoming/ (a rename keeps it), so `submit` can find its job.
    public var inode: UInt64?
    /// The Slurm job id of the current or last attempt (executor: slurm); for a sharded `cam` job,
    /// its merge job, which runs once every task of the shard array `slurmArray` succeeded.
    public var slurmJob: String?
    public var slurmArray: String?

    public init(id: String, name: String, outbox: String, manifest: String, state: JobState, submitted: Double) {
        self.id = id; self.name = name; self.outbox = outbox; self.manifest = manifest
        self.state = state; self.submitted = submitted; self.updated = submitted
    }
}

/// One line of the journal.
public struct JournalEntry: Codable {
    public var time: Double
    public var id: String
    public var state: String
    public var reason: String?
    public var host: String?
    public var pid: Int32?
    public var attempt: Int?
    /// The Slurm job id, on entries about a Slurm attempt.
    public var slurmJob: String? = nil
}

/// Reads and writes records, tickets and the journal.
public struct JobStore {
    public let layout: SpoolLayout
    public init(layout: SpoolLayout) { self.layout = layout }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e
    }()

    public func load(_ id: String) -> JobRecord? {
        guard let bytes = try? Sys.read(layout.record(id), limit: 1 << 20) else { return nil }
        return try? JSONDecoder().decode(JobRecord.self, from: Data(bytes))
    }

    /// Persists a record atomically (fsync file, rename, fsync folder).
    public func save(_ record: JobRecord, sync: Bool = true) throws {
        var r = record
        r.updated = Sys.now()
        let data = try Self.encoder.encode(r)
        try Sys.writeAtomically([UInt8](data), to: layout.record(record.id), mode: 0o644, sync: sync)
    }

    public func allIDs() -> [String] {
        ((try? Sys.list(layout.jobs)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            .map { String($0.dropLast(5)) }.sorted()
    }

    public func all() -> [JobRecord] { allIDs().compactMap { load($0) } }

    public func appendJournal(_ entry: JournalEntry, sync: Bool = true) {
        guard let data = try? Self.encoder.encode(entry) else { return }
        try? Sys.appendLine(String(decoding: data, as: UTF8.self), to: layout.journal, sync: sync)
    }

    public func journal(for id: String) -> [JournalEntry] {
        guard let text = try? Sys.readString(layout.journal, limit: 512 << 20) else { return [] }
        let needle = "\"id\":\"\(id)\""
        return text.split(separator: "\n").filter { $0.contains(needle) }
            .compactMap { try? JSONDecoder().decode(JournalEntry.self, from: Data($0.utf8)) }
    }

    /// Where a job's ticket is now.
    public enum Ticket: Equatable {
        case queued, held
        /// Running under the daemon HOST@PID@START (the ticket's file name after the ID).
        case running(file: String, host: String, pid: Int32, start: UInt64)
        case none
    }

    public func ticket(_ id: String) -> Ticket {
        if Sys.exists(layout.queue + "/" + id) { return .queued }
        if Sys.exists(layout.held + "/" + id) { return .held }
        for file in (try? Sys.list(layout.running)) ?? [] where file.hasPrefix(id + "@") {
            if let owner = RunningTicket(file: file) { return .running(file: file, host: owner.host, pid: owner.pid, start: owner.start) }
        }
        return .none
    }

    /// Resolves what a user typed: an exact ID, a unique ID prefix, or a unique submitted name.
    public func resolve(_ query: String) -> Result<String, ResolveError> {
        let ids = allIDs()
        if ids.contains(query) { return .success(query) }
        let prefixed = ids.filter { $0.hasPrefix(query) }
        if prefixed.count == 1 { return .success(prefixed[0]) }
        if prefixed.count > 1 { return .failure(.ambiguous(query, prefixed)) }
        let named = all().filter { $0.name == query || $0.outbox == query || stem($0.name) == query }
        if named.count == 1 { return .success(named[0].id) }
        if named.count > 1 { return .failure(.ambiguous(query, named.map { $0.id })) }
        return .failure(.notFound(query))
    }
}

public enum ResolveError: Error, CustomStringConvertible {
    case notFound(String), ambiguous(String, [String])
    public var description: String {
        switch self {
        case .notFound(let q): return "no job matches '\(q)'"
        case .ambiguous(let q, let ids): return "'\(q)' matches several jobs: \(ids.prefix(8).joined(separator: ", "))"
        }
    }
}

/// The owner encoded in a running ticket's name: ID@HOST@PID@START.
public struct RunningTicket {
    public var id: String, host: String, pid: Int32, start: UInt64
    public init?(file: String) {
        let parts = file.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 4, let pid = Int32(parts[2]), let start = UInt64(parts[3]) else { return nil }
        id = String(parts[0]); host = String(parts[1]); self.pid = pid; self.start = start
    }
    public static func name(id: String, host: String, pid: Int32, start: UInt64) -> String { "\(id)@\(host)@\(pid)@\(start)" }
}

/// "cam voc.yaml" → "cam voc".
public func stem(_ name: String) -> String {
    for ext in [".yaml", ".yml", ".json"] where name.lowercased().hasSuffix(ext) { return String(name.dropLast(ext.count)) }
    return name
}

/// 64-bit FNV-1a of bytes, hex.
public func fingerprint(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
    return String(h, radix: 16)
}

/// A new job ID: UTC date and time, then 24 bits (the millisecond in the top 10, 14 random bits),
/// e.g. 261126-130102-3fa9c2. IDs sort in submission order, which is the queue's order.
public func newJobID(now: Double = Sys.now()) -> String {
    var t = time_t(now)
    var parts = tm()
    gmtime_r(&t, &parts)
    let millisecond = UInt32(max(0, min(999, (now - Double(Int(now))) * 1000)))
    let r = millisecond << 14 | UInt32.random(in: 0..<(1 << 14))
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    let hex = String(r, radix: 16)
    return two((parts.tm_year + 1900) % 100) + two(parts.tm_mon + 1) + two(parts.tm_mday) + "-"
        + two(parts.tm_hour) + two(parts.tm_min) + two(parts.tm_sec) + "-"
        + String(repeating: "0", count: 6 - hex.count) + hex
}

/// Local wall-clock time as HH:MM:SS.
public func clockTime(_ t: Double) -> String {
    var tt = time_t(t)
    var parts = tm()
    localtime_r(&tt, &parts)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec)
}
