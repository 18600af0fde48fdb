import ArgumentParser
import Foundation
import SemplesEngine
import SemplesFormats
import SemplesModels
import SemplesPipeline

/// `semples clip …`: check CLIP weights and prompts by hand.
struct ClipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip", abstract: "Tokenise prompts and score images against texts with CLIP.",
        subcommands: [ClipTokenizeCommand.self, ClipScoreCommand.self, ClipBenchCommand.self])
}

/// Where to find the BPE vocabulary, shared by the subcommands.
struct VocabularyOptions: ParsableArguments {
    @Option(name: .customLong("vocab"),
            help: "Path of bpe_simple_vocab_16e6.txt.gz (or its folder). Default: $SEMPLES_CLIP_VOCAB, then the weights' folder.")
    var vocabulary: String?

    func tokenizer(modelFolder: String?) throws -> CLIPTokenizer {
        try CLIPTokenizer.load(configured: vocabulary, modelFolder: modelFolder)
    }
}

struct ClipTokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the 77 CLIP token ids of each text, one line per text.")

    @OptionGroup var vocabulary: VocabularyOptions
    @Flag(help: "Print only the ids up to and including the end-of-text token.") var short = false
    @Flag(help: "Print a JSON array of id arrays.") var json = false
    @Argument(help: "Texts to tokenise.") var texts: [String]

    func run() throws {
        let tokenizer = try vocabulary.tokenizer(modelFolder: nil)
        var rows: [[Int32]] = []
        for text in texts {
            let ids = tokenizer.tokenize(text)
            let end = CLIPTextEncoder.endPositions([ids])[0]
            rows.append(short ? Array(ids[0...end]) : ids)
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows.map { $0.map(Int.init) })
            print(String(decoding: data, as: UTF8.self))
        } else {
            for row in rows { print(row.map(String.init).joined(separator: " ")) }
        }
    }
}

struct ClipScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Cosine similarity of every image with every text.",
        discussion: """
        Reads CLIP weights (OpenAI's TorchScript .pt, a .pth state dict or .safetensors with OpenAI's
        key names), resizes each image's shorter side to the model resolution (bicubic), crops the
        centre and normalises with CLIP's statistics (or ImageNet's with --normalisation imagenet).
        """)

    @Option(help: "CLIP weight file.") var weights: String
    @Option(name: .customLong("image"), help: "An image (JPEG or PNG); repeat for more.") var images: [String] = []
    @Option(name: .customLong("text"), help: "A text; repeat for more.") var texts: [String] = []
    @Option(help: "Pixel statistics: clip or imagenet.") var normalisation: String = "clip"
    @OptionGroup var vocabulary: VocabularyOptions
    @Flag(help: "Print JSON: {images, texts, similarity: [[image × text]]}.") var json = false

    func validate() throws {
        guard !images.isEmpty, !texts.isEmpty else { throw ValidationError("give at least one --image and one --text") }
        guard CLIPPreprocess.Normalisation(rawValue: normalisation) != nil else {
            throw ValidationError("--normalisation must be clip or imagenet, not '\(normalisation)'")
        }
    }

    func run() throws {
        let folder = URL(fileURLWithPath: weights).deletingLastPathComponent().path
        let tokenizer = try vocabulary.tokenizer(modelFolder: folder)
        let model = try CLIPModel.load(weights)
        let c = model.config, R = c.imageResolution
        let textFeatures = try CLIPTextFeatures(texts: texts, model: model, tokenizer: tokenizer)

        let pixels = Tensor([1, 3, R, R])
        let imageFeatures = Tensor([images.count, c.embedDimension])
        let arena = Arena(capacity: model.image.arenaSize(batch: 1, backward: false))
        for (i, path) in images.enumerated() {
            let image = try ImageIO.read(path)
            CLIPPreprocess.pixels(image, resolution: R, normalisation: .init(rawValue: normalisation)!,
                                  into: pixels.view)
            arena.reset()
            model.image.forward(pixels.view, into: imageFeatures.view.rows(i, 1), arena: arena)
        }
        normaliseRows(imageFeatures.view)
        var similarity: [[Float]] = []
        for i in 0..<images.count {
            similarity.append((0..<texts.count).map { j in
                BLAS.dot(count: c.embedDimension, imageFeatures.view[i].data, textFeatures.features.view[j].data)
            })
        }
        if json {
            let object: [String: Any] = ["images": images, "texts": texts,
                                         "similarity": similarity.map { $0.map(Double.init) }]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (i, path) in images.enumerated() {
                for (j, text) in texts.enumerated() {
                    print(String(format: "%.4f", similarity[i][j]) + "\t'\(path)'\t'\(text)'")
                }
            }
        }
    }
}

struct ClipBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time CLIP ViT-B/32 (random weights) against PyTorch: image forward, forward + pixel gradient, class prompts.",
        discussion: """
        The PyTorch side runs scripts/fixtures/clip.py bench with a Python that has torch and the
        clip-anytorch package (--python, $SEMPLES_PYTHON, then .venv-torch/bin/python). Ratios above
        1 mean semples is faster. Machines are noisy: compare ratios from one run.
        """)

    @Option(help: "Images per batch.") var batch = 8
    @Option(help: "Class prompts through the text encoder.") var prompts = 20
    @Option(help: "Timed runs (median reported).") var runs = 3
    @Option(help: "Threads for both sides (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Python with torch for the PyTorch side.") var python: String?
    @Flag(help: "Skip PyTorch.") var noTorch = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        Parallel.configure(threads: threads)
        let model = CLIPModel(config: .vitB32)
        CLIPBenchmark.randomise(model)
        let ours = CLIPBenchmark.Report(threads: threads,
                                        results: CLIPBenchmark.run(model: model, batch: batch, prompts: prompts, runs: runs))
        var theirs: CLIPBenchmark.Report?
        if !noTorch {
            let found = TorchReference.locate(explicit: python, projectFolder: TorchReference.findProjectFolder())
            if let torch = found.reference {
                do {
                    theirs = try torch.run("fixtures/clip.py", ["bench", "--batch", "\(batch)", "--prompts", "\(prompts)",
                                                                "--runs", "\(runs)", "--threads", "\(threads)"],
                                           as: CLIPBenchmark.Report.self)
                } catch {
                    FileHandle.standardError.write(Data("clip bench: PyTorch run failed: \(error)\n".utf8))
                }
            } else {
                FileHandle.standardError.write(Data("clip bench: PyTorch not measured: \(found.reason)\n".utf8))
            }
        }
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(["semples": ours, "torch": theirs].compactMapValues { $0 }), as: UTF8.self))
            return
        }
        print("figure".padding(toLength: 34, withPad: " ", startingAt: 0) + "  semples s   torch s   ratio")
        for r in ours.results {
            let t = theirs?.results.first { $0.name == r.name }?.seconds
            var line = r.name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "  %9.3f", r.seconds)
            if let t { line += String(format: " %9.3f %7.2f×", t, t / r.seconds) }
            print(line)
        }
    }
}
