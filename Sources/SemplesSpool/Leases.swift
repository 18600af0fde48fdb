import Foundation
import Glibc

// Leases: several daemons, on several hosts, on one spool.
//
// A running ticket `running/ID@HOST@PID@START` is the job's lease. Its owner renews it at every
// heartbeat by setting the ticket's modification time to its own clock; the lease lasts three
// heartbeats (`3 × heartbeat_s`). A daemon on another host takes a job over when both the ticket
// and the owner's status file (`.state/daemons/HOST@PID@START.json`) are older than that: it
// renames the ticket to its own name (one rename, so exactly one daemon wins) and requeues the
// job, which continues from its checkpoint wherever it starts next.
//
// The owner, or its job, coming back after a pause (SIGSTOP, a hung NFS mount) must not go on:
//  - the job gets its ticket's path in SEMPLES_LEASE (and the lease in SEMPLES_LEASE_S) and checks
//    it right before every file it publishes (the rename of each atomic write: checkpoints, CAMs,
//    result.json) and on a watcher thread (`LeaseGuard`): a ticket that is gone or older than two
//    heartbeats means stop at once, without writing, exit 75. The job gives up one heartbeat
//    before another host may take over, so a write that passed its check has a heartbeat's time
//    to land before anyone else can start the job; the check reads the clock after the ticket, so
//    a pause anywhere before it makes it fail rather than pass on a stale time;
//  - the daemon renews its tickets at each heartbeat: one that is gone was taken over, so it kills
//    the job's process group and forgets the job without recording anything; it checks the lease
//    again before it records an attempt's end (result.json, the record, the ticket).
// Clocks must agree across hosts to well under a heartbeat (NTP).

/// Exit status of a job that found its lease lost or expired and stopped without writing.
public let leaseLostExitStatus: Int32 = 75

/// The job side of a lease: `semples run` checks it when SEMPLES_LEASE is set.
public enum LeaseGuard {
    /// Whether the lease at `path` (a running ticket) still exists and was renewed within `duration` seconds.
    public static func holds(path: String, duration: Double, now: Double = Sys.now()) -> Bool {
        guard let info = Sys.info(path) else { return false }
        return now - info.modified < duration
    }

    /// How long a job trusts its lease without renewal: two of the lease's three heartbeats, one
    /// heartbeat before another host may take the job over.
    public static func jobValidity(lease duration: Double) -> Double { duration * 2 / 3 }

    /// The job-side check: the environment's lease still held with the job's margin (true when
    /// there is no lease: not run by a daemon on a shared spool). The clock is read after the ticket.
    public static func jobHoldsLease() -> Bool {
        guard let lease = fromEnvironment() else { return true }
        guard let info = Sys.info(lease.path) else { return false }
        return Sys.now() - info.modified < jobValidity(lease: lease.duration)
    }

    /// Ends the process (exit 75) with one line on stderr when the job's lease is lost.
    public static func stopIfLeaseLost(before what: String) {
        guard !jobHoldsLease() else { return }
        fputs("semples: lease lost or expired before writing '\(what)': the job was taken over by another host, stopping without writing\n", stderr)
        Sys.exitImmediately(leaseLostExitStatus)
    }

    /// The lease named by SEMPLES_LEASE and SEMPLES_LEASE_S, if the daemon gave one.
    public static func fromEnvironment() -> (path: String, duration: Double)? {
        guard let path = Sys.environment("SEMPLES_LEASE"), !path.isEmpty,
              let duration = Sys.environment("SEMPLES_LEASE_S").flatMap(Double.init), duration > 0 else { return nil }
        return (path, duration)
    }

    /// Watches the environment's lease on a background thread, every tenth of the lease; once it is
    /// lost, writes one line to stderr and ends the process at once (exit 75), so nothing more is written.
    public static func watchFromEnvironment() {
        guard let lease = fromEnvironment() else { return }
        let thread = Thread {
            while true {
                Sys.sleep(max(0.05, lease.duration / 10))
                if !jobHoldsLease() {
                    fputs("semples: lease '\(lease.path)' lost or expired: the job was taken over by another host, stopping without writing\n", stderr)
                    Sys.exitImmediately(leaseLostExitStatus)
                }
            }
        }
        thread.start()
    }
}

extension Daemon {
    /// How long a job's lease lasts without renewal: three heartbeats.
    var leaseDuration: Double { 3 * config.heartbeat }

    /// Renews the lease of every job this daemon runs; a ticket that is gone was taken over.
    func renewLeases(now: Double) {
        for job in Array(active.values) {
            let path = layout.running + "/" + job.ticket
            if !Sys.touch(path, time: now) { leaseLost(job) }
        }
    }

    /// Whether this daemon still holds a job's lease, renewing it when it has expired but was not taken.
    func holdsLease(ticket: String) -> Bool {
        let path = layout.running + "/" + ticket
        if LeaseGuard.holds(path: path, duration: leaseDuration) { return true }
        return Sys.touch(path, time: Sys.now()) && Sys.exists(path)
    }

    /// Another daemon took this job over while this one was silent: stop the job, record nothing.
    func leaseLost(_ job: Active) {
        active[job.id] = nil
        activeByPID[job.pid] = nil
        Sys.signalGroup(job.pid, SIGKILL)   // a Slurm job (pid 0) is left to its new owner, who re-attaches
        var owner = "another daemon"
        if case .running(_, let h, _, _) = store.ticket(job.id) { owner = "host '\(h)'" }
        journal(job.id, "lease-lost", "host '\(host)' was silent past its lease; the job continues on \(owner)", attempt: job.attempt)
        log.warning("job \(job.id): lease lost (taken over by \(owner) while this daemon was silent); its process group \(job.pid) is killed and nothing is recorded here")
        statusDirty = true
    }

    /// The status a daemon publishes, read from `.state/daemons/`; nil when the file is gone.
    func daemonStatus(host: String, pid: Int32, start: UInt64) -> DaemonStatus? {
        let path = layout.daemons + "/\(host)@\(pid)@\(start).json"
        guard let bytes = try? Sys.read(path, limit: 1 << 20) else { return nil }
        return try? JSONDecoder().decode(DaemonStatus.self, from: Data(bytes))
    }

    /// Whether the daemon HOST@PID@START is gone: on this host, its process is; on another host,
    /// it missed three heartbeats (or its status file is gone, which a clean stop does last).
    func presumedGone(host other: String, pid: Int32, start: UInt64, now: Double) -> Bool {
        if other == host { return Sys.processStartTime(pid) != start }
        guard let status = daemonStatus(host: other, pid: pid, start: start) else { return true }
        return now - status.heartbeat > 3 * status.heartbeatInterval
    }

    /// Takes over the running tickets of daemons on other hosts that are presumed gone.
    func takeOverExpired() {
        let now = Sys.now()
        for file in ((try? Sys.list(layout.running)) ?? []) {
            guard let t = RunningTicket(file: file), t.host != host,
                  let info = Sys.info(layout.running + "/" + file) else { continue }
            let silent = now - info.modified
            // The owner's own lease length, if it still publishes one; ours otherwise.
            let lease = daemonStatus(host: t.host, pid: t.pid, start: t.start).map { 3 * $0.heartbeatInterval } ?? leaseDuration
            guard silent > lease, presumedGone(host: t.host, pid: t.pid, start: t.start, now: now) else { continue }
            recoverRunning(file: file, ticket: t, takeover: "host '\(t.host)' silent for \(Int(silent.rounded())) s (lease \(lease) s)")
        }
    }
}
