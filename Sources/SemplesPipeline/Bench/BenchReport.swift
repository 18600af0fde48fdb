import Foundation

/// One line of `semples bench`: a semples figure beside the same figure measured in PyTorch.
public struct BenchLine: Codable, Equatable {
    public var section: String
    public var name: String
    public var unit: String              // "ms", "images/s", "GFLOP/s", "MB"
    public var semples: Double
    public var torch: Double?
    /// > 1 means semples is better (faster, or less memory).
    public var ratio: Double?
    public var note: String?
    /// Heap allocations per timed iteration on the semples side (nil where not counted).
    public var allocations: Double?

    public init(section: String, name: String, unit: String, semples: Double, torch: Double? = nil,
                higherIsBetter: Bool = false, note: String? = nil, allocations: Double? = nil) {
        self.section = section
        self.name = name
        self.unit = unit
        self.semples = semples
        self.torch = torch
        if let torch, torch > 0, semples > 0 {
            ratio = higherIsBetter ? semples / torch : torch / semples
        }
        self.note = note
        self.allocations = allocations
    }
}

public struct BenchReport: Codable {
    public var threads: Int
    public var torch: String?
    /// The GEMM backend semples ran on, e.g. "OpenBLAS 0.3.21 … Zen".
    public var blas: String?
    public var lines: [BenchLine]

    public init(threads: Int, torch: String?, blas: String? = nil, lines: [BenchLine]) {
        self.threads = threads
        self.torch = torch
        self.blas = blas
        self.lines = lines
    }

    /// A fixed-width table for the terminal.
    public func table() -> String {
        var rows = [["figure", "unit", "semples", "PyTorch", "ratio", "allocs"]]
        for l in lines {
            rows.append([l.section + "/" + l.name, l.unit, Self.format(l.semples),
                         l.torch.map(Self.format) ?? "-", l.ratio.map { String(format: "%.2f×", $0) } ?? "-",
                         l.allocations.map { $0 == $0.rounded() ? String(Int($0)) : String(format: "%.1f", $0) } ?? "-"])
        }
        let widths = (0..<6).map { c in rows.map { $0[c].count }.max()! }
        var out = "threads: \(threads); PyTorch: \(torch ?? "not measured"); semples GEMM: \(blas ?? "OpenBLAS")\n"
        out += "ratio > 1: semples is faster (or uses less memory); allocs: semples heap allocations per timed iteration\n\n"
        for (i, r) in rows.enumerated() {
            out += r.enumerated().map { c, cell in
                c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ") + "\n"
            if i == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        for l in lines where l.note != nil { out += "note: \(l.section)/\(l.name): \(l.note!)\n" }
        return out
    }

    static func format(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.3f", v)
    }
}
