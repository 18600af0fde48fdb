import Foundation
import XCTest
@testable import SemplesFormats

final class ImageTests: XCTestCase {
    func testDecodesLikePIL() throws {
        // PNG decoding is lossless and JPEG uses the same libjpeg IDCT as PIL: expect equality.
        for name in ["photo.jpg", "progressive.jpg", "grey.jpg", "cmyk.jpg", "rgb.png", "grey.png", "rgba.png"] {
            let img = try ImageIO.read(fixture("images/" + name))
            let expected = try npyImage("images/\(name).rgb.npy")
            XCTAssertEqual(img.channels, 3, name)
            XCTAssertEqual(img.width, 61, name)
            XCTAssertEqual(img.height, 47, name)
            let d = maxDifference(img, expected)
            XCTAssertLessThanOrEqual(d, name.hasSuffix("jpg") ? 1 : 0, name)
        }
    }

    func testLabelsKeepIndicesIncluding255() throws {
        let expected = try npyImage("images/labels.npy")
        XCTAssertTrue(expected.pixels.contains(255))
        for name in ["labels_palette.png", "labels_grey.png"] {
            let labels = try ImageIO.readLabels(fixture("images/" + name))
            XCTAssertEqual(labels.channels, 1)
            XCTAssertEqual(labels, expected, name)
        }
        let small = try ImageIO.readLabels(fixture("images/labels_4bit.png"))
        XCTAssertEqual(small, try npyImage("images/labels_4bit.npy"))
    }

    func testPaletteMatchesVOC() throws {
        let a = try Npy.readArray(fixture("images/voc_palette.npy"))
        let expected = [UInt8](UnsafeRawBufferPointer(start: a.source.base + a.offset, count: a.count))
        XCTAssertEqual(ImageIO.vocPalette(), expected)
        XCTAssertEqual(Array(ImageIO.vocPalette()[3..<6]), [128, 0, 0])
    }

    func testPNGRoundTrips() throws {
        let dir = temporaryDirectory(self)
        let rgb = try ImageIO.read(fixture("images/rgb.png"))
        try ImageIO.writePNG(rgb, to: dir + "/rgb.png")
        XCTAssertEqual(try ImageIO.read(dir + "/rgb.png"), rgb)

        var grey = Image8(width: 5, height: 3, channels: 1)
        for i in 0..<grey.pixels.count { grey.pixels[i] = UInt8(i * 17) }
        try ImageIO.writePNG(grey, to: dir + "/grey.png")
        XCTAssertEqual(try ImageIO.readLabels(dir + "/grey.png"), grey)

        let labels = try ImageIO.readLabels(fixture("images/labels_palette.png"))
        try ImageIO.writePalettePNG(labels, palette: ImageIO.vocPalette(), to: dir + "/mask.png")
        XCTAssertEqual(try ImageIO.readLabels(dir + "/mask.png"), labels)
        // Seen as colours, index 15 is VOC's person colour (192, 128, 128).
        let colours = try ImageIO.read(dir + "/mask.png")
        let i = labels.pixels.firstIndex(of: 15)!
        XCTAssertEqual(Array(colours.pixels[3 * i..<3 * i + 3]), [192, 128, 128])
    }

    func testFlip() throws {
        let src = try npyImage("resize/source.npy")
        XCTAssertEqual(src.flippedHorizontally(), try npyImage("resize/flipped.npy"))
        XCTAssertEqual(src.flippedHorizontally().flippedHorizontally(), src)
    }

    func testBadImagesAreRefused() throws {
        let dir = temporaryDirectory(self)
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: fixture("images/photo.jpg")))
        let png = try Data(contentsOf: URL(fileURLWithPath: fixture("images/rgb.png")))

        let cutJPEG = dir + "/cut.jpg"
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: cutJPEG))
        assertFormatError(cutJPEG, contains: "truncated") { try ImageIO.read(cutJPEG) }

        let cutPNG = dir + "/cut.png"
        try png.prefix(png.count / 2).write(to: URL(fileURLWithPath: cutPNG))
        assertFormatError(cutPNG, contains: "PNG decoding failed") { try ImageIO.read(cutPNG) }

        var corrupt = png
        corrupt[60] ^= 0xFF  // inside IDAT: CRC mismatch
        let badPNG = dir + "/crc.png"
        try corrupt.write(to: URL(fileURLWithPath: badPNG))
        assertFormatError(badPNG, contains: "PNG decoding failed") { try ImageIO.read(badPNG) }

        let text = dir + "/text.jpg"
        try Data("hello, this is not an image".utf8).write(to: URL(fileURLWithPath: text))
        assertFormatError(text, contains: "wrong magic") { try ImageIO.read(text) }

        let bomb = fixture("bad/bomb.png")
        assertFormatError(bomb, contains: "exceeds the limit") { try ImageIO.read(bomb) }
        assertFormatError(bomb, contains: "exceeds the limit") { try ImageIO.readLabels(bomb) }

        let missing = dir + "/missing.png"
        assertFormatError(missing, contains: "cannot open") { try ImageIO.read(missing) }

        assertFormatError(fixture("images/rgb.png"), contains: "palette or greyscale") {
            try ImageIO.readLabels(fixture("images/rgb.png"))
        }
        assertFormatError(fixture("images/photo.jpg"), contains: "must be PNG") {
            try ImageIO.readLabels(fixture("images/photo.jpg"))
        }
    }

    func testJPEGBombHeaderIsRefusedBeforeDecoding() throws {
        // Patch the SOF0 frame size of a real JPEG to 60000 x 60000.
        var jpeg = try Data(contentsOf: URL(fileURLWithPath: fixture("images/photo.jpg")))
        let sof = (0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && (jpeg[$0 + 1] == 0xC0 || jpeg[$0 + 1] == 0xC2) }!
        jpeg[sof + 5] = 0xEA; jpeg[sof + 6] = 0x60
        jpeg[sof + 7] = 0xEA; jpeg[sof + 8] = 0x60
        let p = temporaryDirectory(self) + "/bomb.jpg"
        try jpeg.write(to: URL(fileURLWithPath: p))
        assertFormatError(p, contains: "exceeds the limit") { try ImageIO.read(p) }
    }
}

final class OverlayTests: XCTestCase {
    func testJetColoursMatchOpenCV() throws {
        let lut = try npyImage("overlay/jet_lut.npy")  // [256, 3] as a 3x256 "image"
        XCTAssertEqual(lut.pixels.count, 768)
        var worst = 0
        for v in 0..<256 {
            let (r, g, b) = CAMOverlay.jetColor(UInt8(v))
            for (c, x) in [r, g, b].enumerated() { worst = max(worst, abs(Int(x) - Int(lut.pixels[3 * v + c]))) }
        }
        XCTAssertLessThanOrEqual(worst, 1)
        XCTAssertEqual(CAMOverlay.jetColor(0).blue, 128)
        XCTAssertEqual(CAMOverlay.jetColor(255).red, 128)
    }

    func testOverlayMatchesReferenceRecipe() throws {
        let image = try npyImage("overlay/image.npy")
        let cam = try Npy.readArray(fixture("overlay/cam.npy")).toFloat32()
        let out = CAMOverlay.jet(cam.view, on: image)
        let expected = try npyImage("overlay/overlay.npy")
        // One level of colour-table difference can move a truncated value by one more.
        XCTAssertLessThanOrEqual(maxDifference(out, expected), 2)
        XCTAssertGreaterThan(maxDifference(out, image), 50)
    }
}

final class JPEGEncodeTests: XCTestCase {
    func testJPEGRoundTripIsClose() throws {
        let p = temporaryDirectory(self) + "/photo.jpg"
        let src = FormatBenchmarks.samplePhoto(width: 64, height: 48)
        try ImageIO.writeJPEG(src, quality: 95, to: p)
        let back = try ImageIO.read(p)
        XCTAssertEqual(back.width, 64)
        XCTAssertEqual(back.height, 48)
        let mean = zip(src.pixels, back.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / src.pixels.count
        XCTAssertLessThanOrEqual(mean, 6)
        XCTAssertNotEqual(back, src)  // lossy: the decoder really ran
    }

    func testBenchmarkCheckpointHasTheRequestedSize() throws {
        let p = temporaryDirectory(self) + "/clip-size.pth"
        try FormatBenchmarks.writeCheckpoint(parameterCount: 20_000, to: p)
        let tensors = try Pth.orderedStateDict(p)
        XCTAssertEqual(tensors.map { $0.tensor.count }.reduce(0, +), 20_000)
        XCTAssertTrue(tensors.allSatisfy { $0.dtype == .float16 })
        XCTAssertEqual(tensors[0].tensor.toArray().prefix(3), [0, 0.01, 0.02].map { Float(Float16($0)) }[...])
    }
}
