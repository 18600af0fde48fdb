import ArgumentParser
import Foundation
import SemplesSpool

/// Options every spool subcommand shares.
struct SpoolOptions: ParsableArguments {
    @Option(help: "The spool folder (default: $SEMPLES_SPOOL, else the daemon's configuration).") var spool: String?
    @Option(help: "The daemon's configuration file, used to find the spool.") var config: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    func reader() throws -> SpoolReader { try locateSpool(spool: spool, config: config) }
}

/// Runs a subcommand body, turning ClientError into its message and exit status.
func runClient(_ json: Bool, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ClientError {
        if json { printJSON(["error": e.message, "exit_status": Int(e.status)]) } else { FileHandle.standardError.write(Data(("semples: " + e.message + "\n").utf8)) }
        throw ExitCode(e.status)
    }
}

func printJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

func printEncodable<T: Encodable>(_ value: T) {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    if let data = try? e.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}

func userName() -> String { ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())" }

struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "submit", abstract: "Queue job manifests for the daemon.", discussion: """
    Checks each manifest, copies it into SPOOL/incoming/ under a temporary name and renames it in, then waits (--wait seconds) for the daemon to accept it and prints the job ID and outbox folder. Relative paths in the manifest are taken from the manifest's own folder and made absolute.

    Examples (in a checkout, whose etc/semplesd.yaml names spool/):
      semples submit examples/cam-voc.yaml
      semples submit --spool /var/spool/semples --json --wait 0 a.yaml b.yaml

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "Manifest files (YAML or JSON).") var manifests: [String]
    @Option(help: "Seconds to wait for the daemon to accept each manifest (0: do not wait).") var wait: Double = 10
    @Option(help: "Submit under this file name instead of the manifest's own (one manifest only).") var name: String?
    @Flag(help: "Skip the local check (the daemon still checks).") var noValidate = false

    func validate() throws {
        if name != nil && manifests.count != 1 { throw ValidationError("--name needs exactly one manifest") }
    }

    func run() throws {
        try runClient(options.json) {
            let reader = try options.reader()
            let live = !reader.liveDaemons().isEmpty
            var results: [[String: Any]] = []
            var worst: Int32 = 0
            for path in manifests {
                var bytes: [UInt8]
                do { bytes = try Sys.read(path, limit: 64 << 20) } catch {
                    throw ClientError(ClientExit.refused, "cannot read '\(path)': \(error)")
                }
                let submittedName = name ?? baseName(path)
                if !manifestExtensions.contains(where: { submittedName.lowercased().hasSuffix($0) }) {
                    let message = "'\(submittedName)': a manifest's name must end in .yaml, .yml or .json"
                    results.append(["file": path, "ok": false, "error": message])
                    worst = max(worst, ClientExit.invalidManifest)
                    if !options.json { FileHandle.standardError.write(Data("semples: \(message)\n".utf8)) }
                    continue
                }
                if !noValidate {
                    // Checked where it lies, so relative paths are taken from its own folder and
                    // made absolute before it moves into the spool.
                    do {
                        let summary = try ManifestCheck.validate(path: path)
                        bytes = ManifestCheck.resolvingPaths(bytes, manifest: summary.manifest)
                    } catch {
                        results.append(["file": path, "ok": false, "error": "\(error)"])
                        worst = max(worst, ClientExit.invalidManifest)
                        if !options.json { FileHandle.standardError.write(Data("semples: \(error)\n".utf8)) }
                        continue
                    }
                }
                let since = Sys.now()
                let (submitted, inode) = try reader.submit(bytes: bytes, name: submittedName)
                var entry: [String: Any] = ["file": path, "name": submitted, "ok": true]
                var line = "submitted '\(submitted)'"
                if !live {
                    line += "; no daemon is running, it will be taken when one starts"
                    entry["state"] = "incoming"
                } else if wait > 0 {
                    let deadline = Sys.monotonic() + wait
                    var outcome: Result<JobRecord, ClientError>?
                    while outcome == nil && Sys.monotonic() < deadline {
                        outcome = reader.findSubmitted(name: submitted, bytes: bytes, inode: inode, since: since)
                        if outcome == nil { Sys.sleep(0.1) }
                    }
                    switch outcome {
                    case .success(let r)?:
                        entry["id"] = r.id; entry["state"] = r.state.rawValue
                        entry["outbox"] = reader.layout.outbox + "/" + r.outbox
                        line += " as job \(r.id); results in '\(reader.layout.outbox)/\(r.outbox)'"
                    case .failure(let e)?:
                        entry["ok"] = false; entry["error"] = e.message; entry["state"] = "rejected"
                        line += ", rejected:\n" + e.message
                        worst = max(worst, ClientExit.invalidManifest)
                    case nil:
                        entry["state"] = "incoming"
                        line += "; not taken yet (see 'semples status')"
                    }
                }
                results.append(entry)
                if !options.json { print(line) }
            }
            if options.json { printJSON(results) }
            if worst != 0 { throw ExitCode(worst) }
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the daemon and the jobs, with why each waits.", discussion: """
    Reads the spool's state files, so it works with the daemon stopped. Lists every job that is not finished (with the reason it waits, or its progress and ETA) and the most recent finished ones.

    Examples:
      semples status
      semples status --spool /var/spool/semples --all --json

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Flag(help: "List every finished job too.") var all = false
    @Option(help: "Finished jobs to list without --all.") var recent = 10

    func run() throws {
        try runClient(options.json) {
            let reader = try options.reader()
            let now = Sys.now()
            let daemons = reader.daemons().map { $0.status }
            let live = daemons.filter { $0.alive(now: now) }
            let records = reader.store.all()
            var counts: [String: Int] = [:]
            for s in JobState.allCases { counts[s.rawValue] = 0 }
            for r in records { counts[r.state.rawValue, default: 0] += 1 }
            let open = records.filter { !$0.state.isTerminal }
            let finished = records.filter { $0.state.isTerminal }.sorted { ($0.finished ?? 0) < ($1.finished ?? 0) }
            let shownFinished = all ? finished : Array(finished.suffix(recent))
            let views = (open + shownFinished).map { reader.view($0, live: live, now: now) }
            let incoming = ((try? Sys.list(reader.layout.incoming)) ?? []).filter { !$0.hasPrefix(".") }.count
            if options.json {
                struct Out: Encodable { var spool: String; var daemons: [DaemonStatus]; var counts: [String: Int]; var incoming: Int; var jobs: [JobView] }
                printEncodable(Out(spool: reader.layout.root, daemons: live, counts: counts, incoming: incoming, jobs: views))
                return
            }
            print("spool '\(reader.layout.root)'")
            if live.isEmpty { print("daemon: not running (showing the saved state)") }
            for d in live {
                print("daemon: running on \(d.host), pid \(d.pid), watching by \(d.watch), \(d.concurrentJobs) job(s) at a time\(d.stopping ? ", stopping" : "")")
                if let h = d.hold { print("  HOLD: \(h)") }
            }
            let summary = JobState.allCases.map { "\(counts[$0.rawValue] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
            print(summary + (incoming > 0 ? "; \(incoming) file(s) in incoming/ not taken yet" : ""))
            if views.isEmpty { return }
            let idWidth = max(2, views.map { $0.id.count }.max() ?? 2)
            let nameWidth = min(40, max(4, views.map { $0.name.count }.max() ?? 4))
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
            print(pad("ID", idWidth) + "  " + pad("STATE", 9) + "  " + pad("NAME", nameWidth) + "  DETAIL")
            for v in views {
                var detail = v.reason
                if v.state == "running" {
                    detail = "attempt \(v.attempts)" + (v.slurmJob.map { ", Slurm job \($0)" } ?? "")
                        + (v.progress.map { ", " + $0.text } ?? ", no progress reported yet")
                        + (v.shardText.map { "; " + $0 } ?? "")
                } else if v.state == "failed", let e = v.error { detail = v.reason + ": " + String(e.prefix(120)) }
                print(pad(v.id, idWidth) + "  " + pad(v.state, 9) + "  " + pad(v.name, nameWidth) + "  " + detail)
            }
        }
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one job and its history.", discussion: """
    JOB is an ID, a unique ID prefix, or the submitted file name.

    Example:
      semples show 261126-130102-3fa9c2
      semples show "cam voc.yaml" --json

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String

    func run() throws {
        try runClient(options.json) {
            let reader = try options.reader()
            let record = try reader.record(job)
            let live = reader.liveDaemons()
            let view = reader.view(record, live: live)
            let history = reader.store.journal(for: record.id)
            let logs = reader.logs(record)
            if options.json {
                struct Out: Encodable { var job: JobView; var record: JobRecord; var history: [JournalEntry]; var logs: [String] }
                printEncodable(Out(job: view, record: record, history: history, logs: logs))
                return
            }
            print("job \(record.id): '\(record.name)'")
            print("state:     \(view.state) — \(view.reason)")
            if let p = view.progress { print("progress:  \(p.text)") }
            if let s = view.shardText {
                print("shards:    \(s): " + (view.shards ?? []).map { "\($0.shard) \($0.finished ? "done" : "\($0.done)/\($0.total.map(String.init) ?? "?")")" }.joined(separator: ", "))
            }
            print("attempts:  \(record.attempts)")
            if let h = record.host { print("host:      \(h)") }
            if let s = record.slurmJob { print("slurm job: \(s)") }
            print("outbox:    \(view.outbox)")
            print("submitted: \(view.submitted)")
            if let s = view.started { print("started:   \(s)") }
            if let f = view.finished { print("finished:  \(f)") }
            if let e = record.error { print("error:     \(e)") }
            for l in logs { print("log:       \(l)") }
            print("history:")
            for h in history {
                print("  \(isoTime(h.time))  \(h.state)\(h.attempt.map { " (attempt \($0))" } ?? "")\(h.reason.map { ": " + $0 } ?? "")")
            }
        }
    }
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a job's log (one per attempt).", discussion: """
    Prints the log of the latest attempt (--all: every attempt, oldest first). With -f, follows it, moving on to the next attempt's log if the job is retried, and exits when the job has finished.

    Example:
      semples logs -f 261126-130102-3fa9c2

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String
    @Flag(name: .shortAndLong, help: "Follow the log until the job finishes.") var follow = false
    @Flag(help: "Every attempt's log, not only the latest.") var all = false

    func run() throws {
        try runClient(options.json) {
            let reader = try options.reader()
            let record = try reader.record(job)
            var logs = reader.logs(record)
            if !all { logs = Array(logs.suffix(1)) }
            if !follow {
                if options.json {
                    printJSON(logs.map { ["path": $0, "text": (try? Sys.readString($0)) ?? ""] })
                } else {
                    for path in logs {
                        if all { print("==> \(path) <==") }
                        if let text = try? Sys.readString(path) { print(text, terminator: "") }
                    }
                }
                return
            }
            var current = logs.last
            var offset = 0
            while true {
                if let path = current, let bytes = try? Sys.read(path), bytes.count > offset {
                    let chunk = String(decoding: bytes[offset...], as: UTF8.self)
                    offset = bytes.count
                    if options.json {
                        for line in chunk.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { printJSON(["path": path, "line": String(line)]) }
                    } else { print(chunk, terminator: "") }
                    fflush(stdout)
                }
                let fresh = reader.store.load(record.id)
                let newest = reader.logs(fresh ?? record).last
                if newest != current { current = newest; offset = 0; continue }
                if fresh?.state.isTerminal ?? true { break }
                Sys.sleep(0.2)
            }
        }
    }
}

/// cancel, hold, release and retry: a request to the daemon through control/.
struct ControlCommandBody {
    static func run(_ op: String, job: String, options: SpoolOptions, timeout: Double) throws {
        try runClient(options.json) {
            let reader = try options.reader()
            let record = try reader.record(job)
            let request = ControlRequest(op: op, job: record.id, user: userName(), time: Sys.now())
            let live = reader.liveDaemons()
            let reply = try reader.request(request, timeout: live.isEmpty ? 0 : timeout)
            guard let r = reply else {
                throw ClientError(ClientExit.noDaemon, "no daemon answered; the \(op) request for job \(record.id) is kept in control/ and applied when the daemon starts")
            }
            if options.json { printEncodable(r) } else { print(r.message) }
            if !r.ok { throw ExitCode(ClientExit.refused) }
        }
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running job.", discussion: """
    A running job gets SIGTERM (its whole process group), then SIGKILL after the grace period. Dropping a file named ID.cancel into SPOOL/incoming/ does the same.

    Example:
      semples cancel 261126-130102-3fa9c2

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String
    @Option(help: "Seconds to wait for the daemon's answer.") var timeout: Double = 10
    func run() throws { try ControlCommandBody.run("cancel", job: job, options: options, timeout: timeout) }
}

struct HoldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold", abstract: "Keep a queued job from starting.", discussion: """
    Example:
      semples hold 261126-130102-3fa9c2 && semples release 261126-130102-3fa9c2

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String
    @Option(help: "Seconds to wait for the daemon's answer.") var timeout: Double = 10
    func run() throws { try ControlCommandBody.run("hold", job: job, options: options, timeout: timeout) }
}

struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "release", abstract: "Let a held job run.", discussion: """
    Example:
      semples release 261126-130102-3fa9c2

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String
    @Option(help: "Seconds to wait for the daemon's answer.") var timeout: Double = 10
    func run() throws { try ControlCommandBody.run("release", job: job, options: options, timeout: timeout) }
}

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Run a failed or cancelled job again, or a waiting retry now.", discussion: """
    The job keeps its outbox folder: earlier logs and results stay, the new attempt writes a new log.

    Example:
      semples retry 261126-130102-3fa9c2

    \(ClientExit.help)
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "The job: ID, ID prefix or submitted name.") var job: String
    @Option(help: "Seconds to wait for the daemon's answer.") var timeout: Double = 10
    func run() throws { try ControlCommandBody.run("retry", job: job, options: options, timeout: timeout) }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check manifests without submitting them.", discussion: """
    Example:
      semples validate examples/cam-voc.yaml

    Exit status:
      0   every manifest is valid
      2   at least one is not
      64  bad usage
    """)
    @OptionGroup var options: SpoolOptions
    @Argument(help: "Manifest files (YAML or JSON).") var manifests: [String]

    func run() throws {
        let json = options.json
        var results: [[String: Any]] = []
        var bad = false
        for path in manifests {
            do {
                let summary = try ManifestCheck.validate(path: path)
                results.append(["file": path, "ok": true, "job": summary.job])
                if !json { print("'\(path)': valid \(summary.job) job") }
            } catch {
                bad = true
                results.append(["file": path, "ok": false, "error": "\(error)"])
                if !json { print("\(error)") }
            }
        }
        if json { printJSON(results) }
        if bad { throw ExitCode(ClientExit.invalidManifest) }
    }
}
