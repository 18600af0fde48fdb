import Yams

/// A configuration the daemon refuses: the file, the key and what is wrong with it.
public struct ConfigError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "config '\(path)': \(detail)" }
}

/// How the daemon learns about new files in `incoming/`.
public enum WatchMode: String, Codable { case auto, inotify, poll }

/// The daemon's configuration (`semplesd.yaml`). Relative paths are taken from the file's own folder.
public struct SpoolConfig: Equatable {
    /// The spool root (incoming/, outbox/, rejected/, control/, .state/).
    public var spool: String = "spool"
    public var watch: WatchMode = .auto
    /// Seconds between full rescans of incoming/ (inotify mode: a safety net).
    public var rescanInterval: Double = 60
    /// Seconds between scans in poll mode.
    public var pollInterval: Double = 2
    /// A file that did not arrive by rename is taken once unchanged this long.
    public var settle: Double = 2
    /// Jobs run at once.
    public var concurrentJobs: Int = 1
    /// Attempts in all (the first run included) for failures that are not the manifest's fault.
    public var retryMaxAttempts: Int = 3
    /// Wait before the first retry, multiplied by `retryBackoffFactor` each time, at most `retryBackoffMax`.
    public var retryBackoff: Double = 60
    public var retryBackoffFactor: Double = 2
    public var retryBackoffMax: Double = 3600
    /// Threads each job's engine may use, passed as SEMPLES_THREADS (0: not passed, the job uses all cores).
    public var engineThreads: Int = 0
    /// GEMM library of each job's engine, passed as SEMPLES_BLAS ("openblas" or "onednn"; nil: not
    /// passed, the job uses OpenBLAS unless the daemon's own environment says otherwise).
    public var gemmBackend: String?
    /// Below this many free megabytes on the spool's filesystem, intake and job starts are held.
    public var minFreeDiskMB: Double = 1024
    public var logLevel: LogLevel = .info
    /// On stop, how long running jobs get to reach a safe point before SIGKILL.
    public var stopTimeout: Double = 60
    /// On cancel, how long a job gets after SIGTERM before SIGKILL.
    public var cancelGrace: Double = 30
    /// The job command: argv before `MANIFEST --out DIR`. Empty: the `semples` binary next to the
    /// daemon, then `run --log-file -`.
    public var jobCommand: [String] = []
    /// Largest manifest accepted, in bytes.
    public var maxManifestBytes: Int = 1 << 20
    /// The name this daemon goes by in tickets, leases and the journal (default: the host name).
    /// Daemons sharing a spool need distinct ids; no '@' or '/'.
    public var hostID: String?
    /// Seconds between heartbeats. A running job's lease lasts three heartbeats: a daemon silent
    /// for longer is presumed gone and its jobs are taken over by a daemon on another host.
    public var heartbeat: Double = 5
    /// Where jobs run: child processes of the daemon, or Slurm batch jobs.
    public var executor: Executor = .local
    /// Slurm settings (executor: slurm): commands and default resources.
    public var slurm = SlurmSettings()

    /// The file this configuration came from, if any.
    public var sourcePath: String?

    public init() {}

    public static let keys: [String] = [
        "spool", "watch", "rescan_interval_s", "poll_interval_s", "settle_s", "concurrent_jobs", "retry",
        "engine_threads", "gemm_backend", "min_free_disk_mb", "log_level", "stop_timeout_s", "cancel_grace_s",
        "job_command", "max_manifest_bytes", "host_id", "heartbeat_s", "executor", "slurm",
    ]
    static let retryKeys = ["max_attempts", "backoff_s", "backoff_factor", "backoff_max_s"]

    /// Reads and checks a configuration file; every problem names the key.
    public static func load(path: String) throws -> SpoolConfig {
        let text: String
        do { text = try Sys.readString(path, limit: 1 << 20) } catch { throw ConfigError(path: path, detail: "\(error)") }
        let folder = directoryName(absolutePath(path, relativeTo: Sys.currentDirectory()))
        var config = try parse(text, path: path, folder: folder)
        config.sourcePath = absolutePath(path, relativeTo: Sys.currentDirectory())
        return config
    }

    /// Parses YAML text; relative paths are resolved against `folder`.
    public static func parse(_ text: String, path: String, folder: String) throws -> SpoolConfig {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch { throw ConfigError(path: path, detail: "not valid YAML: \(error)") }
        guard let map = node as? [String: Any] else {
            throw ConfigError(path: path, detail: "expected a mapping of keys (spool, watch, …) at the top level")
        }
        var c = SpoolConfig()
        for key in map.keys.sorted() where !keys.contains(key) {
            throw ConfigError(path: path, detail: "unknown key '\(key)' (known: \(keys.joined(separator: ", ")))")
        }
        func number(_ key: String, _ value: Any, min: Double, max: Double = .infinity) throws -> Double {
            let v: Double
            if let i = value as? Int { v = Double(i) } else if let d = value as? Double { v = d } else {
                throw ConfigError(path: path, detail: "key '\(key)': expected a number, found '\(value)'")
            }
            guard v >= min && v <= max else {
                throw ConfigError(path: path, detail: "key '\(key)': \(v) is out of range [\(min), \(max)]")
            }
            return v
        }
        func integer(_ key: String, _ value: Any, min: Int, max: Int = Int.max) throws -> Int {
            guard let v = value as? Int else { throw ConfigError(path: path, detail: "key '\(key)': expected an integer, found '\(value)'") }
            guard v >= min && v <= max else { throw ConfigError(path: path, detail: "key '\(key)': \(v) is out of range [\(min), \(max)]") }
            return v
        }
        func string(_ key: String, _ value: Any) throws -> String {
            guard let v = value as? String, !v.isEmpty else { throw ConfigError(path: path, detail: "key '\(key)': expected a non-empty string, found '\(value)'") }
            return v
        }
        if let v = map["spool"] { c.spool = absolutePath(try string("spool", v), relativeTo: folder) }
        else { c.spool = absolutePath("spool", relativeTo: folder) }
        if let v = map["watch"] {
            guard let m = WatchMode(rawValue: try string("watch", v)) else {
                throw ConfigError(path: path, detail: "key 'watch': expected auto, inotify or poll, found '\(v)'")
            }
            c.watch = m
        }
        if let v = map["rescan_interval_s"] { c.rescanInterval = try number("rescan_interval_s", v, min: 0.05, max: 86400) }
        if let v = map["poll_interval_s"] { c.pollInterval = try number("poll_interval_s", v, min: 0.05, max: 3600) }
        if let v = map["settle_s"] { c.settle = try number("settle_s", v, min: 0, max: 3600) }
        if let v = map["concurrent_jobs"] { c.concurrentJobs = try integer("concurrent_jobs", v, min: 1, max: 1024) }
        if let v = map["engine_threads"] { c.engineThreads = try integer("engine_threads", v, min: 0, max: 4096) }
        if let v = map["gemm_backend"] {
            guard let name = v as? String, ["openblas", "onednn"].contains(name) else {
                throw ConfigError(path: path, detail: "key 'gemm_backend': '\(v)' is not a GEMM backend; expected openblas or onednn")
            }
            c.gemmBackend = name
        }
        if let v = map["min_free_disk_mb"] { c.minFreeDiskMB = try number("min_free_disk_mb", v, min: 0) }
        if let v = map["stop_timeout_s"] { c.stopTimeout = try number("stop_timeout_s", v, min: 0, max: 86400) }
        if let v = map["cancel_grace_s"] { c.cancelGrace = try number("cancel_grace_s", v, min: 0, max: 86400) }
        if let v = map["max_manifest_bytes"] { c.maxManifestBytes = try integer("max_manifest_bytes", v, min: 16, max: 64 << 20) }
        if let v = map["log_level"] {
            guard let l = LogLevel(name: try string("log_level", v)) else {
                throw ConfigError(path: path, detail: "key 'log_level': expected error, warning, notice, info or debug, found '\(v)'")
            }
            c.logLevel = l
        }
        if let v = map["retry"] {
            guard let r = v as? [String: Any] else {
                throw ConfigError(path: path, detail: "key 'retry': expected a mapping with \(retryKeys.joined(separator: ", "))")
            }
            for key in r.keys.sorted() where !retryKeys.contains(key) {
                throw ConfigError(path: path, detail: "unknown key 'retry.\(key)' (known: \(retryKeys.joined(separator: ", ")))")
            }
            if let x = r["max_attempts"] { c.retryMaxAttempts = try integer("retry.max_attempts", x, min: 1, max: 1000) }
            if let x = r["backoff_s"] { c.retryBackoff = try number("retry.backoff_s", x, min: 0) }
            if let x = r["backoff_factor"] { c.retryBackoffFactor = try number("retry.backoff_factor", x, min: 1, max: 100) }
            if let x = r["backoff_max_s"] { c.retryBackoffMax = try number("retry.backoff_max_s", x, min: 0) }
        }
        if let v = map["host_id"] {
            let id = try string("host_id", v)
            if let problem = hostIDProblem(id) { throw ConfigError(path: path, detail: "key 'host_id': \(problem)") }
            c.hostID = id
        }
        if let v = map["heartbeat_s"] { c.heartbeat = try number("heartbeat_s", v, min: 0.1, max: 3600) }
        if let v = map["executor"] {
            guard let e = Executor(rawValue: try string("executor", v)) else {
                throw ConfigError(path: path, detail: "key 'executor': expected local or slurm, found '\(v)'")
            }
            c.executor = e
        }
        if let v = map["slurm"] { c.slurm = try SlurmSettings.parse(v, path: path) }
        if let v = map["job_command"] {
            let parts: [String]
            if let s = v as? String { parts = [s] } else if let a = v as? [Any] {
                parts = try a.map { try string("job_command", $0) }
            } else { throw ConfigError(path: path, detail: "key 'job_command': expected a list of strings, found '\(v)'") }
            guard let first = parts.first else { throw ConfigError(path: path, detail: "key 'job_command': empty list") }
            c.jobCommand = [absolutePath(first, relativeTo: folder)] + parts.dropFirst()
        }
        return c
    }

    /// Sets `hostID` from a command-line option, checked like the config key.
    public mutating func setHostID(_ id: String, from option: String) throws {
        if let problem = Self.hostIDProblem(id) { throw ConfigError(path: option, detail: problem) }
        hostID = id
    }

    /// Why a host id cannot be used in ticket names, or nil when it can.
    static func hostIDProblem(_ id: String) -> String? {
        if id.utf8.count > 64 { return "'\(id)' is longer than 64 bytes" }
        if id.contains("@") || id.contains("/") || id.hasPrefix(".") { return "'\(id)' may not contain '@' or '/' nor start with '.'" }
        return nil
    }

    /// The retry delay after `attempt` failed attempts (1 = after the first).
    public func backoff(afterAttempt attempt: Int) -> Double {
        var delay = retryBackoff
        for _ in 1..<max(1, attempt) { delay *= retryBackoffFactor }
        return min(delay, retryBackoffMax)
    }

    /// The command a job runs: explicit `job_command`, or `semples run` beside this executable.
    public func resolvedJobCommand() -> [String] {
        if !jobCommand.isEmpty { return jobCommand }
        let exe = Sys.executablePath() ?? "/usr/local/bin/semplesd"
        // The daemon captures the job's output into one log per attempt: the job writes no log of its own.
        return [joinPath(directoryName(exe), "semples"), "run", "--log-file", "-"]
    }

    /// Where to find a configuration when none is named: $SEMPLESD_CONFIG, ./etc/semplesd.yaml,
    /// etc/semplesd.yaml in a checkout holding the executable, then /etc/semples/semplesd.yaml.
    public static func defaultPath() -> String? {
        if let env = Sys.environment("SEMPLESD_CONFIG"), !env.isEmpty { return env }
        let here = joinPath(Sys.currentDirectory(), "etc/semplesd.yaml")
        if Sys.exists(here) { return here }
        if let exe = Sys.executablePath() {
            var folder = directoryName(exe)
            while folder != "/" && !folder.isEmpty {
                let candidate = joinPath(folder, "etc/semplesd.yaml")
                if Sys.exists(candidate) && Sys.exists(joinPath(folder, "Package.swift")) { return candidate }
                folder = directoryName(folder)
            }
        }
        let system = "/etc/semples/semplesd.yaml"
        return Sys.exists(system) ? system : nil
    }
}
