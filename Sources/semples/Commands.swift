import ArgumentParser

/// Every subcommand of `semples`; each lives in its own file.
let commandList: [ParsableCommand.Type] = [
    RunCommand.self,
    BenchCommand.self,
    MakeDatasetCommand.self,
    ClipCommand.self,
    SubmitCommand.self,
    StatusCommand.self,
    ShowCommand.self,
    LogsCommand.self,
    CancelCommand.self,
    HoldCommand.self,
    ReleaseCommand.self,
    RetryCommand.self,
    ValidateCommand.self,
]
