import Foundation
import SemplesEngine
import SemplesFormats

/// Writes a synthetic dataset in the VOC12 layout under `root`:
/// voc12/VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, SegmentationClassAug/<id>.png},
/// voc12/cls_labels.npy, voc12/train_aug_id.txt (training), voc12/train_id.txt (the list training
/// jobs evaluate on each epoch to pick epochs and thresholds), voc12/val_id.txt (evaluation), and
/// voc12/captions.json (`CaptionIndex`: what every image shows, in words).
///
/// Without validation images, train_id.txt and val_id.txt are both the evaluation list (the
/// reference's layout). With them, train_id.txt holds the validation images and val_id.txt the
/// held-out evaluation images, so that nothing is chosen on the images a result is reported on.
///
/// `clipCount` adds CLIP's captioned corpus (`clip_*` ids, lists clip_train_id.txt and
/// clip_val_id.txt, the last sixth held out for zero-shot accuracy): 40% scenes drawn with a
/// weaker co-occurrence (each object on its home background half of the time, standing for
/// CLIP's broader web data), 30% single objects on the mask grey, 23% backgrounds alone, 7% the
/// grey alone ("a plain grey picture.", so that an empty mask matches no class). It is
/// drawn from its own random stream, so the segmentation images do not depend on it.
public enum SyntheticDataset {
    public struct Summary: Codable {
        public var root: String
        public var train: Int
        public var evaluation: Int
        public var validation: Int = 0
        public var clip: Int = 0
        public var classes: [String]
        public var seed: UInt64
    }

    public static func write(to root: String, trainCount: Int, evalCount: Int, validationCount: Int = 0,
                             clipCount: Int = 0, seed: UInt64,
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
        let segmentationTotal = trainCount + validationCount + evalCount
        let total = segmentationTotal + clipCount
        var labels: [String: [Float]] = [:]
        var trainIDs: [String] = [], validationIDs: [String] = [], evalIDs: [String] = []
        var index = CaptionIndex(objects: SyntheticScenes.classes.map(\.name),
                                 backgrounds: SyntheticScenes.Background.allCases.map(\.name),
                                 homes: Dictionary(uniqueKeysWithValues: SyntheticScenes.classes.map { ($0.name, $0.home.name) }),
                                 images: [:])
        for n in 0..<segmentationTotal {
            let id = String(format: "syn_%06d", n)
            let scene = scenes.draw(using: &rng)
            let rgb = Image8(width: scene.width, height: scene.height, channels: 3, pixels: scene.rgb)
            let mask = Image8(width: scene.width, height: scene.height, channels: 1, pixels: scene.labels)
            try ImageIO.writeJPEG(rgb, quality: 92, to: images + "/\(id).jpg")
            try ImageIO.writePalettePNG(mask, palette: ImageIO.vocPalette(), to: masks + "/\(id).png")
            labels[id] = scene.classVector
            index.images[id] = SyntheticCaptions.entry(for: scene)
            if n < trainCount {
                trainIDs.append(id)
            } else if n < trainCount + validationCount {
                validationIDs.append(id)
            } else {
                evalIDs.append(id)
            }
            progress?(n + 1, total)
        }
        var clipIDs: [String] = []
        var clipRNG = SeededGenerator(seed: seed ^ 0xC11F_C0A9_05)
        var corpusScenes = SyntheticScenes()
        corpusScenes.homeProbability = 0.5
        for n in 0..<clipCount {
            let id = String(format: "clip_%06d", n)
            let pick = clipRNG.nextUniform()
            let scene = pick < 0.4 ? corpusScenes.draw(using: &clipRNG)
                : pick < 0.7 ? corpusScenes.drawObjectAlone(using: &clipRNG)
                : pick < 0.93 ? corpusScenes.drawBackgroundAlone(using: &clipRNG) : corpusScenes.drawBlank(using: &clipRNG)
            let rgb = Image8(width: scene.width, height: scene.height, channels: 3, pixels: scene.rgb)
            try ImageIO.writeJPEG(rgb, quality: 92, to: images + "/\(id).jpg")
            index.images[id] = SyntheticCaptions.entry(for: scene)
            clipIDs.append(id)
            progress?(segmentationTotal + n + 1, total)
        }
        try Npy.writeLabelDict(labels, to: voc + "/cls_labels.npy")
        func list(_ ids: [String], _ name: String) throws {
            try AtomicFile.write(Data((ids.joined(separator: "\n") + "\n").utf8), to: voc + "/" + name)
        }
        try list(trainIDs, "train_aug_id.txt")
        try list(validationCount > 0 ? validationIDs : evalIDs, "train_id.txt")
        try list(evalIDs, "val_id.txt")
        if clipCount > 0 {
            let heldOut = max(1, clipCount / 6)
            try list(Array(clipIDs.dropLast(heldOut)), "clip_train_id.txt")
            try list(Array(clipIDs.suffix(heldOut)), "clip_val_id.txt")
        }
        try index.write(to: voc + "/" + CaptionIndex.fileName)
        return Summary(root: root, train: trainCount, evaluation: evalCount, validation: validationCount,
                       clip: clipCount, classes: SyntheticScenes.classes.map(\.name), seed: seed)
    }
}
