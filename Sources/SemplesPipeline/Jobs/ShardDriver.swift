import Foundation
import Glibc
import SemplesEngine

/// Runs the shards of a sharded job as child processes of this one:
/// `semples run MANIFEST --out DIR --shard K/N --log-file - --threads T`, output appended to
/// `log-shard-K.txt`, at most `parallel` at a time. Shards with a record (`shards/K.json`) from an
/// earlier run are not started again; a shard that failed before continues from its files.
///
/// The children stay in this process's group, so the daemon's SIGTERM (stop, cancel) and SIGKILL
/// (after the grace period) reach every shard; a SIGTERM sent to this process alone is passed on.
/// Threads: the job's engine threads T (`--threads`, $SEMPLES_THREADS, else all cores) are divided
/// among min(N, T) shards running at once, T / min(N, T) each, so a sharded job uses the same share
/// of the machine as an unsharded one.
struct ShardDriver {
    let command: [String]
    let manifest: String
    let jobFolder: String
    /// Where the shards write (the job's folder, or the pipeline's `cam/`).
    let folder: URL
    let count: Int

    /// This executable's `run` subcommand.
    static func defaultCommand() -> [String] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        return [exe, "run"]
    }

    struct Ended { var shard: Int; var status: Int32 }

    /// Exits reported by the waiting threads, taken by the driver's loop.
    final class Exits: @unchecked Sendable {
        private let lock = NSLock()
        private var ended: [Ended] = []
        let wake = DispatchSemaphore(value: 0)
        func add(_ e: Ended) { lock.withLock { ended.append(e) }; wake.signal() }
        func take() -> [Ended] { lock.withLock { defer { ended.removeAll() }; return ended } }
    }

    /// Runs every unfinished shard; returns the wall seconds. Throws `JobStopped` when stopped,
    /// `InputError` when a shard refused its inputs, `ShardFailure` when a shard failed.
    func run(context: JobContext) throws -> Double {
        let fm = FileManager.default
        try fm.createDirectory(at: folder.appendingPathComponent("shards"), withIntermediateDirectories: true)
        let finished = (0..<count).filter { fm.fileExists(atPath: folder.appendingPathComponent(CAMJob.shardRecordName($0)).path) }
        var pending = Array((0..<count).filter { !finished.contains($0) }.reversed())
        // From the job's shard count, not the shards left: a shard gets the same threads on every
        // attempt, and with them the same bytes (the engine's last bits depend on its thread count).
        let threads = max(1, Parallel.threads / min(count, Parallel.threads))
        let parallel = max(1, min(pending.count, Parallel.threads / threads))
        context.log("\(count) shards: \(finished.count) finished by an earlier run, \(pending.count) to run, \(parallel) at a time with \(threads) thread(s) each")
        context.begin("cam shards", total: count, alreadyDone: finished.count)
        let started = Date()
        let exits = Exits()
        var running: [Int: pid_t] = [:]
        var failures: [(shard: Int, status: Int32)] = []
        var forwarded = false
        var spawnError: Error?
        while (!pending.isEmpty && spawnError == nil) || !running.isEmpty {
            while running.count < parallel, !context.stop.isSet, spawnError == nil, let k = pending.popLast() {
                let pid: pid_t
                do { pid = try spawn(shard: k, threads: threads) } catch {
                    // Not thrown yet: the shards already running are waited for first.
                    context.log("error: \(error)")
                    spawnError = error
                    break
                }
                running[k] = pid
                // One thread per child blocks in waitpid(pid): no polling, no other child reaped.
                Thread.detachNewThread {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    exits.add(Ended(shard: k, status: status))
                }
            }
            if context.stop.isSet && !forwarded {
                // SIGTERM to the group has reached the shards; to this process alone, it has not.
                for pid in running.values { kill(pid, SIGTERM) }
                forwarded = true
            }
            if running.isEmpty { break }
            _ = exits.wake.wait(timeout: .now() + 1)
            for end in exits.take() {
                running[end.shard] = nil
                let status = end.status
                if status & 0x7f == 0 && (status >> 8) & 0xff == 0 {
                    context.log("shard \(end.shard)/\(count) finished")
                    context.advance()
                } else {
                    context.log("shard \(end.shard)/\(count) ended with \(Self.describe(status)); see 'log-shard-\(end.shard).txt'")
                    failures.append((end.shard, status))
                }
            }
        }
        if let reason = context.stop.reason {
            let p = context.progress
            throw JobStopped(reason: reason, done: p.done, total: p.total)
        }
        if let error = spawnError { throw error }
        let exit = { (s: Int32) -> Int32? in s & 0x7f == 0 ? (s >> 8) & 0xff : nil }
        if let bad = failures.first(where: { exit($0.status) == 2 }) {
            throw InputError("shard \(bad.shard)/\(count) refused its manifest or inputs; \(tail(bad.shard))")
        }
        if let first = failures.first {
            let list = failures.map { "\($0.shard) (\(Self.describe($0.status)))" }.joined(separator: ", ")
            throw ShardFailure("\(failures.count) of \(count) shards failed: \(list); their finished images are kept and a rerun continues them; shard \(first.shard): \(tail(first.shard))")
        }
        return Date().timeIntervalSince(started)
    }

    static func describe(_ status: Int32) -> String {
        status & 0x7f == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
    }

    /// The last lines of a shard's log, for error messages.
    func tail(_ shard: Int) -> String {
        let path = folder.appendingPathComponent("log-shard-\(shard).txt").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "no log" }
        return "last output: " + text.split(separator: "\n").suffix(3).joined(separator: " | ")
    }

    /// Starts shard `shard` in this process's group, its output appended to `log-shard-K.txt`.
    func spawn(shard: Int, threads: Int) throws -> pid_t {
        let log = folder.appendingPathComponent("log-shard-\(shard).txt").path
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o664)
        guard fd >= 0 else { throw ShardFailure("cannot open '\(log)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let header = "semples: shard \(shard)/\(count) started \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = header.withCString { write(fd, $0, strlen($0)) }
        let arguments = command + [manifest, "--out", jobFolder, "--shard", "\(shard)/\(count)",
                                   "--log-file", "-", "--threads", String(threads)]
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(); sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t(); sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard rc == 0 else { throw ShardFailure("cannot start shard \(shard): '\(arguments[0])': \(String(cString: strerror(rc)))") }
        return pid
    }
}
