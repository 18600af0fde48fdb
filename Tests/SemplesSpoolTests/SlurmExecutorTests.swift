import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// Skips unless Slurm answers here with a node that can take jobs.
func requireSlurmCluster() throws {
    guard let sinfo = Sys.findExecutable("sinfo") else {
        throw XCTSkip("Slurm is not installed here: scripts/setup-slurm.sh installs and starts a one-node cluster (make test runs it)")
    }
    let (status, output) = Sys.runCapturing([sinfo, "--noheader", "--Node", "--format=%t"])
    let states = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    guard status == 0, states.contains(where: { ["idle", "mix", "alloc", "comp"].contains($0) }) else {
        throw XCTSkip("Slurm does not answer with a usable node (sinfo exit \(status): '\(output.prefix(200))'); run scripts/setup-slurm.sh")
    }
}

/// The Slurm executor against a real one-node Slurm (scripts/setup-slurm.sh, run by `make test`).
final class SlurmExecutorTests: XCTestCase {
    func requireSlurm() throws { try requireSlurmCluster() }

    func evaluateManifest(_ h: SpoolHarness, _ behaviour: String) -> String {
        "job: evaluate\nname: \"\(behaviour)\"\ndata_path: \(h.root)/data\nimg_list: \(h.root)/data/train.txt\npredict_dir: \(h.root)/data/pred\nresources: {cpus: 1, time: \"10:00\"}\n"
    }

    /// 20 evaluate jobs through Slurm; one scancelled from outside; the daemon SIGKILLed and
    /// restarted mid-way. Every job ends once, nothing is submitted twice, the cancel shows why.
    func testTwentyJobsThroughSlurmSurviveKillAndOutsideCancel() throws {
        try requireSlurm()
        let began = Sys.monotonic()
        let h = try SpoolHarness(["executor": "slurm", "slurm": "{poll_s: 0.3}", "concurrent_jobs": "20", "heartbeat_s": "1"])
        try Sys.makeDirectories(h.root + "/data/pred")
        try h.start()
        let total = 20
        for k in 0..<total { try h.drop(String(format: "eval %02d.yaml", k), evaluateManifest(h, "items=3 item_s=0.2")) }
        func finished() -> Int { h.records().filter { $0.state.isTerminal }.count }

        // Someone cancels a submitted job in Slurm directly.
        try h.wait("every job submitted to Slurm", timeout: 60) { h.records().filter { $0.slurmJob != nil }.count == total }
        let victim = try XCTUnwrap(h.records().filter { $0.slurmJob != nil && !$0.state.isTerminal }.max { $0.id < $1.id })
        let scancel = try XCTUnwrap(Sys.findExecutable("scancel"))
        XCTAssertEqual(Sys.runCapturing([scancel, victim.slurmJob!]).status, 0)

        // The daemon dies mid-way and comes back: it re-attaches to the jobs it had submitted.
        try h.wait("a few jobs done", timeout: 90) { finished() >= 4 }
        try h.killHard()
        Sys.sleep(1)
        try h.start()
        try h.wait("all \(total) jobs finished", timeout: 150) { finished() == total }

        let records = h.records()
        let journal = (try Sys.readString(h.layout.journal)).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(JournalEntry.self, from: Data($0.utf8)) }
        var duplicates = 0
        for r in records {
            let entries = journal.filter { $0.id == r.id }
            if entries.filter({ ["succeeded", "failed", "cancelled"].contains($0.state) }).count != 1 { duplicates += 1 }
            let submissions = entries.filter { $0.state == "running" && $0.slurmJob != nil }
            if submissions.count != r.attempts || Set(submissions.compactMap { $0.slurmJob }).count != submissions.count { duplicates += 1 }
            if r.state == .succeeded {
                let runs = try Sys.readString(h.outbox(r) + "/runs.txt").split(separator: "\n")
                if runs.count != 1 { duplicates += 1 }
            }
        }
        let reattached = journal.filter { $0.state == "re-attached" }.count
        let succeeded = records.filter { $0.state == .succeeded }.count
        let cancelled = records.filter { $0.state == .cancelled }
        let lost = total - records.filter { $0.state.isTerminal }.count
        print("slurm figures: jobs \(total), daemon restarts 1 (SIGKILL), re-attached \(reattached), scancelled outside 1, "
              + "succeeded \(succeeded), cancelled \(cancelled.count), duplicates \(duplicates), lost \(lost), wall \(Int(Sys.monotonic() - began)) s")
        XCTAssertEqual(records.count, total)
        XCTAssertEqual(duplicates, 0)
        XCTAssertEqual(lost, 0)
        XCTAssertEqual(cancelled.map { $0.id }, [victim.id])
        XCTAssertEqual(succeeded, total - 1, h.log().suffix(3000).description)
        let reason = cancelled.first?.reason ?? ""
        XCTAssertTrue(reason.contains("outside semples") && reason.contains(victim.slurmJob!), reason)
        let result = try String(contentsOfFile: h.outbox(victim) + "/result.json", encoding: .utf8)
        XCTAssertTrue(result.contains("outside semples"), result)
        XCTAssertGreaterThan(reattached, 0, "the restart re-attached to submitted jobs")
        for r in records { XCTAssertTrue(Sys.exists(h.outbox(r) + "/result.json"), r.id) }

        // The Slurm job id is shown.
        let done = try XCTUnwrap(records.first { $0.state == .succeeded })
        let (code, out, _) = try h.cli(["show", done.id, "--json"])
        XCTAssertEqual(code, 0)
        let job = (h.json(out) as? [String: Any])?["job"] as? [String: Any]
        XCTAssertEqual(job?["slurmJob"] as? String, done.slurmJob)
        let (_, status, _) = try h.cli(["status", "--all", "--json"])
        XCTAssertTrue(status.contains("\"slurmJob\""), status.prefix(500).description)
        XCTAssertEqual(try h.stop(), 0)
    }
}
