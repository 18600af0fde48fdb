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
        """)

    @Argument(help: "Job output folders.") var folders: [String]

    func run() throws {
        print(folders.map(OutboxSummary.describe).joined(separator: "\n"))
    }
}
