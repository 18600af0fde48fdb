import ArgumentParser
import Foundation
import SemplesPipeline
import SemplesSpool

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job manifest in the foreground.",
        discussion: """
        Writes log.txt, progress.json, the job's outputs and, last, result.json into --out.
        Ctrl-C or SIGTERM stops at the next image boundary; running again with the same --out
        continues where it stopped.

        Exit codes: 0 succeeded, 1 failed, 2 invalid manifest or inputs, 3 stopped (resumable),
        75 lease lost (run by semplesd: another host took the job over).

        Example:
          semples run examples/cam-voc.yaml --out runs/cam-voc
        """)

    @Argument(help: "The job manifest (YAML or JSON).") var manifest: String
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Engine threads (default: all cores, or $SEMPLES_THREADS).") var threads: Int?
    @Option(help: "Log file; '-' for none (default: OUT/log.txt).") var logFile: String?
    @Flag(help: "Do not echo log lines and progress to the terminal.") var quiet = false

    func run() throws {
        StopFlag.shared.installSignalHandlers()
        // Under a daemon on a shared spool: stop without writing once another host took the job over.
        LeaseGuard.watchFromEnvironment()
        let envThreads = ProcessInfo.processInfo.environment["SEMPLES_THREADS"].flatMap(Int.init)
        let code = JobRunner.run(manifestPath: manifest, outputFolder: out, logFile: logFile,
                                 threads: threads ?? envThreads, echo: !quiet)
        if code != .succeeded { throw ExitCode(code.rawValue) }
    }
}
