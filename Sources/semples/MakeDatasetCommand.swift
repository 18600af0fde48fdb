import ArgumentParser
import Foundation
import SemplesPipeline

struct MakeDatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-dataset",
        abstract: "Write a dataset in the VOC12 layout.",
        discussion: """
        'synthetic': objects of five VOC classes (aeroplane, bird, boat, car, cow) drawn on textured
        backgrounds, one to three per image, each class nearly always on its own background (sky,
        water, road, grass). Deterministic from --seed. Writes JPEGImages, palette
        SegmentationClassAug masks, cls_labels.npy, captions.json (what each image shows, in
        words) and the id lists train_aug_id.txt (training), train_id.txt and val_id.txt
        (evaluation) under OUT/voc12, so 'data_path: OUT' works in a manifest.

        With --validation N, train_id.txt holds N validation images (what training jobs pick
        epochs and thresholds on) and val_id.txt the held-out evaluation images. --clip N adds a
        captioned corpus for 'job: clip' (clip_train_id.txt, clip_val_id.txt): scenes, single
        objects on grey and backgrounds alone.

        Example:
          semples make-dataset synthetic --out data/synthetic --train 400 --eval 100
          semples make-dataset synthetic --out data/syn --train 480 --validation 60 --eval 120 --clip 1200
        """)

    @Argument(help: "Kind of dataset: synthetic.") var kind: String
    @Option(help: "Folder to write (data_path of the manifests).") var out: String
    @Option(help: "Training images.") var train: Int = 400
    @Option(name: .customLong("eval"), help: "Evaluation images.") var evaluation: Int = 100
    @Option(help: "Validation images (train_id.txt); 0: train_id.txt is the evaluation list.") var validation: Int = 0
    @Option(help: "Captioned images for CLIP training (clip_train_id.txt, clip_val_id.txt).") var clip: Int = 0
    @Option(help: "Random seed.") var seed: UInt64 = 504

    func run() throws {
        guard kind == "synthetic" else { throw ValidationError("unknown dataset kind '\(kind)'; known: synthetic") }
        guard train >= 0, evaluation >= 1, validation >= 0, clip >= 0,
              train + evaluation + validation + clip <= 1_000_000 else {
            throw ValidationError("--train, --validation and --clip must be ≥ 0 and --eval ≥ 1 (at most a million images in all)")
        }
        let terminal = isatty(STDERR_FILENO) != 0
        let summary = try SyntheticDataset.write(to: out, trainCount: train, evalCount: evaluation,
                                                 validationCount: validation, clipCount: clip, seed: seed) { done, total in
            if terminal && (done % 25 == 0 || done == total) {
                FileHandle.standardError.write(Data("\r\u{1B}[Kwriting \(done)/\(total)".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        let extra = (summary.validation > 0 ? ", \(summary.validation) validation" : "")
            + (summary.clip > 0 ? ", \(summary.clip) captioned CLIP" : "")
        print("wrote \(summary.train) training\(extra) and \(summary.evaluation) evaluation images of \(summary.classes.joined(separator: ", ")) to '\(summary.root)/voc12'")
    }
}
