import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// End-to-end: cancel, stop and resume, crashes, retries, reload, disk floor, systemd notifications.
final class DaemonLifecycleTests: XCTestCase {
    func testCancelRunningJobByCLIAndQueuedJobByFile() throws {
        let h = try SpoolHarness()
        try h.start()
        try h.drop("long.yaml", h.manifest("items=200 item_s=0.1"))
        let running = try h.waitForState("long.yaml", .running)
        try h.drop("next.yaml", h.manifest())
        _ = try h.waitForState("next.yaml", .queued)
        try h.wait("progress", timeout: 10) { Sys.exists(h.outbox(running) + "/progress.json") }
        let (statusCode, statusText, _) = try h.cli(["status"])
        XCTAssertEqual(statusCode, 0)
        XCTAssertTrue(statusText.contains("stub"), "running job shows its progress: \(statusText)")
        XCTAssertTrue(statusText.contains("ETA"), statusText)
        XCTAssertTrue(statusText.contains("waiting for a free slot"), "queued job shows why it waits: \(statusText)")
        // The queued one: an ID.cancel file dropped in incoming/.
        let queued = try XCTUnwrap(h.record(named: "next.yaml"))
        try Sys.writeAtomically("", to: h.layout.incoming + "/" + queued.id + ".cancel")
        _ = try h.waitForState("next.yaml", .cancelled)
        XCTAssertFalse(Sys.exists(h.outbox(queued) + "/runs.txt"), "a job cancelled in the queue never ran")
        // The running one: the CLI.
        let (code, out, err) = try h.cli(["cancel", running.id])
        XCTAssertEqual(code, 0, out + err)
        let done = try h.waitForState("long.yaml", .cancelled)
        let result = try XCTUnwrap(h.json(try Sys.readString(h.outbox(done) + "/result.json")) as? [String: Any])
        XCTAssertEqual(result["state"] as? String, "cancelled")
        XCTAssertFalse(Sys.exists(h.outbox(done) + "/item-200.txt"))
        let (again, _, _) = try h.cli(["cancel", running.id])
        XCTAssertEqual(again, 1, "cancelling a finished job is refused")
        let (missing, _, _) = try h.cli(["cancel", "no-such-job"])
        XCTAssertEqual(missing, 3)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testSIGTERMRequeuesRunningJobAndRestartResumesIt() throws {
        let h = try SpoolHarness()
        try h.start()
        try h.drop("resume me.yaml", h.manifest("items=12 item_s=0.15"))
        let r = try h.waitForState("resume me.yaml", .running)
        try h.wait("three items", timeout: 10) { Sys.exists(h.outbox(r) + "/item-3.txt") }
        XCTAssertEqual(try h.stop(), 0, "exits cleanly within the stop timeout")
        let queued = try XCTUnwrap(h.record(named: "resume me.yaml"))
        XCTAssertEqual(queued.state, .queued)
        XCTAssertTrue(queued.reason?.contains("interrupted") == true, queued.reason ?? "")
        XCTAssertFalse(Sys.exists(h.outbox(r) + "/item-12.txt"))
        XCTAssertFalse(Sys.exists(h.outbox(r) + "/result.json"), "an unfinished folder has no result.json")
        // The daemon is down: status still answers from the state files.
        let (code, out, _) = try h.cli(["status", "--json"])
        XCTAssertEqual(code, 0)
        let jobs = (h.json(out) as? [String: Any])?["jobs"] as? [[String: Any]]
        XCTAssertEqual(jobs?.first?["reason"] as? String, "the daemon is not running; the job starts when it does")
        try h.start()
        let done = try h.waitForState("resume me.yaml", .succeeded)
        let outbox = h.outbox(done)
        XCTAssertTrue(Sys.exists(outbox + "/log.txt") && Sys.exists(outbox + "/log-2.txt"), "one log per attempt")
        XCTAssertTrue(try Sys.readString(outbox + "/log.txt").contains("stopping at a safe point"))
        let secondLog = try Sys.readString(outbox + "/log-2.txt")
        for k in 1...3 { XCTAssertFalse(secondLog.contains("wrote item \(k)\n"), "item \(k) was redone after the restart") }
        XCTAssertTrue(secondLog.contains("wrote item 12"))
        XCTAssertEqual(try h.stop(), 0)
    }

    func testKilledDaemonAtEachIntakeStepLeavesEveryJobOnce() throws {
        for step in ["claimed", "outbox", "record", "ticket", "started", "result"] {
            let h = try SpoolHarness()
            let p = try h.start(environment: ["SEMPLESD_CRASH_AT": step])
            try h.drop("crash \(step).yaml", h.manifest("items=2"))
            try h.wait("daemon killed at '\(step)'", timeout: 20) { !p.isRunning }
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, step)
            h.daemon = nil
            try h.start()
            let r = try h.waitForState("crash \(step).yaml", .succeeded)
            XCTAssertEqual(h.records().count, 1, "one job after a crash at '\(step)'")
            XCTAssertEqual(try Sys.list(h.layout.outbox).count, 1, step)
            XCTAssertEqual(try Sys.list(h.layout.claimed), [], step)
            XCTAssertEqual(try Sys.list(h.layout.running), [], step)
            let runs = try Sys.readString(h.outbox(r) + "/runs.txt").split(separator: "\n")
            if step == "started" {
                // A crash just after the start leaves the attempt interrupted (its orphan is stopped,
                // possibly before it wrote a line): it runs again and finishes.
                XCTAssertTrue((1...2).contains(runs.count), "\(step): \(runs)")
                XCTAssertEqual(r.attempts, 2, step)
            } else {
                XCTAssertEqual(runs.count, 1, step)
                XCTAssertEqual(r.attempts, 1, step)
            }
            XCTAssertTrue(Sys.exists(h.outbox(r) + "/result.json"), step)
            XCTAssertEqual(try h.stop(), 0)
        }
    }

    func testKilledWhileJobRunsIsRetriedAndOrphanStopped() throws {
        let h = try SpoolHarness()
        try h.start()
        try h.drop("orphan.yaml", h.manifest("items=40 item_s=0.1"))
        let r = try h.waitForState("orphan.yaml", .running)
        try h.wait("two items", timeout: 10) { Sys.exists(h.outbox(r) + "/item-2.txt") }
        try h.killHard()
        let orphan = try XCTUnwrap(h.record(named: "orphan.yaml")?.pid)
        XCTAssertTrue(Sys.groupAlive(orphan), "the job outlives a SIGKILLed daemon")
        try h.start()
        try h.wait("orphan stopped", timeout: 15) { !Sys.groupAlive(orphan) }
        let done = try h.waitForState("orphan.yaml", .succeeded, timeout: 30)
        XCTAssertEqual(done.attempts, 2)
        let items = try (1...40).map { try Sys.readString(h.outbox(done) + "/item-\($0).txt") }
        XCTAssertEqual(items.count, 40)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testRetriesWithBackoffButNeverForABadManifest() throws {
        let h = try SpoolHarness(["retry": "{max_attempts: 3, backoff_s: 0.3, backoff_factor: 2}"])
        try h.start()
        try h.drop("flaky.yaml", h.manifest("fail_before_attempt=3"))
        try h.drop("refused.yaml", h.manifest("exit_code=2"))
        try h.drop("broken.yaml", h.manifest("exit_code=7"))
        let flaky = try h.waitForState("flaky.yaml", .succeeded)
        XCTAssertEqual(flaky.attempts, 3)
        for n in ["log.txt", "log-2.txt", "log-3.txt"] { XCTAssertTrue(Sys.exists(h.outbox(flaky) + "/" + n), n) }
        let refused = try h.waitForState("refused.yaml", .failed)
        XCTAssertEqual(refused.attempts, 1, "exit 2 (bad manifest) is not retried")
        let broken = try h.waitForState("broken.yaml", .failed)
        XCTAssertEqual(broken.attempts, 3)
        let history = h.store.journal(for: broken.id).map { $0.state }
        XCTAssertEqual(history.filter { $0 == "retrying" }.count, 2, "\(history)")
        let result = try XCTUnwrap(h.json(try Sys.readString(h.outbox(broken) + "/result.json")) as? [String: Any])
        XCTAssertEqual(result["exit_code"] as? Int, 7)
        XCTAssertNotNil(result["error"] as? String)
        // A manual retry runs it again in the same outbox with a new log.
        let (code, out, err) = try h.cli(["retry", broken.id])
        XCTAssertEqual(code, 0, out + err)
        try h.wait("retried job failed again", timeout: 20) {
            let r = h.record(named: "broken.yaml")
            return r?.state == .failed && (r?.attempts ?? 0) == 6
        }
        XCTAssertTrue(Sys.exists(h.outbox(broken) + "/log-6.txt"))
        XCTAssertEqual(try h.stop(), 0)
    }

    func testHoldReleaseAndShow() throws {
        let h = try SpoolHarness()
        try h.start()
        try h.drop("blocker.yaml", h.manifest("items=100 item_s=0.05"))
        _ = try h.waitForState("blocker.yaml", .running)
        try h.drop("held.yaml", h.manifest())
        let queued = try h.waitForState("held.yaml", .queued)
        var (code, out, err) = try h.cli(["hold", "held.yaml", "--json"])
        XCTAssertEqual(code, 0, out + err)
        XCTAssertEqual((h.json(out) as? [String: Any])?["ok"] as? Bool, true)
        XCTAssertEqual(h.record(named: "held.yaml")?.state, .held)
        (code, out, err) = try h.cli(["hold", "blocker.yaml"])
        XCTAssertEqual(code, 1, "a running job cannot be held: " + out + err)
        _ = try h.cli(["cancel", "blocker.yaml"])
        _ = try h.waitForState("blocker.yaml", .cancelled)
        Sys.sleep(0.5)
        XCTAssertEqual(h.record(named: "held.yaml")?.state, .held, "a held job does not start")
        (code, out, err) = try h.cli(["status"])
        XCTAssertTrue(out.contains("held by"), out)
        (code, out, err) = try h.cli(["release", queued.id])
        XCTAssertEqual(code, 0, out + err)
        _ = try h.waitForState("held.yaml", .succeeded)
        (code, out, err) = try h.cli(["show", queued.id])
        XCTAssertEqual(code, 0)
        for word in ["queued", "held", "running", "succeeded", "log.txt"] { XCTAssertTrue(out.contains(word), "show lists '\(word)': \(out)") }
        (code, out, err) = try h.cli(["logs", queued.id])
        XCTAssertEqual(code, 0)
        XCTAssertTrue(out.contains("stub: attempt 1"), out)
        (code, out, err) = try h.cli(["logs", "-f", queued.id])
        XCTAssertEqual(code, 0, "logs -f ends when the job has finished")
        XCTAssertEqual(try h.stop(), 0)
    }

    func testJobsGetTheConfiguredThreadsAndGEMMBackend() throws {
        let h = try SpoolHarness(["gemm_backend": "onednn", "engine_threads": "3"])
        try h.start()
        try h.drop("backend.yaml", h.manifest())
        let done = try h.waitForState("backend.yaml", .succeeded)
        let (code, out, err) = try h.cli(["logs", done.id])
        XCTAssertEqual(code, 0, out + err)
        XCTAssertTrue(out.contains("threads 3 blas onednn"), out)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testReloadRefusesBadConfigAndDiskFloorHoldsIntake() throws {
        let h = try SpoolHarness(["min_free_disk_mb": "1000000000"])
        try h.start()
        try h.drop("waits.yaml", h.manifest())
        try h.wait("hold reported", timeout: 10) { SpoolReader(root: h.spool).liveDaemons().first?.hold != nil }
        Sys.sleep(0.8)
        XCTAssertTrue(Sys.exists(h.layout.incoming + "/waits.yaml"), "nothing is taken while the disk is low")
        XCTAssertTrue(h.records().isEmpty)
        let (_, out, _) = try h.cli(["status"])
        XCTAssertTrue(out.contains("disk low"), out)
        // An invalid configuration is refused and the old one kept.
        try Sys.writeAtomically("spool: spool\nconcurrent_jobs: many\n", to: h.configPath)
        h.signal(SIGHUP)
        try h.wait("reload refused", timeout: 10) { h.log().contains("reload refused") }
        XCTAssertTrue(h.log().contains("concurrent_jobs"))
        XCTAssertTrue(h.daemon?.isRunning == true)
        XCTAssertTrue(Sys.exists(h.layout.incoming + "/waits.yaml"))
        // A valid one with a floor the disk clears lets the held file in.
        try SpoolHarness.rewrite(h, ["min_free_disk_mb": "0"])
        h.signal(SIGHUP)
        _ = try h.waitForState("waits.yaml", .succeeded)
        XCTAssertNil(SpoolReader(root: h.spool).liveDaemons().first?.hold)
        // A reload can switch the watcher.
        try SpoolHarness.rewrite(h, ["min_free_disk_mb": "0", "watch": "poll"])
        h.signal(SIGHUP)
        try h.wait("polling", timeout: 10) { SpoolReader(root: h.spool).liveDaemons().first?.watch == "poll" }
        try Sys.writeAtomically(h.manifest(), to: h.layout.incoming + "/polled.yaml")
        _ = try h.waitForState("polled.yaml", .succeeded)
        XCTAssertEqual(try h.stop(), 0)
    }

    func testNotifySocketGetsReadyStatusWatchdogAndStopping() throws {
        let h = try SpoolHarness()
        let listener = try NotifyListener(path: h.root + "/notify.sock")
        try h.start(environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "300000"])
        try h.drop("n.yaml", h.manifest())
        _ = try h.waitForState("n.yaml", .succeeded)
        try h.wait("watchdog", timeout: 5) { listener.collect().contains("WATCHDOG=1") }
        XCTAssertEqual(try h.stop(), 0)
        let messages = listener.collect()
        XCTAssertTrue(messages.contains { $0.hasPrefix("READY=1") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("STATUS=") && $0.contains("queued") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("STATUS=") && $0.contains("'n.yaml' succeeded") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.hasPrefix("STOPPING=1") }, "\(messages)")
        let ready = messages.firstIndex { $0.hasPrefix("READY=1") } ?? -1
        let stopping = messages.firstIndex { $0.hasPrefix("STOPPING=1") } ?? -1
        XCTAssertLessThan(ready, stopping)
        // journald priorities on stderr.
        let lines = h.log().split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.hasPrefix("<5>watching") }, h.log())
        XCTAssertTrue(lines.contains { $0.hasPrefix("<6>accepted 'n.yaml'") }, h.log())
    }
}

extension SpoolHarness {
    /// Rewrites the harness's configuration with the test defaults plus `settings`.
    static func rewrite(_ h: SpoolHarness, _ settings: [String: String]) throws {
        let text = try Sys.readString(h.root + "/semplesd.defaults.yaml")
        var lines = text.split(separator: "\n").map(String.init)
        for (k, v) in settings { lines.removeAll { $0.hasPrefix(k + ":") }; lines.append("\(k): \(v)") }
        try Sys.writeAtomically(lines.joined(separator: "\n") + "\n", to: h.configPath)
    }
}

/// The submit and validate commands, through the real CLI.
final class ClientCommandTests: XCTestCase {
    func testSubmitAndValidate() throws {
        let h = try SpoolHarness()
        let bad = h.root + "/bad.yaml"
        // Relative paths: taken from the manifest's own folder by submit.
        try Sys.makeDirectories(h.root + "/project")
        let good = h.root + "/project/my job.yaml"
        try Sys.writeAtomically("job: cam\nname: items=1\ndata_path: ../data\nimg_list: ../data/train.txt\nresume: ../data/model.pth\n", to: good)
        try Sys.writeAtomically("items: 1\n", to: bad)
        var (code, out, err) = try h.cli(["validate", good])
        XCTAssertEqual(code, 0, out + err)
        (code, out, err) = try h.cli(["validate", "--json", good, bad])
        XCTAssertEqual(code, 2)
        let checks = try XCTUnwrap(h.json(out) as? [[String: Any]])
        XCTAssertEqual(checks.map { $0["ok"] as? Bool }, [true, false])
        XCTAssertTrue((checks[1]["error"] as? String)?.contains("'job'") == true)
        // No daemon yet: the file waits in incoming/.
        try Sys.makeDirectories(h.layout.incoming)
        (code, out, err) = try h.cli(["submit", good])
        XCTAssertEqual(code, 0, out + err)
        XCTAssertTrue(out.contains("no daemon is running"), out)
        let submitted = try Sys.readString(h.layout.incoming + "/my job.yaml")
        XCTAssertTrue(submitted.contains("data_path: " + h.root + "/data"), submitted)
        XCTAssertTrue(submitted.contains("name: items=1"), submitted)
        (code, out, err) = try h.cli(["submit", bad])
        XCTAssertEqual(code, 2, "an invalid manifest is refused before it reaches the spool")
        XCTAssertFalse(Sys.exists(h.layout.incoming + "/bad.yaml"))
        try h.start()
        _ = try h.waitForState("my job.yaml", .succeeded)
        // With the daemon up, submit waits for the ID; the same name again gets a new one.
        (code, out, err) = try h.cli(["submit", "--json", good])
        XCTAssertEqual(code, 0, out + err)
        let entry = try XCTUnwrap((h.json(out) as? [[String: Any]])?.first)
        XCTAssertEqual(entry["name"] as? String, "my job.yaml")
        let id = try XCTUnwrap(entry["id"] as? String)
        XCTAssertNotNil(h.store.load(id))
        XCTAssertEqual(h.records().count, 2)
        (code, out, err) = try h.cli(["submit", "--no-validate", bad])
        XCTAssertEqual(code, 2, "the daemon's rejection is reported: " + out + err)
        XCTAssertTrue(out.contains("'job'"), out)
        (code, out, err) = try h.cli(["status"], environment: ["SEMPLES_SPOOL": "/nonexistent"])
        XCTAssertEqual(code, 0, "--spool wins over SEMPLES_SPOOL")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryFolder() + "/semples")
        p.arguments = ["status", "--spool", h.root + "/nowhere"]
        p.standardError = Pipe()
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 4, "no spool")
        // With the daemon down a request is kept (exit 5) and answered at the next start.
        try h.drop("later.yaml", h.manifest("items=50 item_s=0.1"))
        _ = try h.waitForState("later.yaml", .running)
        XCTAssertEqual(try h.stop(), 0)
        (code, out, err) = try h.cli(["cancel", "later.yaml"])
        XCTAssertEqual(code, 5, out + err)
        func pending() -> [String] { ((try? Sys.list(h.layout.control)) ?? []).filter { !$0.hasPrefix(".") } }
        XCTAssertEqual(pending().count, 1)
        try h.start()
        _ = try h.waitForState("later.yaml", .cancelled)
        XCTAssertEqual(pending(), [])
        XCTAssertEqual(try h.stop(), 0)
    }
}

/// SIGTERM while a real CAM job runs (tiny random WeakTr, synthetic VOC-layout images): the job
/// stops at an image boundary, is requeued, and after the restart finishes without redoing the
/// CAMs already written.
final class RealCAMResumeTests: XCTestCase {
    func testStopDuringCAMJobResumesWithoutRedoingImages() throws {
        let repo = directoryName(directoryName(directoryName(#filePath)))
        let checkpoint = repo + "/fixtures/spool/tiny_voc_weaktr.pth"
        guard Sys.exists(checkpoint) else { return XCTFail("missing \(checkpoint); run scripts/fixtures/spool.py") }
        let h = try SpoolHarness(["job_command": "", "stop_timeout_s": "60"])
        // Enough images that the job cannot finish between the second CAM and the stop, even when
        // the tiny model is fast (an optimised build does 10 in well under a second).
        let images = 60
        let (made, output, _) = try h.cli(["make-dataset", "synthetic", "--out", h.root + "/voc", "--train", "0", "--eval", "\(images)", "--seed", "3"], spool: false)
        XCTAssertEqual(made, 0, output)
        try h.start()
        try h.drop("cam job.yaml", """
        job: cam
        data_set: VOC12
        data_path: \(h.root)/voc
        img_list: \(h.root)/voc/voc12/train_id.txt
        resume: \(checkpoint)
        reduction: 2
        scales: [1.0]

        """)
        let r = try h.waitForState("cam job.yaml", .running, timeout: 30)
        let cams = h.outbox(r) + "/cams"
        func written() -> [String] { ((try? Sys.list(cams)) ?? []).filter { $0.hasSuffix(".npy") }.sorted() }
        try h.wait("two CAMs", timeout: 60) { written().count >= 2 }
        XCTAssertEqual(try h.stop(timeout: 90), 0)
        let before = written()
        let stamps = before.map { Sys.info(cams + "/" + $0) }
        XCTAssertLessThan(before.count, images, "the job finished before the stop; use more images")
        XCTAssertEqual(h.record(named: "cam job.yaml")?.state, .queued)
        XCTAssertFalse(Sys.exists(h.outbox(r) + "/result.json"))
        try h.start()
        let done = try h.waitForState("cam job.yaml", .succeeded, timeout: 120)
        XCTAssertEqual(written().count, images)
        for (name, stamp) in zip(before, stamps) {
            XCTAssertEqual(Sys.info(cams + "/" + name), stamp, "'\(name)' was written again after the restart")
        }
        let second = try Sys.readString(h.outbox(done) + "/log-2.txt")
        XCTAssertTrue(second.contains("already done"), second)
        let result = try XCTUnwrap(h.json(try Sys.readString(h.outbox(done) + "/result.json")) as? [String: Any])
        XCTAssertEqual(result["state"] as? String, "succeeded")
        XCTAssertEqual(try h.stop(), 0)
    }
}
