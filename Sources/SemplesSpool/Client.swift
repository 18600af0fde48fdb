import Foundation
import Glibc

/// What the CLI could not do, with the exit status it maps to.
public struct ClientError: Error, CustomStringConvertible {
    public let status: Int32
    public let message: String
    public init(_ status: Int32, _ message: String) { self.status = status; self.message = message }
    public var description: String { message }
}

/// The CLI's exit statuses (documented in every spool subcommand's help).
public enum ClientExit {
    public static let ok: Int32 = 0
    public static let refused: Int32 = 1
    public static let invalidManifest: Int32 = 2
    public static let noSuchJob: Int32 = 3
    public static let noSpool: Int32 = 4
    public static let noDaemon: Int32 = 5

    public static let help = """
    Exit status:
      0   done
      1   refused or failed (the job's state does not allow it, or an I/O error)
      2   invalid manifest
      3   no such job
      4   spool not found
      5   no daemon answered (the request stays in control/ for the next start)
      64  bad usage
    """
}

/// Finds the spool: --spool, then $SEMPLES_SPOOL, then the daemon's configuration (--config,
/// $SEMPLESD_CONFIG, ./etc/semplesd.yaml, a checkout's etc/, /etc/semples/semplesd.yaml).
public func locateSpool(spool: String?, config: String?) throws -> SpoolReader {
    var root: String?
    if let s = spool, !s.isEmpty { root = s }
    else if let s = Sys.environment("SEMPLES_SPOOL"), !s.isEmpty { root = s }
    else if let path = config ?? SpoolConfig.defaultPath() {
        do { root = try SpoolConfig.load(path: path).spool } catch {
            throw ClientError(ClientExit.noSpool, "\(error)")
        }
    }
    guard let found = root else {
        throw ClientError(ClientExit.noSpool, "no spool given: use --spool DIR, set SEMPLES_SPOOL, or install /etc/semples/semplesd.yaml")
    }
    let reader = SpoolReader(root: absolutePath(found, relativeTo: Sys.currentDirectory()))
    guard reader.layout.exists else {
        throw ClientError(ClientExit.noSpool, "'\(reader.layout.root)' is not a spool (no incoming/ folder); is the path right, and has the daemon run once?")
    }
    return reader
}

/// One job as the CLI shows it.
public struct JobView: Codable {
    public var id: String
    public var name: String
    public var state: String
    public var reason: String
    public var attempts: Int
    public var outbox: String
    public var submitted: String
    public var started: String?
    public var finished: String?
    public var error: String?
    public var progress: Progress?
    /// The host id of the daemon running or tracking it, and the Slurm job id (executor: slurm).
    public var host: String?
    public var slurmJob: String?
    /// The Slurm job array of a sharded `cam` job's shards.
    public var slurmArray: String?
    /// A sharded job's shards (`shards: N`), each with its own progress.
    public var shards: [ShardProgress]?

    /// One shard of a sharded job: images done of its total, and whether it has finished.
    public struct ShardProgress: Codable, Equatable {
        public var shard: Int
        public var done: Int
        public var total: Int?
        public var finished: Bool
    }

    /// "shards 1/3 finished, 40/61 images".
    public var shardText: String? {
        guard let list = shards, !list.isEmpty else { return nil }
        let done = list.reduce(0) { $0 + $1.done }, total = list.compactMap(\.total).reduce(0, +)
        let finished = list.filter(\.finished).count
        return "shards \(finished)/\(list.count) finished" + (total > 0 ? ", \(done)/\(total) images" : "")
    }

    public struct Progress: Codable {
        public var done: Double?
        public var total: Double?
        public var rate: Double?
        public var etaSeconds: Double?
        public var phase: String?
        enum CodingKeys: String, CodingKey { case done, total, rate, etaSeconds = "eta_s", phase }

        /// "cam 45/100 (45%), 2.1/s, ETA 0:26".
        public var text: String {
            var parts: [String] = []
            var head = phase ?? ""
            if let d = done {
                head += (head.isEmpty ? "" : " ") + (total.map { "\(Int(d))/\(Int($0))" + ($0 > 0 ? " (\(Int(100 * d / $0))%)" : "") } ?? "\(Int(d))")
            }
            if !head.isEmpty { parts.append(head) }
            if let r = rate { parts.append(String(format: "%.2f/s", r)) }
            if let e = etaSeconds, e >= 0, e.isFinite { parts.append("ETA " + duration(e)) }
            return parts.joined(separator: ", ")
        }
    }
}

/// "1:02:03" or "2:03".
public func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    let h = s / 3600, m = (s % 3600) / 60, r = s % 60
    func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return h > 0 ? "\(h):\(two(m)):\(two(r))" : "\(m):\(two(r))"
}

extension SpoolReader {
    public func view(_ record: JobRecord, live: [DaemonStatus], now: Double = Sys.now()) -> JobView {
        var v = JobView(id: record.id, name: record.name, state: record.state.rawValue,
                        reason: reason(for: record, live: live, now: now), attempts: record.attempts,
                        outbox: layout.outbox + "/" + record.outbox, submitted: isoTime(record.submitted),
                        started: record.started.map(isoTime), finished: record.finished.map(isoTime), error: record.error)
        v.host = record.host
        v.slurmJob = record.slurmJob
        v.slurmArray = record.slurmArray
        v.shards = shardProgress(record)
        if record.state == .running, let p = progress(record) {
            func number(_ key: String) -> Double? { (p[key] as? NSNumber)?.doubleValue }
            v.progress = JobView.Progress(done: number("done"), total: number("total"), rate: number("rate"),
                                          etaSeconds: number("eta_s"), phase: p["phase"] as? String)
        }
        return v
    }

    /// Copies a manifest into incoming/ under a dot-name and renames it in, so the daemon never sees
    /// it half-written. Returns the name it has in incoming/.
    public func submit(bytes: [UInt8], name wanted: String) throws -> (name: String, inode: UInt64) {
        let temporary = layout.incoming + "/.submit-\(getpid())-\(UInt32.random(in: 0..<UInt32.max)).tmp"
        do { try Sys.writeAtomically(bytes, to: temporary, mode: 0o664) } catch {
            throw ClientError(ClientExit.refused, "cannot write into '\(layout.incoming)': \(error)")
        }
        let inode = Sys.info(temporary)?.inode ?? 0
        var candidate = wanted
        var n = 2
        while true {
            do {
                if try Sys.renameNoReplace(temporary, layout.incoming + "/" + candidate) { return (candidate, inode) }
            } catch {
                Sys.remove(temporary)
                throw ClientError(ClientExit.refused, "cannot move the manifest into '\(layout.incoming)': \(error)")
            }
            let ext = manifestExtensions.first { wanted.lowercased().hasSuffix($0) } ?? ""
            candidate = String(wanted.dropLast(ext.count)) + "-\(n)" + ext
            n += 1
        }
    }

    /// The job accepted from a submitted file, or the rejection, once the daemon has looked at it.
    public func findSubmitted(name: String, bytes: [UInt8], inode: UInt64, since: Double) -> Result<JobRecord, ClientError>? {
        let print = fingerprint(bytes)
        for id in store.allIDs().reversed() {
            guard let r = store.load(id) else { continue }
            if r.submitted < since - 60 { break }   // IDs sort by time; allow for clock skew between hosts
            if r.name == name && r.fingerprint == print && r.inode == inode { return .success(r) }
        }
        // Rejected: the file (same inode) is in rejected/, its reason beside it.
        if Sys.info(layout.incoming + "/" + name)?.inode != inode {
            for file in ((try? Sys.list(layout.rejected)) ?? []) where !file.hasSuffix(".error.txt") {
                guard Sys.info(layout.rejected + "/" + file)?.inode == inode,
                      let text = try? Sys.readString(layout.rejected + "/" + stem(file) + ".error.txt", limit: 1 << 20) else { continue }
                return .failure(ClientError(ClientExit.invalidManifest, text.trimmingCharacters(in: .whitespacesAndNewlines)))
            }
        }
        return nil
    }

    /// The log files of a job, oldest attempt first.
    public func logs(_ record: JobRecord) -> [String] {
        let outbox = layout.outbox + "/" + record.outbox
        let names = ((try? Sys.list(outbox)) ?? []).filter { $0 == "log.txt" || ($0.hasPrefix("log-") && $0.hasSuffix(".txt")) }
        func attempt(_ n: String) -> Int { n == "log.txt" ? 1 : Int(n.dropFirst(4).dropLast(4)) ?? 0 }
        return names.sorted { attempt($0) < attempt($1) }.map { outbox + "/" + $0 }
    }

    /// Resolves what the user typed to a record, or throws exit status 3.
    public func record(_ query: String) throws -> JobRecord {
        switch store.resolve(query) {
        case .success(let id):
            guard let r = store.load(id) else { throw ClientError(ClientExit.noSuchJob, "job \(id): record unreadable") }
            return r
        case .failure(let e): throw ClientError(ClientExit.noSuchJob, "\(e)")
        }
    }
}
