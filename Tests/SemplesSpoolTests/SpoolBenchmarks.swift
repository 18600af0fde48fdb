import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// Figures for the daemon's note, not assertions: run with SEMPLES_SPOOL_BENCH=1 (and
/// SEMPLES_TEST_TMP=/some/disk/folder to measure a real disk rather than tmpfs).
final class SpoolBenchmarks: XCTestCase {
    override func setUpWithError() throws {
        guard Sys.environment("SEMPLES_SPOOL_BENCH") == "1" else { throw XCTSkip("set SEMPLES_SPOOL_BENCH=1 to measure") }
    }

    func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    /// Drop-to-claim latency: from the rename into incoming/ to the persisted record.
    func latency(_ settings: [String: String], drops: Int, spacing: Double) throws -> [Double] {
        let h = try SpoolHarness(settings.merging(["job_command": "[/bin/true]", "log_level": "notice"]) { $1 })
        try h.start()
        var dropped: [String: Double] = [:]
        for i in 0..<drops {
            let name = "lat-\(i).yaml"
            let temporary = h.layout.incoming + "/.t\(i)"
            try Sys.writeAtomically(h.manifest(), to: temporary)
            dropped[name] = Sys.now()
            try Sys.rename(temporary, h.layout.incoming + "/" + name)
            Sys.sleep(spacing)
        }
        try h.wait("all claimed", timeout: 120) { h.store.allIDs().count == drops }
        let latencies = h.records().map { $0.submitted - dropped[$0.name]! }
        try h.stop()
        return latencies
    }

    func testDropToClaimLatency() throws {
        for (label, settings) in [("inotify", ["watch": "inotify"]),
                                  ("poll (poll_interval_s 2, settle_s 2: the defaults)", ["watch": "poll", "poll_interval_s": "2", "settle_s": "2"]),
                                  ("poll (poll_interval_s 0.5, settle_s 0.5)", ["watch": "poll", "poll_interval_s": "0.5", "settle_s": "0.5"])] {
            let l = try latency(settings, drops: label == "inotify" ? 200 : 40, spacing: label == "inotify" ? 0.02 : 0.1)
            print(String(format: "spool bench: drop-to-claim %@: median %.1f ms, p99 %.1f ms (n=%d)", label, percentile(l, 0.5) * 1000, percentile(l, 0.99) * 1000, l.count))
        }
    }

    func testAcceptRate() throws {
        let h = try SpoolHarness(["job_command": "[/bin/true]", "log_level": "notice", "min_free_disk_mb": "1000000000"])
        try h.start()
        let count = 2000
        let staging = h.root + "/staging"
        try Sys.makeDirectories(staging)
        for i in 0..<count { try Sys.writeAtomically(h.manifest(), to: staging + "/r\(i).yaml") }
        // Intake is held (disk floor) while the files land; lifting it times pure intake.
        for i in 0..<count { try Sys.rename(staging + "/r\(i).yaml", h.layout.incoming + "/r\(i).yaml") }
        try SpoolHarness.rewrite(h, ["min_free_disk_mb": "0", "job_command": "[/bin/true]", "log_level": "notice", "concurrent_jobs": "1"])
        h.signal(SIGHOLD_RELOAD)
        let start = Sys.monotonic()
        try h.wait("all accepted", timeout: 600) { h.store.allIDs().count == count }
        let seconds = Sys.monotonic() - start
        print(String(format: "spool bench: accepted %d manifests in %.2f s: %.0f per second (spool on %@)", count, seconds, Double(count) / seconds, Sys.filesystemType(h.spool) ?? "?"))
        try h.stop(timeout: 120)
    }

    func testIdleCPUAndMemory() throws {
        let h = try SpoolHarness(["rescan_interval_s": "60", "log_level": "notice"])
        let p = try h.start()
        Sys.sleep(1)
        func cpuTicks() -> Double {
            let text = (try? Sys.readString("/proc/\(p.processIdentifier)/stat")) ?? ""
            let fields = text[text.index(after: text.lastIndex(of: ")")!)...].split(separator: " ")
            return Double(fields[11])! + Double(fields[12])!
        }
        let before = cpuTicks()
        let t0 = Sys.monotonic()
        Sys.sleep(10)
        let cpu = (cpuTicks() - before) / Double(sysconf(Int32(_SC_CLK_TCK))) / (Sys.monotonic() - t0)
        let status = try Sys.readString("/proc/\(p.processIdentifier)/status")
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.map(String.init) ?? "?"
        print(String(format: "spool bench: idle CPU %.3f%% of one core over 10 s; %@", cpu * 100, rss))
        try h.stop()
    }
}

let SIGHOLD_RELOAD = SIGHUP
