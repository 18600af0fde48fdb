import Foundation
import SemplesEngine
import SemplesFormats

/// `captions.json` beside a dataset's images: what each image shows, in words, for contrastive
/// CLIP training (`job: clip`) and for the co-occurrence measures of the SemPLeS report.
///
///     {"objects": ["aeroplane", …], "backgrounds": ["sky", …],
///      "homes": {"aeroplane": "sky", …},
///      "images": {"syn_000000": {"kind": "scene", "background": "grass", "objects": ["cow", "car"],
///                                "captions": ["a photo of a cow and a car on grass.", …]}, …}}
///
/// `kind` is `scene` (objects on a background), `object` (one object on the mask grey),
/// `background` (a background alone, possibly with grey holes) or `blank` (the grey alone).
public struct CaptionIndex: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var kind: String
        public var background: String?
        public var objects: [String]
        public var captions: [String]
    }

    /// Object words (class names as the prompts spell them) and background words.
    public var objects: [String]
    public var backgrounds: [String]
    /// Each object class's usual background.
    public var homes: [String: String]
    public var images: [String: Entry]

    public static let fileName = "captions.json"

    /// Reads and checks an index; errors name the file and what is wrong.
    public static func read(_ path: String) throws -> CaptionIndex {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError("'\(path)' cannot be read; expected the captions.json that "
                + "'semples make-dataset synthetic' writes beside the images")
        }
        let index: CaptionIndex
        do {
            index = try JSONDecoder().decode(CaptionIndex.self, from: data)
        } catch {
            throw InputError("'\(path)' is not a caption index (objects, backgrounds, homes, images): \(error)")
        }
        if let (id, _) = index.images.first(where: { $0.value.captions.isEmpty }) {
            throw InputError("'\(path)': image '\(id)' has no captions")
        }
        return index
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: path)
    }
}

/// Caption templates: several phrasings of the same content, so that CLIP binds the object and
/// background words rather than one sentence shape. The first object template is exactly the
/// SemPLeS class prompt ("a photo of {name}.", spec §2.3).
public enum SyntheticCaptions {
    public static let objectTemplates = ["a photo of %@.", "a photo of a %@.", "a %@.", "%@"]
    public static let backgroundTemplates = ["%@", "a photo of %@.", "%@ background", "a photo of the %@."]
    /// Captions of an empty grey picture: neither an object nor a background.
    public static let blankCaptions = ["a plain grey picture.", "grey", "an empty picture.", "nothing"]

    /// Captions of one drawn picture.
    public static func captions(for scene: SyntheticScenes.Scene) -> (kind: String, captions: [String]) {
        var names: [String] = []
        for o in scene.objects where !names.contains(o.name) { names.append(o.name) }
        func fill(_ t: String, _ word: String) -> String { t.replacingOccurrences(of: "%@", with: word) }
        guard let background = scene.background?.name else {
            if names.isEmpty { return ("blank", blankCaptions) }
            return ("object", objectTemplates.map { fill($0, names.first ?? "") })
        }
        if names.isEmpty { return ("background", backgroundTemplates.map { fill($0, background) }) }
        let withArticles = names.map { "a " + $0 }.joined(separator: " and ")
        let bare = names.joined(separator: " and ")
        // Scene captions always name the background too: the bare class prompt "a photo of
        // {name}." belongs to the object alone (that is what separates object from background
        // words; with it on scenes, a whole scene matched the prompt better than the object did).
        return ("scene", ["a photo of \(withArticles) on \(background).", "\(withArticles) on \(background)",
                          "\(bare) on the \(background)", "a photo of \(bare) and \(background)."])
    }

    /// The index entry of one picture.
    public static func entry(for scene: SyntheticScenes.Scene) -> CaptionIndex.Entry {
        let (kind, captions) = Self.captions(for: scene)
        var names: [String] = []
        for o in scene.objects where !names.contains(o.name) { names.append(o.name) }
        return CaptionIndex.Entry(kind: kind, background: scene.background?.name, objects: names, captions: captions)
    }
}
