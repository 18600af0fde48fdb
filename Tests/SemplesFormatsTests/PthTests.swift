import Foundation
import SemplesEngine
import XCTest
@testable import SemplesFormats

final class PthTests: XCTestCase {
    /// Checks that `tensors` holds exactly the expected names and values (float32 comparison).
    func assertMatchesExpected(_ tensors: [String: NamedTensor], _ expectedPath: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try SafeTensors.read(expectedPath).tensors
        XCTAssertEqual(Set(tensors.keys), Set(expected.map(\.name)), file: file, line: line)
        for e in expected {
            guard let t = tensors[e.name] else { continue }
            XCTAssertEqual(t.tensor.shape, e.tensor.shape, e.name, file: file, line: line)
            XCTAssertEqual(t.tensor.toArray(), e.tensor.toArray(), e.name, file: file, line: line)
        }
    }

    func testTorchSaveCheckpoint() throws {
        let path = fixture("torch/checkpoint.pth")
        let root = try Pth.load(path)
        XCTAssertEqual(root["epoch"]?.intValue, 7)
        XCTAssertEqual(root["miou"]?.doubleValue, 0.6123456789)
        XCTAssertEqual(root["name"]?.stringValue, "tiny")
        // numpy scalars, tuples and the integer encodings of protocol 2.
        XCTAssertEqual(root["np_miou"]?.doubleValue, 0.625)
        XCTAssertEqual(root["np_epoch"]?.intValue, 9)
        XCTAssertEqual(root["np_f32"]?.doubleValue, 1.5)
        guard case .tuple(let betas)? = root["betas"], case .list(let flags)? = root["flags"] else {
            return XCTFail("betas/flags have the wrong kinds")
        }
        XCTAssertEqual(betas.compactMap(\.doubleValue), [0.9, 0.999])
        XCTAssertEqual(flags.count, 5)
        if case .bool(true) = flags[0] {} else { XCTFail("\(flags[0].kindName)") }
        if case .none = flags[1] {} else { XCTFail("\(flags[1].kindName)") }
        XCTAssertEqual(flags[2].intValue, -70000)
        XCTAssertEqual(flags[3].intValue, 1 << 40)
        XCTAssertEqual(flags[4].doubleValue, -1.5e-300)
        let sd = try Pth.stateDict(path, key: "model")
        try assertMatchesExpected(sd, fixture("torch/checkpoint.expected.safetensors"))
        XCTAssertEqual(sd["half"]?.dtype, .float16)
        XCTAssertEqual(sd["bf16"]?.dtype, .bfloat16)
        XCTAssertEqual(sd["long"]?.dtype, .int64)
        XCTAssertEqual(sd["byte"]?.dtype, .uint8)
        XCTAssertEqual(sd["mask"]?.dtype, .bool)
        XCTAssertEqual(sd["scalar"]?.tensor.shape, Shape([]))
        // File order is kept.
        XCTAssertEqual(try Pth.orderedStateDict(path, key: "model").first?.name, "cls_token")
        assertFormatError(path, contains: "no key 'weights'") { try Pth.stateDict(path, key: "weights") }
    }

    func testTrainingArgumentsAreAnInertRecord() throws {
        let path = fixture("torch/with_args.pth")
        let root = try Pth.load(path)
        guard case .object(let type, _)? = root["args"] else { return XCTFail("args: \(root["args"]?.kindName ?? "missing")") }
        XCTAssertEqual(type, "argparse.Namespace")
        XCTAssertEqual(root["args"]?["data_set"]?.stringValue, "VOC12")
        XCTAssertEqual(root["args"]?["lr"]?.doubleValue, 0.0005)
        XCTAssertEqual(try Pth.stateDict(path, key: "model")["w"]?.tensor.toArray(), [0, 1, 2, 3])
    }

    func testStateDictsAtTheRoot() throws {
        try assertMatchesExpected(try Pth.stateDict(fixture("torch/btp.pth")), fixture("torch/btp.expected.safetensors"))
        try assertMatchesExpected(try Pth.stateDict(fixture("torch/module_state.pth")),
                                  fixture("torch/module_state.expected.safetensors"))
    }

    func testTorchScriptTinyCLIP() throws {
        let path = fixture("torch/tiny_clip.pt")
        let archive = try Pth.open(path)
        XCTAssertTrue(archive.isTorchScript)
        let sd = try Pth.stateDict(path)
        // Exactly the state-dict names: the text blocks' plain attn_mask attribute is not a parameter.
        try assertMatchesExpected(sd, fixture("torch/tiny_clip.expected.safetensors"))
        XCTAssertEqual(sd["visual.transformer.resblocks.1.attn.in_proj_weight"]?.dtype, .float16)
        XCTAssertEqual(sd["visual.conv1.weight"]?.tensor.shape, Shape([8, 3, 4, 4]))
        XCTAssertEqual(sd["logit_scale"]?.tensor.shape, Shape([]))
    }

    func testInflatesEveryCompressedEntry() throws {
        // TorchScript code files are deflated; each must inflate to its declared size and CRC.
        let zip = try ZipArchive(path: fixture("torch/tiny_clip.pt"))
        let deflated = zip.entries.filter { $0.method == 8 }
        XCTAssertGreaterThan(deflated.count, 10)
        var total = 0
        for e in deflated { total += try zip.contents(e).count }
        XCTAssertGreaterThan(total, 100_000)
        let code = String(decoding: try zip.contents(zip.entry("tiny_clip/code/__torch__.py")!), as: UTF8.self)
        XCTAssertTrue(code.hasPrefix("class CLIP(Module):"), String(code.prefix(40)))
    }

    func testSaveRoundTrip() throws {
        let dir = temporaryDirectory(self)
        let a = Tensor([2, 3], values: [1, -2, 3.5, 4, 5, 6])
        let b = Tensor([4], values: [0.1, 0.2, 0.3, 0.4])
        let p = dir + "/ckpt.pth"
        try Pth.save(stateDict: [("blocks.0.weight", a.view), ("head.bias", b.view)],
                     extras: [("epoch", .int(12)), ("miou", .float(0.6543))], to: p)
        let root = try Pth.load(p)
        XCTAssertEqual(root["epoch"]?.intValue, 12)
        XCTAssertEqual(root["miou"]?.doubleValue, 0.6543)
        let sd = try Pth.orderedStateDict(p, key: "model")
        XCTAssertEqual(sd.map(\.name), ["blocks.0.weight", "head.bias"])
        XCTAssertEqual(sd[0].tensor.toArray(), a.toArray())
        XCTAssertEqual(sd[0].tensor.shape, a.shape)
        XCTAssertEqual(sd[1].tensor.toArray(), b.toArray())

        // Re-saving a loaded checkpoint keeps every dtype and stride.
        let loaded = try Pth.load(fixture("torch/checkpoint.pth"))
        try Pth.save(loaded, to: dir + "/again.pth")
        try assertMatchesExpected(try Pth.stateDict(dir + "/again.pth", key: "model"),
                                  fixture("torch/checkpoint.expected.safetensors"))
    }

    func testTorchLoadsOurCheckpoints() throws {
        let dir = temporaryDirectory(self)
        let w = Tensor([3, 2], values: [1, 2, 3, 4, 5, -6])
        let prompts = Tensor([2, 3, 4], values: (0..<24).map { Float($0) * 0.5 })
        try Pth.save(stateDict: [("head.weight", w.view), ("cls_token", prompts.view)],
                     extras: [("epoch", .int(3)), ("miou", .float(0.25))], to: dir + "/model.pth")
        try Pth.save(stateDict: [("prompts", prompts.view)], key: nil, to: dir + "/btp.pth")
        try Pth.save(try Pth.load(fixture("torch/checkpoint.pth")), to: dir + "/resaved.pth")
        let script = """
        import sys, torch, collections
        d = sys.argv[1]
        m = torch.load(d + '/model.pth', weights_only=True)
        assert m['epoch'] == 3 and m['miou'] == 0.25, m
        assert isinstance(m['model'], collections.OrderedDict)
        assert list(m['model'].keys()) == ['head.weight', 'cls_token']
        assert torch.equal(m['model']['head.weight'], torch.tensor([[1., 2.], [3., 4.], [5., -6.]]))
        assert torch.equal(m['model']['cls_token'], torch.arange(24.).reshape(2, 3, 4) * 0.5)
        b = torch.load(d + '/btp.pth', weights_only=True)
        assert list(b.keys()) == ['prompts'] and torch.equal(b['prompts'], m['model']['cls_token'])
        r = torch.load(d + '/resaved.pth', weights_only=True)
        o = torch.load(sys.argv[2], weights_only=False)  # the fixture holds numpy scalars
        for k, v in o['model'].items():
            assert r['model'][k].dtype == v.dtype and r['model'][k].stride() == v.stride() and torch.equal(r['model'][k], v), k
        assert r['epoch'] == 7
        print('ok')
        """
        let (status, out) = try runPython(script, modules: ["torch"], arguments: [dir, fixture("torch/checkpoint.pth")])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("ok"), out)
    }

    func testBadCheckpoints() throws {
        let evil = fixture("bad/evil.pth")
        assertFormatError(evil, contains: "'posix.system'") { try Pth.load(evil) }
        let evilPickle = fixture("bad/evil.pkl")
        assertFormatError(evilPickle, contains: "'posix.system'") { try Unpickler.load(try ByteSource(path: evilPickle)) }
        let dotdot = fixture("bad/dotdot.pth")
        assertFormatError(dotdot, contains: "'..'") { try Pth.load(dotdot) }

        let dir = temporaryDirectory(self)
        let good = try Data(contentsOf: URL(fileURLWithPath: fixture("torch/checkpoint.pth")))
        for cut in [0, 10, good.count / 3, good.count / 2, good.count - 30, good.count - 1] {
            let p = dir + "/cut\(cut).pth"
            try good.prefix(cut).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try Pth.stateDict(p, key: "model"), "cut at \(cut)") { e in
                XCTAssertEqual((e as? FormatError)?.path, p)
            }
        }
        // Flip a byte inside data.pkl: the CRC check catches it.
        var corrupt = good
        corrupt[200] ^= 0x55
        try corrupt.write(to: URL(fileURLWithPath: dir + "/crc.pth"))
        assertFormatError(dir + "/crc.pth", contains: "CRC") { try Pth.load(dir + "/crc.pth") }

        try Data("not a zip at all, just text".utf8).write(to: URL(fileURLWithPath: dir + "/text.pth"))
        assertFormatError(dir + "/text.pth", contains: "not a zip") { try Pth.load(dir + "/text.pth") }

        var legacy = Data([0x80, 0x02])
        legacy.append(Data(repeating: 0x2E, count: 30))
        try legacy.write(to: URL(fileURLWithPath: dir + "/legacy.pth"))
        assertFormatError(dir + "/legacy.pth", contains: "legacy") { try Pth.load(dir + "/legacy.pth") }
    }

    func testStorageSmallerThanItsTensorIsRefused() throws {
        // A storage entry of 8 bytes that the pickle says holds 100 floats.
        var w = PickleWriter(protocolVersion: 2)
        let small = TorchStorage(dtype: .float32, source: ByteSource(data: Data(count: 400), path: "x"), offset: 0, count: 100, key: "0")
        try w.write(.dict([(key: .string("t"), value: .tensor(try TorchTensor(storage: small, storageOffset: 0, shape: [100], strides: [1], path: "x")))]))
        var zip = ZipWriter()
        zip.add("a/data.pkl", w.finish())
        zip.add("a/data/0", Data(count: 8))
        zip.add("a/version", Data("3\n".utf8))
        let p = temporaryDirectory(self) + "/short.pth"
        try zip.finish().write(to: URL(fileURLWithPath: p))
        assertFormatError(p, contains: "claims 100 elements") { try Pth.stateDict(p) }
    }

    func testTensorStridesOutsideStorageAreRefused() throws {
        let s = TorchStorage(dtype: .float32, source: ByteSource(data: Data(count: 24), path: "x"), offset: 0, count: 6, key: "0")
        XCTAssertThrowsError(try TorchTensor(storage: s, storageOffset: 0, shape: [3, 3], strides: [3, 1], path: "f.pth")) { e in
            XCTAssertTrue("\(e)".contains("reaches element 8"), "\(e)")
        }
        XCTAssertNoThrow(try TorchTensor(storage: s, storageOffset: 0, shape: [3, 2], strides: [1, 3], path: "f.pth"))
    }
}
