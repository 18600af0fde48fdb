import Foundation

/// Runs the PyTorch side of a benchmark (a script in `scripts/`) with a Python that has torch,
/// and decodes its JSON output. Absent Python or torch is not an error: the figures are then
/// reported for semples alone.
public struct TorchReference {
    public let python: String
    public let scriptsFolder: String

    /// Finds a Python with torch: `explicit`, then $SEMPLES_PYTHON, then `.venv-torch/bin/python`
    /// in the project folder. Returns nil (with the reason) when none works.
    public static func locate(explicit: String?, projectFolder: String?) -> (reference: TorchReference?, reason: String) {
        guard let project = projectFolder else {
            return (nil, "the scripts/ folder was not found (run from the project folder or pass --project)")
        }
        var candidates: [String] = []
        if let explicit { candidates.append(explicit) }
        if let env = ProcessInfo.processInfo.environment["SEMPLES_PYTHON"], !env.isEmpty { candidates.append(env) }
        candidates.append(project + "/.venv-torch/bin/python")
        for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
            if let out = try? runProcess(python, ["-c", "import torch; print(torch.__version__)"]), out.status == 0 {
                return (TorchReference(python: python, scriptsFolder: project + "/scripts"), "torch \(out.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        return (nil, "no Python with torch (tried \(candidates.joined(separator: ", "))); run scripts/setup-torch.sh")
    }

    /// The project folder: the first folder holding scripts/bench_torch.py, searched upward from
    /// the current directory and from the executable's location.
    public static func findProjectFolder() -> String? {
        var starts = [FileManager.default.currentDirectoryPath]
        starts.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path)
        for start in starts {
            var url = URL(fileURLWithPath: start).standardizedFileURL
            for _ in 0..<8 {
                if FileManager.default.fileExists(atPath: url.appendingPathComponent("scripts/bench_torch.py").path) {
                    return url.path
                }
                let parent = url.deletingLastPathComponent()
                if parent.path == url.path { break }
                url = parent
            }
        }
        return nil
    }

    /// Runs `scripts/NAME` with arguments and decodes its standard output as JSON.
    public func run<T: Decodable>(_ script: String, _ arguments: [String], as type: T.Type) throws -> T {
        let out = try runProcess(python, [scriptsFolder + "/" + script] + arguments)
        guard out.status == 0 else {
            throw InputError("'\(script)' exited with \(out.status): \(out.stderr.suffix(800))")
        }
        // The JSON object is the last line that starts with '{'.
        guard let line = out.stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw InputError("'\(script)' printed no JSON")
        }
        return try JSONDecoder().decode(T.self, from: Data(line.utf8))
    }
}

/// Runs a program (no shell) and collects its output.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
    -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let outPipe = Pipe(), errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    try process.run()
    // Drain stderr on another thread so that neither pipe can fill and block the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}
