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
        SegmentationClassAug masks, cls_labels.npy and the id lists train_aug_id.txt (training),
        train_id.txt and val_id.txt (evaluation) under OUT/voc12, so 'data_path: OUT' works in a
        manifest.

        Example:
          semples make-dataset synthetic --out data/synthetic --train 400 --eval 100
        """)

    @Argument(help: "Kind of dataset: synthetic.") var kind: String
    @Option(help: "Folder to write (data_path of the manifests).") var out: String
    @Option(help: "Training images.") var train: Int = 400
    @Option(name: .customLong("eval"), help: "Evaluation images.") var evaluation: Int = 100
    @Option(help: "Random seed.") var seed: UInt64 = 504

    func run() throws {
        guard kind == "synthetic" else { throw ValidationError("unknown dataset kind '\(kind)'; known: synthetic") }
        guard train >= 0, evaluation >= 1, train + evaluation <= 1_000_000 else {
            throw ValidationError("--train must be ≥ 0 and --eval ≥ 1 (at most a million images in all)")
        }
        let terminal = isatty(STDERR_FILENO) != 0
        let summary = try SyntheticDataset.write(to: out, trainCount: train, evalCount: evaluation, seed: seed) { done, total in
            if terminal && (done % 25 == 0 || done == total) {
                FileHandle.standardError.write(Data("\r\u{1B}[Kwriting \(done)/\(total)".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        print("wrote \(summary.train) training and \(summary.evaluation) evaluation images of \(summary.classes.joined(separator: ", ")) to '\(summary.root)/voc12'")
    }
}
