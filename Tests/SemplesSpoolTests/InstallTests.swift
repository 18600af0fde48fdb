import Foundation
import XCTest
@testable import SemplesSpool

/// The unit, tmpfiles entry and install script, checked with the tools an admin would use.
final class InstallTests: XCTestCase {
    let repo = directoryName(directoryName(directoryName(#filePath)))

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: arguments[0])
        p.arguments = Array(arguments.dropFirst())
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func which(_ tool: String) -> String? {
        for folder in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] where Sys.exists(folder + "/" + tool) { return folder + "/" + tool }
        return nil
    }

    func testUnitPassesSystemdAnalyzeVerify() throws {
        guard let analyze = which("systemd-analyze") else { throw XCTSkip("systemd-analyze is not installed") }
        let folder = NSTemporaryDirectory() + "semples-unit-\(getpid())"
        try Sys.makeDirectories(folder)
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        // verify needs the ExecStart binary to exist: point it at the built daemon.
        let unit = try Sys.readString(repo + "/systemd/semplesd.service")
        XCTAssertTrue(unit.contains("Type=notify"))
        for key in ["User=semples", "StateDirectory=", "ProtectSystem=strict", "ReadWritePaths=/var/spool/semples",
                    "NoNewPrivileges=yes", "KillMode=mixed", "WatchdogSec="] {
            XCTAssertTrue(unit.contains(key), key)
        }
        let local = unit.replacingOccurrences(of: "ExecStart=/usr/local/bin/semplesd", with: "ExecStart=" + binaryFolder() + "/semplesd")
        try Sys.writeAtomically(local, to: folder + "/semplesd.service")
        let (code, output) = try run([analyze, "verify", folder + "/semplesd.service"])
        XCTAssertEqual(code, 0, output)
        XCTAssertFalse(output.contains("semplesd.service:"), "warnings about the unit: \(output)")
    }

    func testInstallScriptStagesEverything() throws {
        let dest = NSTemporaryDirectory() + "semples-install-\(getpid())"
        defer { _ = try? FileManager.default.removeItem(atPath: dest) }
        let (code, output) = try run(["/bin/bash", repo + "/scripts/install.sh", "/opt/semples"],
                                     environment: ["DESTDIR": dest, "BUILD": binaryFolder()])
        XCTAssertEqual(code, 0, output)
        for path in ["/opt/semples/bin/semplesd", "/opt/semples/bin/semples", "/etc/systemd/system/semplesd.service",
                     "/usr/lib/tmpfiles.d/semples.conf", "/usr/lib/sysusers.d/semples.conf", "/etc/semples/semplesd.yaml",
                     "/var/spool/semples/incoming"] {
            XCTAssertTrue(Sys.exists(dest + path), path)
        }
        let unit = try Sys.readString(dest + "/etc/systemd/system/semplesd.service")
        XCTAssertTrue(unit.contains("ExecStart=/opt/semples/bin/semplesd --config /etc/semples/semplesd.yaml"))
        let config = try SpoolConfig.load(path: dest + "/etc/semples/semplesd.yaml")
        XCTAssertEqual(config.spool, "/var/spool/semples")
        XCTAssertEqual(config.jobCommand, ["/opt/semples/bin/semples", "run", "--log-file", "-"])
        // A second install keeps the admin's configuration.
        try Sys.writeAtomically("spool: /srv/spool\n", to: dest + "/etc/semples/semplesd.yaml")
        let (again, _) = try run(["/bin/bash", repo + "/scripts/install.sh", "/opt/semples"], environment: ["DESTDIR": dest, "BUILD": binaryFolder()])
        XCTAssertEqual(again, 0)
        XCTAssertEqual(try Sys.readString(dest + "/etc/semples/semplesd.yaml"), "spool: /srv/spool\n")
    }

    func testDaemonFindsTheCheckoutConfigWithoutArguments() throws {
        // From the repository root with no arguments the daemon uses etc/semplesd.yaml.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryFolder() + "/semplesd")
        p.arguments = ["--check"]
        p.currentDirectoryURL = URL(fileURLWithPath: NSTemporaryDirectory())
        var env = ProcessInfo.processInfo.environment
        env["SEMPLESD_CONFIG"] = nil
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard Sys.exists(repo + "/Package.swift"), binaryFolder().hasPrefix(repo) else { throw XCTSkip("binaries are not inside the checkout") }
        XCTAssertEqual(p.terminationStatus, 0, out)
        XCTAssertTrue(out.contains("spool: " + repo + "/spool"), out)
    }

    func testDaemonRefusesABadConfiguration() throws {
        let folder = NSTemporaryDirectory() + "semples-badconfig-\(getpid())"
        try Sys.makeDirectories(folder)
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try Sys.writeAtomically("spool: s\nwatch: sometimes\n", to: folder + "/bad.yaml")
        for arguments in [["--config", folder + "/bad.yaml"], ["--config", folder + "/missing.yaml"]] {
            let (code, output) = try run([binaryFolder() + "/semplesd"] + arguments)
            XCTAssertEqual(code, 1, output)
            XCTAssertTrue(output.hasPrefix("<3>"), "journald error priority: \(output)")
        }
        let (_, output) = try run([binaryFolder() + "/semplesd", "--config", folder + "/bad.yaml"])
        XCTAssertTrue(output.contains("key 'watch'"), output)
        XCTAssertFalse(Sys.exists(folder + "/s"), "no spool is created from a bad configuration")
    }
}
