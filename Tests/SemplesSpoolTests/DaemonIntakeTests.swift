import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// End-to-end: the real semplesd on a temporary spool, manifests dropped in, outcomes checked.
final class DaemonIntakeTests: XCTestCase {
    func testJobsRunWithNamesThatAreData() throws {
        let h = try SpoolHarness()
        try h.start()
        let names = ["plain.yaml", "with space.yaml", "quote's \"double\".yaml", "dollar $HOME `x`;rm.json", "-dash.yml"]
        for name in names {
            try h.drop(name, h.manifest("items=2", json: name.hasSuffix(".json")))
        }
        for name in names {
            let r = try h.waitForState(name, .succeeded)
            let outbox = h.outbox(r)
            XCTAssertTrue(Sys.exists(outbox + "/log.txt"), name)
            XCTAssertTrue(Sys.exists(outbox + "/item-2.txt"), name)
            XCTAssertEqual(try Sys.readString(outbox + "/runs.txt"), r.id + "\n", "ran once: \(name)")
            let result = try XCTUnwrap(h.json(try Sys.readString(outbox + "/result.json")) as? [String: Any])
            XCTAssertEqual(result["state"] as? String, "succeeded")
            XCTAssertEqual(result["name"] as? String, name)
            XCTAssertEqual((result["metrics"] as? [String: Any])?["items"] as? Int, 2, "the job's own result fields are kept")
            let manifest = try Sys.readString(outbox + "/manifest" + (name.hasSuffix(".json") ? ".json" : name.hasSuffix(".yml") ? ".yml" : ".yaml"))
            XCTAssertTrue(manifest.contains("cam"))
        }
        XCTAssertEqual(try Sys.list(h.layout.incoming).filter { !$0.hasPrefix(".") }, [])
        let (code, out, _) = try h.cli(["status", "--json"])
        XCTAssertEqual(code, 0)
        let status = try XCTUnwrap(h.json(out) as? [String: Any])
        XCTAssertEqual((status["counts"] as? [String: Int])?["succeeded"], names.count)
        XCTAssertEqual((status["daemons"] as? [Any])?.count, 1)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testBurstOfAThousandManifestsEachRunOnce() throws {
        let h = try SpoolHarness(["concurrent_jobs": "4", "job_command": "[/bin/true]"])
        try h.start()
        let count = 1000
        // Written elsewhere and renamed in as fast as possible.
        let staging = h.root + "/staging"
        try Sys.makeDirectories(staging)
        for i in 0..<count { try Sys.writeAtomically(h.manifest("items=0"), to: staging + "/burst-\(i).yaml") }
        for i in 0..<count { try Sys.rename(staging + "/burst-\(i).yaml", h.layout.incoming + "/burst-\(i).yaml") }
        // Cheap to poll (no record parsing): every file taken, nothing queued or running.
        try h.wait("\(count) jobs finished", timeout: 240) {
            h.store.allIDs().count == count && ((try? Sys.list(h.layout.queue)) ?? ["?"]).isEmpty
                && ((try? Sys.list(h.layout.running)) ?? ["?"]).isEmpty
        }
        XCTAssertEqual(h.records().filter { $0.state == .succeeded }.count, count)
        let records = h.records()
        XCTAssertEqual(records.count, count)
        XCTAssertEqual(Set(records.map { $0.name }).count, count, "every file became exactly one job")
        let folders = try Sys.list(h.layout.outbox)
        XCTAssertEqual(folders.count, count)
        // The journal holds one "running" line per attempt: exactly one per job.
        let journal = try Sys.readString(h.layout.journal).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(JournalEntry.self, from: Data($0.utf8)) }
        var starts: [String: Int] = [:]
        for e in journal where e.state == "running" { starts[e.id, default: 0] += 1 }
        for r in records {
            XCTAssertTrue(Sys.exists(h.outbox(r) + "/result.json"), r.name)
            XCTAssertEqual(starts[r.id], 1, "\(r.name) ran once")
            XCTAssertEqual(r.attempts, 1)
        }
        XCTAssertEqual(try h.stop(), 0)
    }

    func testOverflowBurstWithStalledReaderLosesNothing() throws {
        // 20,000 files arrive while the daemon is stopped (SIGSTOP): the inotify queue (16,384 events)
        // overflows, and the rescan must account for every file. Every 100th is a real job.
        let h = try SpoolHarness(["concurrent_jobs": "4", "job_command": "[/bin/true]"])
        try h.start()
        h.signal(SIGSTOP)
        let count = 20_000
        for i in 0..<count {
            let good = i % 100 == 0
            // The others are not manifests at all (rejected by name, the cheapest path), so the test
            // spends its time on the overflow and the accounting, not on parsing.
            try Sys.writeAtomically(good ? h.manifest() : "not: a job\n", to: h.layout.incoming + "/f\(i)" + (good ? ".yaml" : ".txt"))
        }
        h.signal(SIGCONT)
        try h.wait("every file accounted for", timeout: 600) {
            ((try? Sys.list(h.layout.incoming)) ?? []).isEmpty && h.store.allIDs().count == count / 100
                && ((try? Sys.list(h.layout.rejected)) ?? []).count == 2 * (count - count / 100)
        }
        try h.wait("jobs done", timeout: 120) { h.records().allSatisfy { $0.state == .succeeded } }
        XCTAssertTrue(h.log().contains("overflowed"), "the overflow was seen and handled by a rescan")
        XCTAssertEqual(try h.stop(), 0)
    }

    func testHalfWrittenFileIsNotTakenEarlyAndTempFilesAreIgnored() throws {
        let h = try SpoolHarness(["settle_s": "0.6"])
        try h.start()
        let ignored = [".hidden.yaml", "draft.yaml.tmp", "draft.yaml~", "upload.part", ".#lock.yaml", "x.swp"]
        for name in ignored { try Sys.writeAtomically(h.manifest(), to: h.layout.incoming + "/" + name) }
        // Each piece alone is a valid manifest; the writer pauses shorter than the settle time.
        let path = h.layout.incoming + "/slow writer.yaml"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let pieces = h.manifest("items=3").split(separator: "\n").map { $0 + "\n" } + ["# end\n"]
        for piece in pieces {
            _ = piece.withCString { write(fd, $0, strlen($0)) }
            Sys.sleep(0.3)
            XCTAssertTrue(Sys.exists(path) && h.records().isEmpty, "taken while still being written")
        }
        close(fd)
        let r = try h.waitForState("slow writer.yaml", .succeeded)
        XCTAssertEqual(try Sys.readString(h.outbox(r) + "/manifest.yaml"), pieces.joined())
        XCTAssertTrue(Sys.exists(h.outbox(r) + "/item-3.txt"))
        Sys.sleep(1.2)   // a full rescan later, the ignored files are still untouched
        for name in ignored { XCTAssertTrue(Sys.exists(h.layout.incoming + "/" + name), name) }
        XCTAssertEqual(h.records().count, 1)
        XCTAssertEqual(try Sys.list(h.layout.rejected), [], "nothing was rejected half-written")
        XCTAssertEqual(try h.stop(), 0)
    }

    func testPollModeTakesFiles() throws {
        let h = try SpoolHarness(["watch": "poll"])
        try h.start()
        XCTAssertEqual(SpoolReader(root: h.spool).liveDaemons().first?.watch, "poll")
        try Sys.writeAtomically(h.manifest(), to: h.layout.incoming + "/copied.yaml")   // not renamed: settles
        _ = try h.waitForState("copied.yaml", .succeeded)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testMalformedManifestsAreRejectedWithAReason() throws {
        let h = try SpoolHarness(["max_manifest_bytes": "1048576"])
        try h.start()
        let cases: [(String, [UInt8], String)] = [
            ("bad yaml.yaml", Array("job: [cam\n".utf8), "not valid YAML"),
            ("no job.yaml", Array("items: 3\n".utf8), "'job'"),
            ("wrong type.yaml", Array("job: [1, 2]\n".utf8), "key 'job'"),
            ("list.yaml", Array("- job: cam\n".utf8), "mapping"),
            ("latin1.yaml", [0x6a, 0x6f, 0x62, 0x3a, 0x20, 0xe9, 0x0a], "UTF-8"),
            ("unknown key.yaml", Array((h.manifest() + "bogus: 1\n").utf8), "key 'bogus'"),
            ("missing file.yaml", Array(h.manifest().replacingOccurrences(of: "model.pth", with: "gone.pth").utf8), "key 'resume'"),
            ("escape.yaml", Array(h.manifest().replacingOccurrences(of: h.root + "/data/train.txt", with: "../../nope/../../etc/none").utf8), "key 'img_list'"),
            ("huge.yaml", Array(("job: cam\n# " + String(repeating: "x", count: 10 << 20) + "\n").utf8), "limit"),
            ("notes.txt", Array("hello\n".utf8), "not a manifest"),
        ]
        for (name, bytes, _) in cases {
            let temporary = h.layout.incoming + "/.t-" + name
            try Sys.writeAtomically(bytes, to: temporary)
            try Sys.rename(temporary, h.layout.incoming + "/" + name)
        }
        let target = h.root + "/elsewhere.yaml"
        try Sys.writeAtomically(h.manifest(), to: target)
        XCTAssertEqual(symlink(target, h.layout.incoming + "/link.yaml"), 0)
        try h.drop("good.yaml", h.manifest())
        for (name, _, expected) in cases + [("link.yaml", [], "symbolic link")] {
            let errorFile = h.layout.rejected + "/" + stem(name) + ".error.txt"
            try h.wait("'\(name)' rejected", timeout: 20) { Sys.exists(errorFile) && Sys.exists(h.layout.rejected + "/" + name) }
            let text = try Sys.readString(errorFile)
            XCTAssertTrue(text.contains(expected), "\(name): \(text)")
            XCTAssertTrue(text.contains("'\(name)'"), "the reason names the file: \(text)")
        }
        _ = try h.waitForState("good.yaml", .succeeded)
        XCTAssertEqual(h.records().count, 1, "no rejected file became a job")
        XCTAssertTrue(Sys.exists(target), "the symlink's target is untouched")
        XCTAssertTrue(h.daemon?.isRunning == true)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testConcurrencyLimitIsKept() throws {
        let h = try SpoolHarness(["concurrent_jobs": "2"])
        try h.start()
        for i in 0..<6 { try h.drop("slot-\(i).yaml", h.manifest("items=3 item_s=0.1")) }
        var most = 0
        try h.wait("six done", timeout: 60) {
            most = max(most, ((try? Sys.list(h.layout.running)) ?? []).count)
            return h.records().filter { $0.state == .succeeded }.count == 6
        }
        XCTAssertEqual(most, 2, "never more than concurrent_jobs at once, and the slots are used")
        XCTAssertEqual(try h.stop(), 0)
    }

    func testTwoDaemonsOnOneSpoolRunEachJobOnce() throws {
        let h = try SpoolHarness(["concurrent_jobs": "2"])
        let first = try h.start()
        let second = try h.start()
        XCTAssertEqual(SpoolReader(root: h.spool).liveDaemons().count, 2)
        let count = 150
        for i in 0..<count { try h.drop("shared-\(i).yaml", h.manifest()) }
        try h.wait("all done", timeout: 120) { h.records().filter { $0.state == .succeeded }.count == count }
        XCTAssertEqual(h.records().count, count)
        for r in h.records() { XCTAssertEqual(try Sys.readString(h.outbox(r) + "/runs.txt"), r.id + "\n", r.name) }
        for p in [first, second] { kill(p.processIdentifier, SIGTERM) }
        try h.wait("both stopped", timeout: 20) { !first.isRunning && !second.isRunning }
        XCTAssertEqual(first.terminationStatus, 0)
        XCTAssertEqual(second.terminationStatus, 0)
    }
}

/// The daemon with its default job command: the real `semples run` beside it.
final class RealJobCommandTests: XCTestCase {
    func testRealRunnerFailureIsRecordedWithItsError() throws {
        guard Sys.exists(binaryFolder() + "/semples") else { return XCTFail("the semples binary is not built in \(binaryFolder())") }
        let h = try SpoolHarness(["job_command": ""])
        try h.start()
        // A valid manifest whose checkpoint is not a checkpoint: the job starts and fails.
        try h.drop("real.yaml", h.manifest("real run"))
        try h.wait("real job finished", timeout: 60) { h.record(named: "real.yaml")?.state.isTerminal == true }
        let r = try XCTUnwrap(h.record(named: "real.yaml"))
        XCTAssertEqual(r.state, .failed)
        let outbox = h.outbox(r)
        let log = try Sys.readString(outbox + "/log.txt")
        XCTAssertTrue(log.contains("semplesd: job \(r.id)"), log)
        XCTAssertTrue(log.contains("--log-file"), "the job writes no log of its own: \(log)")
        XCTAssertTrue(log.split(separator: "\n").count > 2, "the job's own lines are captured: \(log)")
        let result = try XCTUnwrap(h.json(try Sys.readString(outbox + "/result.json")) as? [String: Any])
        XCTAssertEqual(result["state"] as? String, "failed")
        XCTAssertEqual(result["recorded_by"] as? String, "semplesd")
        XCTAssertFalse((result["error"] as? String ?? "").isEmpty, "\(result)")
        XCTAssertTrue([1, 2].contains(result["exit_code"] as? Int ?? -1), "\(result)")
        if r.exitCode == 2 { XCTAssertEqual(r.attempts, 1, "a refused manifest is not retried") }
        XCTAssertEqual(try h.stop(), 0)
    }
}
