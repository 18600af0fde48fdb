import Foundation
import Glibc

/// Exit statuses of `semples run` that the daemon tells apart.
public enum JobExit {
    public static let success: Int32 = 0
    /// The manifest is invalid: never retried.
    public static let badManifest: Int32 = 2
    /// Stopped by SIGTERM at a safe point: rerunning with the same --out continues.
    public static let stoppedSafely: Int32 = 3
}

extension Daemon {
    var myTicketSuffix: String { "@" + ownerTag }

    // MARK: starting

    /// Starts queued jobs while slots are free (FIFO by ID, which begins with the submission time).
    func startJobs(now: Double) {
        guard diskHold == nil, !stopping, active.count < config.concurrentJobs else { return }
        let ids = ((try? Sys.list(layout.queue)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        let queued = Set(ids)
        for id in notBefore.keys where !queued.contains(id) { notBefore[id] = nil }
        for id in ids {
            if active.count >= config.concurrentJobs { break }
            if let t = notBefore[id], t > now { continue }
            guard let record = store.load(id) else { continue }   // intake still writing it
            if let t = record.notBefore, t > now, record.state == .retrying { notBefore[id] = t; continue }
            notBefore[id] = nil
            if record.state.isTerminal { continue }
            let ticket = RunningTicket.name(id: id, host: host, pid: pid, start: startTicks)
            do {
                guard try Sys.rename(layout.queue + "/" + id, layout.running + "/" + ticket) else { continue }
            } catch { log.error("cannot claim job \(id): \(error), retrying"); continue }
            Sys.touch(layout.running + "/" + ticket, time: Sys.now())   // the lease starts now, not when the job was queued
            launch(store.load(id) ?? record, ticket: ticket)
        }
    }

    func outboxPath(_ record: JobRecord) -> String { layout.outbox + "/" + record.outbox }

    static func logName(attempt: Int) -> String { attempt <= 1 ? "log.txt" : "log-\(attempt).txt" }

    /// Spawns one attempt of a job whose ticket this daemon holds.
    func launch(_ initial: JobRecord, ticket: String) {
        var record = initial
        let outbox = outboxPath(record)
        var attempt = record.attempts + 1
        while Sys.exists(outbox + "/" + Self.logName(attempt: attempt)) { attempt += 1 }   // logs are never overwritten
        let logName = Self.logName(attempt: attempt)
        let command = config.resolvedJobCommand()
        let manifest = layout.state + "/" + record.manifest
        let arguments = command + [manifest, "--out", outbox]
        do {
            try Sys.makeDirectories(outbox, mode: 0o775)
            let fd = try Sys.openLog(outbox + "/" + logName)
            defer { close(fd) }
            let header = "semplesd: job \(record.id) ('\(record.name)'), attempt \(attempt), on \(host) at \(isoTime(Sys.now()))\n"
                + "semplesd: " + arguments.map { "'\($0)'" }.joined(separator: " ") + "\n"
            try Sys.writeAll(fd, Array(header.utf8), path: logName)
            record.state = .running
            record.attempts = attempt
            record.started = Sys.now()
            record.finished = nil
            record.host = host
            record.reason = nil
            record.notBefore = nil
            record.pid = nil
            record.pidStart = nil
            try store.save(record, sync: false)   // the save with the pid, below, is the durable one
            var environment = Sys.currentEnvironment().filter {
                !$0.hasPrefix("NOTIFY_SOCKET=") && !$0.hasPrefix("WATCHDOG_") && !$0.hasPrefix("SEMPLESD_CRASH_AT=")
                    && !$0.hasPrefix("SEMPLES_THREADS=") && !$0.hasPrefix("SEMPLES_JOB_ID=") && !$0.hasPrefix("SEMPLES_ATTEMPT=")
            }
            environment = environment.filter { !$0.hasPrefix("SEMPLES_LEASE") && !$0.hasPrefix("SEMPLES_HOST=") }
            environment += ["SEMPLES_JOB_ID=\(record.id)", "SEMPLES_ATTEMPT=\(attempt)", "SEMPLES_HOST=\(host)",
                            "SEMPLES_LEASE=\(layout.running)/\(ticket)", "SEMPLES_LEASE_S=\(leaseDuration)"]
            if config.engineThreads > 0 { environment.append("SEMPLES_THREADS=\(config.engineThreads)") }   // 0: the job's default (all cores)
            if let backend = config.gemmBackend {
                environment = environment.filter { !$0.hasPrefix("SEMPLES_BLAS=") } + ["SEMPLES_BLAS=\(backend)"]
            }
            if config.executor == .slurm {
                // No lease for the job itself: Slurm owns it, and whichever daemon holds the ticket tracks it.
                let mine = ["SEMPLES_JOB_ID=\(record.id)", "SEMPLES_ATTEMPT=\(attempt)", "SEMPLES_HOST=\(host)"]
                    + (config.engineThreads > 0 ? ["SEMPLES_THREADS=\(config.engineThreads)"] : [])
                    + (config.gemmBackend.map { ["SEMPLES_BLAS=\($0)"] } ?? [])
                record.slurmJob = nil
                record.slurmArray = nil
                try submitToSlurm(record, ticket: ticket, attempt: attempt, logName: logName, arguments: arguments, environment: mine)
                return
            }
            let child = try Sys.spawn(arguments, environment: environment, outputFD: fd)
            let job = Active(id: record.id, pid: child, ticket: ticket, logName: logName, attempt: attempt)
            active[record.id] = job
            activeByPID[child] = record.id
            record.pid = child
            record.pidStart = Sys.processStartTime(child)
            try store.save(record)
            journal(record.id, "running", "attempt \(attempt), log \(logName)", attempt: attempt)
            log.info("started job \(record.id) ('\(record.name)'), attempt \(attempt), pid \(child)")
            crashPoint("started")
        } catch {
            log.error("cannot start job \(record.id) ('\(record.name)'): \(error)")
            record.attempts = attempt
            settleFailure(record, ticket: ticket, error: "cannot start the job command: \(error)", exitCode: nil, signal: nil, child: [:], logName: logName)
        }
    }

    // MARK: exits

    func reap() {
        for (child, status) in Sys.reapChildren() {
            guard let id = activeByPID.removeValue(forKey: child), let job = active.removeValue(forKey: id) else { continue }
            let exited = status & 0x7f == 0
            let code: Int32? = exited ? (status >> 8) & 0xff : nil
            let signal: Int32? = exited ? nil : status & 0x7f
            attemptEnded(job, exitCode: code, signal: signal)
        }
    }

    /// Reads the child's result.json and keeps it as result-attempt-N.json; the daemon writes the final one.
    func takeChildResult(_ outbox: String, attempt: Int) -> [String: Any] {
        let path = outbox + "/result.json"
        guard let bytes = try? Sys.read(path, limit: 16 << 20) else { return [:] }
        _ = try? Sys.rename(path, outbox + "/result-attempt-\(attempt).json")
        return ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]) ?? [:]
    }

    func attemptEnded(_ job: Active, exitCode: Int32?, signal: Int32?) {
        guard holdsLease(ticket: job.ticket) else {
            // Taken over while this daemon was silent: the job's new owner records it, not us.
            leaseLost(job)
            return
        }
        guard var record = store.load(job.id) else { log.error("job \(job.id) ended but its record is gone, skipping"); return }
        let outbox = outboxPath(record)
        let child = takeChildResult(outbox, attempt: job.attempt)
        record.exitCode = exitCode
        record.signal = signal
        record.pid = nil
        record.pidStart = nil
        let how = exitCode.map { "exit status \($0)" } ?? "signal \(signal ?? 0)"
        log.info("job \(job.id) ('\(record.name)') attempt \(job.attempt) ended: \(how)")
        let childError = (child["error"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if job.cancelling || Sys.exists(layout.cancels + "/" + job.id) {
            finalize(record, ticket: job.ticket, state: .cancelled, reason: "cancelled by request", error: nil, child: child)
        } else if exitCode == leaseLostExitStatus {
            requeue(record, ticket: job.ticket, reason: "the job found its lease expired (this daemon renewed it late); continues from its checkpoint")
        } else if job.stopRequested && exitCode != JobExit.success && exitCode != JobExit.badManifest {
            requeue(record, ticket: job.ticket, reason: "interrupted by the daemon's stop at \(clockTime(Sys.now())); continues from its checkpoint")
        } else if exitCode == JobExit.success {
            finalize(record, ticket: job.ticket, state: .succeeded, reason: "succeeded", error: nil, child: child)
        } else if exitCode == JobExit.badManifest {
            let error = childError ?? logTail(outbox + "/" + job.logName)
            finalize(record, ticket: job.ticket, state: .failed, reason: "the job refused its manifest (not retried)", error: error, child: child)
        } else {
            let error = childError ?? "\(how); " + logTail(outbox + "/" + job.logName)
            settleFailure(record, ticket: job.ticket, error: error, exitCode: exitCode, signal: signal, child: child, logName: job.logName)
        }
    }

    /// A failure that is not the manifest's fault: retry with backoff, or fail for good.
    func settleFailure(_ initial: JobRecord, ticket: String, error: String, exitCode: Int32?, signal: Int32?, child: [String: Any], logName: String) {
        var record = initial
        let counted = record.attempts - record.retryBase
        if counted < config.retryMaxAttempts {
            let delay = config.backoff(afterAttempt: counted)
            let at = Sys.now() + delay
            record.state = .retrying
            record.notBefore = at
            record.error = error
            record.reason = "attempt \(record.attempts) failed (\(error.prefix(200)))"
            do {
                try store.save(record)
                try Sys.rename(layout.running + "/" + ticket, layout.queue + "/" + record.id)
            } catch { log.error("cannot requeue job \(record.id): \(error), retrying at the next recovery") }
            notBefore[record.id] = at
            journal(record.id, "retrying", "attempt \(record.attempts) failed; retry at \(clockTime(at))", attempt: record.attempts)
            log.warning("job \(record.id) ('\(record.name)') attempt \(record.attempts) failed: \(error.prefix(300)); retrying at \(clockTime(at))")
        } else {
            finalize(record, ticket: ticket, state: .failed, reason: "failed after \(counted) attempt(s)", error: error, child: child)
        }
    }

    /// Puts a job whose ticket this daemon holds back in the queue without counting the attempt.
    func requeue(_ initial: JobRecord, ticket: String, reason: String) {
        var record = initial
        record.state = .queued
        record.retryBase += 1
        record.reason = reason
        record.notBefore = nil
        do {
            try store.save(record)
            try Sys.rename(layout.running + "/" + ticket, layout.queue + "/" + record.id)
        } catch { log.error("cannot requeue job \(record.id): \(error)") }
        journal(record.id, "queued", reason, attempt: record.attempts)
        log.notice("job \(record.id) ('\(record.name)') requeued: \(reason)")
    }

    /// The terminal step: result.json (atomic), the record, then the ticket goes.
    func finalize(_ initial: JobRecord, ticket: String, state: JobState, reason: String, error: String?, child: [String: Any]) {
        var record = initial
        let now = Sys.now()
        record.state = state
        record.reason = reason
        record.error = error
        record.finished = now
        record.notBefore = nil
        let outbox = outboxPath(record)
        var result = child
        result["state"] = state.rawValue
        result["job_id"] = record.id
        result["name"] = record.name
        result["attempts"] = record.attempts
        result["submitted"] = isoTime(record.submitted)
        if let s = record.started { result["started"] = isoTime(s); result["duration_s"] = (now - s).rounded(toPlaces: 3) }
        result["finished"] = isoTime(now)
        result["exit_code"] = record.exitCode.map { Int($0) } ?? NSNull()
        if let s = record.signal { result["signal"] = Int(s) }
        result["error"] = error ?? NSNull()
        result["reason"] = reason
        result["recorded_by"] = "semplesd"
        let logs = ((try? Sys.list(outbox)) ?? []).filter { $0.hasPrefix("log") && $0.hasSuffix(".txt") }.sorted()
        result["logs"] = logs
        do {
            try Sys.makeDirectories(outbox, mode: 0o775)
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys, .prettyPrinted])
            try Sys.writeAtomically([UInt8](data) + [10], to: outbox + "/result.json", mode: 0o664)
            crashPoint("result")
            try store.save(record)
            Sys.remove(layout.running + "/" + ticket)
            Sys.remove(layout.cancels + "/" + record.id)
        } catch {
            log.error("cannot finish job \(record.id): \(error), retrying at the next recovery")
            return
        }
        lastResult = "'\(record.name)' \(state.rawValue)"
        journal(record.id, state.rawValue, error.map { reason + ": " + $0 } ?? reason, attempt: record.attempts)
        let message = "job \(record.id) ('\(record.name)') \(state.rawValue)" + (error.map { ": \($0.prefix(300))" } ?? "")
        if state == .failed { log.warning(message) } else { log.notice(message) }
    }

    func logTail(_ path: String) -> String {
        guard let text = try? Sys.readString(path, limit: 64 << 20) else { return "no log" }
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("semplesd: ") }.suffix(3)
        return lines.isEmpty ? "no output" : "last output: " + lines.joined(separator: " | ")
    }

    // MARK: cancel and deadlines

    func processCancels() {
        for id in ((try? Sys.list(layout.cancels)) ?? []) where !id.hasPrefix(".") {
            if let job = active[id] {
                if job.isSlurm {
                    if !job.cancelling { cancelSlurm(job) }
                    continue
                }
                if !job.cancelling {
                    job.cancelling = true
                    Sys.signalGroup(job.pid, SIGTERM)
                    job.killAt = Sys.now() + config.cancelGrace
                    journal(id, "cancelling", "SIGTERM sent to the job's process group", attempt: job.attempt)
                    log.notice("cancelling job \(id): SIGTERM to process group \(job.pid)")
                }
                continue
            }
            switch store.ticket(id) {
            case .queued, .held:
                let from = Sys.exists(layout.queue + "/" + id) ? layout.queue + "/" + id : layout.held + "/" + id
                let ticket = RunningTicket.name(id: id, host: host, pid: pid, start: startTicks)
                guard (try? Sys.rename(from, layout.running + "/" + ticket)) == true, let record = store.load(id) else { continue }
                finalize(record, ticket: ticket, state: .cancelled, reason: "cancelled by request before it ran", error: nil, child: [:])
            case .running:
                continue   // its daemon acts on it (or the recovery, if that daemon is gone)
            case .none:
                if let record = store.load(id), !record.state.isTerminal { continue }   // still being accepted
                Sys.remove(layout.cancels + "/" + id)
            }
        }
    }

    func enforceDeadlines() {
        let now = Sys.now()
        for job in active.values {
            if let k = job.killAt, now >= k {
                log.warning("job \(job.id) did not stop within its grace period, sending SIGKILL to process group \(job.pid)")
                Sys.signalGroup(job.pid, SIGKILL)
                job.killAt = nil
            }
        }
        if stopping && now > stopDeadline + 10 && !active.isEmpty {
            log.error("\(active.count) job(s) did not exit after SIGKILL; leaving them for the next start")
            active.removeAll()
        }
    }

    // MARK: recovery

    /// Requeues running tickets and finishes claimed files left by a daemon on this host that is gone.
    func recoverStale(startup: Bool) {
        for file in ((try? Sys.list(layout.running)) ?? []) {
            guard let t = RunningTicket(file: file), t.host == host else { continue }
            if t.pid == pid && t.start == startTicks { continue }
            if Sys.processStartTime(t.pid) == t.start { continue }
            recoverRunning(file: file, ticket: t)
        }
        takeOverExpired()
        let now = Sys.now()
        for file in ((try? Sys.list(layout.claimed)) ?? []) where !file.hasPrefix(".") {
            let parts = file.split(separator: "@", maxSplits: 4, omittingEmptySubsequences: false)
            guard parts.count == 5, let owner = Int32(parts[2]), let start = UInt64(parts[3]) else { continue }
            // This daemon's own claimed files are left over from an accept that failed: retry it.
            let mine = String(parts[1]) == host && owner == pid && start == startTicks
            if mine { accept(file: file); continue }
            guard presumedGone(host: String(parts[1]), pid: owner, start: start, now: now) else { continue }
            let adopted = "\(parts[0])@\(ownerTag)@\(parts[4])"
            guard (try? Sys.rename(layout.claimed + "/" + file, layout.claimed + "/" + adopted)) == true else { continue }
            log.notice("finishing the intake of '\(parts[4])' interrupted by a stopped daemon on host '\(parts[1])'")
            accept(file: adopted)
        }
        // Status files of daemons on this host that are gone.
        for file in ((try? Sys.list(layout.daemons)) ?? []) where file.hasSuffix(".json") {
            let parts = file.dropLast(5).split(separator: "@")
            guard parts.count == 3, String(parts[0]) == host, let owner = Int32(parts[1]), let start = UInt64(parts[2]),
                  Sys.processStartTime(owner) != start else { continue }
            Sys.remove(layout.daemons + "/" + file)
        }
        if startup { reconcileTickets() }
    }

    /// Takes a ticket whose daemon is gone and requeues its job (or records the result it left).
    /// `takeover`: why a daemon on another host is presumed gone (its job's process is not ours to stop).
    func recoverRunning(file: String, ticket t: RunningTicket, takeover: String? = nil) {
        let mine = RunningTicket.name(id: t.id, host: host, pid: pid, start: startTicks)
        guard (try? Sys.rename(layout.running + "/" + file, layout.running + "/" + mine)) == true else { return }
        guard var record = store.load(t.id) else {
            log.error("running ticket '\(file)' has no record, skipping")
            return
        }
        if record.state.isTerminal { Sys.remove(layout.running + "/" + mine); return }
        if let why = takeover {
            journal(t.id, "taken-over", "from \(why), by host '\(host)'", attempt: record.attempts)
            log.warning("job \(t.id) taken over from \(why)")
        } else if let child = record.pid, let start = record.pidStart, Sys.processStartTime(child) == start {
            // The daemon died but its job did not: stop the orphan before the job runs again.
            log.warning("job \(t.id) still runs as process group \(child) from a stopped daemon, stopping it")
            Sys.signalGroup(child, SIGTERM)
            let deadline = Sys.monotonic() + min(config.cancelGrace, 10)
            while Sys.groupAlive(child) && Sys.monotonic() < deadline { Sys.sleep(0.05) }
            if Sys.groupAlive(child) { Sys.signalGroup(child, SIGKILL) }
        }
        record.pid = nil
        record.pidStart = nil
        // Died between writing result.json and the record: the result stands.
        if let bytes = try? Sys.read(outboxPath(record) + "/result.json", limit: 16 << 20),
           let result = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
           result["recorded_by"] as? String == "semplesd", result["attempts"] as? Int == record.attempts,
           let state = (result["state"] as? String).flatMap(JobState.init(rawValue:)), state.isTerminal {
            record.state = state
            record.reason = result["reason"] as? String
            record.error = result["error"] as? String
            record.finished = Sys.now()
            do { try store.save(record) } catch { log.error("cannot save job \(t.id): \(error), retrying"); return }
            Sys.remove(layout.running + "/" + mine)
            Sys.remove(layout.cancels + "/" + t.id)
            journal(t.id, state.rawValue, "recorded after a restart", attempt: record.attempts)
            return
        }
        if reattachSlurm(record, ticket: mine, from: takeover ?? "a stopped daemon (pid \(t.pid))") { return }
        if Sys.exists(layout.cancels + "/" + t.id) {
            finalize(record, ticket: mine, state: .cancelled, reason: "cancelled by request", error: nil, child: [:])
        } else {
            let why = takeover.map { "taken over: \($0)" } ?? "interrupted: the daemon running it (pid \(t.pid)) stopped"
            requeue(record, ticket: mine, reason: why + "; continues from its checkpoint")
        }
    }

    /// After a crash a ticket may have moved without its record: make records agree with tickets.
    func reconcileTickets() {
        for (folder, states, fix) in [(layout.queue, [JobState.queued, .retrying], JobState.queued), (layout.held, [.held], .held)] {
            for id in ((try? Sys.list(folder)) ?? []) where !id.hasPrefix(".") {
                guard var record = store.load(id), !states.contains(record.state), !record.state.isTerminal else { continue }
                record.state = fix
                try? store.save(record)
            }
        }
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
