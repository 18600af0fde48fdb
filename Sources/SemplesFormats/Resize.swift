import Foundation

/// Image resizing that reproduces Pillow's `Image.resize` for 8-bit images with the BICUBIC and
/// BILINEAR filters.
///
/// Pillow resamples separably: a horizontal pass over only the rows the vertical pass will read,
/// rounded to 8 bits, then a vertical pass. Each output pixel centre maps to
/// `centre = (x + 0.5) · scale` in the source; the filter is widened by the scale when shrinking
/// (antialiasing: support × max(scale, 1), argument ÷ max(scale, 1)); weights are normalised to sum
/// 1, then turned into 22-bit fixed point (rounded half away from zero); sums start at half a unit
/// and are shifted back and clamped to 0…255.
public enum PILResize {
    /// Bicubic with a = −0.5 (support 2), Pillow's `Image.BICUBIC`.
    public static func bicubic(_ img: Image8, width: Int, height: Int) -> Image8 {
        resample(img, width: width, height: height, support: 2.0, filter: cubic)
    }

    /// Triangle filter (support 1), Pillow's `Image.BILINEAR`.
    public static func bilinear(_ img: Image8, width: Int, height: Int) -> Image8 {
        resample(img, width: width, height: height, support: 1.0, filter: triangle)
    }

    static func cubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    static func triangle(_ x: Double) -> Double {
        let x = abs(x)
        return x < 1 ? 1 - x : 0
    }

    static let precisionBits = 32 - 8 - 2

    /// Per output index: first source index, tap count, and fixed-point weights (ksize per row).
    struct Coefficients {
        var first: [Int]
        var count: [Int]
        var ksize: Int
        var weights: [Int32]
    }

    static func coefficients(inSize: Int, outSize: Int, support baseSupport: Double,
                             filter: (Double) -> Double) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = baseSupport * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterScale
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            // C casts truncate toward zero; the clamp to 0 makes that equal to floor here.
            var xmin = Int((center - support + 0.5).rounded(.towardZero))
            if xmin < 0 { xmin = 0 }
            var xmax = Int((center + support + 0.5).rounded(.towardZero))
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<xmax {
                let w = filter((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<ksize {
                var w = x < xmax ? k[x] : 0
                if x < xmax && ww != 0 { w /= ww }
                let scaled = w * Double(1 << precisionBits)
                weights[xx * ksize + x] = Int32((w < 0 ? scaled - 0.5 : scaled + 0.5).rounded(.towardZero))
            }
            first[xx] = xmin
            count[xx] = xmax
        }
        return Coefficients(first: first, count: count, ksize: ksize, weights: weights)
    }

    @inline(__always) static func clip8(_ v: Int) -> UInt8 {
        let s = v >> precisionBits
        return s < 0 ? 0 : s > 255 ? 255 : UInt8(s)
    }

    static func resample(_ img: Image8, width: Int, height: Int, support: Double,
                         filter: (Double) -> Double) -> Image8 {
        precondition(width > 0 && height > 0, "resize to \(width)x\(height)")
        precondition(img.width > 0 && img.height > 0, "resize of an empty image")
        if width == img.width && height == img.height { return img }
        let c = img.channels
        let vertical = coefficients(inSize: img.height, outSize: height, support: support, filter: filter)
        let half = 1 << (precisionBits - 1)
        var current = img
        if width != img.width {
            // Only rows [firstRow, lastRow) are read by the vertical pass.
            let firstRow = vertical.first[0]
            let lastRow = vertical.first[height - 1] + vertical.count[height - 1]
            let rowsNeeded = height != img.height ? lastRow - firstRow : img.height
            let rowOffset = height != img.height ? firstRow : 0
            let h = coefficients(inSize: img.width, outSize: width, support: support, filter: filter)
            var out = Image8(width: width, height: rowsNeeded, channels: c)
            img.pixels.withUnsafeBufferPointer { srcBuffer in
                out.pixels.withUnsafeMutableBufferPointer { dstBuffer in
                    h.weights.withUnsafeBufferPointer { wts in
                        let src = srcBuffer.baseAddress!, dst = dstBuffer.baseAddress!, w = wts.baseAddress!
                        for y in 0..<rowsNeeded {
                            let srcRow = src + (y + rowOffset) * img.width * c
                            let dstRow = dst + y * width * c
                            for xx in 0..<width {
                                let n = h.count[xx]
                                let p = srcRow + h.first[xx] * c, k = w + xx * h.ksize
                                if c == 3 {
                                    var s0 = half, s1 = half, s2 = half
                                    for x in 0..<n {
                                        let kx = Int(k[x])
                                        s0 += Int(p[3 * x]) * kx
                                        s1 += Int(p[3 * x + 1]) * kx
                                        s2 += Int(p[3 * x + 2]) * kx
                                    }
                                    dstRow[3 * xx] = clip8(s0)
                                    dstRow[3 * xx + 1] = clip8(s1)
                                    dstRow[3 * xx + 2] = clip8(s2)
                                } else {
                                    var s0 = half
                                    for x in 0..<n { s0 += Int(p[x]) * Int(k[x]) }
                                    dstRow[xx] = clip8(s0)
                                }
                            }
                        }
                    }
                }
            }
            current = out
        }
        guard height != img.height else { return current }
        let rowShift = width != img.width ? vertical.first[0] : 0
        var out = Image8(width: width, height: height, channels: c)
        let rowLength = width * c
        // Whole rows at a time: the accumulation over taps runs along contiguous memory.
        var accumulator = [Int](repeating: 0, count: rowLength)
        current.pixels.withUnsafeBufferPointer { srcBuffer in
            out.pixels.withUnsafeMutableBufferPointer { dstBuffer in
                accumulator.withUnsafeMutableBufferPointer { accBuffer in
                    let src = srcBuffer.baseAddress!, dst = dstBuffer.baseAddress!, acc = accBuffer.baseAddress!
                    for yy in 0..<height {
                        let ymin = vertical.first[yy] - rowShift, n = vertical.count[yy], kb = yy * vertical.ksize
                        acc.update(repeating: half, count: rowLength)
                        for y in 0..<n {
                            let k = Int(vertical.weights[kb + y])
                            let row = src + (ymin + y) * rowLength
                            for i in 0..<rowLength { acc[i] += Int(row[i]) * k }
                        }
                        let d = dst + yy * rowLength
                        for i in 0..<rowLength { d[i] = clip8(acc[i]) }
                    }
                }
            }
        }
        return out
    }
}
