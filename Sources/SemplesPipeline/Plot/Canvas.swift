import Foundation
import SemplesFormats

/// An RGB colour.
public struct RGB: Equatable, Sendable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)
    public static let grid = RGB(226, 226, 226)
    public static let axis = RGB(60, 60, 60)
    /// A colour-blind-friendly cycle for series (Okabe–Ito).
    public static let palette = [RGB(0, 114, 178), RGB(213, 94, 0), RGB(0, 158, 115), RGB(204, 121, 167),
                                 RGB(230, 159, 0), RGB(86, 180, 233), RGB(120, 120, 120), RGB(0, 0, 0)]
}

/// A small RGB raster with anti-aliased lines, rectangles, discs and bitmap text.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    /// [height × width × 3], row-major, interleaved RGB.
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width > 0 && height > 0, "canvas \(width)×\(height)")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[i * 3] = background.r
            pixels[i * 3 + 1] = background.g
            pixels[i * 3 + 2] = background.b
        }
    }

    /// The canvas as an 8-bit RGB image.
    public var image: Image8 { Image8(width: width, height: height, channels: 3, pixels: pixels) }

    public func pixel(x: Int, y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// Blends `color` over pixel (x, y) with coverage a in [0, 1]; outside pixels are ignored.
    public mutating func blend(x: Int, y: Int, _ color: RGB, alpha a: Double) {
        guard x >= 0, y >= 0, x < width, y < height, a > 0 else { return }
        let i = (y * width + x) * 3
        let w = min(a, 1)
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) * (1 - w) + Double(new) * w).rounded()) }
        pixels[i] = mix(pixels[i], color.r)
        pixels[i + 1] = mix(pixels[i + 1], color.g)
        pixels[i + 2] = mix(pixels[i + 2], color.b)
    }

    /// Fills the pixels [x0, x1) × [y0, y1).
    public mutating func fillRect(x0: Int, y0: Int, x1: Int, y1: Int, _ color: RGB) {
        for y in max(0, y0)..<min(height, y1) where y1 > y0 {
            for x in max(0, x0)..<min(width, x1) where x1 > x0 { blend(x: x, y: y, color, alpha: 1) }
        }
    }

    /// A segment between pixel-centre coordinates, `thickness` pixels wide, anti-aliased by the
    /// distance of each pixel centre to the segment.
    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ color: RGB, thickness: Double = 1) {
        polyline([(x0, y0), (x1, y1)], color, thickness: thickness)
    }

    /// Connected segments through `points`. Coverage is the maximum over the segments, so joints
    /// are not blended twice.
    public mutating func polyline(_ points: [(Double, Double)], _ color: RGB, thickness: Double = 1) {
        guard let first = points.first else { return }
        let half = thickness / 2
        let xs = points.map { $0.0 }, ys = points.map { $0.1 }
        let minX = max(0, Int((xs.min()! - half - 1).rounded(.down))), maxX = min(width - 1, Int((xs.max()! + half + 1).rounded(.up)))
        let minY = max(0, Int((ys.min()! - half - 1).rounded(.down))), maxY = min(height - 1, Int((ys.max()! + half + 1).rounded(.up)))
        guard minX <= maxX, minY <= maxY else { return }
        let boxWidth = maxX - minX + 1
        var coverage = [Double](repeating: 0, count: boxWidth * (maxY - minY + 1))
        let segments = points.count == 1 ? [(first, first)] : Array(zip(points, points.dropFirst()))
        for ((x0, y0), (x1, y1)) in segments {
            let dx = x1 - x0, dy = y1 - y0
            let lengthSquared = dx * dx + dy * dy
            let lowX = max(minX, Int((min(x0, x1) - half - 1).rounded(.down))), highX = min(maxX, Int((max(x0, x1) + half + 1).rounded(.up)))
            let lowY = max(minY, Int((min(y0, y1) - half - 1).rounded(.down))), highY = min(maxY, Int((max(y0, y1) + half + 1).rounded(.up)))
            guard lowX <= highX, lowY <= highY else { continue }
            for y in lowY...highY {
                for x in lowX...highX {
                    let px = Double(x), py = Double(y)
                    var t = lengthSquared > 0 ? ((px - x0) * dx + (py - y0) * dy) / lengthSquared : 0
                    t = min(1, max(0, t))
                    let ex = px - (x0 + t * dx), ey = py - (y0 + t * dy)
                    let c = min(1, max(0, half + 0.5 - (ex * ex + ey * ey).squareRoot()))
                    let k = (y - minY) * boxWidth + (x - minX)
                    coverage[k] = max(coverage[k], c)
                }
            }
        }
        for y in minY...maxY {
            for x in minX...maxX {
                blend(x: x, y: y, color, alpha: coverage[(y - minY) * boxWidth + (x - minX)])
            }
        }
    }

    /// A filled disc of radius r around (cx, cy), anti-aliased at the rim.
    public mutating func disc(_ cx: Double, _ cy: Double, radius r: Double, _ color: RGB) {
        for y in Int(cy - r - 1)...Int(cy + r + 1) {
            for x in Int(cx - r - 1)...Int(cx + r + 1) {
                let d = ((Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy)).squareRoot()
                blend(x: x, y: y, color, alpha: min(1, max(0, r + 0.5 - d)))
            }
        }
    }

    /// Width in pixels of `text` at integer `scale`.
    public static func textWidth(_ text: String, scale: Int = 1) -> Int {
        max(0, text.count * BitmapFont.advance - 1) * scale
    }

    /// Height of a text line (cap height plus descenders) at `scale`.
    public static func textHeight(scale: Int = 1) -> Int { BitmapFont.glyphHeight * scale }

    /// Draws `text` with its top-left corner at (x, y); `vertical` turns it 90° anticlockwise
    /// (reading upwards), the corner then being the bottom-left of the text.
    public mutating func text(_ text: String, x: Int, y: Int, _ color: RGB, scale: Int = 1, vertical: Bool = false) {
        var cursor = 0
        for ch in text {
            let rows = BitmapFont.rows(ch)
            for (row, bits) in rows.enumerated() {
                for column in 0..<BitmapFont.glyphWidth where bits & (1 << (BitmapFont.glyphWidth - 1 - column)) != 0 {
                    for sy in 0..<scale {
                        for sx in 0..<scale {
                            let u = (cursor + column) * scale + sx  // along the text
                            let v = row * scale + sy                 // across the text
                            if vertical {
                                blend(x: x + v, y: y - u, color, alpha: 1)
                            } else {
                                blend(x: x + u, y: y + v, color, alpha: 1)
                            }
                        }
                    }
                }
            }
            cursor += BitmapFont.advance
        }
    }
}
