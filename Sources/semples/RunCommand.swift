import ArgumentParser

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a job manifest in the foreground.")
    @Argument(help: "The job manifest (YAML or JSON).") var manifest: String
    @Option(help: "Output folder.") var out: String
    func run() throws { throw ValidationError("not yet available") }
}
