import ArgumentParser
import SemplesPipeline

struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Summarise finished job folders: state, metrics, baselines, plots.",
        discussion: """
        Reads result.json in each folder (a job's outbox or a 'semples run --out' folder) and lists
        the headline figures and the pictures worth opening.

        Example:
          semples summary spool/outbox/demo-evaluate-*
          semples summary --json spool/outbox/demo-pipeline-*   # {"miou": {"weaktr": …, "semples": …}, …}
        """)

    @Argument(help: "Job output folders.") var folders: [String]
    @Flag(help: "Print JSON: state, metrics and, for a pipeline with a report, miou and cooccurrence (percent).")
    var json = false

    func run() throws {
        if json {
            print(try OutboxSummary.json(folders))
        } else {
            print(folders.map(OutboxSummary.describe).joined(separator: "\n"))
        }
    }
}
