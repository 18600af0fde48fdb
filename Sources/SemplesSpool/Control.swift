import Foundation
import Glibc

/// A request from the CLI to the daemon, dropped as `control/REQ.json` (written under a dot-name
/// and renamed, like a manifest). The daemon answers in `control/.reply-REQ.json`.
public struct ControlRequest: Codable {
    public var op: String      // cancel | hold | release | retry
    public var job: String     // an ID, ID prefix or job name
    public var user: String?
    public var time: Double
    public init(op: String, job: String, user: String?, time: Double) { self.op = op; self.job = job; self.user = user; self.time = time }
}

public struct ControlReply: Codable {
    public var ok: Bool
    public var id: String?
    public var state: String?
    public var message: String
    public init(ok: Bool, id: String?, state: String?, message: String) { self.ok = ok; self.id = id; self.state = state; self.message = message }
}

/// What a running daemon publishes about itself in `.state/daemons/HOST@PID@START.json`.
public struct DaemonStatus: Codable {
    public var host: String
    public var pid: Int32
    public var start: UInt64
    public var started: Double
    public var heartbeat: Double
    /// Seconds between heartbeats; a daemon on another host is presumed gone after three missed.
    public var heartbeatInterval: Double
    public var config: String?
    public var spool: String
    public var watch: String
    public var filesystem: String?
    /// Why intake and job starts are held (disk low), if they are.
    public var hold: String?
    public var running: [String]
    public var concurrentJobs: Int
    public var status: String
    public var stopping: Bool
    public var lastResult: String?

    /// Whether this daemon is still alive, seen from this host.
    public func alive(now: Double = Sys.now(), host localHost: String = Sys.hostName()) -> Bool {
        if host == localHost { return Sys.processStartTime(pid) == start }
        return now - heartbeat < 3 * heartbeatInterval + 5
    }
}

/// The reading side of the spool for the CLI: works whether or not a daemon runs.
public struct SpoolReader {
    public let layout: SpoolLayout
    public let store: JobStore
    public init(root: String) { layout = SpoolLayout(root: root); store = JobStore(layout: layout) }

    /// Every daemon status file, alive or not.
    public func daemons() -> [(file: String, status: DaemonStatus)] {
        ((try? Sys.list(layout.daemons)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.compactMap { file in
            guard let bytes = try? Sys.read(layout.daemons + "/" + file, limit: 1 << 20),
                  let s = try? JSONDecoder().decode(DaemonStatus.self, from: Data(bytes)) else { return nil }
            return (file, s)
        }
    }

    public func liveDaemons() -> [DaemonStatus] { daemons().map { $0.status }.filter { $0.alive() } }

    /// The progress a running job reports in its outbox (progress.json), if any.
    public func progress(_ record: JobRecord) -> [String: Any]? {
        let path = layout.outbox + "/" + record.outbox + "/progress.json"
        guard let bytes = try? Sys.read(path, limit: 1 << 20),
              let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        return object
    }

    /// The shards of a sharded job (`shards: N`): `shards/K.progress.json` and `shards/K.json` (done)
    /// in its outbox, or in `cam/` for a pipeline's CAM step; nil for a job without shards.
    public func shardProgress(_ record: JobRecord) -> [JobView.ShardProgress]? {
        let outbox = layout.outbox + "/" + record.outbox
        guard let count = shardCount(record) else { return nil }
        let folder = (Sys.info(outbox + "/cam/shards")?.isDirectory == true ? outbox + "/cam" : outbox) + "/shards"
        func object(_ path: String) -> [String: Any]? {
            guard let bytes = try? Sys.read(path, limit: 1 << 20) else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
        }
        return (0..<count).map { k in
            let progress = object(folder + "/\(k).progress.json")
            let record = object(folder + "/\(k).json")
            let total = (record?["images"] as? NSNumber)?.intValue ?? (progress?["total"] as? NSNumber)?.intValue
            let done = record != nil ? (total ?? 0) : (progress?["done"] as? NSNumber)?.intValue ?? 0
            return JobView.ShardProgress(shard: k, done: done, total: total, finished: record != nil)
        }
    }

    /// `shards:` of a job's manifest when above 1.
    func shardCount(_ record: JobRecord) -> Int? {
        guard let bytes = try? Sys.read(layout.state + "/" + record.manifest, limit: 1 << 20),
              let n = ManifestShards.count(bytes), n > 1 else { return nil }
        return n
    }

    /// Why a non-terminal job is where it is, in words.
    public func reason(for record: JobRecord, live: [DaemonStatus], now: Double = Sys.now()) -> String {
        switch record.state {
        case .held: return record.reason ?? "held by user; 'semples release \(record.id)' to let it run"
        case .retrying:
            if let t = record.notBefore, t > now { return (record.reason.map { $0 + "; " } ?? "") + "retry at \(clockTime(t))" }
            fallthrough
        case .queued:
            if live.isEmpty { return "the daemon is not running; the job starts when it does" }
            if let hold = live.compactMap({ $0.hold }).first { return hold }
            if live.allSatisfy({ $0.stopping }) { return "the daemon is stopping" }
            let busy = live.reduce(0) { $0 + $1.running.count }
            let slots = live.reduce(0) { $0 + $1.concurrentJobs }
            if busy >= slots { return "waiting for a free slot (\(busy) of \(slots) running)" + (record.reason.map { "; " + $0 } ?? "") }
            return record.reason ?? "next in line"
        case .running:
            if let s = record.slurmJob { return record.reason.flatMap { $0.hasPrefix("Slurm job") ? $0 : nil } ?? "Slurm job \(s)" }
            return record.host.map { "running on \($0)" } ?? "running"
        default: return record.reason ?? record.state.rawValue
        }
    }

    /// Sends a control request and waits up to `timeout` seconds for the reply.
    /// Returns nil when no daemon answered (the request stays and is applied when one starts).
    public func request(_ request: ControlRequest, timeout: Double) throws -> ControlReply? {
        let token = "\(Int(request.time * 1000))-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        let data = try JSONEncoder().encode(request)
        let temporary = layout.control + "/.req-" + token + ".tmp"
        try Sys.writeAtomically([UInt8](data), to: temporary, mode: 0o664)
        try Sys.rename(temporary, layout.control + "/" + token + ".json")
        let replyPath = layout.control + "/.reply-" + token + ".json"
        let deadline = Sys.monotonic() + timeout
        while Sys.monotonic() < deadline {
            if let bytes = try? Sys.read(replyPath, limit: 1 << 20),
               let reply = try? JSONDecoder().decode(ControlReply.self, from: Data(bytes)) {
                Sys.remove(replyPath)
                return reply
            }
            Sys.sleep(0.05)
        }
        return nil
    }
}

/// Seconds since the epoch as an ISO 8601 UTC string.
public func isoTime(_ t: Double) -> String {
    var tt = time_t(t)
    var parts = tm()
    gmtime_r(&tt, &parts)
    func pad(_ v: Int32, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
}
