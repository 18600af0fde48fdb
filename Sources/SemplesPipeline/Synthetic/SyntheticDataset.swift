import Foundation
import SemplesEngine
import SemplesFormats

/// Writes a synthetic dataset in the VOC12 layout under `root`:
/// voc12/VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, SegmentationClassAug/<id>.png},
/// voc12/cls_labels.npy, voc12/train_aug_id.txt, voc12/train_id.txt, voc12/val_id.txt.
public enum SyntheticDataset {
    public struct Summary: Codable {
        public var root: String
        public var train: Int
        public var evaluation: Int
        public var classes: [String]
        public var seed: UInt64
    }

    public static func write(to root: String, trainCount: Int, evalCount: Int, seed: UInt64,
                             progress: ((Int, Int) -> Void)? = nil) throws -> Summary {
        let fm = FileManager.default
        let voc = root + "/voc12"
        let images = voc + "/VOCdevkit/VOC2012/JPEGImages"
        let masks = voc + "/VOCdevkit/VOC2012/SegmentationClassAug"
        for dir in [images, masks] {
            do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw FormatError(dir, "cannot create the folder: \(error.localizedDescription)")
            }
        }
        var rng = SeededGenerator(seed: seed)
        let scenes = SyntheticScenes()
        let total = trainCount + evalCount
        var labels: [String: [Float]] = [:]
        var trainIDs: [String] = []
        var evalIDs: [String] = []
        for n in 0..<total {
            let id = String(format: "syn_%06d", n)
            let scene = scenes.draw(using: &rng)
            let rgb = Image8(width: scene.width, height: scene.height, channels: 3, pixels: scene.rgb)
            let mask = Image8(width: scene.width, height: scene.height, channels: 1, pixels: scene.labels)
            try ImageIO.writeJPEG(rgb, quality: 92, to: images + "/\(id).jpg")
            try ImageIO.writePalettePNG(mask, palette: ImageIO.vocPalette(), to: masks + "/\(id).png")
            labels[id] = scene.classVector
            if n < trainCount { trainIDs.append(id) } else { evalIDs.append(id) }
            progress?(n + 1, total)
        }
        try Npy.writeLabelDict(labels, to: voc + "/cls_labels.npy")
        func list(_ ids: [String], _ name: String) throws {
            try AtomicFile.write(Data((ids.joined(separator: "\n") + "\n").utf8), to: voc + "/" + name)
        }
        try list(trainIDs, "train_aug_id.txt")
        try list(evalIDs, "train_id.txt")
        try list(evalIDs, "val_id.txt")
        return Summary(root: root, train: trainCount, evaluation: evalCount,
                       classes: SyntheticScenes.classes.map(\.name), seed: seed)
    }
}
