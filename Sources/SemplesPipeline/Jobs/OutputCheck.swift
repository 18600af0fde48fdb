import Foundation
import SemplesEngine
import SemplesFormats

/// A job output that failed its sanity check: the job fails with this reason instead of passing
/// off a damaged file as its result.
public struct OutputError: Error, CustomStringConvertible {
    public let file: String
    public let detail: String
    public var description: String { "output '\(file)' failed its check: \(detail)" }
}

/// Sanity checks on what a job writes, run before `result.json` can say succeeded: CAM maps
/// (finite, in [0, 1], the image's size), pseudo-masks (the image's size, only the labelled
/// classes), checkpoints (no NaN or infinite weight).
public enum OutputCheck {
    /// Every map [height, width] with values finite and in [0, 1].
    public static func camMaps(_ maps: [Int: TensorView], width: Int, height: Int, file: String) throws {
        for k in maps.keys.sorted() {
            let m = maps[k]!
            guard m.shape.dims == [height, width] else {
                throw OutputError(file: file, detail: "class \(k) map is \(m.shape.rank == 2 ? "\(m.shape[1])×\(m.shape[0])" : "\(m.shape)"), expected the image's \(width)×\(height)")
            }
            for i in 0..<m.count {
                let v = m.data[i]
                if !(v >= 0 && v <= 1) {   // false for NaN too
                    throw OutputError(file: file, detail: "class \(k) map has value \(v) at row \(i / width), column \(i % width); CAMs must be finite and in [0, 1]")
                }
            }
        }
    }

    /// Reads a CAM file back from disk and checks it: the classes it must hold and `camMaps`.
    public static func camFile(_ path: String, classes: [Int], width: Int, height: Int) throws {
        let maps: [Int: Tensor]
        do {
            maps = try Npy.readCAMDict(path)
        } catch {
            throw OutputError(file: path, detail: "cannot be read back: \(error)")
        }
        guard maps.keys.sorted() == classes.sorted() else {
            throw OutputError(file: path, detail: "holds classes \(maps.keys.sorted()), expected \(classes.sorted())")
        }
        try camMaps(maps.mapValues { $0.view }, width: width, height: height, file: path)
    }

    /// A pseudo-mask: width×height, values background (0), a labelled class (k + 1) or ignore (255).
    public static func mask(_ mask: Image8, classes: [Int], width: Int, height: Int, file: String) throws {
        guard mask.width == width, mask.height == height, mask.channels == 1 else {
            throw OutputError(file: file, detail: "mask is \(mask.width)×\(mask.height)×\(mask.channels), expected \(width)×\(height)×1")
        }
        var allowed = [Bool](repeating: false, count: 256)
        allowed[0] = true
        allowed[255] = true
        for k in classes where k + 1 < 255 { allowed[k + 1] = true }
        if let i = mask.pixels.firstIndex(where: { !allowed[Int($0)] }) {
            throw OutputError(file: file, detail: "mask value \(mask.pixels[i]) at row \(i / width), column \(i % width) is not background, ignore or a labelled class")
        }
    }

    /// Every tensor of a checkpoint finite; names the first tensor and element that is not.
    public static func finiteWeights(_ tensors: [(String, TensorView)], file: String) throws {
        for (name, t) in tensors {
            for i in 0..<t.count where !t.data[i].isFinite {
                throw OutputError(file: file, detail: "'\(name)'[\(i)] is \(t.data[i]); training diverged, so the checkpoint is not written")
            }
        }
    }
}
