import Foundation

/// A human summary of finished job folders: state, time, headline metrics, baselines, and the
/// pictures worth opening (plots, overlays).
public enum OutboxSummary {
    /// What `semples summary --json` prints per folder. `miou` and `cooccurrence` (percent) are
    /// present for a pipeline with a report: {"weaktr": base, "semples": stage (c)}.
    public struct Record: Codable {
        public var folder: String
        public var job: String?
        public var state: String
        public var seconds: Double
        public var metrics: [String: Double]
        public var miou: [String: Double]?
        public var cooccurrence: [String: Double]?
        public var error: String?
    }

    /// The record of one finished folder, nil without result.json.
    public static func record(_ folder: String) -> Record? {
        let url = URL(fileURLWithPath: folder)
        guard let data = FileManager.default.contents(atPath: url.appendingPathComponent("result.json").path),
              let result = try? JSONCoding.decoder.decode(JobResult.self, from: data) else { return nil }
        let m = result.metrics
        func percent(_ v: Double) -> Double { (v * 10_000).rounded() / 100 }
        var record = Record(folder: folder, job: result.job, state: result.state, seconds: result.seconds, metrics: m,
                            error: result.error)
        if let base = m["miou_weaktr"] ?? m["report.miou_weaktr"], let semples = m["report.miou_semples"] ?? m["miou"] {
            record.miou = ["weaktr": percent(base), "semples": percent(semples)]
            if let a = m["report.miou_a"] { record.miou!["stage_a"] = percent(a) }
        }
        if let base = m["report.cooccurrence_weaktr"], let semples = m["report.cooccurrence_semples"] {
            record.cooccurrence = ["weaktr": percent(base), "semples": percent(semples)]
        }
        return record
    }

    /// JSON of the folders' records: one object for one folder, else an array.
    public static func json(_ folders: [String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let records = folders.map { f in
            record(f) ?? Record(folder: f, job: nil, state: "unfinished", seconds: 0, metrics: [:],
                                error: "no result.json (not finished, or not a job folder)")
        }
        let data = records.count == 1 ? try encoder.encode(records[0]) : try encoder.encode(records)
        return String(decoding: data, as: UTF8.self)
    }

    public static func describe(_ folder: String) -> String {
        let url = URL(fileURLWithPath: folder)
        var lines: [String] = []
        guard let data = FileManager.default.contents(atPath: url.appendingPathComponent("result.json").path),
              let result = try? JSONCoding.decoder.decode(JobResult.self, from: data) else {
            return "'\(folder)': no result.json (not finished, or not a job folder)"
        }
        lines.append("'\(folder)': \(result.job ?? "job") \(result.state) in \(formatDuration(result.seconds))")
        if let error = result.error { lines.append("  error: \(error)") }
        let m = result.metrics
        if let miou = m["miou"] {
            var line = String(format: "  CAM mIoU %.2f%%", miou * 100)
            if let t = m["threshold"] { line += String(format: " at background threshold %.2f", t) }
            if let n = m["images"] { line += " over \(Int(n)) images" }
            lines.append(line)
        }
        if let bg = m["baseline_all_background_miou"], let lab = m["baseline_label_everywhere_miou"] {
            lines.append(String(format: "  baselines: all background %.2f%%, labelled class everywhere %.2f%%", bg * 100, lab * 100))
        }
        if let best = m["best_miou"] ?? m["best_mIoU"] {
            lines.append(String(format: "  best per-epoch CAM mIoU %.2f%%", best * 100))
        }
        for (key, value) in m.sorted(by: { $0.key < $1.key })
        where !["miou", "threshold", "images", "baseline_all_background_miou", "baseline_label_everywhere_miou", "best_miou", "best_mIoU"].contains(key) {
            lines.append("  \(key): \(value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(format: "%.4g", value))")
        }
        let fm = FileManager.default
        let pictures = (fm.enumerator(atPath: folder)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".png") }.sorted()
        let plots = pictures.filter { !$0.hasPrefix("overlays/") && !$0.hasPrefix("masks/") && !$0.contains("/overlays/") }
        for p in plots.prefix(6) { lines.append("  plot: \(url.appendingPathComponent(p).path)") }
        let overlays = pictures.filter { $0.hasPrefix("overlays/") || $0.contains("/overlays/") }
        if !overlays.isEmpty {
            lines.append("  heat-map overlays: \(overlays.count) in \(url.appendingPathComponent(overlays[0]).deletingLastPathComponent().path), e.g. \(URL(fileURLWithPath: overlays[0]).lastPathComponent)")
        }
        return lines.joined(separator: "\n")
    }
}
