import ArgumentParser

/// The `semples` command line: runs jobs in the foreground, talks to the spool, and benchmarks.
struct Semples: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "semples",
        abstract: "Semantic prompt learning for weakly-supervised segmentation, on the CPU.",
        discussion: """
        Examples:
          semples run job.yaml --out runs/cam-voc      run a job in the foreground
          semples submit job.yaml                      queue a job for the daemon
          semples status                               what the daemon is doing
          semples bench --json                         engine speed against PyTorch
        """,
        subcommands: commandList
    )
}

Semples.main()
