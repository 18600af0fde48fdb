import Foundation
import SemplesFormats

/// What a running job writes to: its output folder, its log, its progress file.
public final class JobContext: @unchecked Sendable {
    public let outputFolder: URL
    public let stop: StopFlag
    private let logHandle: FileHandle?
    private let echo: Bool
    private let lock = NSLock()
    private var phase = ""
    private var total = 0
    private var done = 0
    private var resumedFrom = 0
    private var phaseStart = Date()
    private var lastProgressWrite = Date.distantPast
    private var lastTerminalWrite = Date.distantPast
    private let terminal: Bool
    /// The progress file, relative to the output folder (a shard's is `shards/K.progress.json`).
    public let progressName: String

    /// logFile: nil writes `log.txt` in the output folder; "-" writes no log file.
    public init(outputFolder: URL, logFile: String? = nil, echo: Bool = true, stop: StopFlag = .shared,
                progressName: String = "progress.json") throws {
        self.outputFolder = outputFolder
        self.progressName = progressName
        self.stop = stop
        self.echo = echo
        terminal = isatty(STDERR_FILENO) != 0
        try FileManager.default.createDirectory(at: outputFolder, withIntermediateDirectories: true)
        if logFile == "-" {
            logHandle = nil
        } else {
            let path = logFile ?? outputFolder.appendingPathComponent("log.txt").path
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
            }
            guard let h = FileHandle(forWritingAtPath: path) else {
                throw FormatError(path, "cannot open the log for writing")
            }
            h.seekToEndOfFile()
            logHandle = h
        }
    }

    /// One timestamped line to the log file and to stderr.
    public func log(_ message: String) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current,
                                                formatOptions: [.withInternetDateTime])
        let line = "\(stamp) \(message)\n"
        lock.withLock {
            logHandle?.write(Data(line.utf8))
            if echo {
                if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
    }

    /// Starts a counted phase (e.g. "cam", 1464 images, 200 already done from an earlier run).
    public func begin(_ phase: String, total: Int, alreadyDone: Int = 0) {
        lock.withLock {
            self.phase = phase
            self.total = total
            self.done = alreadyDone
            self.resumedFrom = alreadyDone
            self.phaseStart = Date()
        }
        log("\(phase): \(total) to do" + (alreadyDone > 0 ? ", \(alreadyDone) already done by an earlier run" : ""))
        writeProgress(force: true)
    }

    /// Records one more unit done; updates the progress file and the terminal line at most ~2×/s.
    public func advance(by n: Int = 1) {
        lock.withLock { done += n }
        writeProgress(force: false)
    }

    public struct Progress: Codable {
        public var phase: String
        public var done: Int
        public var total: Int
        public var rate: Double
        public var etaSeconds: Double?
        public var updated: Date

        enum CodingKeys: String, CodingKey {
            case phase, done, total, rate, updated
            case etaSeconds = "eta_s"
        }
    }

    public var progress: Progress {
        lock.withLock {
            let elapsed = Date().timeIntervalSince(phaseStart)
            let rate = elapsed > 0 ? Double(done - resumedFrom) / elapsed : 0
            let eta: Double? = rate > 0 ? Double(total - done) / rate : nil
            return Progress(phase: phase, done: done, total: total, rate: rate, etaSeconds: eta, updated: Date())
        }
    }

    func writeProgress(force: Bool) {
        let now = Date()
        let due = lock.withLock { () -> Bool in
            if !force && now.timeIntervalSince(lastProgressWrite) < 0.5 { return false }
            lastProgressWrite = now
            return true
        }
        guard due else { return }
        let p = progress
        if let data = try? JSONCoding.encoder.encode(p) {
            try? AtomicFile.write(data, to: outputFolder.appendingPathComponent(progressName).path)
        }
        if echo && terminal {
            let eta = p.etaSeconds.map { " ETA " + formatDuration($0) } ?? ""
            let line = String(format: "\r\u{1B}[K%@ %d/%d  %.2f/s%@", p.phase, p.done, p.total, p.rate, eta)
            lock.withLock { FileHandle.standardError.write(Data(line.utf8)) }
        }
    }

    /// Throws `JobStopped` if a stop was requested.
    public func checkStop() throws {
        if let reason = stop.reason {
            let p = progress
            throw JobStopped(reason: reason, done: p.done, total: p.total)
        }
    }
}

public enum JSONCoding {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()
}

/// "1h 02m", "3m 20s", "12s".
public func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm %02ds", s / 60, s % 60) }
    return "\(s)s"
}
