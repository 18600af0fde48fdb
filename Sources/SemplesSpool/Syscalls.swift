// Every system call the spool makes lives here (the inotify reader aside, in Watcher.swift).
import Glibc

/// A failed system call: which call, on which path, and the errno text.
public struct SystemError: Error, CustomStringConvertible {
    public let call: String
    public let path: String
    public let code: Int32
    public var description: String { "\(call) '\(path)': \(String(cString: strerror(code)))" }
}

/// What `lstat` says about a path.
public struct FileInfo: Equatable {
    public var size: Int64
    public var modified: Double   // seconds since the epoch
    public var inode: UInt64
    public var isRegular: Bool
    public var isDirectory: Bool
    public var isSymlink: Bool
}

/// Every system call the spool makes, in one place. Paths are plain data: nothing here goes through a shell.
public enum Sys {
    static func fail(_ call: String, _ path: String) -> SystemError { SystemError(call: call, path: path, code: errno) }

    /// lstat(2); nil when the path does not exist.
    public static func info(_ path: String) -> FileInfo? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        let kind = st.st_mode & S_IFMT
        return FileInfo(size: Int64(st.st_size),
                        modified: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9,
                        inode: UInt64(st.st_ino), isRegular: kind == S_IFREG,
                        isDirectory: kind == S_IFDIR, isSymlink: kind == S_IFLNK)
    }

    public static func exists(_ path: String) -> Bool { info(path) != nil }

    static let direntNameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// Names in a directory, without "." and "..".
    public static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw fail("opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            // d_name is read where it lies: the kernel's record ends after the name's NUL, so
            // copying the declared 256-byte array would read past the end of the last entry.
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: Self.direntNameOffset)
                .assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// mkdir -p with the given mode for the folders it creates.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o775) throws {
        if info(path)?.isDirectory == true { return }
        let parent = directoryName(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw fail("mkdir", path) }
    }

    /// Reads a whole file, refusing more than `limit` bytes.
    public static func read(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw fail("read", path) }
            if n == 0 { break }
            out.append(contentsOf: buffer[0..<n])
            if out.count > limit { throw SystemError(call: "read", path: path, code: EFBIG) }
        }
        return out
    }

    public static func readString(_ path: String, limit: Int = 64 << 20) throws -> String {
        String(decoding: try read(path, limit: limit), as: UTF8.self)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; throw fail("write", path) }
            offset += n
        }
    }

    /// Writes `bytes` to a temporary name beside `path`, fsyncs it, renames it over `path` and fsyncs
    /// the folder: a reader sees the old file or the whole new one, and a crash keeps one of the two.
    /// With `sync: false` the file and folder are not fsynced (still atomic for readers and against
    /// a crash of this process; a later `syncFilesystem` makes a batch durable at once).
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o664, sync: Bool = true) throws {
        let temporary = directoryName(path) + "/." + baseName(path) + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw fail("open", temporary) }
        do {
            try writeAll(fd, bytes, path: temporary)
            if sync && fsync(fd) != 0 { throw fail("fsync", temporary) }
        } catch { close(fd); unlink(temporary); throw error }
        close(fd)
        if Glibc.rename(temporary, path) != 0 { let e = fail("rename", path); unlink(temporary); throw e }
        if sync { try syncDirectory(directoryName(path)) }
    }

    public static func writeAtomically(_ text: String, to path: String, mode: mode_t = 0o664, sync: Bool = true) throws {
        try writeAtomically(Array(text.utf8), to: path, mode: mode, sync: sync)
    }

    /// Flushes everything written on the filesystem holding `path` (syncfs(2); sync(2) if missing):
    /// one wait for a whole batch instead of one fsync per file.
    public static func syncFilesystem(_ path: String) throws {
        typealias SyncFS = @convention(c) (Int32) -> Int32
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        if let symbol = dlsym(nil, "syncfs") {
            if unsafeBitCast(symbol, to: SyncFS.self)(fd) != 0 { throw fail("syncfs", path) }
        } else {
            Glibc.sync()
        }
    }

    /// Creates `path` only if it does not exist (O_EXCL), fsynced. False when it already exists.
    @discardableResult
    public static func createExclusive(_ path: String, contents: [UInt8] = [], mode: mode_t = 0o664, sync: Bool = true) throws -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { if errno == EEXIST { return false }; throw fail("open", path) }
        defer { close(fd) }
        try writeAll(fd, contents, path: path)
        if sync && fsync(fd) != 0 { throw fail("fsync", path) }
        return true
    }

    /// Appends one line (O_APPEND keeps concurrent writers' lines whole), fdatasynced unless `sync` is false.
    public static func appendLine(_ line: String, to path: String, sync: Bool = true) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o664)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        try writeAll(fd, Array((line + "\n").utf8), path: path)
        if sync { _ = fdatasync(fd) }
    }

    public static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL { throw fail("fsync", path) }
    }

    /// rename(2). Returns false when the source is gone (another process took it first).
    @discardableResult
    public static func rename(_ from: String, _ to: String) throws -> Bool {
        if Glibc.rename(from, to) == 0 { return true }
        if errno == ENOENT { return false }
        throw fail("rename", from + "' -> '" + to)
    }

    /// Renames without replacing an existing target (hard link + unlink); false if the source is gone
    /// or the target exists.
    public static func renameNoReplace(_ from: String, _ to: String) throws -> Bool {
        if link(from, to) != 0 {
            if errno == ENOENT || errno == EEXIST { return false }
            throw fail("link", from + "' -> '" + to)
        }
        unlink(from)
        return true
    }

    @discardableResult
    public static func remove(_ path: String) -> Bool { unlink(path) == 0 }

    /// Sets a file's access and modification times to `time` (this host's clock, not the file
    /// server's); false when the file is gone.
    @discardableResult
    public static func touch(_ path: String, time: Double) -> Bool {
        let seconds = time.rounded(.down)
        let stamp = timespec(tv_sec: Int(seconds), tv_nsec: Int((time - seconds) * 1e9))
        var times = [stamp, stamp]
        return utimensat(AT_FDCWD, path, &times, 0) == 0
    }

    /// Copies a file and fsyncs the copy.
    public static func copy(_ from: String, to: String, limit: Int = 64 << 20) throws {
        try writeAtomically(try read(from, limit: limit), to: to)
    }

    /// Bytes available to unprivileged users on the filesystem holding `path`.
    public static func freeBytes(_ path: String) -> Int64? {
        var v = statvfs()
        guard statvfs(path, &v) == 0 else { return nil }
        return Int64(v.f_bavail) * Int64(v.f_frsize)
    }

    /// The filesystem type holding `path` ("ext4", "nfs4", "cifs", "fuse.sshfs" …), from /proc/self/mountinfo.
    public static func filesystemType(_ path: String) -> String? {
        guard let text = try? readString("/proc/self/mountinfo"), let real = realPath(path) else { return nil }
        var best = ""
        var bestType: String?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            let mount = unescapeMount(String(fields[4]))
            let inside = real == mount || mount == "/" || real.hasPrefix(mount + "/")
            if inside && mount.count >= best.count { best = mount; bestType = String(fields[dash + 1]) }
        }
        return bestType
    }

    static func unescapeMount(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(b[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        return getcwd(&buffer, buffer.count) != nil ? String(cString: buffer) : "."
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        return gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "localhost"
    }

    /// The path of the running executable.
    public static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(cString: buffer) : nil
    }

    // MARK: processes

    /// Starts `arguments[0]` (an absolute path) with `arguments` as argv in a new process group,
    /// stdin from /dev/null and stdout+stderr to `outputFD`. No shell: every argument is passed as is.
    public static func spawn(_ arguments: [String], environment: [String], outputFD: Int32) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t(); sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t(); sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        if rc != 0 { throw SystemError(call: "posix_spawn", path: arguments[0], code: rc) }
        return pid
    }

    /// Signals a whole process group; false if it no longer exists.
    @discardableResult
    public static func signalGroup(_ group: pid_t, _ signal: Int32) -> Bool { group > 0 && kill(-group, signal) == 0 }

    /// Ends the process at once, all threads, without flushing or running anything more (_exit).
    public static func exitImmediately(_ status: Int32) -> Never { _exit(status) }

    /// Runs a command to completion (no shell) and returns its exit status (-1: killed by a signal,
    /// or could not start) with stdout and stderr together, at most `limit` bytes of it.
    public static func runCapturing(_ arguments: [String], limit: Int = 4 << 20) -> (status: Int32, output: String) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return (-1, "pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let child: pid_t
        do { child = try spawn(arguments, environment: currentEnvironment(), outputFD: fds[1]) } catch {
            close(fds[0]); close(fds[1])
            return (-1, "\(error)")
        }
        close(fds[1])
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fds[0], &buffer, buffer.count)
            if n > 0 { if bytes.count < limit { bytes += buffer[0..<n] } ; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        return (code, String(decoding: bytes, as: UTF8.self))
    }

    /// The absolute path of an executable: in `folder` if given, else the first in $PATH.
    public static func findExecutable(_ name: String, in folder: String = "") -> String? {
        let folders = folder.isEmpty ? (environment("PATH") ?? "/usr/bin:/bin").split(separator: ":").map(String.init) : [folder]
        for f in folders where !f.isEmpty {
            let candidate = joinPath(f, name)
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public static func groupAlive(_ group: pid_t) -> Bool { group > 0 && (kill(-group, 0) == 0 || errno == EPERM) }

    public static func processAlive(_ pid: pid_t) -> Bool { pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) }

    /// The start time of a process (clock ticks since boot, field 22 of /proc/PID/stat): with the pid it
    /// names one process, even after pid reuse.
    public static func processStartTime(_ pid: pid_t) -> UInt64? {
        guard let text = try? readString("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Collects every exited child: (pid, wait status).
    public static func reapChildren() -> [(pid: pid_t, status: Int32)] {
        var out: [(pid_t, Int32)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            out.append((pid, status))
        }
        return out
    }

    /// Opens (appending, never truncating) a log file for a child's output.
    public static func openLog(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o664)
        guard fd >= 0 else { throw fail("open", path) }
        return fd
    }

    /// Waits until one of `fds` is readable or `timeout` seconds pass.
    public static func waitReadable(_ fds: [Int32], timeout: Double) -> [Int32] {
        var items = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ms = Int32(max(0, min(timeout, 3600)) * 1000)
        let n = poll(&items, nfds_t(items.count), ms)
        guard n > 0 else { return [] }
        return items.filter { $0.revents != 0 }.map { $0.fd }
    }

    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    public static func sleep(_ seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    /// The process environment as NAME=VALUE strings.
    public static func currentEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee { out.append(String(cString: entry)); p += 1 }
        return out
    }
}

// MARK: systemd notification and signals

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

/// Path helpers on plain strings.
public func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

public func baseName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

public func joinPath(_ a: String, _ b: String) -> String {
    if b.hasPrefix("/") { return b }
    return a.hasSuffix("/") ? a + b : a + "/" + b
}

/// Makes `path` absolute against `base` (a folder).
public func absolutePath(_ path: String, relativeTo base: String) -> String {
    normalizePath(path.hasPrefix("/") ? path : joinPath(base, path))
}

/// Removes "." and "name/.." components of an absolute path, lexically.
public func normalizePath(_ path: String) -> String {
    guard path.hasPrefix("/") else { return path }
    var parts: [Substring] = []
    for part in path.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}
