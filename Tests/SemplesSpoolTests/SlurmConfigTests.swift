import Foundation
import XCTest
@testable import SemplesSpool

/// The keys for several hosts and the Slurm executor, and the batch script's quoting.
final class SlurmConfigTests: XCTestCase {
    func testHostSlurmKeysAreReadAndCheckedByName() throws {
        let c = try SpoolConfig.parse("""
        host_id: node-2
        heartbeat_s: 0.5
        executor: slurm
        slurm: {partition: cpu, cpus: 8, mem: 16G, time: "2:00:00", gres: "gpu:1", poll_s: 2, sbatch_options: [--account=lab]}
        """, path: "t.yaml", folder: "/etc")
        XCTAssertEqual(c.hostID, "node-2")
        XCTAssertEqual(c.heartbeat, 0.5)
        XCTAssertEqual(c.executor, .slurm)
        XCTAssertEqual(c.slurm.pollInterval, 2)
        XCTAssertEqual(c.slurm.sbatchOptions, ["--account=lab"])
        XCTAssertEqual(c.slurm.resources.sbatchArguments, ["--cpus-per-task=8", "--mem=16G", "--time=2:00:00", "--partition=cpu", "--gres=gpu:1"])
        for (bad, key) in [("host_id: a@b", "host_id"), ("heartbeat_s: 0", "heartbeat_s"), ("executor: pbs", "executor"),
                           ("slurm: {cpu: 2}", "cpu"), ("slurm: {mem: \"1G; rm\"}", "mem"), ("slurm: {poll_s: -1}", "slurm.poll_s")] {
            XCTAssertThrowsError(try SpoolConfig.parse(bad, path: "t.yaml", folder: "/"), bad) { error in
                XCTAssertTrue("\(error)".contains(key), "\(bad): \(error)")
            }
        }
    }

    func testManifestResourcesOverrideDefaultsAndBadOnesAreRefused() throws {
        var defaults = SlurmResources()
        defaults.cpus = 2; defaults.mem = "4G"
        let given = try SlurmResources.of(manifest: Array("job: cam\nresources: {cpus: 16, time: \"1-00:00:00\"}\n".utf8), name: "a.yaml")
        let merged = defaults.overridden(by: given)
        XCTAssertEqual(merged.sbatchArguments, ["--cpus-per-task=16", "--mem=4G", "--time=1-00:00:00"])
        let bad = "{\"job\": \"evaluate\", \"data_path\": \"/d\", \"img_list\": \"/d/v.txt\", \"predict_dir\": \"/p\", \"resources\": {\"cores\": 2}}"
        XCTAssertThrowsError(try ManifestCheck.validate(bytes: Array(bad.utf8), name: "b.json")) { error in
            XCTAssertTrue("\(error)".contains("key 'resources'") && "\(error)".contains("cores"), "\(error)")
        }
    }

    func testShellWordsKeepNamesAsData() {
        XCTAssertEqual(shellWord("it's $HOME `x`"), #"'it'\''s $HOME `x`'"#)
    }
}
