import Foundation
import XCTest
@testable import SemplesFormats

final class ResizeTests: XCTestCase {
    static let sizes = [(30, 20), (13, 9), (100, 80), (61, 30), (90, 47), (7, 61), (122, 94), (44, 35)]

    func testBicubicAndBilinearMatchPIL() throws {
        let rgb = try npyImage("resize/source.npy")
        let grey = try npyImage("resize/source_grey.npy")
        var worst = 0
        for (w, h) in ResizeTests.sizes {
            for (name, f) in [("bicubic", PILResize.bicubic), ("bilinear", PILResize.bilinear)] {
                let a = f(rgb, w, h)
                let d1 = maxDifference(a, try npyImage("resize/\(name)_\(w)x\(h).npy"))
                let b = f(grey, w, h)
                let d2 = maxDifference(b, try npyImage("resize/\(name)_grey_\(w)x\(h).npy"))
                XCTAssertLessThanOrEqual(d1, 1, "\(name) \(w)x\(h) RGB")
                XCTAssertLessThanOrEqual(d2, 1, "\(name) \(w)x\(h) grey")
                worst = max(worst, d1, d2)
            }
        }
        // The fixed-point arithmetic is Pillow's own, so the match is exact.
        XCTAssertEqual(worst, 0)
    }

    func testSameSizeIsACopy() throws {
        let rgb = try npyImage("resize/source.npy")
        XCTAssertEqual(PILResize.bicubic(rgb, width: rgb.width, height: rgb.height), rgb)
    }

    func testDownscaleAntialiases() throws {
        // A one-pixel checkerboard shrunk 4x: antialiasing gives mid grey, point sampling would not.
        var img = Image8(width: 16, height: 16, channels: 1)
        for y in 0..<16 { for x in 0..<16 { img[x: x, y: y, c: 0] = (x + y) % 2 == 0 ? 255 : 0 } }
        let small = PILResize.bicubic(img, width: 4, height: 4)
        for v in small.pixels { XCTAssertTrue((120...135).contains(Int(v)), "\(v)") }
    }
}
