import Foundation
import Glibc

/// Log priorities, numbered as syslog and journald number them.
public enum LogLevel: Int, Comparable {
    case error = 3, warning = 4, notice = 5, info = 6, debug = 7

    public init?(name: String) {
        switch name.lowercased() {
        case "error", "err": self = .error
        case "warning", "warn": self = .warning
        case "notice": self = .notice
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// Writes one line per message to stderr with a `<N>` prefix, which journald turns into the priority.
public final class Logger {
    public var level: LogLevel
    public init(level: LogLevel) { self.level = level }

    public func log(_ priority: LogLevel, _ message: String) {
        guard priority <= level else { return }
        let clean = message.replacingOccurrences(of: "\n", with: " ")
        let line = "<\(priority.rawValue)>" + clean + "\n"
        _ = line.withCString { fputs($0, stderr) }
    }
    public func error(_ m: String) { log(.error, m) }
    public func warning(_ m: String) { log(.warning, m) }
    public func notice(_ m: String) { log(.notice, m) }
    public func info(_ m: String) { log(.info, m) }
    public func debug(_ m: String) { log(.debug, m) }
}
