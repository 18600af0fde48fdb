import Foundation
import SemplesFormats

/// CLIP's byte-level BPE tokenizer over `bpe_simple_vocab_16e6.txt.gz`, equal to OpenAI's:
/// clean-up, the pre-tokenising pattern, byte-to-symbol mapping, merges by rank, SOT/EOT framing.
public struct CLIPTokenizer: Sendable {
    /// `<|startoftext|>`.
    public static let startOfText: Int32 = 49406
    /// `<|endoftext|>`; the text feature is read at its position (the largest id).
    public static let endOfText: Int32 = 49407
    /// Tokens per sequence in every CLIP model.
    public static let contextLength = 77
    /// The vocabulary file's name, as OpenAI ships it.
    public static let vocabularyFileName = "bpe_simple_vocab_16e6.txt.gz"
    /// Environment variable naming the vocabulary file.
    public static let vocabularyEnvironmentKey = "SEMPLES_CLIP_VOCAB"

    /// Number of merges used (the file holds a header line and more merges than the model uses).
    static let mergeCount = 49152 - 256 - 2

    /// Symbol id of each byte inside a word, and at the end of a word (`</w>` form).
    private let byteSymbol: [Int32]
    private let byteEndSymbol: [Int32]
    /// Merge rank of an adjacent symbol pair, keyed by `first << 32 | second`.
    private let mergeRank: [UInt64: Int32]
    /// The symbol a merge of the given rank produces.
    private let mergeResult: [Int32]

    /// Loads the gzip vocabulary at `vocabularyPath`.
    public init(vocabularyPath: String) throws {
        let data = try Gzip.read(vocabularyPath)
        guard let text = String(data: data, encoding: .utf8) else {
            throw FormatError(vocabularyPath, "is not UTF-8 text after decompression")
        }
        try self.init(mergesText: text, path: vocabularyPath)
    }

    /// Builds the tokenizer from the decompressed merges text; `path` only labels errors.
    public init(mergesText: String, path: String) throws {
        let lines = mergesText.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= Self.mergeCount + 1 else {
            throw FormatError(path, "holds \(lines.count) lines, expected at least \(Self.mergeCount + 1) "
                + "(a header and \(Self.mergeCount) merges); is it '\(Self.vocabularyFileName)'?")
        }
        // Byte → printable symbol, as the reference maps bytes so that none is white space.
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codepoints = printable
        var extra = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codepoints.append(256 + extra)
            extra += 1
        }
        var vocabulary: [String] = []
        vocabulary.reserveCapacity(49408)
        for c in codepoints { vocabulary.append(String(Character(Unicode.Scalar(UInt32(c))!))) }
        for c in codepoints { vocabulary.append(String(Character(Unicode.Scalar(UInt32(c))!)) + "</w>") }
        var merges: [(Substring, Substring)] = []
        merges.reserveCapacity(Self.mergeCount)
        for (n, line) in lines[1...Self.mergeCount].enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else {
                throw FormatError(path, "line \(n + 2): expected two symbols, found '\(line)'")
            }
            merges.append((parts[0], parts[1]))
            vocabulary.append(String(parts[0] + parts[1]))
        }
        vocabulary.append("<|startoftext|>")
        vocabulary.append("<|endoftext|>")
        // Later duplicates win, as when the reference builds its dictionaries.
        var encoder: [String: Int32] = [:]
        encoder.reserveCapacity(vocabulary.count)
        for (i, v) in vocabulary.enumerated() { encoder[v] = Int32(i) }
        guard encoder["<|endoftext|>"] == Self.endOfText, encoder["<|startoftext|>"] == Self.startOfText else {
            throw FormatError(path, "gives a vocabulary of \(vocabulary.count) entries, expected 49408")
        }

        var byteSymbol = [Int32](repeating: 0, count: 256)
        var byteEndSymbol = [Int32](repeating: 0, count: 256)
        for (i, b) in printable.enumerated() {
            byteSymbol[b] = encoder[vocabulary[i]]!
            byteEndSymbol[b] = encoder[vocabulary[i + 256]]!
        }
        var mergeRank: [UInt64: Int32] = [:]
        mergeRank.reserveCapacity(merges.count)
        var mergeResult: [Int32] = []
        mergeResult.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = encoder[String(a)], let ib = encoder[String(b)] else {
                throw FormatError(path, "line \(rank + 2): merge '\(a) \(b)' uses a symbol no earlier line makes")
            }
            mergeRank[Self.pairKey(ia, ib)] = Int32(rank)
            mergeResult.append(encoder[String(a + b)]!)
        }
        self.byteSymbol = byteSymbol
        self.byteEndSymbol = byteEndSymbol
        self.mergeRank = mergeRank
        self.mergeResult = mergeResult
    }

    @inline(__always) private static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// BPE ids of `text` after clean-up, without SOT/EOT.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for piece in Self.pieces(of: CLIPTextCleaner.clean(text)) {
            switch piece {
            case "<|startoftext|>": ids.append(Self.startOfText)
            case "<|endoftext|>": ids.append(Self.endOfText)
            default: ids.append(contentsOf: bpe(Array(piece.utf8)))
            }
        }
        return ids
    }

    /// `contextLength` ids: SOT, the BPE ids, EOT, then zeros. Too long a text is cut and its
    /// last kept id replaced by EOT.
    public func tokenize(_ text: String, contextLength: Int = CLIPTokenizer.contextLength) -> [Int32] {
        precondition(contextLength >= 2, "context length \(contextLength) < 2")
        var ids = [Self.startOfText] + encode(text) + [Self.endOfText]
        if ids.count > contextLength {
            ids.removeLast(ids.count - contextLength)
            ids[contextLength - 1] = Self.endOfText
        }
        return ids + [Int32](repeating: 0, count: contextLength - ids.count)
    }

    /// Merges the symbols of one piece (its UTF-8 bytes) by rank until no known pair is left.
    func bpe(_ bytes: [UInt8]) -> [Int32] {
        guard !bytes.isEmpty else { return [] }
        var word = bytes.dropLast().map { byteSymbol[Int($0)] }
        word.append(byteEndSymbol[Int(bytes.last!)])
        while word.count > 1 {
            var best = Int32.max
            for i in 0..<(word.count - 1) {
                if let r = mergeRank[Self.pairKey(word[i], word[i + 1])], r < best { best = r }
            }
            if best == Int32.max { break }
            // Merge every occurrence of the best pair, left to right, without overlaps.
            let merged = mergeResult[Int(best)]
            var next: [Int32] = []
            next.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i + 1 < word.count, mergeRank[Self.pairKey(word[i], word[i + 1])] == best {
                    next.append(merged)
                    i += 2
                } else {
                    next.append(word[i])
                    i += 1
                }
            }
            word = next
        }
        return word
    }

    /// Splits cleaned text as the reference pattern does: the two special tokens, the
    /// contractions 's 't 're 've 'm 'll 'd, runs of letters, single digits, and runs of
    /// anything else that is not white space.
    static func pieces(of text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        func piece(_ a: Int, _ b: Int) -> String { String(String.UnicodeScalarView(s[a..<b])) }
        func lower(_ k: Int) -> UInt32 { k < s.count ? (s[k].value | (s[k].isASCIILetter ? 0x20 : 0)) : 0 }
        func startsWith(_ word: String, at k: Int) -> Bool {
            let w = Array(word.unicodeScalars)
            guard k + w.count <= s.count else { return false }
            for j in 0..<w.count where lower(k + j) != w[j].value { return false }
            return true
        }
        while i < s.count {
            let c = s[i]
            if c == "<", startsWith("<|startoftext|>", at: i) || startsWith("<|endoftext|>", at: i) {
                let n = startsWith("<|startoftext|>", at: i) ? 15 : 13
                out.append(piece(i, i + n)); i += n; continue
            }
            if c == "'" {
                var n = 0
                switch lower(i + 1) {
                case 0x73, 0x74, 0x6D, 0x64: n = 2  // 's 't 'm 'd
                case 0x72 where lower(i + 2) == 0x65: n = 3  // 're
                case 0x76 where lower(i + 2) == 0x65: n = 3  // 've
                case 0x6C where lower(i + 2) == 0x6C: n = 3  // 'll
                default: n = 0
                }
                if n > 0 { out.append(piece(i, i + n)); i += n; continue }
            }
            if isLetter(c) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                out.append(piece(i, j)); i = j; continue
            }
            if isNumber(c) { out.append(piece(i, i + 1)); i += 1; continue }
            if c.properties.isWhitespace { i += 1; continue }
            var j = i + 1
            while j < s.count, !isLetter(s[j]), !isNumber(s[j]), !s[j].properties.isWhitespace { j += 1 }
            out.append(piece(i, j)); i = j
        }
        return out
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}
