import Foundation

/// A human summary of finished job folders: state, time, headline metrics, baselines, and the
/// pictures worth opening (plots, overlays).
public enum OutboxSummary {
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
