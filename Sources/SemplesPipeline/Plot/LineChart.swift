import Foundation
import SemplesFormats

/// A line chart with axes, "nice" ticks, grid, title, axis labels, a legend and optional point
/// annotations, rendered to RGB. Used for the mIoU-against-threshold curve and for loss curves.
public struct LineChart: Sendable {
    /// One line. Points with a nil or non-finite y break the line.
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double?)]
        public var color: RGB?
        public var thickness: Double
        /// Draw a dot at each point.
        public var markers: Bool

        public init(name: String, points: [(x: Double, y: Double?)], color: RGB? = nil, thickness: Double = 2, markers: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.thickness = thickness
            self.markers = markers
        }
    }

    /// A highlighted point with a text label (e.g. the chosen threshold).
    public struct Annotation: Sendable {
        public var x: Double
        public var y: Double
        public var text: String
        public var color: RGB

        public init(x: Double, y: Double, text: String, color: RGB = RGB(200, 30, 30)) {
            self.x = x
            self.y = y
            self.text = text
            self.color = color
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var annotations: [Annotation] = []
    public var width = 720
    public var height = 460
    /// Fixed axis ranges; nil fits the data with a margin.
    public var xRange: ClosedRange<Double>? = nil
    public var yRange: ClosedRange<Double>? = nil

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Pixel rectangle of the plotting area.
    struct Frame {
        let left: Double, top: Double, right: Double, bottom: Double
    }

    /// Renders the chart.
    public func render() -> Canvas {
        var canvas = Canvas(width: width, height: height)
        let scale = 2
        let lineHeight = Canvas.textHeight(scale: scale)

        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite) + annotations.map(\.x)
        let ys = series.flatMap { $0.points.compactMap(\.y) }.filter(\.isFinite) + annotations.map(\.y)
        let xTicks = LineChart.niceTicks(range: xRange ?? LineChart.span(xs, pad: 0), target: 8)
        let yTicks = LineChart.niceTicks(range: yRange ?? LineChart.span(ys, pad: 0.05), target: 6)
        let xLow = xRange?.lowerBound ?? xTicks.values.first!, xHigh = xRange?.upperBound ?? xTicks.values.last!
        let yLow = yRange?.lowerBound ?? yTicks.values.first!, yHigh = yRange?.upperBound ?? yTicks.values.last!
        let yTickLabels = yTicks.values.map { LineChart.format($0, decimals: yTicks.decimals) }
        let widestY = yTickLabels.map { Canvas.textWidth($0, scale: scale) }.max() ?? 0

        let frame = Frame(left: Double(16 + lineHeight + 10 + widestY + 8),
                          top: Double(14 + lineHeight + 14),
                          right: Double(width - 24),
                          bottom: Double(height - (10 + lineHeight + 12 + lineHeight + 8)))
        func px(_ x: Double) -> Double { frame.left + (x - xLow) / max(xHigh - xLow, 1e-300) * (frame.right - frame.left) }
        func py(_ y: Double) -> Double { frame.bottom - (y - yLow) / max(yHigh - yLow, 1e-300) * (frame.bottom - frame.top) }

        // Grid and ticks.
        for (value, label) in zip(yTicks.values, yTickLabels) where value >= yLow - 1e-12 && value <= yHigh + 1e-12 {
            let y = py(value).rounded()
            canvas.line(frame.left, y, frame.right, y, .grid)
            canvas.line(frame.left - 5, y, frame.left, y, .axis)
            canvas.text(label, x: Int(frame.left) - 8 - Canvas.textWidth(label, scale: scale), y: Int(y) - 7 * scale / 2, .axis, scale: scale)
        }
        for value in xTicks.values where value >= xLow - 1e-12 && value <= xHigh + 1e-12 {
            let x = px(value).rounded()
            let label = LineChart.format(value, decimals: xTicks.decimals)
            canvas.line(x, frame.top, x, frame.bottom, .grid)
            canvas.line(x, frame.bottom, x, frame.bottom + 5, .axis)
            canvas.text(label, x: Int(x) - Canvas.textWidth(label, scale: scale) / 2, y: Int(frame.bottom) + 9, .axis, scale: scale)
        }
        canvas.line(frame.left, frame.top, frame.left, frame.bottom, .axis)
        canvas.line(frame.left, frame.bottom, frame.right, frame.bottom, .axis)

        // Titles.
        canvas.text(title, x: (width - Canvas.textWidth(title, scale: scale)) / 2, y: 14, .black, scale: scale)
        canvas.text(xLabel, x: Int(frame.left + frame.right) / 2 - Canvas.textWidth(xLabel, scale: scale) / 2,
                    y: height - 8 - lineHeight, .black, scale: scale)
        canvas.text(yLabel, x: 14, y: Int(frame.top + frame.bottom) / 2 + Canvas.textWidth(yLabel, scale: scale) / 2,
                    .black, scale: scale, vertical: true)

        // Series, clipped to the frame by splitting at missing values and skipping points outside x range.
        for (index, s) in series.enumerated() {
            let color = s.color ?? RGB.palette[index % RGB.palette.count]
            var run: [(Double, Double)] = []
            func flush() {
                if !run.isEmpty { canvas.polyline(run, color, thickness: s.thickness) }
                run.removeAll()
            }
            for point in s.points {
                guard let y = point.y, y.isFinite, point.x.isFinite else {
                    flush()
                    continue
                }
                let p = (px(point.x), py(min(max(y, yLow), yHigh)))
                run.append(p)
                if s.markers { canvas.disc(p.0, p.1, radius: s.thickness + 1.5, color) }
            }
            flush()
        }

        // Annotations: a ring around the point and the text centred below it (above it when the
        // point is near the bottom), kept inside the frame, with a dashed guide down to the x axis.
        for a in annotations {
            let x = px(a.x), y = py(a.y)
            var dash = y + 8
            while dash < frame.bottom - 1 {
                canvas.line(x, dash, x, min(dash + 4, frame.bottom - 1), a.color)
                dash += 9
            }
            canvas.disc(x, y, radius: 5, a.color)
            canvas.disc(x, y, radius: 2.5, .white)
            // The label goes where it hides the fewest drawn pixels among spots around the point.
            let w = Canvas.textWidth(a.text, scale: scale)
            let candidates = [(-w / 2, 16), (12, 16), (-w - 12, 16), (-w / 2, -16 - lineHeight),
                              (12, -16 - lineHeight), (-w - 12, -16 - lineHeight), (14, -lineHeight / 2), (-w - 14, -lineHeight / 2)]
            var best = (x: 0, y: 0, cost: Int.max)
            for (dx, dy) in candidates {
                let tx = min(max(Int(x) + dx, Int(frame.left) + 4), Int(frame.right) - 4 - w)
                let ty = min(max(Int(y) + dy, Int(frame.top) + 4), Int(frame.bottom) - 4 - lineHeight)
                var cost = 0
                for yy in (ty - 2)..<(ty + lineHeight + 2) {
                    for xx in (tx - 2)..<(tx + w + 2) {
                        let p = canvas.pixel(x: min(max(xx, 0), width - 1), y: min(max(yy, 0), height - 1))
                        if p != .white && p != .grid { cost += 1 }
                    }
                }
                if cost < best.cost { best = (tx, ty, cost) }
            }
            // A white halo keeps the text legible over grid lines.
            for (hx, hy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                canvas.text(a.text, x: best.x + hx, y: best.y + hy, .white, scale: scale)
            }
            canvas.text(a.text, x: best.x, y: best.y, a.color, scale: scale)
        }

        // Legend (only for more than one series or a named single one), top right inside the frame.
        let named = series.filter { !$0.name.isEmpty }
        if !named.isEmpty {
            let swatch = 24
            let legendWidth = swatch + 8 + (named.map { Canvas.textWidth($0.name, scale: scale) }.max() ?? 0) + 16
            let legendHeight = named.count * (lineHeight + 6) + 10
            let x0 = Int(frame.right) - legendWidth - 8
            let y0 = Int(frame.top) + 8
            canvas.fillRect(x0: x0, y0: y0, x1: x0 + legendWidth, y1: y0 + legendHeight, .white)
            canvas.polyline([(Double(x0), Double(y0)), (Double(x0 + legendWidth), Double(y0)),
                             (Double(x0 + legendWidth), Double(y0 + legendHeight)), (Double(x0), Double(y0 + legendHeight)),
                             (Double(x0), Double(y0))], RGB(170, 170, 170))
            var row = 0
            for (i, s) in series.enumerated() where !s.name.isEmpty {
                defer { row += 1 }
                let color = s.color ?? RGB.palette[i % RGB.palette.count]
                let cy = Double(y0 + 8 + row * (lineHeight + 6) + 7 * scale / 2)
                canvas.line(Double(x0 + 8), cy, Double(x0 + 8 + swatch), cy, color, thickness: s.thickness)
                canvas.text(s.name, x: x0 + 8 + swatch + 8, y: Int(cy) - 7 * scale / 2, .black, scale: scale)
            }
        }
        return canvas
    }

    /// Renders and writes a PNG.
    public func writePNG(to path: String) throws {
        try ImageIO.writePNG(render().image, to: path)
    }

    /// The data range widened by `pad` of its width; a single value gets a unit-wide range.
    static func span(_ values: [Double], pad: Double) -> ClosedRange<Double> {
        guard let low = values.min(), let high = values.max() else { return 0...1 }
        if high - low < 1e-12 {
            let delta = max(abs(low) * 0.05, 1e-3)
            return (low - delta)...(high + delta)
        }
        let p = (high - low) * pad
        return (low - p)...(high + p)
    }

    /// Tick values at multiples of 1, 2 or 5 × 10^k covering `range`, about `target` of them,
    /// and the number of decimals their labels need.
    static func niceTicks(range: ClosedRange<Double>, target: Int) -> (values: [Double], decimals: Int) {
        let raw = (range.upperBound - range.lowerBound) / Double(max(target - 1, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2.0, 2.5, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = (range.lowerBound / step).rounded(.down) * step
        let last = (range.upperBound / step).rounded(.up) * step
        var values: [Double] = []
        var v = first
        while v <= last + step * 1e-9 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v = first + Double(values.count) * step
        }
        let decimals = max(0, -Int((log10(step) + 1e-9).rounded(.down)) + (step / magnitude == 2.5 ? 1 : 0))
        return (values, decimals)
    }

    static func format(_ value: Double, decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }
}

extension EvaluationMetrics {
    /// The mIoU (percent) against background threshold, with the chosen threshold marked.
    public func meanIoUChart() -> LineChart {
        let points = curve.map { (x: $0.threshold, y: $0.meanIoU.map { $0 * 100 }) }
        var chart = LineChart(title: "\(dataSet.rawValue) CAM mIoU against background threshold\(crf ? " (CRF)" : "")",
                              xLabel: "background threshold t", yLabel: "mIoU (%)",
                              series: [LineChart.Series(name: "", points: points, markers: true)])
        if bestMeanIoU > 0 {
            let prefix = mode == "curve" ? "best " : ""
            chart.annotations = [LineChart.Annotation(x: bestThreshold, y: bestMeanIoU * 100,
                                                      text: String(format: "%@t=%.2f  %.2f%%", prefix, bestThreshold, bestMeanIoU * 100))]
        }
        if points.count == 1 { chart.xRange = (points[0].x - 0.05)...(points[0].x + 0.05) }
        return chart
    }
}

extension LineChart {
    /// The two charts every training job leaves in its outbox: `loss_curve.png` from [step, loss]
    /// pairs and, once an epoch has a CAM mIoU, `miou_per_epoch.png` (mIoU in percent).
    static func writeTrainingCharts(model: String, lossCurve: [[Double]], mIoUByEpoch: [(epoch: Int, miou: Double?)],
                                    to folder: URL) throws {
        let loss = LineChart(title: "\(model) loss", xLabel: "iteration", yLabel: "loss", series: [
            .init(name: "loss", points: lossCurve.map { (x: $0[0], y: Optional($0[1])) })])
        try loss.writePNG(to: folder.appendingPathComponent("loss_curve.png").path)
        let mious = mIoUByEpoch.compactMap { r in r.miou.map { (x: Double(r.epoch + 1), y: Optional($0 * 100)) } }
        if !mious.isEmpty {
            let chart = LineChart(title: "CAM mIoU per epoch, \(model)", xLabel: "epoch", yLabel: "mIoU (%)",
                                  series: [.init(name: "mIoU", points: mious, markers: true)])
            try chart.writePNG(to: folder.appendingPathComponent("miou_per_epoch.png").path)
        }
    }
}
