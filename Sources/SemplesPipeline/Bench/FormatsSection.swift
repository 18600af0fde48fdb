import Foundation
import SemplesFormats

/// The file-format figures of `semples bench`: decoding a 500×375 JPEG, and loading a CLIP-size
/// (151 M fp16 values, ~300 MB) `.pth` checkpoint to float32, beside PIL and torch.load.
public enum FormatsBenchSection {
    struct TorchFigures: Decodable {
        var jpegDecodeMilliseconds: Double
        var checkpointLoadSeconds: Double
    }

    public static func run(threads: Int, iterations: Int, torch: TorchReference?, log: (String) -> Void) throws -> [BenchLine] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("semples-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let jpeg = folder + "/photo.jpg", checkpoint = folder + "/clip-size.pth"
        try ImageIO.writeJPEG(FormatBenchmarks.samplePhoto(), quality: 90, to: jpeg)
        log("formats: JPEG decode 500x375, CLIP-size checkpoint load (writing a 300 MB file)")
        var decode = Double.infinity
        for _ in 0..<max(iterations * 10, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try ImageIO.read(jpeg)
            decode = min(decode, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        try FormatBenchmarks.writeCheckpoint(to: checkpoint)
        let load = try FormatBenchmarks.checkpointLoadSeconds(checkpoint, iterations: iterations)
        var theirs: TorchFigures?
        var note: String?
        if let torch {
            log("formats: the same with PIL and torch.load")
            do {
                theirs = try torch.run("bench_formats_torch.py", ["--jpeg", jpeg, "--checkpoint", checkpoint,
                                                                  "--iterations", "\(iterations)", "--threads", "\(threads)"],
                                       as: TorchFigures.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        return [
            BenchLine(section: "formats", name: "jpeg_decode_500x375", unit: "ms", semples: decode,
                      torch: theirs?.jpegDecodeMilliseconds, note: note),
            BenchLine(section: "formats", name: "checkpoint_load_clip_size_fp16", unit: "s", semples: load,
                      torch: theirs?.checkpointLoadSeconds, note: note),
        ]
    }
}
