import ArgumentParser
import Glibc
import SemplesSpool

/// `semplesd`: the spool daemon. All logic lives in SemplesSpool; this is argument parsing only.
struct SemplesDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "semplesd",
        abstract: "Run queued semples jobs from a spool folder.",
        discussion: """
        Watches SPOOL/incoming/ for job manifests, runs each as `semples run MANIFEST --out SPOOL/outbox/NAME-ID` and writes result.json there. Without --config it uses $SEMPLESD_CONFIG, ./etc/semplesd.yaml, the checkout's etc/semplesd.yaml (so a checkout needs no set-up) or /etc/semples/semplesd.yaml.

        Signals: SIGTERM/SIGINT stop (running jobs are asked to checkpoint and requeued), SIGHUP reloads the configuration (an invalid one is refused and the old one kept).

        Examples:
          semplesd                                  run on the checkout's spool/
          semplesd --config /etc/semples/semplesd.yaml
          semplesd --check --config etc/semplesd.yaml   check a configuration and exit
          semplesd --host-id node2                  a second daemon on a shared spool

        Exit status:
          0   stopped cleanly
          1   bad configuration, or the spool is not usable
        """)

    @Option(name: .long, help: "The configuration file (YAML).") var config: String?
    @Option(name: .long, help: "The name this daemon goes by on a shared spool (overrides host_id; default the host name).") var hostId: String?
    @Flag(name: .long, help: "Check the configuration, print what it resolves to, and exit.") var check = false

    func run() throws {
        guard let path = config ?? SpoolConfig.defaultPath() else {
            fputs("<3>semplesd: no configuration found: pass --config FILE, set SEMPLESD_CONFIG, or install /etc/semples/semplesd.yaml\n", stderr)
            throw ExitCode(1)
        }
        var loaded: SpoolConfig
        do {
            loaded = try SpoolConfig.load(path: path)
            if let id = hostId { try loaded.setHostID(id, from: "--host-id") }
        } catch {
            fputs("<3>semplesd: \(error)\n", stderr)
            throw ExitCode(1)
        }
        if check {
            print("configuration '\(loaded.sourcePath ?? path)' is valid")
            print("spool: \(loaded.spool)")
            print("watch: \(loaded.watch.rawValue), settle \(loaded.settle) s, rescan every \(loaded.rescanInterval) s")
            print("host: \(loaded.hostID ?? "(the host name)"), heartbeat \(loaded.heartbeat) s, executor \(loaded.executor.rawValue)")
            print("jobs: \(loaded.concurrentJobs) at a time, command \(loaded.resolvedJobCommand().joined(separator: " "))")
            return
        }
        let status = Daemon(config: loaded).run()
        if status != 0 { throw ExitCode(status) }
    }
}

SemplesDaemon.main()
