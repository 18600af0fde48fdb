import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

/// `shards: 3` in a real `job: cam` (the real `semples` as the job command, a tiny WeakTr from
/// fixtures/weaktr on a six-image synthetic dataset) through the real daemon: locally as three shard
/// processes, with a shard killed mid-way and retried, and through Slurm as a job array. Each time
/// the merged outbox must equal an unsharded run's byte for byte.
///
/// The engine's last bits depend on its thread count (summation order), so every run here uses one
/// engine thread per process: `engine_threads: 3` gives a sharded job three shards of one thread.
final class ShardedCAMTests: XCTestCase {
    static let model = directoryName(directoryName(directoryName(#filePath))) + "/fixtures/weaktr/cam_job_model.safetensors"
    static let imageCount = 6

    func semples() -> String { binaryFolder() + "/semples" }

    /// A harness whose jobs run the real `semples run`, a synthetic dataset and an unsharded reference run.
    func prepare(_ settings: [String: String]) throws -> (SpoolHarness, reference: String) {
        var all = ["job_command": "[\(semples()), run, --log-file, '-']", "engine_threads": "3",
                   "retry": "{max_attempts: 3, backoff_s: 0.5, backoff_factor: 1}"]
        for (k, v) in settings { all[k] = v }
        let h = try SpoolHarness(all)
        let (code, _, err) = try h.cli(["make-dataset", "synthetic", "--out", h.root + "/voc", "--train", "0",
                                        "--eval", String(Self.imageCount), "--seed", "3"], spool: false)
        XCTAssertEqual(code, 0, err)
        try Sys.writeAtomically(camManifest(h, shards: 1), to: h.root + "/cam.yaml")
        let reference = h.root + "/reference"
        let (run, _, runErr) = try h.cli(["run", h.root + "/cam.yaml", "--out", reference, "--threads", "1", "--quiet"], spool: false)
        XCTAssertEqual(run, 0, runErr + ((try? Sys.readString(reference + "/log.txt")) ?? ""))
        return (h, reference)
    }

    func camManifest(_ h: SpoolHarness, shards: Int, resources: Bool = false) -> String {
        """
        job: cam
        data_set: VOC12
        data_path: \(h.root)/voc
        img_list: \(h.root)/voc/voc12/train_id.txt
        resume: \(Self.model)
        reduction: 2
        scales: [0.5, 0.75]
        shards: \(shards)

        """ + (resources ? "resources: {cpus: 1, time: \"10:00\"}\n" : "")
    }

    /// Every file of `cams/`, by name.
    func cams(_ folder: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try Sys.list(folder + "/cams") where !name.hasPrefix(".") { files[name] = try Sys.read(folder + "/cams/" + name, limit: 64 << 20) }
        return files
    }

    /// Byte-equal to the reference, the same file set, one result.json; returns the "wrote" count per image.
    @discardableResult
    func checkOutbox(_ h: SpoolHarness, _ record: JobRecord, reference: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Int] {
        let outbox = h.outbox(record)
        let want = try cams(reference), got = try cams(outbox)
        XCTAssertEqual(want.count, Self.imageCount, file: file, line: line)
        XCTAssertEqual(got.keys.sorted(), want.keys.sorted(), "the same set of files", file: file, line: line)
        for (name, bytes) in want { XCTAssertTrue(got[name] == bytes, "cams/\(name) differs from the unsharded run", file: file, line: line) }
        let files = try Sys.list(outbox)
        XCTAssertEqual(files.filter { $0 == "result.json" }.count, 1, file: file, line: line)
        // At most one result per attempt (the daemon keeps the job's own as result-attempt-N.json; a
        // Slurm attempt whose merge never ran has none), the last attempt's merge among them: none from the shards.
        let results = Set(files.filter { $0.hasPrefix("result") })
        let allowed = Set((1...record.attempts).map { "result-attempt-\($0).json" } + ["result.json"])
        XCTAssertTrue(results.isSubset(of: allowed) && results.contains("result-attempt-\(record.attempts).json"),
                      "\(results.sorted())", file: file, line: line)
        let result = try Sys.readString(outbox + "/result.json")
        XCTAssertTrue(result.contains("\"state\" : \"succeeded\"") && result.contains("\"shards\" : 3"), result, file: file, line: line)
        for k in 0..<3 { XCTAssertTrue(Sys.exists(outbox + "/shards/\(k).json"), "shards/\(k).json", file: file, line: line) }
        // Each image's file is written once, by one shard, over all attempts.
        var writes: [String: Int] = [:]
        for k in 0..<3 {
            for l in try Sys.readString(outbox + "/log-shard-\(k).txt").split(separator: "\n") where l.contains("wrote 'cams/") {
                let name = String(l.split(separator: "'")[1].dropFirst(5))
                writes[name, default: 0] += 1
            }
        }
        XCTAssertEqual(writes.keys.sorted(), want.keys.sorted(), file: file, line: line)
        XCTAssertEqual(writes.values.filter { $0 != 1 }.count, 0, "files written twice: \(writes)", file: file, line: line)
        return writes
    }

    func testShardedRunThroughTheDaemonEqualsUnshardedRun() throws {
        let began = Sys.monotonic()
        let (h, reference) = try prepare([:])
        let prepared = Sys.monotonic()
        try h.start()
        try h.drop("cam sharded.yaml", camManifest(h, shards: 3))
        let record = try h.waitForState("cam sharded.yaml", .succeeded, timeout: 120)
        XCTAssertEqual(record.attempts, 1)
        try checkOutbox(h, record, reference: reference)
        let log = try Sys.readString(h.outbox(record) + "/log.txt")
        XCTAssertTrue(log.contains("3 to run, 3 at a time with 1 thread(s) each"), log)
        // status and show report the shards.
        let (_, show, _) = try h.cli(["show", record.id, "--json"])
        let shards = ((h.json(show) as? [String: Any])?["job"] as? [String: Any])?["shards"] as? [[String: Any]]
        XCTAssertEqual(shards?.count, 3, show)
        XCTAssertEqual(shards?.filter { $0["finished"] as? Bool == true }.count, 3, show)
        XCTAssertEqual(try h.stop(), 0)
        print("sharded figures: \(Self.imageCount) images, 3 shards, byte-equal, attempts 1, reference \(String(format: "%.1f", prepared - began)) s, sharded job \(String(format: "%.1f", Sys.monotonic() - prepared)) s")
    }

    func testKilledShardIsRetriedAloneAndWritesNothingTwice() throws {
        let (h, reference) = try prepare([:])
        let began = Sys.monotonic()
        // Shard 1 (images 1 and 4) is SIGKILLed after its first image, on the first attempt only.
        try h.start(environment: ["SEMPLES_TEST_KILL_SHARD": "1@1"])
        try h.drop("cam killed.yaml", camManifest(h, shards: 3))
        let record = try h.waitForState("cam killed.yaml", .succeeded, timeout: 180)
        XCTAssertEqual(record.attempts, 2)
        try checkOutbox(h, record, reference: reference)
        let outbox = h.outbox(record)
        XCTAssertTrue(try Sys.readString(outbox + "/log-shard-1.txt").contains("test crash point"))
        // The retry ran shard 1 only; shards 0 and 2 ran once.
        for k in [0, 2] {
            let starts = try Sys.readString(outbox + "/log-shard-\(k).txt").components(separatedBy: "semples: shard \(k)/3 started").count - 1
            XCTAssertEqual(starts, 1, "shard \(k) started \(starts) times")
        }
        let retry = try Sys.readString(outbox + "/log-2.txt")
        XCTAssertTrue(retry.contains("2 finished by an earlier run, 1 to run"), retry)
        let first = try Sys.readString(outbox + "/log.txt")
        XCTAssertTrue(first.contains("shard 1/3 ended with signal 9"), first)
        XCTAssertEqual(try h.stop(), 0)
        print("killed-shard figures: \(Self.imageCount) images, 3 shards, shard 1 SIGKILLed after 1 image, attempts \(record.attempts), byte-equal, nothing written twice, wall \(String(format: "%.1f", Sys.monotonic() - began)) s")
    }

    /// Through Slurm as an array of three tasks and a merge job; then again with shard 1 killed on
    /// the first attempt: Slurm cancels the merge, the retry's array holds shard 1 only.
    func testShardsRunAsSlurmArray() throws {
        try requireSlurmCluster()
        // One engine thread per array task, as in the reference run.
        let (h, reference) = try prepare(["executor": "slurm", "slurm": "{poll_s: 0.3}", "heartbeat_s": "1", "engine_threads": "1"])
        let began = Sys.monotonic()
        try h.start()
        try h.drop("cam array.yaml", camManifest(h, shards: 3, resources: true))
        let record = try h.waitForState("cam array.yaml", .succeeded, timeout: 180)
        XCTAssertEqual(record.attempts, 1)
        XCTAssertNotNil(record.slurmArray)
        try checkOutbox(h, record, reference: reference)
        let journal = try Sys.readString(h.layout.journal)
        XCTAssertTrue(journal.contains("shards 0,1,2 of 3 submitted to Slurm as array \(record.slurmArray ?? "?")"), journal)
        let plain = Sys.monotonic() - began
        XCTAssertEqual(try h.stop(), 0)

        try h.start(environment: ["SEMPLES_TEST_KILL_SHARD": "1@1"])
        try h.drop("cam array killed.yaml", camManifest(h, shards: 3, resources: true))
        let killed = try h.waitForState("cam array killed.yaml", .succeeded, timeout: 240)
        XCTAssertEqual(killed.attempts, 2, h.log().suffix(3000).description)
        try checkOutbox(h, killed, reference: reference)
        let entries = try Sys.readString(h.layout.journal).split(separator: "\n").filter { $0.contains(killed.id) }
        XCTAssertTrue(entries.contains { $0.contains("shards 1 of 3 submitted") }, entries.joined(separator: "\n"))
        XCTAssertTrue(entries.contains { $0.contains("\"retrying\"") }, entries.joined(separator: "\n"))
        XCTAssertEqual(try h.stop(), 0)
        print("slurm shard figures: \(Self.imageCount) images, array of 3 + merge: attempts 1, byte-equal, \(String(format: "%.1f", plain)) s; "
              + "shard 1 killed: attempts \(killed.attempts), retry array of 1, byte-equal, nothing written twice, \(String(format: "%.1f", Sys.monotonic() - began - plain)) s")
    }
}
