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

/// systemd's notification protocol: one datagram per message to $NOTIFY_SOCKET (no libsystemd).
public struct ServiceNotifier {
    let socketPath: String?
    /// Seconds between WATCHDOG=1 messages (half of WATCHDOG_USEC), if the watchdog is on for us.
    public let watchdogInterval: Double?

    public init() {
        socketPath = Sys.environment("NOTIFY_SOCKET").flatMap { $0.isEmpty ? nil : $0 }
        var interval: Double?
        if let usec = Sys.environment("WATCHDOG_USEC").flatMap({ Double($0) }), usec > 0 {
            let pid = Sys.environment("WATCHDOG_PID").flatMap { Int32($0) }
            if pid == nil || pid == getpid() { interval = usec / 2e6 }
        }
        watchdogInterval = interval
    }

    public var enabled: Bool { socketPath != nil }

    /// Sends "KEY=VALUE" lines; silently does nothing without $NOTIFY_SOCKET.
    public func send(_ message: String) {
        guard let path = socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }   // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}

/// Signals delivered as bytes on a pipe, so the daemon's single loop waits on one poll(2).
public enum SignalPipe {
    nonisolated(unsafe) static var writeFD: Int32 = -1
    nonisolated(unsafe) public private(set) static var readFD: Int32 = -1

    /// Installs handlers for `signals`; each delivery writes the signal number to the pipe.
    public static func install(_ signals: [Int32]) {
        if readFD < 0 {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
            readFD = fds[0]; writeFD = fds[1]
        }
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: signal)
                _ = write(SignalPipe.writeFD, &byte, 1)
                errno = saved
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(s, &action, nil)
        }
        signal(SIGPIPE, SIG_IGN)
    }

    /// The signals received since the last call.
    public static func drain() -> [Int32] {
        var out: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(readFD, &buffer, buffer.count)
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n].map { Int32($0) })
        }
        return out
    }
}
