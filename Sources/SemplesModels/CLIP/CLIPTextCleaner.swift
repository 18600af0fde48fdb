import Foundation

/// The text clean-up CLIP applies before tokenising: repair of common Unicode glitches
/// (mojibake, C1 controls, ligatures, full-width forms, curly quotes, control characters,
/// NFC), HTML unescaping, whitespace collapsing and lower-casing.
///
/// The repair step follows the defaults of the `ftfy` text fixer that OpenAI's tokenizer calls,
/// for the cases that occur in prompts and captions; the rest is exact.
public enum CLIPTextCleaner {
    /// The cleaned, lower-cased text whose pieces the BPE encodes.
    public static func clean(_ text: String) -> String {
        var t = fixText(text)
        // Two HTML unescape passes, then strip.
        t = unescapeHTML(unescapeHTML(t))
        return lowercase(collapseWhitespace(t))
    }

    // MARK: - Unicode repair

    /// Repairs the text line by line (each line with its "\n"), as the fixer does. HTML entities
    /// are unescaped here only until a line containing "<" has been seen (markup is left alone).
    static func fixText(_ text: String) -> String {
        var out = ""
        var unescape = true
        var line = String.UnicodeScalarView()
        func flush() {
            let segment = String(line)
            if segment.contains("<") { unescape = false }
            out += fixSegment(segment, unescape: unescape)
            line.removeAll()
        }
        for s in text.unicodeScalars {
            line.append(s)
            if s == "\n" { flush() }
        }
        if !line.isEmpty { flush() }
        return out
    }

    /// Applies the repair steps to one segment until it stops changing.
    static func fixSegment(_ text: String, unescape: Bool) -> String {
        var current = text
        for _ in 0..<16 {
            var t = current
            if unescape { t = unescapeEntities(t) }
            t = fixMojibake(t)
            // Terminal escapes go before control characters, or their ESC would be dropped alone.
            t = removeTerminalEscapes(t)
            t = mapScalars(t) { s in
                let v = s.value
                if v >= 0x80 && v <= 0x9F { return windows1252Character(UInt8(v)) }  // C1 controls
                if let lig = ligatures[v] { return lig }
                if v == 0x3000 { return " " }
                if v >= 0xFF01 && v < 0xFFF0 {  // half-width and full-width forms
                    let nfkc = String(Character(s)).precomposedStringWithCompatibilityMapping
                    return nfkc
                }
                if v == 0x02BC || (v >= 0x2018 && v <= 0x201B) { return "'" }
                if v >= 0x201C && v <= 0x201F { return "\"" }
                if v == 0x2028 || v == 0x2029 || v == 0x85 { return "\n" }
                if isRemovedControl(v) { return "" }
                return nil
            }
            t = t.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            t = t.precomposedStringWithCanonicalMapping
            // Scalar comparison: String's == treats canonically equivalent texts as equal.
            let unchanged = t.unicodeScalars.elementsEqual(current.unicodeScalars)
            current = t
            if unchanged { break }
        }
        return current
    }

    /// The repair step's entity decoding: only complete references `&name;` / `&#n;` / `&#xh;`
    /// (semicolon required); all-capitals names of lower-case entities decode to capitals.
    static func unescapeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func isAlphanumeric(_ c: Unicode.Scalar) -> Bool { c.isASCIILetter || (c.value >= 0x30 && c.value <= 0x39) }
        while i < s.count {
            if s[i] == "&" {
                var j = i + 1
                let numeric = j < s.count && s[j] == "#"
                if numeric { j += 1 }
                let start = j
                while j < s.count, j - start < 24, isAlphanumeric(s[j]) { j += 1 }
                if j > start, j < s.count, s[j] == ";" {
                    let body = String(String.UnicodeScalarView(s[start..<j]))
                    var replacement: String?
                    if numeric {
                        let decoded = unescapeHTML("&#" + body + ";")
                        if !decoded.contains(";") { replacement = decoded }
                    } else if let r = namedEntities[body] {
                        replacement = r
                    } else if body == body.uppercased(), let r = namedEntities[body.lowercased()],
                              namedEntities[body] == nil {
                        replacement = r.uppercased()
                    }
                    if let r = replacement {
                        out.append(contentsOf: r.unicodeScalars)
                        i = j + 1
                        continue
                    }
                }
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }

    static func isRemovedControl(_ v: UInt32) -> Bool {
        (v <= 0x08) || v == 0x0B || (v >= 0x0E && v <= 0x1F) || v == 0x7F
            || (v >= 0x206A && v <= 0x206F) || v == 0xFEFF || (v >= 0xFFF9 && v <= 0xFFFC)
    }

    static let ligatures: [UInt32: String] = [
        0x0132: "IJ", 0x0133: "ij", 0x0149: "\u{02BC}n", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
        0x01C4: "D\u{017D}", 0x01C5: "D\u{017E}", 0x01C6: "d\u{017E}", 0x01C7: "LJ", 0x01C8: "Lj",
        0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi",
        0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u{017F}t", 0xFB06: "st",
    ]

    /// Replaces scalars for which `transform` returns a string; keeps the others.
    static func mapScalars(_ text: String, _ transform: (Unicode.Scalar) -> String?) -> String {
        var out = String.UnicodeScalarView()
        var changed = false
        for s in text.unicodeScalars {
            if let r = transform(s) {
                out.append(contentsOf: r.unicodeScalars)
                changed = true
            } else {
                out.append(s)
            }
        }
        return changed ? String(out) : text
    }

    /// Removes ANSI terminal escapes `ESC [ digits/semicolons letter`.
    static func removeTerminalEscapes(_ text: String) -> String {
        guard text.unicodeScalars.contains("\u{1B}") else { return text }
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            if s[i] == "\u{1B}", i + 1 < s.count, s[i + 1] == "[" {
                var j = i + 2
                while j < s.count, (s[j].value >= 0x30 && s[j].value <= 0x39) || s[j] == ";" { j += 1 }
                if j < s.count, s[j].isASCIILetter {
                    i = j + 1
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }

    // MARK: - Mojibake (UTF-8 read as Windows-1252)

    /// Finds sequences that look like UTF-8 bytes decoded as Windows-1252 and decodes them.
    /// Deliberately narrow (the full repair heuristics are large): only the lead characters of
    /// the common Western mojibake, 'Â' 'Ã' (U+0080…U+00FF) and 'â' (U+2000…U+2FFF, curly quotes
    /// and dashes), each followed by the right number of continuation characters, and never
    /// right after a continuation character (inside a longer garble).
    static func fixMojibake(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard scalars.contains(where: { $0.value == 0xC2 || $0.value == 0xC3 || $0.value == 0xE2 }) else { return text }
        let bytes = scalars.map { windows1252Byte($0) }
        func isContinuation(_ k: Int) -> Bool { bytes[k].map { $0 >= 0x80 && $0 <= 0xBF } ?? false }
        var out = String.UnicodeScalarView()
        var i = 0
        var changed = false
        while i < scalars.count {
            let v = scalars[i].value
            let need = (v == 0xC2 || v == 0xC3) ? 1 : (v == 0xE2 ? 2 : 0)
            if need > 0, i + need < scalars.count, !(i > 0 && isContinuation(i - 1)),
               (1...need).allSatisfy({ isContinuation(i + $0) }) {
                let seq = [UInt8(v)] + (1...need).map { bytes[i + $0]! }
                if let decoded = String(validating: seq, as: UTF8.self) {
                    out.append(contentsOf: decoded.unicodeScalars)
                    i += need + 1
                    changed = true
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return changed ? String(out) : text
    }

    /// The byte Windows-1252 (with the undefined bytes read as Latin-1) maps to this scalar.
    static func windows1252Byte(_ s: Unicode.Scalar) -> UInt8? {
        let v = s.value
        if v < 0x80 || (v >= 0xA0 && v <= 0xFF) { return UInt8(v) }
        if v >= 0x80 && v <= 0x9F { return UInt8(v) }
        if let i = windows1252High.firstIndex(of: v) { return UInt8(0x80 + i) }
        return nil
    }

    static func windows1252Character(_ b: UInt8) -> String {
        let v = windows1252High[Int(b) - 0x80]
        return String(Character(Unicode.Scalar(v)!))
    }

    /// Windows-1252 bytes 0x80…0x9F; undefined bytes map to the same C1 code point.
    static let windows1252High: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
        0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
        0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ]

    // MARK: - HTML

    /// One HTML unescape pass: numeric references (`&#39;`, `&#x41;`, semicolon optional) and
    /// the common named entities.
    static func unescapeHTML(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            guard s[i] == "&", i + 1 < s.count else {
                out.append(s[i]); i += 1; continue
            }
            if s[i + 1] == "#" {
                var j = i + 2
                var hex = false
                if j < s.count, s[j] == "x" || s[j] == "X" { hex = true; j += 1 }
                let start = j
                var value: UInt64 = 0
                while j < s.count, let d = digitValue(s[j], hex: hex) {
                    value = min(value * (hex ? 16 : 10) + UInt64(d), 0x7FFF_FFFF)
                    j += 1
                }
                if j > start {
                    if j < s.count, s[j] == ";" { j += 1 }
                    out.append(contentsOf: numericReference(value).unicodeScalars)
                    i = j
                    continue
                }
            } else {
                var j = i + 1
                while j < s.count, j - i <= 32, s[j].isASCIILetter || (s[j].value >= 0x30 && s[j].value <= 0x39) { j += 1 }
                let name = String(String.UnicodeScalarView(s[(i + 1)..<j]))
                if j < s.count, s[j] == ";", let r = namedEntities[name] {
                    out.append(contentsOf: r.unicodeScalars)
                    i = j + 1
                    continue
                }
                // Legacy entities are also recognised without the semicolon (longest prefix).
                if let k = legacyEntities.first(where: { name.hasPrefix($0) }), let r = namedEntities[k] {
                    out.append(contentsOf: r.unicodeScalars)
                    i += 1 + k.unicodeScalars.count
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }

    static func digitValue(_ s: Unicode.Scalar, hex: Bool) -> Int? {
        switch s.value {
        case 0x30...0x39: return Int(s.value - 0x30)
        case 0x41...0x46 where hex: return Int(s.value - 0x41 + 10)
        case 0x61...0x66 where hex: return Int(s.value - 0x61 + 10)
        default: return nil
        }
    }

    static func numericReference(_ v: UInt64) -> String {
        if v >= 0x80 && v <= 0x9F { return windows1252Character(UInt8(v)) }
        if v == 0 || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF { return "\u{FFFD}" }
        return String(Character(Unicode.Scalar(UInt32(v))!))
    }

    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}",
        "copy": "\u{A9}", "reg": "\u{AE}", "trade": "\u{2122}", "hellip": "\u{2026}",
        "mdash": "\u{2014}", "ndash": "\u{2013}", "lsquo": "\u{2018}", "rsquo": "\u{2019}",
        "ldquo": "\u{201C}", "rdquo": "\u{201D}", "laquo": "\u{AB}", "raquo": "\u{BB}",
        "bull": "\u{2022}", "middot": "\u{B7}", "deg": "\u{B0}", "times": "\u{D7}",
        "divide": "\u{F7}", "euro": "\u{20AC}", "pound": "\u{A3}", "yen": "\u{A5}", "cent": "\u{A2}",
        "eacute": "\u{E9}", "egrave": "\u{E8}", "ecirc": "\u{EA}", "aacute": "\u{E1}",
        "agrave": "\u{E0}", "acirc": "\u{E2}", "ccedil": "\u{E7}", "auml": "\u{E4}", "ouml": "\u{F6}",
        "uuml": "\u{FC}", "szlig": "\u{DF}", "ntilde": "\u{F1}", "iacute": "\u{ED}", "oacute": "\u{F3}",
        "uacute": "\u{FA}",
    ]

    /// Entities HTML accepts without a trailing semicolon, longest first.
    static let legacyEntities = ["nbsp", "quot", "copy", "amp", "reg", "lt", "gt"]

    // MARK: - Whitespace and case

    /// Collapses every run of Unicode white space into one space and trims both ends.
    static func collapseWhitespace(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for s in text.unicodeScalars {
            if s.properties.isWhitespace {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" "); pendingSpace = false }
                out.append(s)
            }
        }
        return String(out)
    }

    /// Full Unicode lower-casing per code point, with the Greek final-sigma rule.
    static func lowercase(_ text: String) -> String {
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, c) in s.enumerated() {
            if c.value == 0x03A3 {
                // Σ is final (ς) when a cased letter precedes it and none follows, skipping
                // case-ignorable characters on both sides.
                var before = i - 1
                while before >= 0, s[before].properties.isCaseIgnorable { before -= 1 }
                var after = i + 1
                while after < s.count, s[after].properties.isCaseIgnorable { after += 1 }
                let precededByCased = before >= 0 && s[before].properties.isCased
                let followedByCased = after < s.count && s[after].properties.isCased
                out.append(precededByCased && !followedByCased ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}

extension Unicode.Scalar {
    var isASCIILetter: Bool { (value >= 0x41 && value <= 0x5A) || (value >= 0x61 && value <= 0x7A) }
}
