import Foundation
import SemplesEngine
import XCTest
@testable import SemplesFormats

final class NpyTests: XCTestCase {
    func testPlainArraysMatchNumpy() throws {
        for name in ["f4", "f2", "f8", "i8", "u1", "b1", "fortran", "scalar", "empty"] {
            let expected = try jsonFixture("npy/\(name).json") as! [String: Any]
            let a = try Npy.readArray(fixture("npy/\(name).npy"))
            XCTAssertEqual(a.shape, expected["shape"] as! [Int], name)
            let values = (expected["values"] as! [Double]).map { Float($0) }
            XCTAssertEqual(try a.toFloat32().toArray(), values, name)
        }
        XCTAssertTrue(try Npy.readArray(fixture("npy/fortran.npy")).fortranOrder)
    }

    func testCAMDictFromNumpy() throws {
        let expected = try jsonFixture("npy/cam.json") as! [String: [Double]]
        let cams = try Npy.readCAMDict(fixture("npy/cam.npy"))
        XCTAssertEqual(Set(cams.keys), Set(expected.keys.map { Int($0)! }))
        for (k, v) in expected {
            XCTAssertEqual(cams[Int(k)!]!.shape, Shape([5, 7]))
            XCTAssertEqual(cams[Int(k)!]!.toArray(), v.map { Float($0) })
        }
    }

    func testLabelDictsProtocol2And4() throws {
        let expected = try jsonFixture("npy/labels.json") as! [String: [Double]]
        for name in ["labels_p2.npy", "labels_p4.npy"] {
            let labels = try Npy.readLabelDict(fixture("npy/" + name))
            XCTAssertEqual(labels.count, expected.count, name)
            for (k, v) in expected { XCTAssertEqual(labels[k], v.map { Float($0) }, "\(name) \(k)") }
        }
    }

    func testRealVOCLabelDictionary() throws {
        let path = try sharedData("voc12/cls_labels.npy")
        let labels = try Npy.readLabelDict(path)
        XCTAssertEqual(labels.count, 12_031)
        XCTAssertTrue(labels.values.allSatisfy { $0.count == 20 && $0.allSatisfy { $0 == 0 || $0 == 1 } })
        // 2007_000032 shows aeroplanes and people (classes 0 and 14).
        let first = try XCTUnwrap(labels["2007_000032"])
        XCTAssertEqual(first.indices.filter { first[$0] == 1 }, [0, 14])
    }

    func testCAMDictRoundTrip() throws {
        let dir = temporaryDirectory(self)
        let a = Tensor([3, 4], values: (0..<12).map { Float($0) / 11 })
        let b = Tensor([3, 4], values: (0..<12).map { Float(11 - $0) * 0.001 })
        try Npy.writeCAMDict([14: b.view, 2: a.view], to: dir + "/cam.npy")
        let back = try Npy.readCAMDict(dir + "/cam.npy")
        XCTAssertEqual(back.keys.sorted(), [2, 14])
        XCTAssertEqual(back[2]!.toArray(), a.toArray())
        XCTAssertEqual(back[14]!.toArray(), b.toArray())
    }

    func testCAMDictLoadsInNumpy() throws {
        let dir = temporaryDirectory(self)
        let a = Tensor([2, 3], values: [0, 0.25, 0.5, 0.75, 1, 0.125])
        let b = Tensor([2, 3], values: [1, 2, 3, 4, 5, 6])
        try Npy.writeCAMDict([0: a.view, 19: b.view], to: dir + "/x.npy")
        try Npy.writeArray(a.view, to: dir + "/plain.npy")
        let script = """
        import numpy as np, sys, warnings
        warnings.simplefilter('error')
        d = np.load(sys.argv[1], allow_pickle=True).item()
        assert type(d) is dict and list(d.keys()) == [0, 19], d
        assert all(type(k) is int for k in d)
        assert d[0].dtype == np.float32 and d[0].shape == (2, 3) and d[0].flags.writeable
        assert np.array_equal(d[0], np.array([[0, .25, .5], [.75, 1, .125]], np.float32))
        assert np.array_equal(d[19], np.arange(1, 7, dtype=np.float32).reshape(2, 3))
        p = np.load(sys.argv[2])
        assert p.dtype == np.float32 and np.array_equal(p, d[0])
        print('ok')
        """
        let (status, out) = try runPython(script, modules: ["numpy"], arguments: [dir + "/x.npy", dir + "/plain.npy"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("ok"), out)
    }

    func testPlainArrayRoundTrip() throws {
        let dir = temporaryDirectory(self)
        let t = Tensor([2, 3, 2], values: (0..<12).map { Float($0) - 5.5 })
        try Npy.writeArray(t.view, to: dir + "/a.npy")
        let a = try Npy.readArray(dir + "/a.npy")
        XCTAssertEqual(a.shape, [2, 3, 2])
        XCTAssertEqual(try a.toFloat32().toArray(), t.toArray())
        try Npy.writeArray(bytes: Data([1, 2, 3, 250]), dtype: .uint8, shape: [2, 2], to: dir + "/u.npy")
        XCTAssertEqual(try Npy.readArray(dir + "/u.npy").toFloat32().toArray(), [1, 2, 3, 250])
    }

    func testBadNpyFiles() throws {
        let evil = fixture("bad/evil.npy")
        assertFormatError(evil, contains: "'posix.system'") { try Npy.readObject(evil) }
        let lying = fixture("bad/lying_header.npy")
        assertFormatError(lying, contains: "header promises shape [9, 9]") { try Npy.readArray(lying) }

        let dir = temporaryDirectory(self)
        let good = try Data(contentsOf: URL(fileURLWithPath: fixture("npy/labels_p2.npy")))
        for cut in [5, 40, 200, good.count - 1] {
            let p = dir + "/cut\(cut).npy"
            try good.prefix(cut).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try Npy.readLabelDict(p), "cut at \(cut)") { e in
                XCTAssertEqual((e as? FormatError)?.path, p)
            }
        }
        var magic = good
        magic[1] = 0x41
        try magic.write(to: URL(fileURLWithPath: dir + "/magic.npy"))
        assertFormatError(dir + "/magic.npy", contains: "wrong magic") { try Npy.readArray(dir + "/magic.npy") }

        let absurd = Npy.headerBytes(descr: "<f4", fortran: false, shape: [1 << 40, 1 << 40])
        try absurd.write(to: URL(fileURLWithPath: dir + "/absurd.npy"))
        assertFormatError(dir + "/absurd.npy", contains: "absurd") { try Npy.readArray(dir + "/absurd.npy") }

        // A CAM file holding a plain array where a dict belongs.
        try Npy.writeArray(Tensor([2]).view, to: dir + "/notdict.npy")
        assertFormatError(dir + "/notdict.npy", contains: "0-d object array") { try Npy.readCAMDict(dir + "/notdict.npy") }
    }
}
