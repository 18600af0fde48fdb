import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels

/// Settings of the WeakTr CAM-generation benchmark (spec §9.3 workload).
public struct CAMBenchmarkOptions: Sendable {
    public var images = 4                   // timed images (after one warm-up image)
    public var width = 500
    public var height = 375
    public var scales: [Double] = [1.0, 1.2]
    public var classCount = 20
    public var positiveClasses = 2
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    public var memoryWidth = 640
    public var memoryHeight = 480
    public var memoryScales: [Double] = [1.2]
    public var attentionMemory: WeakTrAttentionMemory = .standard
    public var seed: UInt64 = 0

    public init() {}
}

/// Figures of one benchmark run.
public struct CAMBenchmarkResult: Codable, Sendable {
    public var imagesPerSecond: Double
    public var secondsPerImage: Double
    /// Processor time (user + system, all threads) per image over the timed loop: steadier than
    /// wall time on a shared machine.
    public var cpuSecondsPerImage: Double?
    public var images: Int
    public var threads: Int
    public var width: Int
    public var height: Int
    public var scales: [Double]
    public var attentionMemory: String
    /// Peak resident memory while generating the CAMs of one memoryWidth×memoryHeight image at
    /// memoryScales (flips included), above the resident size right after the model was built.
    public var peakMemoryBytes: Int
    /// The process's peak resident size over the same span.
    public var peakResidentBytes: Int
    public var memoryWidth: Int
    public var memoryHeight: Int
    public var memoryScales: [Double]
}

/// WeakTr CAM generation speed (images per second) and peak memory, with DeiT-S weights drawn at
/// random (speed and memory do not depend on the values).
public enum CAMBenchmark {
    /// A DeiT-S WeakTr (D 384, depth 12, 6 heads, reduction 8, max pooling) with random weights.
    public static func randomDeiTSmall(classCount: Int, seed: UInt64) throws -> WeakTr {
        let config = WeakTrConfig.deitSmall(classCount: classCount)
        var rng = SeededGenerator(seed: seed)
        var dict: [String: Tensor] = [:]
        for (name, shape) in config.expectedShapes {
            let t = Tensor(shape)
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : shape[0]
            let std = name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == "norm.weight"
                ? 0 : 1 / Float(fanIn).squareRoot()
            for i in 0..<t.count { t.data[i] = std * rng.nextNormal() + (std == 0 ? 1 : 0) }
            dict[name] = t
        }
        return try WeakTr(stateDict: dict, classCount: classCount, reduction: 8, pooling: .max, source: "<random>")
    }

    /// A smooth synthetic RGB image with noise.
    public static func syntheticImage(width: Int, height: Int, seed: UInt64) -> Image8 {
        var rng = SeededGenerator(seed: seed)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let f = (0..<6).map { _ in 0.02 + 0.1 * rng.nextUniform() }
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let v = 128 + 80 * sin(f[c] * Float(x)) * cos(f[c + 3] * Float(y)) + 10 * rng.nextNormal()
                    pixels[(y * width + x) * 3 + c] = UInt8(max(0, min(255, v.rounded())))
                }
            }
        }
        return Image8(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// Runs the memory measurement first (fresh workspace), then the timed loop.
    public static func run(_ options: CAMBenchmarkOptions) throws -> CAMBenchmarkResult {
        Parallel.configure(threads: options.threads)
        let model = try randomDeiTSmall(classCount: options.classCount, seed: options.seed)
        model.attentionMemory = options.attentionMemory
        var labels = [Float](repeating: 0, count: options.classCount)
        for k in 0..<min(options.positiveClasses, options.classCount) { labels[(k * 7) % options.classCount] = 1 }

        let memoryImage = syntheticImage(width: options.memoryWidth, height: options.memoryHeight, seed: 99)
        let baseline = ResidentMemory.resetPeak()
        do {
            let generator = CAMGenerator(model: model, scales: options.memoryScales)
            _ = generator.cams(for: memoryImage, labels: labels)
        }
        let peak = ResidentMemory.peak()

        // The timed loop gets its own generator; the model's workspace keeps the larger size.
        let generator = CAMGenerator(model: model, scales: options.scales)
        let images = (0...options.images).map {
            syntheticImage(width: options.width, height: options.height, seed: UInt64($0) + 1)
        }
        _ = generator.cams(for: images[0], labels: labels)
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = processorSeconds()
        for image in images.dropFirst() { _ = generator.cams(for: image, labels: labels) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = processorSeconds() - cpuStart
        return CAMBenchmarkResult(
            imagesPerSecond: Double(options.images) / seconds, secondsPerImage: seconds / Double(options.images),
            cpuSecondsPerImage: cpu / Double(options.images),
            images: options.images, threads: options.threads, width: options.width, height: options.height,
            scales: options.scales, attentionMemory: "\(options.attentionMemory)",
            peakMemoryBytes: max(0, peak - baseline), peakResidentBytes: peak,
            memoryWidth: options.memoryWidth, memoryHeight: options.memoryHeight, memoryScales: options.memoryScales)
    }
}

/// User + system time of this process so far, in seconds.
func processorSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(usage.ru_utime) + s(usage.ru_stime)
}

/// The WeakTr figures of `semples bench`: CAM generation speed and peak memory, beside the same
/// workload in PyTorch eager (scripts/bench_weaktr_torch.py) with the same thread count.
public enum WeakTrBenchSection {
    public static func run(threads: Int, images: Int, torch: TorchReference?, log: (String) -> Void) throws -> [BenchLine] {
        var options = CAMBenchmarkOptions()
        options.threads = threads
        options.images = images
        log("weaktr: CAM generation, DeiT-S random weights, \(options.width)×\(options.height) at scales 1.0 and 1.2 with flips, \(images) images")
        let ours = try CAMBenchmark.run(options)
        var theirs: CAMBenchmarkResult?
        var note: String?
        if let torch {
            log("weaktr: the same workload in PyTorch")
            do {
                theirs = try torch.run("bench_weaktr_torch.py", ["--threads", "\(threads)", "--images", "\(images)"],
                                       as: CAMBenchmarkResult.self)
            } catch {
                note = "PyTorch run failed: \(error)"
            }
        }
        let mb = 1.0 / 1_048_576
        var lines = [
            BenchLine(section: "weaktr", name: "cam 500x375 s1.0+1.2 flips", unit: "images/s",
                      semples: ours.imagesPerSecond, torch: theirs?.imagesPerSecond, higherIsBetter: true, note: note),
        ]
        if let cpu = ours.cpuSecondsPerImage {
            lines.append(BenchLine(section: "weaktr", name: "cam cpu time per image", unit: "s", semples: cpu,
                                   torch: theirs?.cpuSecondsPerImage, note: note))
        }
        lines.append(BenchLine(section: "weaktr", name: "cam peak memory 640x480 s1.2", unit: "MB",
                               semples: Double(ours.peakMemoryBytes) * mb,
                               torch: theirs.map { Double($0.peakMemoryBytes) * mb }, note: note))
        return lines
    }
}

/// Resident-set figures of this process from /proc (Linux).
enum ResidentMemory {
    /// Resets the kernel's peak-RSS mark (`clear_refs` 5) and returns the current RSS in bytes.
    static func resetPeak() -> Int {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return field("VmRSS")
    }

    /// Peak RSS (VmHWM) in bytes.
    static func peak() -> Int { field("VmHWM") }

    private static func field(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }
}
