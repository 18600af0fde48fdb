import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// A stand-in for `semples run MANIFEST --out DIR`, written by the tests into their temporary folder.
/// Its behaviour comes from the manifest's `name:` value, as key=value words:
///   items=N                work items; each writes DIR/item-K.txt once (kept across restarts)
///   item_s=S               seconds per item
///   exit_code=C            exit status at the end
///   fail_before_attempt=K  exit 1 while $SEMPLES_ATTEMPT < K
/// SIGTERM: finishes the current item, then exits 3 (stopped at a safe point).
/// Under a lease (SEMPLES_LEASE), checks it before each item and before result.json, and exits 75
/// without writing once it is gone or expired. Every item written is logged in DIR/writes.txt.
let stubJobScript = #"""
#!/bin/sh
manifest="$1"; out="$3"
[ "$2" = "--out" ] || { echo "usage: stub-job MANIFEST --out DIR" >&2; exit 64; }
spec=$(sed -n 's/^ *"\{0,1\}name"\{0,1\}: *"\{0,1\}\([^"]*\)"\{0,1\}.*$/\1/p' "$manifest" | head -n 1)
value() { for word in $spec; do case "$word" in "$1="*) echo "${word#*=}"; return;; esac; done; }
items=$(value items); items=${items:-1}
item_s=$(value item_s); item_s=${item_s:-0}
code=$(value exit_code); code=${code:-0}
fail_before=$(value fail_before_attempt); fail_before=${fail_before:-0}
lease_ok() {
  # As semples run does: the ticket first, then the clock (a pause in between makes the check
  # fail, not pass on a stale time), valid for two thirds of the lease; shell arithmetic after
  # the last fork, so nothing but the write itself follows the clock reading.
  [ -n "$SEMPLES_LEASE" ] || return 0
  renewed=$(stat -c %.3Y "$SEMPLES_LEASE" 2>/dev/null) || return 1
  valid_ms=$(awk -v l="$SEMPLES_LEASE_S" 'BEGIN { printf "%d", l * 1000 * 2 / 3 }')
  now_ms=$(date +%s%3N)
  [ $((now_ms - ${renewed%.*}${renewed#*.})) -lt "$valid_ms" ]
}
lease_lost() { echo "stub: lease lost, stopping without writing"; exit 75; }
stop=0
trap 'stop=1' TERM
echo "stub: attempt ${SEMPLES_ATTEMPT:-?} job ${SEMPLES_JOB_ID:-?} threads ${SEMPLES_THREADS:-?} blas ${SEMPLES_BLAS:-?}"
echo "$SEMPLES_JOB_ID" >> "$out/runs.txt"
k=1
while [ "$k" -le "$items" ]; do
  if [ ! -e "$out/item-$k.txt" ]; then
    [ "$item_s" = "0" ] || sleep "$item_s"
    lease_ok || lease_lost
    echo "attempt ${SEMPLES_ATTEMPT:-?}" > "$out/item-$k.txt"
    echo "$k ${SEMPLES_HOST:-?} ${SEMPLES_ATTEMPT:-?} $(date +%s.%N)" >> "$out/writes.txt"
    echo "wrote item $k"
    printf '{"done": %d, "total": %d, "rate": 1.0, "eta_s": %d, "phase": "stub"}\n' "$k" "$items" "$((items - k))" > "$out/progress.json"
  fi
  if [ "$stop" = 1 ]; then echo "stub: stopping at a safe point after item $k"; exit 3; fi
  k=$((k + 1))
done
if [ "${SEMPLES_ATTEMPT:-1}" -lt "$fail_before" ]; then
  echo "stub: failing on purpose"; printf '{"state": "failed", "error": "stub failure"}\n' > "$out/result.json"; exit 1
fi
lease_ok || lease_lost
if [ "$code" = 0 ]; then printf '{"state": "succeeded", "metrics": {"items": %d}}\n' "$items" > "$out/result.json"; fi
exit "$code"
"""#

/// The folder holding the built binaries (semplesd, semples).
func binaryFolder() -> String {
    if let chosen = Sys.environment("SEMPLES_BIN_DIR"), !chosen.isEmpty { return chosen }   // e.g. .build/release for benchmarks
    var folder = directoryName(Sys.executablePath() ?? "")
    // swift-corelibs-xctest runs `.build/<triple>/debug/semplesPackageTests.xctest`.
    for _ in 0..<3 where !Sys.exists(folder + "/semplesd") { folder = directoryName(folder) }
    if Sys.exists(folder + "/semplesd") { return folder }
    let repo = directoryName(directoryName(directoryName(#filePath)))
    return repo + "/.build/debug"
}

struct HarnessTimeout: Error { let what: String }

/// A temporary spool with a daemon process (the real `semplesd`), and helpers to drive it.
final class SpoolHarness {
    let root: String
    let spool: String
    let configPath: String
    var layout: SpoolLayout { SpoolLayout(root: spool) }
    var store: JobStore { JobStore(layout: layout) }
    var daemon: Process?
    var daemonLog: String { root + "/daemon.log" }
    var starts = 0

    init(_ settings: [String: String] = [:]) throws {
        // tmpfs keeps fsync cheap, so the tests measure behaviour, not the disk; SEMPLES_TEST_TMP overrides.
        let shm = Sys.info("/dev/shm")?.isDirectory == true && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        let base = Sys.environment("SEMPLES_TEST_TMP") ?? shm
        var template = Array((base + "/semples-spool-test-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw SystemError(call: "mkdtemp", path: base, code: errno) }
        root = String(cString: template)
        spool = root + "/spool"
        configPath = root + "/semplesd.yaml"
        // Inputs a cam manifest must name (the job's validation checks they exist).
        try Sys.makeDirectories(root + "/data/JPEGImages")
        try Sys.writeAtomically("2007_000032\n", to: root + "/data/train.txt")
        try Sys.writeAtomically("not really a checkpoint", to: root + "/data/model.pth")
        let stub = root + "/stub-job"
        try Sys.writeAtomically(stubJobScript, to: stub, mode: 0o755)
        var all: [String: String] = [
            "spool": "spool", "settle_s": "0.3", "rescan_interval_s": "1", "poll_interval_s": "0.2",
            "min_free_disk_mb": "0", "job_command": "[\(stub)]", "log_level": "debug",
            "retry": "{max_attempts: 3, backoff_s: 0.2, backoff_factor: 1}", "cancel_grace_s": "2", "stop_timeout_s": "5",
        ]
        for (k, v) in settings { all[k] = v.isEmpty ? nil : v }   // "" leaves the key out (its default applies)
        try writeConfig(all)
    }

    func writeConfig(_ settings: [String: String]) throws {
        let text = settings.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n") + "\n"
        try Sys.writeAtomically(text, to: configPath)
        try Sys.writeAtomically(text, to: root + "/semplesd.defaults.yaml")
    }

    deinit {
        if let d = daemon, d.isRunning { kill(d.processIdentifier, SIGKILL); d.waitUntilExit() }
        _ = try? FileManager.default.removeItem(atPath: root)
    }

    @discardableResult
    func start(environment extra: [String: String] = [:], waitReady: Bool = true) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryFolder() + "/semplesd")
        p.arguments = ["--config", configPath]
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        for (k, v) in extra { env[k] = v }
        p.environment = env
        if !FileManager.default.fileExists(atPath: daemonLog) { _ = FileManager.default.createFile(atPath: daemonLog, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: daemonLog))
        handle.seekToEndOfFile()
        p.standardError = handle
        p.standardOutput = handle
        try p.run()
        daemon = p
        starts += 1
        if waitReady {
            let pid = p.processIdentifier
            try wait("daemon \(pid) ready", timeout: 20) {
                SpoolReader(root: self.spool).liveDaemons().contains { $0.pid == pid } || !p.isRunning
            }
            XCTAssertTrue(p.isRunning, "daemon exited at start: \(log())")
        }
        return p
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop(timeout: Double = 20) throws -> Int32 {
        guard let p = daemon else { return -1 }
        kill(p.processIdentifier, SIGTERM)
        try wait("daemon exit", timeout: timeout) { !p.isRunning }
        daemon = nil
        return p.terminationStatus
    }

    func killHard() throws {
        guard let p = daemon else { return }
        kill(p.processIdentifier, SIGKILL)
        try wait("daemon killed", timeout: 10) { !p.isRunning }
        daemon = nil
    }

    func signal(_ s: Int32) { if let p = daemon { kill(p.processIdentifier, s) } }

    func log() -> String { (try? Sys.readString(daemonLog)) ?? "" }

    /// Drops a manifest the way `semples submit` does: written under a dot-name, renamed in.
    func drop(_ name: String, _ text: String) throws {
        let temporary = layout.incoming + "/.drop-\(UInt32.random(in: 0..<UInt32.max)).tmp"
        try Sys.writeAtomically(text, to: temporary)
        try Sys.rename(temporary, layout.incoming + "/" + name)
    }

    /// A valid cam manifest whose `name:` tells the stub what to do ("items=3 item_s=0.1").
    func manifest(_ behaviour: String = "items=1", json: Bool = false) -> String {
        if json {
            return "{\n  \"job\": \"cam\",\n  \"name\": \"\(behaviour)\",\n  \"data_path\": \"\(root)/data\",\n"
                + "  \"img_list\": \"\(root)/data/train.txt\",\n  \"resume\": \"\(root)/data/model.pth\"\n}\n"
        }
        return "job: cam\nname: \"\(behaviour)\"\ndata_path: \(root)/data\nimg_list: \(root)/data/train.txt\nresume: \(root)/data/model.pth\n"
    }

    func records() -> [JobRecord] { store.all() }

    func record(named name: String) -> JobRecord? { records().first { $0.name == name } }

    func wait(_ what: String, timeout: Double, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) throws {
        let deadline = Sys.monotonic() + timeout
        while !condition() {
            if Sys.monotonic() > deadline {
                XCTFail("timed out after \(timeout) s waiting for \(what); daemon log:\n\(String(log().suffix(3000)))", file: file, line: line)
                throw HarnessTimeout(what: what)
            }
            Sys.sleep(0.05)
        }
    }

    func waitForState(_ name: String, _ state: JobState, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line) throws -> JobRecord {
        try wait("'\(name)' \(state.rawValue)", timeout: timeout, file: file, line: line) { record(named: name)?.state == state }
        return record(named: name)!
    }

    func outbox(_ record: JobRecord) -> String { layout.outbox + "/" + record.outbox }

    /// Runs the real `semples` CLI against this spool; returns (exit status, stdout, stderr).
    @discardableResult
    func cli(_ arguments: [String], environment extra: [String: String] = [:], spool withSpool: Bool = true) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryFolder() + "/semples")
        p.arguments = withSpool ? Array(arguments.prefix(1)) + ["--spool", spool] + Array(arguments.dropFirst()) : arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
}

/// An AF_UNIX datagram socket standing in for systemd's notification socket.
final class NotifyListener {
    let path: String
    let fd: Int32
    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw SystemError(call: "bind", path: path, code: errno) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    deinit { close(fd); unlink(path) }

    var messages: [String] = []
    /// Collects every datagram received so far.
    func collect() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            messages.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        return messages
    }
}
