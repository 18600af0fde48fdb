import Foundation
import Glibc

/// The spool daemon: one thread, one loop waiting on poll(2) for signals (via a pipe) and inotify.
/// See `SpoolLayout` for the on-disk protocol.
public final class Daemon {
    public internal(set) var config: SpoolConfig
    let layout: SpoolLayout
    let store: JobStore
    let log: Logger
    let notifier = ServiceNotifier()
    /// The host id in tickets, leases and the journal (`host_id`, default the host name).
    let host: String
    let pid = getpid()
    let startTicks: UInt64
    let startedAt = Sys.now()
    /// A test-only crash point (SEMPLESD_CRASH_AT): the daemon SIGKILLs itself when it reaches that step.
    let crashStep = Sys.environment("SEMPLESD_CRASH_AT")

    var watcher: InotifyWatcher?
    var mode: WatchMode = .inotify
    var filesystem: String?

    /// A file in incoming/ being watched until it is complete.
    struct Candidate {
        var size: Int64, modified: Double, inode: UInt64
        var since: Double       // when it was last seen to change
        var movedIn: Bool       // renamed in: complete by the writer's promise
    }
    var candidates: [String: Candidate] = [:]
    var ignoredFolders: Set<String> = []
    var fullScanDue = true
    var controlDue = true
    var intakeBacklog = false
    var nextRescan = 0.0
    var nextHeartbeat = 0.0
    var nextWatchdog = 0.0
    var nextRecovery = 0.0

    /// A job this daemon runs.
    final class Active {
        let id: String
        let pid: pid_t
        let ticket: String
        let logName: String
        let attempt: Int
        var cancelling = false
        var stopRequested = false
        var killAt: Double?
        /// The Slurm job of this attempt (executor: slurm; pid is then 0), and its last state seen.
        var slurmJob: String?
        var slurmState: String?
        /// The shard array of a sharded `cam` job; slurmJob is then its merge job.
        var slurmArray: String?
        var isSlurm: Bool { pid == 0 }
        init(id: String, pid: pid_t, ticket: String, logName: String, attempt: Int) {
            self.id = id; self.pid = pid; self.ticket = ticket; self.logName = logName; self.attempt = attempt
        }
    }
    var active: [String: Active] = [:]
    var slurmClient: SlurmClient?
    var nextSlurmPoll = 0.0
    var activeByPID: [pid_t: String] = [:]
    /// Retry times of queued tickets, so the queue is not re-read for jobs that must wait.
    var notBefore: [String: Double] = [:]
    var stopping = false
    var stopDeadline = 0.0
    var diskHold: String?
    var lastResult: String?
    var lastStatusLine = ""
    var statusDirty = true

    public init(config: SpoolConfig) {
        self.config = config
        layout = SpoolLayout(root: config.spool)
        store = JobStore(layout: layout)
        log = Logger(level: config.logLevel)
        host = config.hostID ?? Sys.hostName()
        startTicks = Sys.processStartTime(getpid()) ?? 0
    }

    var ownerTag: String { "\(host)@\(pid)@\(startTicks)" }
    var statusFile: String { layout.daemons + "/" + ownerTag + ".json" }

    func crashPoint(_ step: String) {
        if crashStep == step { log.warning("test crash point '\(step)' reached, killing myself"); kill(getpid(), SIGKILL) }
    }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    public func run() -> Int32 {
        do { try layout.create() } catch {
            log.error("cannot create the spool folders under '\(layout.root)': \(error)")
            return 1
        }
        SignalPipe.install([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
        do { try chooseWatchMode() } catch {
            log.error("cannot watch '\(layout.incoming)': \(error)")
            return 1
        }
        if config.executor == .slurm {
            do { slurmClient = try SlurmClient(settings: config.slurm) } catch {
                log.error("executor 'slurm': \(error)")
                return 1
            }
        }
        // The heartbeat file first: other hosts judge this daemon's claims and tickets by it.
        heartbeat(force: true)
        recoverStale(startup: true)
        log.notice("watching '\(layout.incoming)' (\(mode.rawValue)\(filesystem.map { " on \($0)" } ?? "")) as host '\(host)', executor \(config.executor.rawValue), \(config.concurrentJobs) job(s) at a time, job command \(config.resolvedJobCommand().map { "'\($0)'" }.joined(separator: " "))")
        tick()
        notifier.send("READY=1\nSTATUS=\(statusLine())\nMAINPID=\(pid)")
        while true {
            var fds = [SignalPipe.readFD]
            if let w = watcher { fds.append(w.fd) }
            _ = Sys.waitReadable(fds, timeout: nextWakeup())
            for signal in SignalPipe.drain() {
                switch signal {
                case SIGTERM, SIGINT: beginStop(signal)
                case SIGHUP: reload()
                default: break
                }
            }
            reap()
            if let w = watcher {
                let events = w.drain()
                if events.overflow {
                    log.warning("inotify queue overflowed, rescanning '\(layout.incoming)'")
                    fullScanDue = true
                }
                if events.control { controlDue = true }
                let now = Sys.now()
                for name in events.movedIn { observe(name, movedIn: true, now: now) }
                for name in events.changed { observe(name, movedIn: false, now: now) }
            }
            if stopping {
                if active.isEmpty { break }
                enforceDeadlines()
                heartbeat(force: false)
                continue
            }
            tick()
        }
        log.notice("stopped; \(countTickets(layout.queue)) job(s) queued for the next start")
        Sys.remove(statusFile)
        return 0
    }

    /// One round of work: control requests, cancels, intake, starts, deadlines, status.
    func tick() {
        let now = Sys.now()
        checkDisk()
        if controlDue || mode == .poll && now >= nextRescan { controlDue = false; processControl() }
        processCancels()
        if now >= nextRecovery { recoverStale(startup: false); nextRecovery = now + min(max(config.rescanInterval, 5), config.heartbeat) }
        if fullScanDue || now >= nextRescan {
            fullScanDue = false
            scanIncoming()
            nextRescan = now + (mode == .poll ? config.pollInterval : config.rescanInterval)
        }
        intake(now: Sys.now())
        startJobs(now: Sys.now())
        if slurmClient != nil && Sys.now() >= nextSlurmPoll {
            pollSlurm()
            nextSlurmPoll = Sys.now() + config.slurm.pollInterval
        }
        enforceDeadlines()
        heartbeat(force: false)
    }

    func nextWakeup() -> Double {
        let now = Sys.now()
        if stopping { return 0.1 }
        if intakeBacklog || controlDue || fullScanDue { return 0 }
        var wake = min(nextRescan, nextHeartbeat, nextRecovery)
        if notifier.watchdogInterval != nil { wake = min(wake, nextWatchdog) }
        for c in candidates.values where !c.movedIn {
            wake = min(wake, c.since + config.settle, max(c.modified + config.settle, now + 0.01))
        }
        if active.count < config.concurrentJobs && diskHold == nil {
            for t in notBefore.values { wake = min(wake, t) }
        }
        for job in active.values { if let k = job.killAt { wake = min(wake, k) } }
        if active.values.contains(where: { $0.isSlurm }) { wake = min(wake, nextSlurmPoll) }
        return max(0, min(wake - now, 60))
    }

    func chooseWatchMode() throws {
        filesystem = Sys.filesystemType(layout.incoming)
        switch config.watch {
        case .poll: mode = .poll
        case .inotify: mode = .inotify
        case .auto: mode = isNetworkFilesystem(filesystem) ? .poll : .inotify
        }
        watcher = nil
        if mode == .inotify { watcher = try InotifyWatcher(incoming: layout.incoming, control: layout.control) }
        fullScanDue = true
        controlDue = true
    }

    // MARK: signals

    func beginStop(_ signal: Int32) {
        guard !stopping else { return }
        stopping = true
        stopDeadline = Sys.now() + config.stopTimeout
        log.notice("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): no new work; asking \(active.count) running job(s) to stop at a safe point")
        let inSlurm = active.values.filter { $0.isSlurm }
        if !inSlurm.isEmpty {
            // Slurm keeps running them; the next start re-attaches by the ids in their records.
            for job in inSlurm { active[job.id] = nil }
            log.notice("\(inSlurm.count) job(s) stay in Slurm; the next start re-attaches to them")
        }
        notifier.send("STOPPING=1\nSTATUS=stopping: \(active.count) job(s) finishing their checkpoint")
        for job in active.values {
            job.stopRequested = true
            Sys.signalGroup(job.pid, SIGTERM)
            job.killAt = min(job.killAt ?? .infinity, stopDeadline)
        }
        statusDirty = true
        heartbeat(force: true)
    }

    func reload() {
        guard let path = config.sourcePath else {
            log.warning("SIGHUP: the configuration did not come from a file, nothing to reload")
            return
        }
        notifier.send("RELOADING=1")
        defer { notifier.send("READY=1\nSTATUS=\(statusLine())") }
        var fresh: SpoolConfig
        do { fresh = try SpoolConfig.load(path: path) } catch {
            log.error("reload refused, keeping the old configuration: \(error)")
            return
        }
        if fresh.spool != config.spool {
            log.error("reload refused, keeping the old configuration: config '\(path)': key 'spool' changed from '\(config.spool)' to '\(fresh.spool)'; restart the daemon to move the spool")
            return
        }
        if fresh.hostID == nil { fresh.hostID = config.hostID }   // --host-id outlives a reload
        if (fresh.hostID ?? Sys.hostName()) != host || fresh.executor != config.executor {
            log.error("reload refused, keeping the old configuration: config '\(path)': 'host_id' or 'executor' changed; restart the daemon to change them")
            return
        }
        let watchChanged = fresh.watch != config.watch
        config = fresh
        log.level = fresh.logLevel
        if watchChanged {
            do { try chooseWatchMode() } catch { log.error("cannot watch '\(layout.incoming)': \(error); polling"); mode = .poll; watcher = nil }
        }
        fullScanDue = true
        controlDue = true
        diskHold = nil
        statusDirty = true
        log.notice("configuration reloaded from '\(path)'")
    }

    // MARK: disk and status

    func checkDisk() {
        let floor = config.minFreeDiskMB
        var hold: String?
        if floor > 0, let free = Sys.freeBytes(layout.root) {
            let mb = Double(free) / 1_048_576
            if mb < floor {
                hold = "disk low: \(Int(mb)) MB free on the spool's filesystem, below the floor of \(Int(floor)) MB; intake and new jobs are held"
            }
        }
        if hold != diskHold {
            if let h = hold { log.warning(h) } else if diskHold != nil { log.notice("disk space back above the floor, resuming intake") }
            diskHold = hold
            statusDirty = true
        }
    }

    func countTickets(_ folder: String) -> Int { ((try? Sys.list(folder)) ?? []).filter { !$0.hasPrefix(".") }.count }

    func statusLine() -> String {
        var parts = ["\(countTickets(layout.queue)) queued", "\(active.count) running"]
        let held = countTickets(layout.held)
        if held > 0 { parts.append("\(held) held") }
        var line = parts.joined(separator: ", ")
        if let h = diskHold { line += "; " + h }
        if stopping { line = "stopping; " + line }
        if let last = lastResult { line += "; last: " + last }
        return line
    }

    func heartbeat(force: Bool) {
        let now = Sys.now()
        if notifier.watchdogInterval != nil && now >= nextWatchdog {
            notifier.send("WATCHDOG=1")
            nextWatchdog = now + (notifier.watchdogInterval ?? 30)
        }
        guard force || statusDirty || now >= nextHeartbeat else { return }
        let interval = config.heartbeat
        if force || now >= nextHeartbeat { renewLeases(now: now) }
        statusDirty = false
        nextHeartbeat = now + interval
        let line = statusLine()
        if line != lastStatusLine { notifier.send("STATUS=" + line); lastStatusLine = line }
        let status = DaemonStatus(host: host, pid: pid, start: startTicks, started: startedAt, heartbeat: now,
                                  heartbeatInterval: interval, config: config.sourcePath, spool: layout.root,
                                  watch: mode.rawValue, filesystem: filesystem, hold: diskHold,
                                  running: active.keys.sorted(), concurrentJobs: config.concurrentJobs,
                                  status: line, stopping: stopping, lastResult: lastResult)
        if let data = try? JobStore.encoder.encode(status) {
            do { try Sys.writeAtomically([UInt8](data), to: statusFile, mode: 0o644, sync: false) } catch {
                log.warning("cannot write '\(statusFile)': \(error), retrying")
            }
        }
    }

    func journal(_ id: String, _ state: String, _ reason: String?, attempt: Int? = nil, sync: Bool = true) {
        store.appendJournal(JournalEntry(time: Sys.now(), id: id, state: state, reason: reason, host: host, pid: pid, attempt: attempt), sync: sync)
        statusDirty = true
    }
}
