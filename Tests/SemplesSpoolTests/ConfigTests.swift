import Foundation
import Glibc
import XCTest
@testable import SemplesSpool

final class ConfigTests: XCTestCase {
    func testRepositoryConfigParsesAndPointsAtTheCheckoutsSpool() throws {
        let repo = directoryName(directoryName(directoryName(#filePath)))
        let c = try SpoolConfig.load(path: repo + "/etc/semplesd.yaml")
        XCTAssertEqual(c.spool, repo + "/spool")
        XCTAssertEqual(c.concurrentJobs, 1)
        XCTAssertEqual(c.watch, .auto)
        XCTAssertEqual(c.retryMaxAttempts, 3)
        XCTAssertEqual(c.gemmBackend, "openblas", "the design card's default library")
        XCTAssertEqual(Array(c.resolvedJobCommand().dropFirst()), ["run", "--log-file", "-"])
    }

    func testEveryKeyIsReadAndRelativePathsFollowTheFile() throws {
        let text = """
        spool: ../data/spool
        watch: poll
        rescan_interval_s: 5
        poll_interval_s: 0.5
        settle_s: 1.5
        concurrent_jobs: 2
        engine_threads: 4
        gemm_backend: onednn
        min_free_disk_mb: 10
        log_level: debug
        stop_timeout_s: 30
        cancel_grace_s: 3
        max_manifest_bytes: 4096
        job_command: [bin/runner, run, --fast]
        retry: {max_attempts: 5, backoff_s: 10, backoff_factor: 3, backoff_max_s: 100}
        """
        let c = try SpoolConfig.parse(text, path: "x.yaml", folder: "/etc/semples")
        XCTAssertEqual(c.spool, "/etc/data/spool")
        XCTAssertEqual(c.watch, .poll)
        XCTAssertEqual(c.rescanInterval, 5)
        XCTAssertEqual(c.pollInterval, 0.5)
        XCTAssertEqual(c.settle, 1.5)
        XCTAssertEqual(c.concurrentJobs, 2)
        XCTAssertEqual(c.engineThreads, 4)
        XCTAssertEqual(c.gemmBackend, "onednn")
        XCTAssertEqual(c.minFreeDiskMB, 10)
        XCTAssertEqual(c.logLevel, .debug)
        XCTAssertEqual(c.stopTimeout, 30)
        XCTAssertEqual(c.cancelGrace, 3)
        XCTAssertEqual(c.maxManifestBytes, 4096)
        XCTAssertEqual(c.jobCommand, ["/etc/semples/bin/runner", "run", "--fast"])
        XCTAssertEqual(c.retryMaxAttempts, 5)
        XCTAssertEqual(c.backoff(afterAttempt: 1), 10)
        XCTAssertEqual(c.backoff(afterAttempt: 2), 30)
        XCTAssertEqual(c.backoff(afterAttempt: 3), 90)
        XCTAssertEqual(c.backoff(afterAttempt: 4), 100, "capped at backoff_max_s")
    }

    func testBadConfigurationsNameTheKey() {
        let cases: [(String, String)] = [
            ("concurrent_jobs: many\n", "concurrent_jobs"),
            ("concurrent_jobs: 0\n", "concurrent_jobs"),
            ("watch: sometimes\n", "watch"),
            ("settle: 2\n", "unknown key 'settle'"),
            ("retry: {tries: 3}\n", "retry.tries"),
            ("retry: 3\n", "retry"),
            ("log_level: loud\n", "log_level"),
            ("gemm_backend: mkl\n", "gemm_backend"),
            ("job_command: []\n", "job_command"),
            ("spool: [a\n", "not valid YAML"),
            ("- a\n- b\n", "mapping"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try SpoolConfig.parse(text, path: "bad.yaml", folder: "/")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(text): \(message)")
                XCTAssertTrue(message.contains("bad.yaml"), message)
            }
        }
    }

    func testPathHelpers() {
        XCTAssertEqual(normalizePath("/a/b/../c/./d"), "/a/c/d")
        XCTAssertEqual(absolutePath("x/../y", relativeTo: "/r"), "/r/y")
        XCTAssertEqual(absolutePath("/abs", relativeTo: "/r"), "/abs")
        XCTAssertEqual(stem("cam voc.yaml"), "cam voc")
        XCTAssertEqual(stem("a.JSON"), "a")
        XCTAssertEqual(stem("notes.txt"), "notes.txt")
        XCTAssertEqual(Sys.unescapeMount("/mnt/with\\040space"), "/mnt/with space")
    }

    func testIgnoredNames() {
        for name in [".x.yaml", "a.yaml.tmp", "a.part", "a.yaml~", "#a.yaml#", ".#a", "a.swp", "b.crdownload"] {
            XCTAssertTrue(isIgnoredIncomingName(name), name)
        }
        for name in ["a.yaml", "b c.json", "$x.yml", "ID.cancel", "notes.txt"] { XCTAssertFalse(isIgnoredIncomingName(name), name) }
    }

    func testNetworkFilesystemsAreRecognised() {
        for t in ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse", "9p"] { XCTAssertTrue(isNetworkFilesystem(t), t) }
        for t in ["ext4", "xfs", "btrfs", "tmpfs", "overlay"] { XCTAssertFalse(isNetworkFilesystem(t), t) }
        XCTAssertNotNil(Sys.filesystemType("/"))
    }

    func testJobIDsAndTickets() {
        let id = newJobID(now: 1_795_000_000)
        XCTAssertTrue(id.hasPrefix("261118-"), id)
        XCTAssertEqual(id.count, 20)
        // Distinct milliseconds give distinct IDs (within one millisecond the daemon's reservation
        // in .state/ids settles clashes of the random bits).
        let ids = (0..<2000).map { newJobID(now: 1_795_000_000 + Double($0) * 0.001 + 0.0002) }
        XCTAssertEqual(Set(ids).count, 2000)
        XCTAssertEqual(ids, ids.sorted())
        let earlier = newJobID(now: 1_795_000_000.120), later = newJobID(now: 1_795_000_000.121)
        XCTAssertLessThan(earlier, later, "IDs within one second sort by time")
        let t = RunningTicket(file: RunningTicket.name(id: id, host: "node-1", pid: 42, start: 99))
        XCTAssertEqual(t?.id, id)
        XCTAssertEqual(t?.host, "node-1")
        XCTAssertEqual(t?.pid, 42)
        XCTAssertEqual(t?.start, 99)
        XCTAssertNil(RunningTicket(file: "junk"))
        XCTAssertNotEqual(fingerprint(Array("a".utf8)), fingerprint(Array("b".utf8)))
    }
}

final class ManifestCheckTests: XCTestCase {
    func testValidManifests() throws {
        let cam = "job: cam\ndata_path: /d\nimg_list: /d/train.txt\nresume: /m.pth\n"
        XCTAssertEqual(try ManifestCheck.validate(bytes: Array(cam.utf8), name: "a.yaml").job, "cam")
        let evaluate = "{\"job\": \"evaluate\", \"data_path\": \"/d\", \"img_list\": \"/d/val.txt\", \"predict_dir\": \"/p\"}"
        XCTAssertEqual(try ManifestCheck.validate(bytes: Array(evaluate.utf8), name: "a.json").job, "evaluate")
    }

    func testRelativePathsAreResolvedWhereTheManifestWasSubmitted() throws {
        let folder = NSTemporaryDirectory() + "semples-manifest-\(getpid())"
        try Sys.makeDirectories(folder + "/jobs")
        try Sys.makeDirectories(folder + "/data")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try Sys.writeAtomically("a\n", to: folder + "/data/train.txt")
        try Sys.writeAtomically("w", to: folder + "/model.pth")
        let camText = "job: cam\nname: keep me\ndata_path: ../data\nimg_list: ../data/train.txt\nresume: " + folder + "/model.pth\nscales: [1.0]\n"
        let summary = try ManifestCheck.validate(bytes: Array(camText.utf8), name: "j.yaml", folder: folder + "/jobs")
        let resolved = String(decoding: ManifestCheck.resolvingPaths(Array(camText.utf8), manifest: summary.manifest), as: UTF8.self)
        XCTAssertTrue(resolved.contains("data_path: " + folder + "/data\n"), resolved)
        XCTAssertTrue(resolved.contains("img_list: " + folder + "/data/train.txt\n"), resolved)
        XCTAssertTrue(resolved.contains("name: keep me"), resolved)
        // The rewritten text is still valid, from anywhere.
        XCTAssertEqual(try ManifestCheck.validate(bytes: Array(resolved.utf8), name: "j.yaml", folder: "/").manifest.dataPath, folder + "/data")
        XCTAssertThrowsError(try ManifestCheck.validate(bytes: Array(camText.utf8), name: "j.yaml", folder: "/")) { error in
            XCTAssertTrue("\(error)".contains("key 'data_path'"), "\(error)")
        }
        // Keys of a job's own section (here job: weaktr's img_ms_list) are resolved too.
        try Sys.writeAtomically("a\n", to: folder + "/data/ms.txt")
        let weaktr = "job: weaktr\ndata_path: ../data\nimg_list: ../data/train.txt\nimg_ms_list: ../data/ms.txt\n"
        let w = try ManifestCheck.validate(bytes: Array(weaktr.utf8), name: "w.yaml", folder: folder + "/jobs")
        let text = String(decoding: ManifestCheck.resolvingPaths(Array(weaktr.utf8), manifest: w.manifest), as: UTF8.self)
        XCTAssertTrue(text.contains("img_ms_list: " + folder + "/data/ms.txt"), text)
        let absolute = Array(resolved.utf8)
        XCTAssertEqual(ManifestCheck.resolvingPaths(absolute, manifest: summary.manifest), absolute, "nothing left to resolve")
    }

    func testProblemsAreNamed() {
        let cases: [([UInt8], ManifestProblem.Kind, String)] = [
            (Array("job: [\n".utf8), .syntax, "not valid YAML"),
            ([0x6a, 0x6f, 0x62, 0x3a, 0x20, 0xff, 0x0a], .syntax, "byte offset 5"),
            (Array("items: 2\n".utf8), .content, "key 'job'"),
            (Array("job: 3\n".utf8), .content, "key 'job'"),
            (Array("job: cam\nbogus: 1\n".utf8), .content, "key 'bogus'"),
            (Array("- 1\n".utf8), .syntax, "mapping"),
            (Array("".utf8), .syntax, "mapping"),
            ([UInt8](repeating: 0x20, count: 100), .content, "limit of 64 bytes"),
        ]
        for (bytes, kind, expected) in cases {
            XCTAssertThrowsError(try ManifestCheck.validate(bytes: bytes, name: "m.yaml", limit: 64)) { error in
                guard let p = error as? ManifestProblem else { return XCTFail("\(error)") }
                XCTAssertEqual(p.kind, kind, "\(p)")
                XCTAssertTrue(p.description.contains(expected), "\(p)")
                XCTAssertTrue(p.description.contains("'m.yaml'"), "\(p)")
            }
        }
    }
}
