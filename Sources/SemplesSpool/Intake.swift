import Foundation
import Glibc

/// Which names in incoming/ are never manifests: dot-files and editors' or copiers' temporary files.
public func isIgnoredIncomingName(_ name: String) -> Bool {
    if name.hasPrefix(".") || name.hasPrefix("#") || name.hasSuffix("~") { return true }
    let lower = name.lowercased()
    for suffix in [".tmp", ".part", ".partial", ".swp", ".swx", ".crdownload", ".filepart"] where lower.hasSuffix(suffix) { return true }
    return false
}

/// Extensions a manifest may have.
public let manifestExtensions = [".yaml", ".yml", ".json"]

func manifestExtension(_ name: String) -> String? {
    let lower = name.lowercased()
    return manifestExtensions.first { lower.hasSuffix($0) }
}

/// The longest submitted name accepted (the claimed file's name adds the ID and owner).
let maxNameBytes = 160

extension Daemon {
    /// Notes a name reported by inotify or found by a scan.
    func observe(_ name: String, movedIn: Bool, now: Double) {
        guard !isIgnoredIncomingName(name) else { return }
        guard let info = Sys.info(layout.incoming + "/" + name) else { candidates[name] = nil; return }
        if info.isDirectory {
            if !ignoredFolders.contains(name) {
                ignoredFolders.insert(name)
                log.warning("'\(name)' in incoming/ is a folder; only manifest files are taken, skipping")
            }
            return
        }
        if var c = candidates[name] {
            if c.size != info.size || c.modified != info.modified || c.inode != info.inode {
                c = Candidate(size: info.size, modified: info.modified, inode: info.inode, since: now, movedIn: movedIn)
            } else if movedIn { c.movedIn = true }
            candidates[name] = c
        } else {
            candidates[name] = Candidate(size: info.size, modified: info.modified, inode: info.inode, since: now, movedIn: movedIn)
        }
    }

    /// Lists incoming/ and refreshes every candidate; names that vanished are forgotten.
    func scanIncoming() {
        let names: [String]
        do { names = try Sys.list(layout.incoming) } catch {
            log.error("cannot list '\(layout.incoming)': \(error), retrying")
            return
        }
        let now = Sys.now()
        let present = Set(names)
        for name in candidates.keys where !present.contains(name) { candidates[name] = nil }
        ignoredFolders = ignoredFolders.intersection(present)
        for name in names { observe(name, movedIn: false, now: now) }
    }

    /// Claims and accepts (or rejects) the candidates that are complete, at most a batch per round
    /// so signals and job exits are still handled during a burst.
    func intake(now: Double) {
        intakeBacklog = false
        var budget = 200
        var ready: [(name: String, modified: Double)] = []
        for (name, candidate) in candidates {
            if budget == 0 { intakeBacklog = true; break }
            if diskHold != nil && !name.hasSuffix(".cancel") { continue }   // held: only cancel requests get through
            let path = layout.incoming + "/" + name
            guard let info = Sys.info(path) else { candidates[name] = nil; continue }
            if info.size != candidate.size || info.modified != candidate.modified || info.inode != candidate.inode {
                observe(name, movedIn: false, now: now)
                continue
            }
            if name.hasSuffix(".cancel") {
                handleCancelFile(name)
                candidates[name] = nil
                budget -= 1
                continue
            }
            let stableFor = now - candidate.since
            let local = !isNetworkFilesystem(filesystem)   // mtimes from another host's clock are not compared with ours
            let settled = candidate.movedIn || stableFor >= config.settle || (local && now - info.modified >= config.settle)
            guard settled else { continue }
            // A file written in place may parse only once complete: wait while it still fails to
            // parse, up to three settle periods, before rejecting it.
            let unchangedFor = max(stableFor, local ? now - info.modified : 0)
            if !candidate.movedIn && info.isRegular && info.size <= Int64(config.maxManifestBytes),
               unchangedFor < 3 * max(config.settle, 0.2) {
                do { _ = try ManifestCheck.validate(path: path, folder: layout.incoming, limit: config.maxManifestBytes) } catch let p as ManifestProblem where p.kind == .syntax {
                    continue
                } catch {}
            }
            candidates[name] = nil
            budget -= 1
            ready.append((name, info.modified))
        }
        guard !ready.isEmpty else { return }
        // Oldest first, so jobs queue in the order their files arrived.
        ready.sort { ($0.modified, $0.name) < ($1.modified, $1.name) }
        let claimed = ready.compactMap { claim($0.name) }
        guard !claimed.isEmpty else { return }
        crashPoint("claimed")
        commit(claimed.compactMap { prepare(file: $0) })
    }

    /// Claims one file by renaming it into .state/claimed/ID@HOST@PID@START@NAME; nil if another
    /// daemon took it first.
    func claim(_ name: String) -> String? {
        let file = "\(uniqueID())@\(ownerTag)@\(name)"
        do {
            guard try Sys.rename(layout.incoming + "/" + name, layout.claimed + "/" + file) else { return nil }
        } catch {
            log.error("cannot claim '\(name)': \(error), retrying")
            return nil
        }
        return file
    }

    /// A job ID no daemon on this spool has used: reserved by creating `.state/ids/ID` exclusively
    /// (two claims in the same millisecond may draw the same random bits).
    func uniqueID() -> String {
        while true {
            let id = newJobID()
            if (try? Sys.createExclusive(layout.ids + "/" + id, sync: false)) == true { return id }
            if !Sys.exists(layout.ids) { _ = try? Sys.makeDirectories(layout.ids, mode: 0o755) }
        }
    }

    /// Finishes intake of one claimed file (used by recovery, from whatever step it reached).
    func accept(file: String) {
        if let prepared = prepare(file: file) { commit([prepared]) }
    }

    /// A claimed file whose job files are written but not yet durable.
    struct Prepared { let file: String, id: String, name: String }

    /// Validates a claimed file; rejects it, or writes its outbox, run manifest, record and ticket
    /// (atomically each, durable only at `commit`).
    func prepare(file: String) -> Prepared? {
        let parts = file.split(separator: "@", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5 else { log.warning("unexpected file '\(file)' in \(layout.claimed), skipping"); return nil }
        let id = String(parts[0]), name = String(parts[4])
        let path = layout.claimed + "/" + file
        // Adopted meanwhile by a daemon that presumed this one gone (it was paused): theirs now.
        guard Sys.exists(path) else { log.warning("claimed file '\(file)' was adopted by another daemon, skipping"); return nil }
        let ext = manifestExtension(name)
        var summary: ManifestSummary?
        do {
            if name.utf8.count > maxNameBytes {
                throw ManifestProblem(kind: .content, file: name, detail: "name is \(name.utf8.count) bytes long, more than \(maxNameBytes); use a shorter name")
            }
            guard ext != nil else {
                throw ManifestProblem(kind: .content, file: name, detail: "not a manifest: expected a name ending in .yaml, .yml or .json")
            }
            summary = try ManifestCheck.validate(path: path, name: name, folder: layout.incoming, limit: config.maxManifestBytes)
        } catch {
            reject(name: name, path: path, id: id, problem: "\(error)")
            return nil
        }
        do {
            let outboxName = stem(name) + "-" + id
            let outboxPath = layout.outbox + "/" + outboxName
            try Sys.makeDirectories(outboxPath, mode: 0o775)
            let bytes = try Sys.read(path, limit: config.maxManifestBytes)
            try Sys.writeAtomically(bytes, to: outboxPath + "/manifest" + ext!, mode: 0o664, sync: false)
            // The copy the job runs: relative paths were taken from incoming/, so they are made
            // absolute. Written before the ticket exists, so no daemon can start the job without it.
            let runManifest = "manifests/" + id + ext!
            let runBytes = summary.map { ManifestCheck.resolvingPaths(bytes, manifest: $0.manifest) } ?? bytes
            try Sys.writeAtomically(runBytes, to: layout.state + "/" + runManifest, mode: 0o644, sync: false)
            crashPoint("outbox")
            if store.load(id) == nil {
                var record = JobRecord(id: id, name: name, outbox: outboxName, manifest: runManifest,
                                       state: .queued, submitted: Sys.now())
                record.fingerprint = fingerprint(bytes)
                record.size = bytes.count
                record.inode = Sys.info(path)?.inode
                record.reason = summary.map { "\($0.job) job" }
                try store.save(record, sync: false)
            }
            crashPoint("record")
            if store.ticket(id) == .none, store.load(id)?.state == .queued {
                try Sys.createExclusive(layout.queue + "/" + id, sync: false)
            }
            return Prepared(file: file, id: id, name: name)
        } catch {
            log.error("cannot accept '\(name)' (job \(id)): \(error), retrying at the next recovery")
            return nil
        }
    }

    /// Makes a batch of accepted jobs durable with one syncfs, then removes their claimed files.
    func commit(_ batch: [Prepared]) {
        guard !batch.isEmpty else { return }
        crashPoint("ticket")
        for p in batch { journal(p.id, "queued", "accepted '\(p.name)'", sync: false) }
        do { try Sys.syncFilesystem(layout.state) } catch {
            log.error("cannot flush the spool's filesystem: \(error); the claimed files stay and are retried")
            return
        }
        for p in batch {
            Sys.remove(layout.claimed + "/" + p.file)
            log.info("accepted '\(p.name)' as job \(p.id)")
        }
        statusDirty = true
    }

    /// Moves a refused file to rejected/ with NAME.error.txt beside it (the reason first, then the file).
    func reject(name: String, path: String, id: String, problem: String) {
        var target = name
        if Sys.exists(layout.rejected + "/" + target) || Sys.exists(layout.rejected + "/" + stem(target) + ".error.txt") {
            target = stem(name) + "-" + id + (manifestExtension(name) ?? "")
            if manifestExtension(name) == nil { target = name + "-" + id }
        }
        let text = "'\(name)' was rejected at \(isoTime(Sys.now())) by semplesd on \(host):\n\(problem)\nFix the file and submit it again.\n"
        do {
            // Not fsynced: after a power loss the file is simply claimed and rejected again.
            try Sys.writeAtomically(text, to: layout.rejected + "/" + stem(target) + ".error.txt", mode: 0o664, sync: false)
            try Sys.rename(path, layout.rejected + "/" + target)
        } catch {
            log.error("cannot move '\(name)' to rejected/: \(error), retrying at the next rescan")
            return
        }
        journal(id, "rejected", problem, sync: false)
        log.warning("rejected '\(name)': \(problem)")
    }

    /// `ID.cancel` dropped in incoming/: a cancel request for that job.
    func handleCancelFile(_ name: String) {
        let query = String(name.dropLast(".cancel".count))
        let path = layout.incoming + "/" + name
        switch store.resolve(query) {
        case .success(let id):
            do {
                try Sys.createExclusive(layout.cancels + "/" + id)
                Sys.remove(path)
                journal(id, "cancel-requested", "'\(name)' dropped in incoming/")
                log.notice("cancel requested for job \(id) by '\(name)'")
            } catch { log.error("cannot record the cancel request '\(name)': \(error), retrying") }
        case .failure(let problem):
            let id = uniqueID()
            let claimed = layout.claimed + "/\(id)@\(ownerTag)@\(name)"
            if (try? Sys.rename(path, claimed)) == true { reject(name: name, path: claimed, id: id, problem: "cancel request: \(problem)") }
        }
    }
}
