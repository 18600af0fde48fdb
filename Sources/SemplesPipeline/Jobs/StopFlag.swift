import Foundation

/// Set by SIGTERM/SIGINT; long loops check it at safe points (image or step boundaries).
public final class StopFlag: @unchecked Sendable {
    public static let shared = StopFlag()
    private let lock = NSLock()
    private var signalName: String?
    private var sources: [DispatchSourceSignal] = []

    public var isSet: Bool { lock.withLock { signalName != nil } }
    public var reason: String? { lock.withLock { signalName } }

    public func set(_ reason: String) { lock.withLock { if signalName == nil { signalName = reason } } }

    /// Routes SIGTERM and SIGINT to this flag instead of killing the process. A second SIGINT
    /// (Ctrl-C twice) exits at once.
    public func installSignalHandlers() {
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if sig == SIGINT && self.isSet { _exit(130) }
                self.set(name)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// Thrown out of a job loop when a stop was requested; the job's outputs so far are complete files
/// and a later run with the same output folder continues.
public struct JobStopped: Error, CustomStringConvertible {
    public let reason: String
    public let done: Int
    public let total: Int
    public var description: String { "stopped by \(reason) after \(done) of \(total); run again with the same --out to continue" }
}
