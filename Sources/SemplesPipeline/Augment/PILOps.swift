import Foundation
import SemplesFormats

/// 8-bit image operations with Pillow's exact semantics, as the training augmentation (spec §4.2)
/// applies them: the point operations of `ImageOps`, the four `ImageEnhance` blends and the affine
/// `Image.transform` / `Image.rotate` with the BICUBIC filter and a fill colour.
///
/// Images have 1 or 3 channels; every operation works band by band the way Pillow does.
public enum PILOps {
    // MARK: Point operations (lookup tables)

    /// Applies one 256-entry table per channel (`tables.count == 256 · channels`) or one shared
    /// table (`tables.count == 256`), like `Image.point`.
    public static func applyTables(_ image: Image8, _ tables: [UInt8]) -> Image8 {
        let c = image.channels
        precondition(tables.count == 256 || tables.count == 256 * c,
                     "lookup table of \(tables.count) entries for \(c) channels")
        let shared = tables.count == 256
        var out = image
        tables.withUnsafeBufferPointer { lut in
            image.pixels.withUnsafeBufferPointer { src in
                out.pixels.withUnsafeMutableBufferPointer { dst in
                    var i = 0
                    let n = src.count
                    while i < n {
                        for k in 0..<c {
                            dst[i + k] = lut[(shared ? 0 : k * 256) + Int(src[i + k])]
                        }
                        i += c
                    }
                }
            }
        }
        return out
    }

    /// Per-channel histograms: `256 · channels` counts.
    public static func histogram(_ image: Image8) -> [Int] {
        let c = image.channels
        var h = [Int](repeating: 0, count: 256 * c)
        image.pixels.withUnsafeBufferPointer { src in
            var i = 0
            while i < src.count {
                for k in 0..<c { h[k * 256 + Int(src[i + k])] += 1 }
                i += c
            }
        }
        return h
    }

    /// `ImageOps.autocontrast(image)` (cutoff 0, nothing ignored): each channel's darkest used
    /// level maps to 0 and its brightest to 255, `int(v · scale + offset)` clamped; a channel with
    /// a single level is left unchanged.
    public static func autocontrast(_ image: Image8) -> Image8 {
        let h = histogram(image)
        var tables = [UInt8](repeating: 0, count: 256 * image.channels)
        for band in 0..<image.channels {
            let base = band * 256
            var lo = 0
            while lo < 255 && h[base + lo] == 0 { lo += 1 }
            var hi = 255
            while hi > 0 && h[base + hi] == 0 { hi -= 1 }
            if hi <= lo {
                for v in 0..<256 { tables[base + v] = UInt8(v) }
            } else {
                let scale = 255.0 / Double(hi - lo)
                let offset = -Double(lo) * scale
                for v in 0..<256 {
                    let mapped = Int((Double(v) * scale + offset).rounded(.towardZero))
                    tables[base + v] = UInt8(min(255, max(0, mapped)))
                }
            }
        }
        return applyTables(image, tables)
    }

    /// `ImageOps.equalize(image)`: per channel, `step = (N − count of the last used level) // 255`,
    /// level i maps to `(step // 2 + Σ_{j<i} h[j]) // step` (stored clamped to 255, as `point` does);
    /// channels with one used level or a zero step are unchanged.
    public static func equalize(_ image: Image8) -> Image8 {
        let h = histogram(image)
        var tables = [UInt8](repeating: 0, count: 256 * image.channels)
        for band in 0..<image.channels {
            let base = band * 256
            var used = 0, total = 0, last = 0
            for v in 0..<256 where h[base + v] != 0 {
                used += 1
                total += h[base + v]
                last = h[base + v]
            }
            let step = used <= 1 ? 0 : (total - last) / 255
            if step == 0 {
                for v in 0..<256 { tables[base + v] = UInt8(v) }
            } else {
                var n = step / 2
                for v in 0..<256 {
                    tables[base + v] = UInt8(min(255, n / step))
                    n += h[base + v]
                }
            }
        }
        return applyTables(image, tables)
    }

    /// `ImageOps.invert`: 255 − v.
    public static func invert(_ image: Image8) -> Image8 {
        applyTables(image, (0..<256).map { UInt8(255 - $0) })
    }

    /// `ImageOps.posterize(image, bits)`: keeps the `bits` most significant bits (0 → black).
    /// Eight bits or more leave the image unchanged.
    public static func posterize(_ image: Image8, bits: Int) -> Image8 {
        precondition(bits >= 0, "posterize to \(bits) bits")
        if bits >= 8 { return image }
        let mask = ~((1 << (8 - bits)) - 1)
        return applyTables(image, (0..<256).map { UInt8($0 & mask & 255) })
    }

    /// `ImageOps.solarize(image, threshold)`: levels ≥ threshold are inverted.
    public static func solarize(_ image: Image8, threshold: Int) -> Image8 {
        applyTables(image, (0..<256).map { UInt8($0 < threshold ? $0 : 255 - $0) })
    }

    /// Solarize-add: levels below `threshold` get `add` added, capped at 255.
    public static func solarizeAdd(_ image: Image8, add: Int, threshold: Int = 128) -> Image8 {
        applyTables(image, (0..<256).map { UInt8($0 < threshold ? max(0, min(255, $0 + add)) : $0) })
    }

    // MARK: Enhancement blends

    /// `Image.blend(a, b, alpha)`: `a + alpha · (b − a)` in single precision, truncated; outside
    /// alpha ∈ [0, 1] the result is clamped to 0…255 first.
    public static func blend(_ a: Image8, _ b: Image8, alpha: Float) -> Image8 {
        precondition(a.width == b.width && a.height == b.height && a.channels == b.channels,
                     "blend of \(a.width)x\(a.height)x\(a.channels) with \(b.width)x\(b.height)x\(b.channels)")
        var out = a
        let interpolate = alpha >= 0 && alpha <= 1
        a.pixels.withUnsafeBufferPointer { pa in
            b.pixels.withUnsafeBufferPointer { pb in
                out.pixels.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<pa.count {
                        let x = Int(pa[i])
                        let v = Float(x) + alpha * Float(Int(pb[i]) - x)
                        if interpolate {
                            dst[i] = UInt8(v)
                        } else {
                            dst[i] = v <= 0 ? 0 : v >= 255 ? 255 : UInt8(v)
                        }
                    }
                }
            }
        }
        return out
    }

    /// `image.convert("L")` for RGB: ITU-R 601-2 luma in 16-bit fixed point,
    /// `(19595 R + 38470 G + 7471 B + 32768) >> 16`. Grey images are returned as they are.
    public static func luma(_ image: Image8) -> Image8 {
        if image.channels == 1 { return image }
        var out = Image8(width: image.width, height: image.height, channels: 1)
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for i in 0..<dst.count {
                    let r = Int(src[3 * i]), g = Int(src[3 * i + 1]), b = Int(src[3 * i + 2])
                    dst[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
                }
            }
        }
        return out
    }

    /// A grey image with `image`'s channel count (L → RGB repeats the level).
    static func expand(_ grey: Image8, channels: Int) -> Image8 {
        if channels == 1 { return grey }
        var out = Image8(width: grey.width, height: grey.height, channels: channels)
        for i in 0..<grey.pixels.count {
            for k in 0..<channels { out.pixels[i * channels + k] = grey.pixels[i] }
        }
        return out
    }

    /// `ImageEnhance.Color(image).enhance(factor)`: blend from the luma image.
    public static func color(_ image: Image8, factor: Double) -> Image8 {
        blend(expand(luma(image), channels: image.channels), image, alpha: Float(factor))
    }

    /// `ImageEnhance.Contrast(image).enhance(factor)`: blend from a constant grey, the luma mean
    /// rounded as `int(mean + 0.5)`.
    public static func contrast(_ image: Image8, factor: Double) -> Image8 {
        let l = luma(image)
        var sum = 0
        for v in l.pixels { sum += Int(v) }
        let mean = l.pixels.isEmpty ? 0 : Int(Double(sum) / Double(l.pixels.count) + 0.5)
        let grey = Image8(width: image.width, height: image.height, channels: image.channels,
                          pixels: [UInt8](repeating: UInt8(min(255, mean)), count: image.pixels.count))
        return blend(grey, image, alpha: Float(factor))
    }

    /// `ImageEnhance.Brightness(image).enhance(factor)`: blend from black.
    public static func brightness(_ image: Image8, factor: Double) -> Image8 {
        blend(Image8(width: image.width, height: image.height, channels: image.channels), image,
              alpha: Float(factor))
    }

    /// `ImageEnhance.Sharpness(image).enhance(factor)`: blend from the SMOOTH-filtered image.
    public static func sharpness(_ image: Image8, factor: Double) -> Image8 {
        blend(smooth(image), image, alpha: Float(factor))
    }

    /// `image.filter(ImageFilter.SMOOTH)`: the 3×3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 in single
    /// precision, +0.5 and truncated; the outermost rows and columns are copied unchanged, and an
    /// image under 3×3 is returned as it is.
    public static func smooth(_ image: Image8) -> Image8 {
        let w = image.width, h = image.height, c = image.channels
        if w < 3 || h < 3 { return image }
        let edge = Float(1) / Float(13)
        let centre = Float(5) / Float(13)
        var out = image
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                let stride = w * c
                for y in 1..<(h - 1) {
                    let below = (y + 1) * stride, row = y * stride, above = (y - 1) * stride
                    for x in 1..<(w - 1) {
                        for k in 0..<c {
                            let l = (x - 1) * c + k, m = x * c + k, r = (x + 1) * c + k
                            // Rows in Pillow's order: the next row first, then this one, then the previous.
                            var ss: Float = 0.5
                            ss += Float(src[below + l]) * edge + Float(src[below + m]) * edge + Float(src[below + r]) * edge
                            ss += Float(src[row + l]) * edge + Float(src[row + m]) * centre + Float(src[row + r]) * edge
                            ss += Float(src[above + l]) * edge + Float(src[above + m]) * edge + Float(src[above + r]) * edge
                            dst[row + m] = ss <= 0 ? 0 : ss >= 255 ? 255 : UInt8(ss)
                        }
                    }
                }
            }
        }
        return out
    }

    // MARK: Geometry

    /// `image.transform(image.size, AFFINE, matrix, resample=BICUBIC, fillcolor=fill)`: output
    /// pixel (x, y) samples the input at `(a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f)` with
    /// Pillow's bicubic (a = −1, edge rows and columns repeated); samples whose position falls
    /// outside the input take the fill colour.
    public static func affine(_ image: Image8, matrix m: [Double], fill: [UInt8]) -> Image8 {
        precondition(m.count == 6, "affine matrix of \(m.count) entries")
        let w = image.width, h = image.height, c = image.channels
        precondition(fill.count == c, "fill of \(fill.count) values for \(c) channels")
        var out = Image8(width: w, height: h, channels: c)
        let fw = Double(w), fh = Double(h)
        let m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5]
        let stride = w * c
        image.pixels.withUnsafeBufferPointer { srcBuffer in
            out.pixels.withUnsafeMutableBufferPointer { dstBuffer in
                fill.withUnsafeBufferPointer { fillBuffer in
                    let src = srcBuffer.baseAddress!, dst = dstBuffer.baseAddress!, fillColour = fillBuffer.baseAddress!
                    for y in 0..<h {
                        let yc = Double(y) + 0.5
                        for x in 0..<w {
                            let xc = Double(x) + 0.5
                            var xin = m0 * xc + m1 * yc + m2
                            var yin = m3 * xc + m4 * yc + m5
                            let o = dst + (y * w + x) * c
                            if !(xin >= 0 && xin < fw && yin >= 0 && yin < fh) {
                                for k in 0..<c { o[k] = fillColour[k] }
                                continue
                            }
                            xin -= 0.5
                            yin -= 0.5
                            let x0 = Int(xin.rounded(.down)), y0 = Int(yin.rounded(.down))
                            let dx = xin - Double(x0), dy = yin - Double(y0)
                            // Edge columns and rows repeat (Pillow's clipping of the 4×4 window).
                            let c0 = min(max(x0 - 1, 0), w - 1) * c, c1 = min(max(x0, 0), w - 1) * c
                            let c2 = min(max(x0 + 1, 0), w - 1) * c, c3 = min(max(x0 + 2, 0), w - 1) * c
                            let r0 = src + min(max(y0 - 1, 0), h - 1) * stride, r1 = src + min(max(y0, 0), h - 1) * stride
                            let r2 = src + min(max(y0 + 1, 0), h - 1) * stride, r3 = src + min(max(y0 + 2, 0), h - 1) * stride
                            for k in 0..<c {
                                let v0 = cubicStep(Double(r0[c0 + k]), Double(r0[c1 + k]), Double(r0[c2 + k]), Double(r0[c3 + k]), dx)
                                let v1 = cubicStep(Double(r1[c0 + k]), Double(r1[c1 + k]), Double(r1[c2 + k]), Double(r1[c3 + k]), dx)
                                let v2 = cubicStep(Double(r2[c0 + k]), Double(r2[c1 + k]), Double(r2[c2 + k]), Double(r2[c3 + k]), dx)
                                let v3 = cubicStep(Double(r3[c0 + k]), Double(r3[c1 + k]), Double(r3[c2 + k]), Double(r3[c3 + k]), dx)
                                let s = cubicStep(v0, v1, v2, v3, dy)
                                o[k] = s <= 0 ? 0 : s >= 255 ? 255 : UInt8(s)
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Pillow's transform-bicubic interpolation between v2 and v3 at fraction d, in its
    /// operation order.
    @inline(__always) static func cubicStep(_ v1: Double, _ v2: Double, _ v3: Double, _ v4: Double,
                                            _ d: Double) -> Double {
        let p1 = v2
        let p2 = -v1 + v3
        let p3 = 2 * (v1 - v2) + v3 - v4
        let p4 = -v1 + v2 - v3 + v4
        return p1 + d * (p2 + d * (p3 + d * p4))
    }

    /// The inverse matrix `Image.rotate(degrees)` builds (counter-clockwise about the centre
    /// (w/2, h/2), no expansion): the angle reduced modulo 360 as Python does, the sines and
    /// cosines rounded to 15 decimals.
    public static func rotationMatrix(degrees: Double, width: Int, height: Int) -> [Double] {
        var a = fmod(degrees, 360.0)
        if a < 0 { a += 360.0 }  // Python's modulo takes the divisor's sign
        if a == 0 { a = 0 }  // drop a negative zero
        let angle = -(a * (Double.pi / 180.0))
        let cosA = roundTo15(cos(angle)), sinA = roundTo15(sin(angle)), negSin = roundTo15(-sin(angle))
        var m = [cosA, sinA, 0.0, negSin, cosA, 0.0]
        let cx = Double(width) / 2, cy = Double(height) / 2
        let tx = m[0] * -cx + m[1] * -cy + m[2]
        let ty = m[3] * -cx + m[4] * -cy + m[5]
        m[2] = tx + cx
        m[5] = ty + cy
        return m
    }

    /// Python's `round(x, 15)`: correctly rounded to 15 decimals, ties to even.
    static func roundTo15(_ x: Double) -> Double {
        Double(String(format: "%.15f", x)) ?? x
    }

    /// `image.rotate(degrees, resample=BICUBIC, fillcolor=fill)`; a zero angle copies.
    public static func rotate(_ image: Image8, degrees: Double, fill: [UInt8]) -> Image8 {
        if fmod(degrees, 360.0) == 0 { return image }
        return affine(image, matrix: rotationMatrix(degrees: degrees, width: image.width, height: image.height),
                      fill: fill)
    }

    /// Horizontal shear, matrix (1, factor, 0, 0, 1, 0).
    public static func shearX(_ image: Image8, factor: Double, fill: [UInt8]) -> Image8 {
        affine(image, matrix: [1, factor, 0, 0, 1, 0], fill: fill)
    }

    /// Vertical shear, matrix (1, 0, 0, factor, 1, 0).
    public static func shearY(_ image: Image8, factor: Double, fill: [UInt8]) -> Image8 {
        affine(image, matrix: [1, 0, 0, factor, 1, 0], fill: fill)
    }

    /// Translation by `pixels` horizontally, matrix (1, 0, pixels, 0, 1, 0).
    public static func translateX(_ image: Image8, pixels: Double, fill: [UInt8]) -> Image8 {
        affine(image, matrix: [1, 0, pixels, 0, 1, 0], fill: fill)
    }

    /// Translation by `pixels` vertically, matrix (1, 0, 0, 0, 1, pixels).
    public static func translateY(_ image: Image8, pixels: Double, fill: [UInt8]) -> Image8 {
        affine(image, matrix: [1, 0, 0, 0, 1, pixels], fill: fill)
    }

    /// The region `[x, x+width) × [y, y+height)` (`Image.crop` inside the image).
    public static func crop(_ image: Image8, x: Int, y: Int, width: Int, height: Int) -> Image8 {
        precondition(x >= 0 && y >= 0 && width > 0 && height > 0 && x + width <= image.width
                     && y + height <= image.height,
                     "crop \(width)x\(height)+\(x)+\(y) of a \(image.width)x\(image.height) image")
        let c = image.channels
        if x == 0 && y == 0 && width == image.width && height == image.height { return image }
        var out = Image8(width: width, height: height, channels: c)
        let rowBytes = width * c
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for r in 0..<height {
                    let s = ((y + r) * image.width + x) * c
                    for i in 0..<rowBytes { dst[r * rowBytes + i] = src[s + i] }
                }
            }
        }
        return out
    }
}
