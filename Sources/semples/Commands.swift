import ArgumentParser

/// Every subcommand of `semples`; each lives in its own file.
let commandList: [ParsableCommand.Type] = [
    RunCommand.self,
    BenchCommand.self,
    ClipCommand.self,
]
