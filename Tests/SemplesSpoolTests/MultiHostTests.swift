import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// Several daemons under distinct host ids on one spool: exclusive claims, leases, takeovers.
final class MultiHostTests: XCTestCase {
    /// Starts one more real `semplesd` on the harness's spool as host `id`, logging to daemon-ID.log.
    func startDaemon(_ h: SpoolHarness, id: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryFolder() + "/semplesd")
        p.arguments = ["--config", h.configPath, "--host-id", id]
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        p.environment = env
        let log = h.root + "/daemon-\(id).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = handle
        p.standardOutput = handle
        try p.run()
        let pid = p.processIdentifier
        try h.wait("daemon '\(id)' ready", timeout: 20) { SpoolReader(root: h.spool).liveDaemons().contains { $0.pid == pid } || !p.isRunning }
        XCTAssertTrue(p.isRunning, "daemon '\(id)' exited at start")
        return p
    }

    func logs(_ h: SpoolHarness) -> String {
        ((try? Sys.list(h.root)) ?? []).filter { $0.hasPrefix("daemon-") }.sorted().map { name in
            "== \(name)\n" + String(((try? Sys.readString(h.root + "/" + name)) ?? "").suffix(2000))
        }.joined(separator: "\n")
    }

    /// 3 daemons, 200 jobs; one SIGKILLed for good, one frozen (daemon and jobs, SIGSTOP) for
    /// longer than the lease and then resumed. Every job ends once, no item is written twice, and
    /// no host writes for a job after it was taken over from it.
    func testThreeHostsOneKilledOneFrozenEveryJobOnce() throws {
        let began = Sys.monotonic()
        let h = try SpoolHarness(["heartbeat_s": "1", "concurrent_jobs": "2", "rescan_interval_s": "1"])
        let hosts = ["alpha", "bravo", "charlie"]
        var daemons: [String: Process] = [:]
        for id in hosts { daemons[id] = try startDaemon(h, id: id) }
        defer { for p in daemons.values where p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        let total = 200
        for k in 0..<total { try h.drop(String(format: "job %03d.yaml", k), h.manifest("items=3 item_s=0.1")) }
        func finished() -> Int { h.records().filter { $0.state.isTerminal }.count }
        func running(on id: String) -> [JobRecord] { h.records().filter { $0.state == .running && $0.host == id } }

        // bravo dies with jobs running: SIGKILL, never restarted; its orphaned jobs must stop on their own.
        try h.wait("bravo running a job after 40 finished", timeout: 90) { finished() >= 40 && !running(on: "bravo").isEmpty }
        kill(daemons["bravo"]!.processIdentifier, SIGKILL)
        daemons["bravo"]!.waitUntilExit()
        // The jobs bravo left running, read after it died: one that finished between the wait
        // above and the kill is bravo's success, not an orphan (no takeover is due).
        let bravoJobs = running(on: "bravo").map { $0.id }

        // charlie freezes, with its jobs, for longer than the lease (3 heartbeats = 3 s), then resumes.
        try h.wait("charlie running a job after 80 finished", timeout: 90) { finished() >= 80 && !running(on: "charlie").isEmpty }
        let charlie = daemons["charlie"]!.processIdentifier
        let frozenGroups = running(on: "charlie").compactMap { $0.pid }
        kill(charlie, SIGSTOP)
        for g in frozenGroups { Sys.signalGroup(g, SIGSTOP) }
        Sys.sleep(5)
        kill(charlie, SIGCONT)
        for g in frozenGroups { Sys.signalGroup(g, SIGCONT) }

        do {
            try h.wait("all \(total) jobs finished", timeout: 150) { finished() == total }
        } catch { XCTFail(logs(h)); throw error }
        Sys.sleep(1.5)   // a paused host that went on writing would do so now

        // Figures.
        let records = h.records()
        let journal = (try Sys.readString(h.layout.journal)).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(JournalEntry.self, from: Data($0.utf8)) }
        let terminal = Dictionary(grouping: journal.filter { ["succeeded", "failed", "cancelled"].contains($0.state) }, by: { $0.id })
        let takeovers = journal.filter { $0.state == "taken-over" }
        let leaseLost = journal.filter { $0.state == "lease-lost" }
        var duplicates = 0, lateWrites = 0
        for r in records {
            let outbox = h.outbox(r)
            let writes = ((try? Sys.readString(outbox + "/writes.txt")) ?? "").split(separator: "\n").map { $0.split(separator: " ") }
            let perItem = Dictionary(grouping: writes, by: { $0[0] })
            if perItem.count != 3 || perItem.values.contains(where: { $0.count != 1 }) {
                duplicates += 1
                print("multi-host: job \(r.id) items written: \(writes.map { $0.joined(separator: " ") })")
            }
            if (terminal[r.id]?.count ?? 0) != 1 {
                duplicates += 1
                print("multi-host: job \(r.id) has \(terminal[r.id]?.count ?? 0) terminal journal entries")
            }
            for t in takeovers where t.id == r.id {
                // The journal names the host taken over from: "from host 'X' silent ...".
                for w in writes where t.reason?.contains("host '\(w[1])' silent") == true {
                    if let when = Double(w[3]), when > t.time { lateWrites += 1 }
                }
            }
        }
        let succeeded = records.filter { $0.state == .succeeded }.count
        let leftovers = try [h.layout.incoming, h.layout.claimed, h.layout.queue, h.layout.running, h.layout.held, h.layout.rejected]
            .flatMap { try Sys.list($0).filter { !$0.hasPrefix(".") } }
        let lost = total - succeeded
        print("multi-host figures: jobs \(total), daemons \(hosts.count), killed 1 (bravo, \(bravoJobs.count) running), frozen 1 (charlie, 5 s > lease 3 s), "
              + "takeovers \(takeovers.count), lease-lost \(leaseLost.count), duplicates \(duplicates), late writes \(lateWrites), lost \(lost), "
              + "wall \(Int(Sys.monotonic() - began)) s")
        XCTAssertEqual(records.count, total, "one record per manifest")
        XCTAssertEqual(succeeded, total, logs(h))
        XCTAssertEqual(duplicates, 0)
        XCTAssertEqual(lateWrites, 0, "a host wrote for a job after it was taken over from it")
        XCTAssertEqual(leftovers, [], "nothing left behind in the spool's folders")
        XCTAssertGreaterThanOrEqual(takeovers.count, bravoJobs.count, "bravo's running jobs were taken over")
        for id in bravoJobs { XCTAssertEqual(takeovers.filter { $0.id == id }.count, 1, "job \(id) taken over exactly once") }
        for r in records { XCTAssertTrue(Sys.exists(h.outbox(r) + "/result.json"), r.id) }
        for id in ["alpha", "charlie"] { XCTAssertTrue(daemons[id]!.isRunning, "\(id) still runs") }
    }
}
