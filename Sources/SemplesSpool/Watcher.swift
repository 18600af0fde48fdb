import Glibc

/// What one read of the inotify queue reported.
public struct WatchEvents {
    /// Names that changed in incoming/ (created, written, attributes).
    public var changed: Set<String> = []
    /// Names renamed into incoming/: complete by the writer's promise.
    public var movedIn: Set<String> = []
    /// Something happened in control/.
    public var control = false
    /// The kernel queue overflowed: events were lost, rescan everything.
    public var overflow = false
}

/// inotify on incoming/ and control/. Armed before the first scan, so nothing that arrives during
/// the scan is missed; the periodic rescans and the overflow rescan cover what the queue drops.
public final class InotifyWatcher {
    public let fd: Int32
    var incomingWatch: Int32 = -1
    var controlWatch: Int32 = -1

    public init(incoming: String, control: String) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw Sys.fail("inotify_init1", incoming) }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_ATTRIB)
        incomingWatch = inotify_add_watch(fd, incoming, mask)
        guard incomingWatch >= 0 else { let e = Sys.fail("inotify_add_watch", incoming); close(fd); throw e }
        controlWatch = inotify_add_watch(fd, control, UInt32(IN_CLOSE_WRITE | IN_MOVED_TO))
        guard controlWatch >= 0 else { let e = Sys.fail("inotify_add_watch", control); close(fd); throw e }
    }

    deinit { close(fd) }

    /// Reads every queued event without blocking.
    public func drain() -> WatchEvents {
        var events = WatchEvents()
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let base = raw.baseAddress! + offset
                    return (base.loadUnaligned(as: Int32.self), base.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
                            Int(base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
                }
                let nameBytes = buffer[(offset + header)..<min(n, offset + header + length)]
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                offset += header + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { events.overflow = true; continue }
                if wd == controlWatch { events.control = true; continue }
                guard wd == incomingWatch, !name.isEmpty else { continue }
                if mask & UInt32(IN_MOVED_TO) != 0 { events.movedIn.insert(name) } else { events.changed.insert(name) }
            }
        }
        return events
    }
}

/// Filesystems where inotify does not see other hosts' writes; the watcher polls on these.
public let networkFilesystems: Set<String> = [
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs", "gpfs",
    "beegfs", "virtiofs", "davfs", "ncpfs", "orangefs",
]

/// True when `type` (a /proc/self/mountinfo type) is a network or FUSE filesystem.
public func isNetworkFilesystem(_ type: String?) -> Bool {
    guard let t = type else { return false }
    return networkFilesystems.contains(t) || t == "fuse" || t.hasPrefix("fuse.") || t == "fuseblk"
}
