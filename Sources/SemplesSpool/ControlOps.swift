import Foundation
import Glibc

extension Daemon {
    /// Answers the requests in control/. Each is taken by renaming it to a dot-name, so of two
    /// daemons only one answers.
    func processControl() {
        let now = Sys.now()
        for file in ((try? Sys.list(layout.control)) ?? []) {
            if file.hasPrefix(".reply-"), let info = Sys.info(layout.control + "/" + file), now - info.modified > 600 {
                Sys.remove(layout.control + "/" + file)   // nobody came for it
                continue
            }
            guard !file.hasPrefix("."), file.hasSuffix(".json") else { continue }
            let token = String(file.dropLast(5))
            let taken = layout.control + "/.taken-" + token + "-\(pid)"
            guard (try? Sys.rename(layout.control + "/" + file, taken)) == true else { continue }
            let reply: ControlReply
            if let bytes = try? Sys.read(taken, limit: 1 << 16),
               let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(bytes)) {
                reply = perform(request)
                log.notice("request \(request.op) '\(request.job)' from \(request.user ?? "unknown"): \(reply.message)")
            } else {
                reply = ControlReply(ok: false, id: nil, state: nil, message: "control/\(file): not a valid request (expected JSON with op and job)")
                log.warning(reply.message + ", skipping")
            }
            if let data = try? JSONEncoder().encode(reply) {
                try? Sys.writeAtomically([UInt8](data), to: layout.control + "/.reply-" + token + ".json", mode: 0o664)
            }
            Sys.remove(taken)
        }
    }

    func perform(_ request: ControlRequest) -> ControlReply {
        let id: String
        switch store.resolve(request.job) {
        case .success(let found): id = found
        case .failure(let problem): return ControlReply(ok: false, id: nil, state: nil, message: "\(problem)")
        }
        let by = request.user.map { "by \($0)" } ?? "by request"
        switch request.op {
        case "cancel": return cancel(id, by: by)
        case "hold": return hold(id, by: by)
        case "release": return release(id, by: by)
        case "retry": return retry(id, by: by)
        default:
            return ControlReply(ok: false, id: id, state: nil, message: "unknown operation '\(request.op)' (cancel, hold, release, retry)")
        }
    }

    func reply(_ id: String, ok: Bool, _ message: String) -> ControlReply {
        ControlReply(ok: ok, id: id, state: store.load(id)?.state.rawValue, message: message)
    }

    func cancel(_ id: String, by: String) -> ControlReply {
        guard let record = store.load(id) else { return reply(id, ok: false, "job \(id) has no record") }
        if record.state.isTerminal { return reply(id, ok: false, "job \(id) already \(record.state.rawValue)") }
        _ = try? Sys.createExclusive(layout.cancels + "/" + id)
        journal(id, "cancel-requested", by)
        processCancels()
        let now = store.load(id)?.state ?? record.state
        return reply(id, ok: true, now == .cancelled ? "job \(id) cancelled" : "job \(id) is being cancelled (SIGTERM, then SIGKILL after \(Int(config.cancelGrace)) s)")
    }

    func hold(_ id: String, by: String) -> ControlReply {
        if (try? Sys.rename(layout.queue + "/" + id, layout.held + "/" + id)) == true, var record = store.load(id) {
            record.state = .held
            record.reason = "held \(by); 'semples release \(id)' lets it run"
            try? store.save(record)
            journal(id, "held", by)
            return reply(id, ok: true, "job \(id) held")
        }
        switch store.ticket(id) {
        case .held: return reply(id, ok: true, "job \(id) was already held")
        case .running: return reply(id, ok: false, "job \(id) is running; cancel it instead, or let it finish")
        default:
            let state = store.load(id)?.state.rawValue ?? "unknown"
            return reply(id, ok: false, "job \(id) is \(state); only queued jobs can be held")
        }
    }

    func release(_ id: String, by: String) -> ControlReply {
        // Rewrite the record while the ticket is still in held/ (nobody starts a held job), then move it.
        guard store.ticket(id) == .held, var record = store.load(id) else {
            let state = store.load(id)?.state.rawValue ?? "unknown"
            return reply(id, ok: false, "job \(id) is \(state), not held")
        }
        record.state = (record.notBefore ?? 0) > Sys.now() ? .retrying : .queued
        record.reason = "released \(by)"
        try? store.save(record)
        guard (try? Sys.rename(layout.held + "/" + id, layout.queue + "/" + id)) == true else {
            return reply(id, ok: false, "job \(id) changed meanwhile; try again")
        }
        journal(id, record.state.rawValue, "released \(by)")
        return reply(id, ok: true, "job \(id) released")
    }

    func retry(_ id: String, by: String) -> ControlReply {
        guard var record = store.load(id) else { return reply(id, ok: false, "job \(id) has no record") }
        switch (record.state, store.ticket(id)) {
        case (.failed, .none), (.cancelled, .none):
            let outbox = outboxPath(record)
            if Sys.exists(outbox + "/result.json") {
                var n = 1
                while Sys.exists(outbox + "/result-\(record.state.rawValue)-\(n).json") { n += 1 }
                _ = try? Sys.rename(outbox + "/result.json", outbox + "/result-\(record.state.rawValue)-\(n).json")
            }
            record.state = .queued
            record.retryBase = record.attempts
            record.reason = "retry requested \(by)"
            record.error = nil
            record.finished = nil
            record.notBefore = nil
            do {
                try store.save(record)
                try Sys.createExclusive(layout.queue + "/" + id)
            } catch { return reply(id, ok: false, "cannot queue job \(id) again: \(error)") }
            Sys.remove(layout.cancels + "/" + id)
            journal(id, "queued", "retry requested \(by)")
            return reply(id, ok: true, "job \(id) queued again")
        case (_, .queued):
            // Take the ticket into held/ while the record changes, so no daemon starts it half-way.
            guard (try? Sys.rename(layout.queue + "/" + id, layout.held + "/" + id)) == true, var fresh = store.load(id) else {
                return reply(id, ok: false, "job \(id) changed meanwhile; try again")
            }
            fresh.state = .queued
            fresh.notBefore = nil
            fresh.reason = "retry now requested \(by)"
            try? store.save(fresh)
            _ = try? Sys.rename(layout.held + "/" + id, layout.queue + "/" + id)
            notBefore[id] = nil
            journal(id, "queued", "retry now requested \(by)")
            return reply(id, ok: true, "job \(id) will run as soon as a slot is free")
        case (_, .held):
            return release(id, by: by)
        default:
            return reply(id, ok: false, "job \(id) is \(record.state.rawValue); only failed, cancelled, waiting or held jobs can be retried")
        }
    }
}
