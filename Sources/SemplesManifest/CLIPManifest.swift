import Foundation

/// Keys of `job: clip`: contrastive training of a small CLIP ViT on a captioned image list (the
/// CLIP paper's recipe: symmetric InfoNCE, learnable logit scale, AdamW, cosine schedule).
/// The image tower has `clip_width / 64` heads, as OpenAI's loader infers them from the widths
/// (spec §7.1), so the checkpoint loads like any CLIP file.
public struct CLIPManifest: Codable, Sendable, Equatable {
    /// `captions.json` (a caption index) with the captions of every listed image.
    public var captions: String
    /// Held-out captioned images for the zero-shot accuracies; nil: none.
    public var heldoutList: String?
    /// The BPE vocabulary (`bpe_simple_vocab_16e6.txt.gz`); nil: `$SEMPLES_CLIP_VOCAB`.
    public var vocabulary: String?
    public var inputSize = 112
    public var patchSize = 16
    public var visionWidth = 128
    public var visionLayers = 3
    public var textWidth = 128
    public var textLayers = 3
    public var embedDimension = 128
    public var epochs = 12
    public var batchSize = 32
    public var lr = 5e-4
    public var minLr = 1e-5
    public var warmupEpochs = 1
    public var weightDecay = 0.1

    public init(captions: String) { self.captions = captions }
}

/// The keys `job: clip` reads besides those of every job: its own, and shared training keys
/// (`epochs`, `batch_size`, …) that the main table lists for other jobs.
let clipKeySpecs: [String: KeySpec] = [
    "captions": KeySpec(jobs: [.clip]),
    "heldout_list": KeySpec(jobs: [.clip]),
    "vocabulary": KeySpec(jobs: [.clip]),
    "patch_size": KeySpec(jobs: [.clip]),
    "clip_width": KeySpec(jobs: [.clip]),
    "clip_layers": KeySpec(jobs: [.clip]),
    "text_width": KeySpec(jobs: [.clip]),
    "text_layers": KeySpec(jobs: [.clip]),
    "clip_embed_dim": KeySpec(jobs: [.clip]),
    "epochs": KeySpec(jobs: [.clip]),
    "batch_size": KeySpec(jobs: [.clip]),
    "lr": KeySpec(jobs: [.clip]),
    "min_lr": KeySpec(jobs: [.clip]),
    "warmup_epochs": KeySpec(jobs: [.clip]),
    "weight_decay": KeySpec(jobs: [.clip]),
    "input_size": KeySpec(jobs: [.clip]),
]

extension KeyReader {
    /// `img_list` default for `job: clip`: clip_train_id.txt beside the labels or in DATA_PATH/voc12.
    func defaultCLIPList(dataPath: String, clsLabels: String?) throws -> String {
        let folder = clsLabels.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? dataPath + "/voc12"
        let list = folder + "/clip_train_id.txt"
        if checkFiles && !FileManager.default.isReadableFile(atPath: list) {
            throw fail("img_list", "missing, and the default captioned list '\(list)' does not exist "
                + "(make one with 'semples make-dataset synthetic --clip N')")
        }
        return list
    }

    func readCLIPKeys(imgList: String) throws -> CLIPManifest {
        let folder = URL(fileURLWithPath: imgList).deletingLastPathComponent()
        let captions: String
        if let given = try path("captions", directory: false) {
            captions = given
        } else {
            captions = folder.appendingPathComponent("captions.json").path
            if checkFiles && !FileManager.default.isReadableFile(atPath: captions) {
                throw fail("captions", "missing, and no captions.json beside img_list ('\(captions)')")
            }
        }
        var c = CLIPManifest(captions: captions)
        if let list = try path("heldout_list", directory: false) {
            c.heldoutList = list
        } else {
            let beside = folder.appendingPathComponent("clip_val_id.txt").path
            c.heldoutList = FileManager.default.isReadableFile(atPath: beside) ? beside : nil
        }
        c.vocabulary = try path("vocabulary", directory: false)
        c.inputSize = try int("input_size", range: 16...1024) ?? c.inputSize
        c.patchSize = try int("patch_size", range: 2...64) ?? c.patchSize
        guard c.inputSize % c.patchSize == 0 else {
            throw fail("patch_size", "input_size \(c.inputSize) is not a multiple of patch_size \(c.patchSize)")
        }
        c.visionWidth = try int("clip_width", range: 64...2048) ?? c.visionWidth
        c.textWidth = try int("text_width", range: 64...2048) ?? c.textWidth
        for (key, width) in [("clip_width", c.visionWidth), ("text_width", c.textWidth)] where width % 64 != 0 {
            throw fail(key, "\(width) is not a multiple of 64: CLIP files carry no head count, loaders use width / 64 heads")
        }
        c.visionLayers = try int("clip_layers", range: 1...48) ?? c.visionLayers
        c.textLayers = try int("text_layers", range: 1...48) ?? c.textLayers
        c.embedDimension = try int("clip_embed_dim", range: 8...2048) ?? c.embedDimension
        c.epochs = try int("epochs", range: 1...10_000) ?? c.epochs
        c.batchSize = try int("batch_size", range: 2...4096) ?? c.batchSize
        c.lr = try double("lr", range: 0...10) ?? c.lr
        c.minLr = try double("min_lr", range: 0...10) ?? c.minLr
        c.warmupEpochs = try int("warmup_epochs", range: 0...10_000) ?? c.warmupEpochs
        c.weightDecay = try double("weight_decay", range: 0...10) ?? c.weightDecay
        return c
    }
}
