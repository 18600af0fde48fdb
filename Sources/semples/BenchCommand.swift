import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure engine speed.")
    func run() throws { throw ValidationError("not yet available") }
}
