import Foundation

/// The CLIP BPE vocabulary file could not be found.
public struct CLIPVocabularyMissing: Error, CustomStringConvertible {
    /// Every place that was looked at, in order.
    public let searched: [String]

    public var description: String {
        "CLIP vocabulary '\(CLIPTokenizer.vocabularyFileName)' not found; "
            + (searched.isEmpty ? "no path, no \(CLIPTokenizer.vocabularyEnvironmentKey) and no weights folder was given"
               : "looked at " + searched.map { "'\($0)'" }.joined(separator: ", "))
            + ". Get it from OpenAI's CLIP repository (clip/\(CLIPTokenizer.vocabularyFileName), about 1.3 MB) "
            + "and put it in the folder of the CLIP weights, or set \(CLIPTokenizer.vocabularyEnvironmentKey) "
            + "to its path."
    }
}

extension CLIPTokenizer {
    /// The vocabulary file to use: `configured` (a path from the job or command line) if given,
    /// else `$SEMPLES_CLIP_VOCAB`, else the file beside the weights in `modelFolder`.
    /// Throws `CLIPVocabularyMissing` listing every place looked at.
    public static func locateVocabulary(configured: String? = nil, modelFolder: String? = nil,
                                        environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> String
    {
        var candidates: [String] = []
        if let c = configured, !c.isEmpty { candidates.append(c) }
        if let e = environment[vocabularyEnvironmentKey], !e.isEmpty { candidates.append(e) }
        if let m = modelFolder, !m.isEmpty {
            candidates.append(URL(fileURLWithPath: m).appendingPathComponent(vocabularyFileName).path)
        }
        for c in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let inside = URL(fileURLWithPath: c).appendingPathComponent(vocabularyFileName).path
                    if FileManager.default.fileExists(atPath: inside) { return inside }
                } else {
                    return c
                }
            }
        }
        throw CLIPVocabularyMissing(searched: candidates)
    }

    /// Loads the tokenizer from the first vocabulary `locateVocabulary` finds.
    public static func load(configured: String? = nil, modelFolder: String? = nil) throws -> CLIPTokenizer {
        try CLIPTokenizer(vocabularyPath: locateVocabulary(configured: configured, modelFolder: modelFolder))
    }
}
