import Foundation
import SemplesEngine
import SemplesFormats
import SemplesManifest
import SemplesModels

/// The pipeline's last step when a held-out list is given (`test_list`): what SemPLeS changed.
///
/// For the WeakTr base, the stage-(a) model and the stage-(c) model (SemPLeS): CAMs of the
/// validation images choose the background threshold (the greedy sweep), then the CAMs of the
/// held-out images are scored at that threshold: mIoU, per-class IoU, and the co-occurrence
/// error: per class, the fraction of its home-background pixels (ground-truth background in
/// held-out images of the class whose background is the class's usual one, from captions.json)
/// that the prediction labels as the class. Also: for each class, the background word whose text
/// feature is nearest to the stage-(b) prompt's feature, and side-by-side overlays (base | SemPLeS).
/// Nothing is chosen on the held-out images.
public struct SemPLeSReport: Codable {
    public struct ModelRow: Codable {
        public var name: String
        public var checkpoint: String
        public var threshold: Double
        public var validationMIoU: Double
        public var miou: Double
        /// IoU per evaluated label (background first), nil where the label never occurs.
        public var classIoU: [String: Double]
        /// Co-occurrence error per object class (absent without captions.json or home images).
        public var cooccurrence: [String: Double]
        public var meanCooccurrence: Double?
    }

    public struct PromptRow: Codable {
        public var className: String
        public var home: String?
        public var nearest: String
        public var similarities: [String: Double]
    }

    public var validationImages: Int
    public var testImages: Int
    public var models: [ModelRow]
    public var prompts: [PromptRow]

    public static let fileName = "report.json"

    /// Runs the report for a pipeline whose steps are in `folder`.
    public static func run(manifest m: Manifest, testList: String, folder: URL, context: JobContext) throws -> SemPLeSReport {
        let s = m.semples!
        guard let validationList = s.imgMsList else {
            throw InputError("'\(m.file)': the report needs a validation list ('img_ms_list') to choose thresholds on")
        }
        let validation = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: validationList,
                                                 labelsPath: m.clsLabels, needLabels: true)
        let test = try SegmentationDataset(kind: m.dataSet, root: m.dataPath, listPath: testList,
                                           labelsPath: m.clsLabels, needLabels: true)
        var validationIDs = validation.ids, testIDs = test.ids
        if let limit = m.limit { validationIDs = Array(validationIDs.prefix(limit)); testIDs = Array(testIDs.prefix(limit)) }
        try validation.checkPresent(ids: validationIDs, images: true, groundTruth: true, labels: true)
        try test.checkPresent(ids: testIDs, images: true, groundTruth: true, labels: true)
        let captionsPath = URL(fileURLWithPath: m.imgList).deletingLastPathComponent().appendingPathComponent(CaptionIndex.fileName).path
        let captions = FileManager.default.fileExists(atPath: captionsPath) ? try CaptionIndex.read(captionsPath) : nil
        let labelSet: LabelSet = m.dataSet == .voc12 ? .voc : .coco
        let names = labelSet.classNames
        let pooling = WeakTrPooling(rawValue: m.poolType.rawValue)!
        let candidates = [("WeakTr base", m.resume!), ("stage (a)", StageJob.modelPath(in: folder.appendingPathComponent("a"))),
                          ("SemPLeS (c)", StageJob.modelPath(in: folder.appendingPathComponent("c")))]
        context.begin("report", total: candidates.count * (validationIDs.count + testIDs.count))
        var rows: [ModelRow] = []
        var firstTestCAMs: [[Int: Tensor]] = []
        let overlayCount = min(8, testIDs.count)
        let overlayFolder = context.outputFolder.appendingPathComponent("overlays").path
        try FileManager.default.createDirectory(atPath: overlayFolder, withIntermediateDirectories: true)
        for (index, (name, path)) in candidates.enumerated() {
            let dict = try StageJob.weakTrStateDict(path, classCount: m.dataSet.classCount, reduction: m.reduction, pooling: pooling)
            let model = try WeakTr(stateDict: dict, classCount: m.dataSet.classCount, reduction: m.reduction,
                                   pooling: pooling, source: path)
            let generator = CAMGenerator(model: model, scales: m.scales)
            var sweep = CAMEvaluator(dataSet: labelSet, mode: .curve(start: m.start, end: 60))
            for id in validationIDs {
                try context.checkStop()
                let image = try ImageIO.read(validation.imagePath(id))
                let gt = try ImageIO.readLabels(validation.groundTruthPath(id))
                try sweep.add(cams: generator.cams(for: image, labels: validation.labelVector(id)!), groundTruth: gt.pixels,
                              height: gt.height, width: gt.width, source: validation.imagePath(id))
                context.advance()
            }
            let chosen = sweep.metrics()
            var fixed = CAMEvaluator(dataSet: labelSet, mode: .fixed(threshold: chosen.bestThreshold))
            var homePixels = [Int](repeating: 0, count: names.count), wrong = [Int](repeating: 0, count: names.count)
            for (n, id) in testIDs.enumerated() {
                try context.checkStop()
                let image = try ImageIO.read(test.imagePath(id))
                let labels = test.labelVector(id)!
                let cams = generator.cams(for: image, labels: labels)
                let gt = try ImageIO.readLabels(test.groundTruthPath(id))
                let prediction = try fixed.add(cams: cams, groundTruth: gt.pixels, height: gt.height, width: gt.width,
                                               source: test.imagePath(id))
                if let captions, let background = captions.images[id]?.background, let prediction {
                    countCooccurrence(labels: labels, background: background, homes: captions.homes, names: names,
                                      groundTruth: gt.pixels, prediction: prediction, homePixels: &homePixels, wrong: &wrong)
                }
                if n < overlayCount {
                    if index == 0 { firstTestCAMs.append(cams) }
                    if index == candidates.count - 1 {
                        try writeOverlays(id: id, image: image, base: firstTestCAMs[n], semples: cams, names: names,
                                          folder: overlayFolder)
                    }
                }
                context.advance()
            }
            let result = fixed.metrics()
            var classIoU: [String: Double] = [:]
            for c in result.perClass { if let iou = c.iou { classIoU[c.name] = iou } }
            var cooccurrence: [String: Double] = [:]
            for k in homePixels.indices where homePixels[k] > 0 { cooccurrence[names[k]] = Double(wrong[k]) / Double(homePixels[k]) }
            let mean = cooccurrence.isEmpty ? nil : cooccurrence.values.reduce(0, +) / Double(cooccurrence.count)
            rows.append(ModelRow(name: name, checkpoint: path, threshold: chosen.bestThreshold,
                                 validationMIoU: chosen.bestMeanIoU, miou: result.bestMeanIoU, classIoU: classIoU,
                                 cooccurrence: cooccurrence, meanCooccurrence: mean))
            context.log(String(format: "report: %@ threshold %.2f (validation mIoU %.2f%%), held-out mIoU %.2f%%", name,
                               chosen.bestThreshold, chosen.bestMeanIoU * 100, result.bestMeanIoU * 100)
                        + (mean.map { String(format: ", co-occurrence error %.1f%%", $0 * 100) } ?? ""))
        }
        let prompts = try nearestWords(manifest: m, folder: folder, captions: captions, names: names)
        return SemPLeSReport(validationImages: validationIDs.count, testImages: testIDs.count, models: rows, prompts: prompts)
    }

    /// Co-occurrence counts of one image: for each labelled class k (0-based) whose home is the
    /// image's background, its ground-truth background pixels (label 0) go to homePixels[k + 1],
    /// and those the prediction labels k + 1 also to wrong[k + 1]. Ignore pixels (255) and object
    /// pixels count for neither.
    static func countCooccurrence(labels: [Float], background: String, homes: [String: String], names: [String],
                                  groundTruth: [UInt8], prediction: [UInt8], homePixels: inout [Int], wrong: inout [Int]) {
        for k in labels.indices where labels[k] > 0 && k + 1 < names.count && homes[names[k + 1]] == background {
            for i in groundTruth.indices where groundTruth[i] == 0 {
                homePixels[k + 1] += 1
                if prediction[i] == UInt8(k + 1) { wrong[k + 1] += 1 }
            }
        }
    }

    /// For each class with a stage-(b) prompt: cosine similarity of its prompt feature to the
    /// text features of "a photo of {word}." for every background word; the nearest one.
    static func nearestWords(manifest m: Manifest, folder: URL, captions: CaptionIndex?, names: [String]) throws -> [PromptRow] {
        guard let captions else { return [] }
        let btp = folder.appendingPathComponent("b").appendingPathComponent("btp.pth").path
        guard FileManager.default.fileExists(atPath: btp) else { return [] }
        let prompts = try StageJob.readPrompts(btp, classCount: m.dataSet.classCount)
        let clip = try CLIPModel.load(m.semples!.clip)
        let tokenizer = try CLIPTokenizer.load(modelFolder: URL(fileURLWithPath: m.semples!.clip).deletingLastPathComponent().path)
        let words = captions.backgrounds
        let wordText = try CLIPTextFeatures(texts: words.map(CLIPClassNames.prompt), model: clip, tokenizer: tokenizer).features
        let C = prompts.shape[0], L = prompts.shape[1], E = clip.config.embedDimension
        let features = Tensor([C, E])
        let T = CLIPPromptTemplate.semples.endPosition(length: L) + 1
        let arena = Arena(capacity: clip.text.arenaSize(batch: C, tokens: T, backward: false) + C * T * clip.config.textWidth + 64)
        clip.text.encodeBackgroundPrompts(prompts.view, template: .semples, into: features.view, arena: arena)
        normaliseRows(features.view)
        var rows: [PromptRow] = []
        for k in 0..<C {
            let name = names[k + 1]
            guard captions.objects.contains(name) else { continue }
            var sims: [String: Double] = [:]
            for (w, word) in words.enumerated() {
                sims[word] = Double(BLAS.dot(count: E, features.data + k * E, wordText.data + w * E))
            }
            let nearest = sims.max { $0.value < $1.value }!.key
            rows.append(PromptRow(className: name, home: captions.homes[name], nearest: nearest, similarities: sims))
        }
        return rows
    }

    /// overlays/<id>_<class>.png: the base CAM (left) and the SemPLeS CAM (right) on the image.
    static func writeOverlays(id: String, image: Image8, base: [Int: Tensor], semples: [Int: Tensor], names: [String],
                              folder: String) throws {
        for (k, left) in base.sorted(by: { $0.key < $1.key }) {
            guard let right = semples[k] else { continue }
            let a = CAMOverlay.jet(left.view, on: image), b = CAMOverlay.jet(right.view, on: image)
            let gap = 4
            var both = Image8(width: a.width * 2 + gap, height: a.height, channels: 3)
            for y in 0..<a.height {
                for x in 0..<a.width {
                    for c in 0..<3 {
                        both.pixels[(y * both.width + x) * 3 + c] = a.pixels[(y * a.width + x) * 3 + c]
                        both.pixels[(y * both.width + x + a.width + gap) * 3 + c] = b.pixels[(y * a.width + x) * 3 + c]
                    }
                }
            }
            try ImageIO.writePNG(both, to: folder + "/\(id)_\(names[k + 1])_base_vs_semples.png")
        }
    }

    /// The table `make demo` prints.
    public func table() -> String {
        var lines: [String] = []
        lines.append("CAM mIoU on \(testImages) held-out images (background threshold chosen on \(validationImages) validation images):")
        let classNames = models.first.map { Array($0.classIoU.keys).sorted { a, b in
            a == "background" ? true : b == "background" ? false : a < b } } ?? []
        let header = "  " + "model".padding(toLength: 13, withPad: " ", startingAt: 0) + "    t   mIoU"
            + classNames.map { " " + String($0.prefix(9)).leftPadded(9) }.joined()
        lines.append(header)
        for r in models {
            lines.append("  " + r.name.padding(toLength: 13, withPad: " ", startingAt: 0)
                         + String(format: " %.2f %5.1f%%", r.threshold, r.miou * 100)
                         + classNames.map { n in " " + (r.classIoU[n].map { String(format: "%8.1f%%", $0 * 100) } ?? "        -") }.joined())
        }
        let cooccurring = Array(Set(models.flatMap { $0.cooccurrence.keys })).sorted()
        if !cooccurring.isEmpty {
            lines.append("Co-occurrence error: the share of each class's home-background pixels labelled as the class:")
            lines.append("  " + "model".padding(toLength: 13, withPad: " ", startingAt: 0) + "    mean"
                         + cooccurring.map { " " + String($0.prefix(9)).leftPadded(9) }.joined())
            for r in models {
                lines.append("  " + r.name.padding(toLength: 13, withPad: " ", startingAt: 0)
                             + (r.meanCooccurrence.map { String(format: " %6.1f%%", $0 * 100) } ?? "       -")
                             + cooccurring.map { n in " " + (r.cooccurrence[n].map { String(format: "%8.1f%%", $0 * 100) } ?? "        -") }.joined())
            }
        }
        if !prompts.isEmpty {
            lines.append("Background prompts of stage (b): the nearest background word (cosine of the text features):")
            for p in prompts {
                let sims = p.similarities.sorted { $0.key < $1.key }.map { String(format: "%@ %.2f", $0.key, $0.value) }.joined(separator: ", ")
                lines.append("  \(p.className.padding(toLength: 10, withPad: " ", startingAt: 0)) → \(p.nearest.padding(toLength: 6, withPad: " ", startingAt: 0)) (home: \(p.home ?? "-"); \(sims))")
            }
        }
        if let base = models.first, let last = models.last, models.count > 1 {
            lines.append(String(format: "SemPLeS CAM mIoU %.1f%% vs WeakTr base %.1f%% (%+.1f points)", last.miou * 100,
                                base.miou * 100, (last.miou - base.miou) * 100))
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
