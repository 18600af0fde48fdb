import Foundation

/// The CAM figures of `semples bench`: WeakTr (DeiT-S) multi-scale CAM generation on 500×375
/// images at scales 1.0 and 1.2 with flips, and peak memory for 640×480 at scale 1.2.
public enum CAMBenchSection {
    struct TorchFigures: Decodable {
        var imagesPerSecond: Double
        var peakMemoryBytes: Int
    }

    public static func run(threads: Int, images: Int, torch: TorchReference?, log: (String) -> Void) throws -> [BenchLine] {
        var options = CAMBenchmarkOptions()
        options.threads = threads
        options.images = images
        log("cam: WeakTr DeiT-S, \(options.width)x\(options.height), scales 1.0 and 1.2 with flips, \(images) images")
        let ours = try CAMBenchmark.run(options)
        var theirs: TorchFigures?
        var note: String?
        if let torch {
            log("cam: the same in PyTorch")
            do {
                theirs = try torch.run("bench_weaktr_torch.py", ["--threads", "\(threads)", "--images", "\(images)"],
                                       as: TorchFigures.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        let mb = 1.0 / 1_048_576
        return [
            BenchLine(section: "cam", name: "weaktr_cam_500x375_s1.0_1.2_flip", unit: "images/s",
                      semples: ours.imagesPerSecond, torch: theirs?.imagesPerSecond, higherIsBetter: true, note: note),
            BenchLine(section: "cam", name: "peak_memory_640x480_s1.2", unit: "MB",
                      semples: Double(ours.peakMemoryBytes) * mb, torch: theirs.map { Double($0.peakMemoryBytes) * mb }),
        ]
    }
}
