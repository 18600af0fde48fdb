import Foundation
import SemplesEngine

/// Timings of the file formats on this machine, for `semples bench`: JPEG decoding of a
/// VOC-sized photo and loading a CLIP-size fp16 checkpoint. Inputs are generated in a scratch
/// folder, so nothing from the data sets is needed.
public enum FormatBenchmarks {
    /// A 500×375 (VOC-sized) synthetic photo with smooth areas, edges and noise.
    public static func samplePhoto(width: Int = 500, height: Int = 375) -> Image8 {
        var img = Image8(width: width, height: height, channels: 3)
        var rng = SeededGenerator(seed: 7)
        for y in 0..<height {
            for x in 0..<width {
                let noise = Int(rng.next() % 25) - 12
                let r = 128 + Int(100 * sin(Double(x) / 9) * cos(Double(y) / 13))
                let g = 255 * x / max(width - 1, 1)
                let dx = x - width / 2, dy = y - height / 2
                let b = dx * dx + dy * dy < (height / 3) * (height / 3) ? 230 : 20
                for (c, v) in [r, g, b].enumerated() { img[x: x, y: y, c: c] = UInt8(max(0, min(255, v + noise))) }
            }
        }
        return img
    }

    /// Milliseconds per decode of a quality-90 JPEG of `samplePhoto()` (best of `iterations`).
    public static func jpegDecodeMilliseconds(iterations: Int, folder: String) throws -> Double {
        let path = folder + "/bench-photo.jpg"
        try ImageIO.writeJPEG(samplePhoto(), quality: 90, to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var best = Double.infinity
        for _ in 0..<max(iterations, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            let img = try ImageIO.read(path)
            precondition(img.width == 500)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return best
    }

    /// Writes a CLIP ViT-B/32-size checkpoint: fp16 tensors totalling `parameterCount` values
    /// (OpenAI's file holds about 151 million), as torch.save lays it out.
    public static func writeCheckpoint(parameterCount: Int = 151_000_000, to path: String) throws {
        // 12 matrices of [rows, 768] plus one remainder tensor.
        let rows = max(parameterCount / 12 / 768, 1)
        var entries: [(key: PickleValue, value: PickleValue)] = []
        var written = 0
        for i in 0...12 {
            let count = i < 12 ? rows * 768 : parameterCount - 12 * rows * 768
            guard count > 0 else { continue }
            var bytes = Data(count: count * 2)
            bytes.withUnsafeMutableBytes { raw in
                let h = raw.bindMemory(to: UInt16.self)
                for j in 0..<count { h[j] = Float16(Float((j + i) % 97) * 0.01).bitPattern }
            }
            let storage = TorchStorage(dtype: .float16, source: ByteSource(data: bytes, path: path), offset: 0,
                                       count: count, key: String(i))
            let shape = i < 12 ? [rows, 768] : [count]
            let t = try TorchTensor(storage: storage, storageOffset: 0, shape: shape,
                                    strides: TorchTensor.contiguousStrides(shape), path: path)
            entries.append((key: .string("blocks.\(i).weight"), value: .tensor(t)))
            written += count
        }
        precondition(written == parameterCount)
        try Pth.save(.orderedDict(entries), to: path)
    }

    /// Seconds to load every tensor of the checkpoint at `path` as float32 (best of `iterations`).
    public static func checkpointLoadSeconds(_ path: String, iterations: Int) throws -> Double {
        var best = Double.infinity
        for _ in 0..<max(iterations, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            let tensors = try Pth.orderedStateDict(path)
            precondition(!tensors.isEmpty)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }
}
