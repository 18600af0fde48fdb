import Foundation
import Yams

// The Slurm executor (`executor: slurm`).
//
// Each attempt of a job is one Slurm batch job named `semples-ID-aN`, submitted with sbatch. Its
// script (.state/slurm/ID-aN.sh) runs the same job command as the local executor and then writes
// its exit status to OUTBOX/.slurm-exit-N, so the daemon learns how the attempt ended even when
// Slurm has already forgotten the job (without slurmdbd, finished jobs are visible for MinJobAge
// only). The ticket stays in running/ while Slurm has the job; the daemon polls squeue, and when
// the job has left the queue it reads the exit file and `scontrol show job` and records the end
// as the local executor does: exit statuses map onto the same retry policy; a job cancelled in
// Slurm by someone else ends `cancelled` with that reason.
//
// Exactly once across restarts: the record is saved (attempt N, no Slurm id yet) before sbatch
// and saved again with the id after it. A daemon that starts up (or takes a silent host's job
// over) re-attaches to the recorded id; if it died between sbatch and the second save, it finds
// the job by its name in squeue. A stopping daemon leaves its Slurm jobs running.
//
// A sharded `cam` job (`shards: N`) is two Slurm jobs per attempt: a job array `semples-ID-aN-shards`
// with one task per unfinished shard (`--array=0,2,…`; a shard is finished when OUTBOX/shards/K.json
// exists), each running `JOB_COMMAND MANIFEST --out OUTBOX --shard K/N` into log-shard-K.txt, and the
// merge job `semples-ID-aN` (`--merge-shards`, `--dependency=afterok:ARRAY --kill-on-invalid-dep=yes`),
// which checks every file and writes result.json. The daemon tracks the merge job as it tracks any
// attempt. When a shard fails, Slurm cancels the merge job for its dependency; the attempt then counts
// as failed under the retry policy, and the next attempt's array holds only the shards not finished
// (the files they wrote are kept and skipped).

/// A Slurm command that failed: which, its exit status and what it printed.
public struct SlurmError: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String {
        "'\(command)' exited with status \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines).prefix(500))"
    }
}

/// What squeue says about one job.
struct SlurmQueueEntry { var state: String, reason: String }

/// The Slurm commands the daemon uses, each run without a shell.
struct SlurmClient {
    let sbatch: String, squeue: String, scontrol: String, scancel: String

    init(settings: SlurmSettings) throws {
        func find(_ name: String) throws -> String {
            if let path = Sys.findExecutable(name, in: settings.binDirectory) { return path }
            let place = settings.binDirectory.isEmpty ? "$PATH" : "'\(settings.binDirectory)'"
            throw SlurmError(command: name, status: -1, output: "not found in \(place); install Slurm's client commands or set slurm.bin_dir")
        }
        sbatch = try find("sbatch"); squeue = try find("squeue"); scontrol = try find("scontrol"); scancel = try find("scancel")
    }

    /// Job states in which Slurm still has the job (it may run again, or is still running).
    static let activeStates: Set<String> = ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                                            "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"]

    func run(_ arguments: [String]) throws -> String {
        let (status, output) = Sys.runCapturing(arguments)
        guard status == 0 else { throw SlurmError(command: baseName(arguments[0]) + " " + arguments.dropFirst().joined(separator: " "), status: status, output: output) }
        return output
    }

    /// Submits a batch script; returns the Slurm job id.
    func submit(script: String, options: [String]) throws -> String {
        let output = try run([sbatch, "--parsable"] + options + [script])
        let id = output.split(separator: "\n").last.map { String($0.split(separator: ";")[0]) }?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !id.isEmpty, id.allSatisfy({ $0.isNumber || $0 == "_" }) else {
            throw SlurmError(command: "sbatch", status: 0, output: "unexpected answer '\(output.prefix(200))', expected a job id")
        }
        return id
    }

    /// This user's jobs in Slurm's queue, by job id.
    func queue() throws -> [String: SlurmQueueEntry] {
        var jobs: [String: SlurmQueueEntry] = [:]
        for line in try run([squeue, "--me", "--noheader", "--array", "--format=%i|%T|%r"]).split(separator: "\n") {
            let parts = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 3 { jobs[parts[0]] = SlurmQueueEntry(state: parts[1], reason: parts[2]) }
        }
        return jobs
    }

    /// The id of this user's queued job with this name, if any.
    func find(name: String) throws -> String? {
        try run([squeue, "--me", "--noheader", "--name=" + name, "--format=%i"]).split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    /// JobState, Reason, ExitCode … of a job Slurm still knows (`scontrol show job -o`); nil when it does not.
    func show(_ id: String) -> [String: String]? {
        let (status, output) = Sys.runCapturing([scontrol, "show", "job", "--oneliner", id])
        guard status == 0 else { return nil }
        var fields: [String: String] = [:]
        for token in output.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let eq = token.firstIndex(of: "=") else { continue }
            let key = String(token[..<eq])
            if ["JobState", "Reason", "ExitCode", "Restarts", "NodeList", "JobName"].contains(key), fields[key] == nil {
                fields[key] = String(token[token.index(after: eq)...])
            }
        }
        return fields["JobState"] == nil ? nil : fields
    }

    func cancel(_ id: String) throws { _ = try run([scancel, id]) }
}

extension SlurmResources {
    /// The `resources:` of a manifest's bytes (YAML or JSON); empty when it has none.
    public static func of(manifest bytes: [UInt8], name: String) throws -> SlurmResources {
        guard let text = String(validating: bytes, as: UTF8.self),
              let map = (try? Yams.load(yaml: text)) as? [String: Any], let value = map["resources"] else { return SlurmResources() }
        return try parse(value, where: "manifest '\(name)': key 'resources'")
    }
}

/// A string as one word for /bin/sh: single-quoted, with each ' written as '\''.
func shellWord(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

extension Daemon {
    var slurmFolder: String { layout.state + "/slurm" }

    static func slurmJobName(id: String, attempt: Int) -> String { "semples-\(id)-a\(attempt)" }
    static func slurmExitFile(attempt: Int) -> String { ".slurm-exit-\(attempt)" }
    static func slurmShardExitFile(attempt: Int, shard: String) -> String { ".slurm-exit-\(attempt)-shard-\(shard)" }

    /// The batch script of a sharded job's array: shard $SLURM_ARRAY_TASK_ID of `count`, then its exit status.
    func slurmShardScript(_ record: JobRecord, attempt: Int, count: Int, arguments: [String], environment: [String]) -> String {
        let exitFile = outboxPath(record) + "/" + Self.slurmShardExitFile(attempt: attempt, shard: "")
        return """
        #!/bin/sh
        # semplesd on host '\(host)': job \(record.id), attempt \(attempt), shard array of \(count), written \(isoTime(Sys.now())).
        # Runs shard $SLURM_ARRAY_TASK_ID of the job, then leaves its exit status where the daemon looks for it.
        \(environment.map { "export " + shellWord($0) }.joined(separator: "\n"))
        k="$SLURM_ARRAY_TASK_ID"
        \(arguments.map(shellWord).joined(separator: " ")) --shard "$k/\(count)"
        status=$?
        printf '%s\\n' "$status" > \(shellWord(exitFile))"$k.tmp" && mv -f \(shellWord(exitFile))"$k.tmp" \(shellWord(exitFile))"$k"
        exit "$status"

        """
    }

    /// The shards of a sharded job without a record (`shards/K.json`) in its outbox.
    func unfinishedShards(_ record: JobRecord, count: Int) -> [Int] {
        let folder = outboxPath(record) + "/shards/"
        return (0..<count).filter { !Sys.exists(folder + "\($0).json") }
    }

    /// The batch script of one attempt: the job command, then its exit status written atomically.
    func slurmScript(_ record: JobRecord, attempt: Int, arguments: [String], environment: [String]) -> String {
        let outbox = outboxPath(record)
        let exitFile = outbox + "/" + Self.slurmExitFile(attempt: attempt)
        return """
        #!/bin/sh
        # semplesd on host '\(host)': job \(record.id), attempt \(attempt), written \(isoTime(Sys.now())).
        # Runs the job, then leaves its exit status where the daemon looks for it.
        \(environment.map { "export " + shellWord($0) }.joined(separator: "\n"))
        \(arguments.map(shellWord).joined(separator: " "))
        status=$?
        printf '%s\\n' "$status" > \(shellWord(exitFile + ".tmp")) && mv -f \(shellWord(exitFile + ".tmp")) \(shellWord(exitFile))
        exit "$status"

        """
    }

    /// Submits one attempt to Slurm (the ticket is this daemon's, the record says attempt N, running).
    func submitToSlurm(_ initial: JobRecord, ticket: String, attempt: Int, logName: String, arguments: [String], environment: [String]) throws {
        guard let client = slurmClient else { throw SlurmError(command: "sbatch", status: -1, output: "the Slurm executor is not set up") }
        var record = initial
        let manifestBytes = try Sys.read(layout.state + "/" + record.manifest, limit: config.maxManifestBytes)
        let resources = config.slurm.resources.overridden(by: try SlurmResources.of(manifest: manifestBytes, name: record.name))
        var env = environment
        if config.engineThreads == 0, let cpus = resources.cpus { env.append("SEMPLES_THREADS=\(cpus)") }
        try Sys.makeDirectories(slurmFolder, mode: 0o755)
        let name = Self.slurmJobName(id: record.id, attempt: attempt)
        let script = slurmFolder + "/" + name + ".sh"
        try Sys.writeAtomically(slurmScript(record, attempt: attempt, arguments: arguments, environment: env), to: script, mode: 0o755)
        let outbox = outboxPath(record)
        Sys.remove(outbox + "/" + Self.slurmExitFile(attempt: attempt))
        try store.save(record)   // attempt N, no Slurm id yet: a restart looks the job up by its name
        crashPoint("slurm-submit")
        var options = ["--job-name=" + name, "--output=" + (outbox + "/" + logName).replacingOccurrences(of: "%", with: "%%"),
                       "--open-mode=append", "--chdir=" + outbox, "--requeue"] + resources.sbatchArguments + config.slurm.sbatchOptions
        if let (job, count) = ManifestShards.read(manifestBytes), job == "cam", count > 1 {
            // Sharded: the array of unfinished shards first, then the merge (this attempt's tracked job) after it.
            let todo = unfinishedShards(record, count: count)
            if !todo.isEmpty {
                let arrayName = name + "-shards"
                let arrayScript = slurmFolder + "/" + arrayName + ".sh"
                try Sys.writeAtomically(slurmShardScript(record, attempt: attempt, count: count, arguments: arguments, environment: env),
                                        to: arrayScript, mode: 0o755)
                try Sys.makeDirectories(outbox + "/shards", mode: 0o775)
                let arrayOptions = ["--job-name=" + arrayName, "--array=" + todo.map(String.init).joined(separator: ","),
                                    "--output=" + (outbox.replacingOccurrences(of: "%", with: "%%") + "/log-shard-%a.txt"),
                                    "--open-mode=append", "--chdir=" + outbox, "--requeue"] + resources.sbatchArguments + config.slurm.sbatchOptions
                let arrayID = try client.submit(script: arrayScript, options: arrayOptions)
                record.slurmArray = arrayID
                try store.save(record)
                options += ["--dependency=afterok:" + arrayID, "--kill-on-invalid-dep=yes"]
                store.appendJournal(JournalEntry(time: Sys.now(), id: record.id, state: "running",
                                                 reason: "attempt \(attempt): shards \(todo.map(String.init).joined(separator: ",")) of \(count) submitted to Slurm as array \(arrayID), logs log-shard-K.txt",
                                                 host: host, pid: pid, attempt: attempt))
                log.info("job \(record.id) ('\(record.name)'), attempt \(attempt): \(todo.count) of \(count) shards submitted as Slurm array \(arrayID)")
            }
            try Sys.writeAtomically(slurmScript(record, attempt: attempt, arguments: arguments + ["--merge-shards"], environment: env),
                                    to: script, mode: 0o755)
        }
        let slurmID = try client.submit(script: script, options: options)
        crashPoint("slurm-submitted")
        record.slurmJob = slurmID
        record.reason = "submitted to Slurm as job \(slurmID)"
        try store.save(record)
        attach(record, ticket: ticket, slurmJob: slurmID, attempt: attempt)
        active[record.id]?.slurmArray = record.slurmArray
        store.appendJournal(JournalEntry(time: Sys.now(), id: record.id, state: "running",
                                         reason: "attempt \(attempt) submitted to Slurm as job \(slurmID) (\(([name] + resources.sbatchArguments).joined(separator: " "))), log \(logName)",
                                         host: host, pid: pid, attempt: attempt, slurmJob: slurmID))
        statusDirty = true
        log.info("submitted job \(record.id) ('\(record.name)'), attempt \(attempt), as Slurm job \(slurmID)")
    }

    /// Tracks a Slurm job of a job whose ticket this daemon holds.
    func attach(_ record: JobRecord, ticket: String, slurmJob: String?, attempt: Int) {
        let job = Active(id: record.id, pid: 0, ticket: ticket, logName: Self.logName(attempt: attempt), attempt: attempt)
        job.slurmJob = slurmJob
        active[record.id] = job
        nextSlurmPoll = min(nextSlurmPoll, Sys.now() + config.slurm.pollInterval)
    }

    /// Re-attaches to the Slurm job of a ticket taken from a daemon that is gone; false when there
    /// is none to attach to (never submitted, or gone without an exit status), so the caller requeues.
    func reattachSlurm(_ initial: JobRecord, ticket: String, from previous: String) -> Bool {
        guard config.executor == .slurm, let client = slurmClient, initial.state == .running else { return false }
        var record = initial
        var slurmID = record.slurmJob
        if slurmID == nil {
            // Died between sbatch and saving the id: the job's name finds it.
            slurmID = try? client.find(name: Self.slurmJobName(id: record.id, attempt: record.attempts))
            if slurmID == nil && !Sys.exists(outboxPath(record) + "/" + Self.slurmExitFile(attempt: record.attempts)) { return false }
        }
        if record.slurmJob != slurmID, let id = slurmID { record.slurmJob = id; try? store.save(record) }
        attach(record, ticket: ticket, slurmJob: slurmID, attempt: record.attempts)
        active[record.id]?.slurmArray = record.slurmArray
        store.appendJournal(JournalEntry(time: Sys.now(), id: record.id, state: "re-attached",
                                         reason: "Slurm job \(slurmID ?? "(finished)") of attempt \(record.attempts), left by \(previous)",
                                         host: host, pid: pid, attempt: record.attempts, slurmJob: slurmID))
        log.notice("job \(record.id): re-attached to Slurm job \(slurmID ?? "(finished)") left by \(previous)")
        return true
    }

    /// Polls squeue; records the end of every attached job that has left Slurm's queue.
    func pollSlurm() {
        guard let client = slurmClient else { return }
        let jobs = active.values.filter { $0.isSlurm }
        guard !jobs.isEmpty else { return }
        let queue: [String: SlurmQueueEntry]
        do { queue = try client.queue() } catch {
            log.warning("cannot read Slurm's queue: \(error), retrying")
            return
        }
        for job in jobs {
            if let slurmID = job.slurmJob, let entry = queue[slurmID], SlurmClient.activeStates.contains(entry.state) {
                let seen = entry.state + " (" + entry.reason + ")"
                if seen != job.slurmState, var record = store.load(job.id) {
                    job.slurmState = seen
                    record.reason = "Slurm job \(slurmID): \(entry.state.lowercased())" + (entry.reason == "None" ? "" : " (\(entry.reason))")
                    try? store.save(record, sync: false)
                    statusDirty = true
                }
                continue
            }
            active[job.id] = nil
            slurmAttemptEnded(job, client: client)
        }
    }

    func slurmAttemptEnded(_ job: Active, client: SlurmClient) {
        let info = job.slurmJob.flatMap { client.show($0) }
        guard let record = store.load(job.id) else { log.error("job \(job.id) ended in Slurm but its record is gone, skipping"); return }
        let exitPath = outboxPath(record) + "/" + Self.slurmExitFile(attempt: job.attempt)
        let code = (try? Sys.readString(exitPath, limit: 64)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        let slurmID = job.slurmJob ?? "?"
        let state = info?["JobState"]
        let detail = state.map { "Slurm job \(slurmID) ended \($0)" + ((info?["Reason"]).map { $0 == "None" ? "" : " (\($0))" } ?? "") }
            ?? "Slurm job \(slurmID) left the queue"
        log.info("job \(job.id) attempt \(job.attempt): \(detail), exit status \(code.map(String.init) ?? "unknown")")
        if code == nil, record.slurmArray != nil, !job.cancelling, !Sys.exists(layout.cancels + "/" + job.id),
           let count = (try? Sys.read(layout.state + "/" + record.manifest, limit: config.maxManifestBytes)).flatMap(ManifestShards.count),
           case let failed = unfinishedShards(record, count: count), !failed.isEmpty {
            // The merge never ran: a shard failed, and Slurm cancelled the merge for its dependency.
            guard holdsLease(ticket: job.ticket) else { leaseLost(job); return }
            shardsFailed(record, job: job, failed: failed, count: count)
            return
        }
        if state?.hasPrefix("CANCELLED") == true && !job.cancelling && !Sys.exists(layout.cancels + "/" + job.id) {
            guard holdsLease(ticket: job.ticket) else { leaseLost(job); return }
            let child = takeChildResult(outboxPath(record), attempt: job.attempt)
            finalize(record, ticket: job.ticket, state: .cancelled,
                     reason: "cancelled in Slurm, outside semples (\(detail)); 'semples retry \(record.id)' runs it again",
                     error: nil, child: child)
        } else if let code {
            attemptEnded(job, exitCode: code, signal: nil)
        } else if job.cancelling || Sys.exists(layout.cancels + "/" + job.id) {
            attemptEnded(job, exitCode: nil, signal: SIGTERM)
        } else {
            guard holdsLease(ticket: job.ticket) else { leaseLost(job); return }
            let known = info == nil ? "; Slurm no longer knows the job and it left no exit status" : ""
            settleFailure(record, ticket: job.ticket, error: detail + known + "; " + logTail(outboxPath(record) + "/" + job.logName),
                          exitCode: nil, signal: nil, child: [:], logName: job.logName)
        }
    }

    /// A sharded attempt whose array did not finish every shard: failed under the retry policy
    /// (the next attempt runs only the unfinished shards), or for good when a shard refused its manifest.
    func shardsFailed(_ record: JobRecord, job: Active, failed: [Int], count: Int) {
        let outbox = outboxPath(record)
        let codes = failed.map { k -> String in
            let code = (try? Sys.readString(outbox + "/" + Self.slurmShardExitFile(attempt: job.attempt, shard: String(k)), limit: 64))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return "\(k) (" + (code.map { "exit status \($0)" } ?? "no exit status") + ")"
        }
        let error = "\(failed.count) of \(count) shards did not finish in Slurm array \(record.slurmArray ?? "?"): "
            + codes.joined(separator: ", ") + "; the merge job was not run; shard \(failed[0]): "
            + logTail(outbox + "/log-shard-\(failed[0]).txt")
        let refused = failed.contains { k in
            (try? Sys.readString(outbox + "/" + Self.slurmShardExitFile(attempt: job.attempt, shard: String(k)), limit: 64))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == String(JobExit.badManifest)
        }
        if refused {
            finalize(record, ticket: job.ticket, state: .failed, reason: "a shard refused its manifest (not retried)", error: error, child: [:])
        } else {
            settleFailure(record, ticket: job.ticket, error: error, exitCode: nil, signal: nil, child: [:], logName: job.logName)
        }
    }

    /// `semples cancel` of a job in Slurm: scancel, recorded when Slurm reports the end.
    func cancelSlurm(_ job: Active) {
        job.cancelling = true
        guard let slurmID = job.slurmJob, let client = slurmClient else { return }
        if let array = job.slurmArray { try? client.cancel(array) }
        do { try client.cancel(slurmID) } catch { log.warning("cannot cancel Slurm job \(slurmID) of job \(job.id): \(error), retrying"); job.cancelling = false; return }
        journal(job.id, "cancelling", "scancel \(slurmID)", attempt: job.attempt)
        log.notice("cancelling job \(job.id): scancel \(slurmID)")
        nextSlurmPoll = min(nextSlurmPoll, Sys.now() + 0.2)
    }
}
