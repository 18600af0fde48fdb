import Foundation
import SemplesManifest
import XCTest

/// Keeps the documentation true to the code: every manifest key and job kind is documented,
/// every `semples` subcommand is in the CLI reference and the generated man page, every daemon
/// configuration key is in the daemon reference, and the example manifests in the docs parse.
final class DocsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func text(_ relative: String) throws -> String {
        let url = Self.root.appendingPathComponent(relative)
        guard let data = FileManager.default.contents(atPath: url.path), let s = String(data: data, encoding: .utf8) else {
            XCTFail("'\(relative)' is missing or not UTF-8")
            throw CocoaError(.fileReadNoSuchFile)
        }
        return s
    }

    /// All captures of group 1 of `pattern` in `text`.
    func captures(_ pattern: String, in text: String) throws -> [String] {
        let regex = try NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range(at: 1)) }
    }

    /// True when `word` occurs in `text` not as part of a longer identifier.
    func mentions(_ text: String, _ word: String) -> Bool {
        let escaped = NSRegularExpression.escapedPattern(for: word)
        return text.range(of: "(?<![A-Za-z0-9_])" + escaped + "(?![A-Za-z0-9_])", options: .regularExpression) != nil
    }

    /// The keys the manifest parser knows, read from its key table, each confirmed known by the parser.
    func manifestKeys() throws -> [String] {
        let source = try text("Sources/SemplesManifest/Manifest.swift") + text("Sources/SemplesManifest/CLIPManifest.swift")
        let keys = Array(Set(try captures(#""([a-z_]+)": KeySpec\("#, in: source))).sorted()
        XCTAssertGreaterThan(keys.count, 20, "the key table of Manifest.swift was not found; update DocsTests")
        for key in keys {
            // An unknown key is refused as "unknown key"; a known one gets any other answer.
            do {
                _ = try Manifest.parse("job: cam\n\(key): 1\n", file: "probe.yaml", checkFiles: false)
            } catch let e as ManifestError {
                XCTAssertFalse(e.key == key && e.problem.hasPrefix("unknown key"), "'\(key)' is in the table but refused as unknown")
            }
        }
        do {
            _ = try Manifest.parse("job: cam\nno_such_key: 1\n", file: "probe.yaml", checkFiles: false)
            XCTFail("an unknown key was accepted")
        } catch let e as ManifestError {
            XCTAssertEqual(e.key, "no_such_key")
        }
        return keys
    }

    func testEveryManifestKeyIsDocumented() throws {
        let markdown = try text("docs/manifest.md")
        let man = try text("man/semples-manifest.5")
        for key in try manifestKeys() {
            XCTAssertTrue(markdown.contains("`\(key)`"), "manifest key '\(key)' is not in docs/manifest.md")
            XCTAssertTrue(mentions(man, key), "manifest key '\(key)' is not in man/semples-manifest.5")
        }
        for kind in JobKind.available.map(\.rawValue) {
            XCTAssertTrue(markdown.contains("| `\(kind)` |"), "job kind '\(kind)' has no row in docs/manifest.md")
            XCTAssertTrue(man.contains(".It Cm \(kind)"), "job kind '\(kind)' is not in man/semples-manifest.5")
        }
    }

    /// Whether the parser takes `key` in a manifest of `job` (a refused key is "not used by" that job).
    func accepts(_ key: String, job: JobKind) -> Bool {
        do {
            _ = try Manifest.parse("job: \(job.rawValue)\n\(key): 1\n", file: "probe.yaml", checkFiles: false)
        } catch let e as ManifestError {
            return !(e.key == key && (e.problem.hasPrefix("not used by") || e.problem.hasPrefix("unknown key")))
        } catch {}
        return true
    }

    /// The job columns of docs/manifest.md's key tables, and its "accepted but not used" list, agree
    /// with what the parser accepts for each job kind.
    func testManifestTablesMatchTheParser() throws {
        let markdown = try text("docs/manifest.md")
        let kinds = JobKind.allCases
        var documented: [String: Set<JobKind>] = [:]
        var section = ""
        for line in markdown.components(separatedBy: "\n") {
            if line.hasPrefix("#") { section = line; continue }
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 3 else { continue }
            let keys = try captures("`([a-z_]+)`", in: cells[1])
            var jobs = Set<JobKind>()
            if section.contains("job: weaktr") {
                jobs = [.weaktr]
            } else if cells[2] == "all" {
                jobs = Set(kinds)
            } else {
                jobs = Set(try captures("`([a-z]+)`", in: cells[2]).compactMap(JobKind.init(rawValue:)))
            }
            if section.hasPrefix("## Job kinds") { continue }
            for key in keys { documented[key, default: []].formUnion(jobs) }
        }
        XCTAssertGreaterThan(documented.count, 20, "the key tables of docs/manifest.md were not found")

        var unused: [String: Set<JobKind>] = [:]
        if let start = markdown.range(of: "### Accepted but not used") {
            let rest = markdown[start.upperBound...]
            let paragraph = rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)]
            let body = paragraph.components(separatedBy: "effect there:").last ?? ""
            for clause in body.split(separator: ";") {
                let parts = clause.components(separatedBy: " in ")
                guard parts.count == 2 else { continue }
                let jobs = try captures("`([a-z]+)`", in: parts[1]).compactMap(JobKind.init(rawValue:))
                for key in try captures("`([a-z_]+)`", in: parts[0]) { unused[key, default: []].formUnion(jobs) }
            }
        }
        for key in try manifestKeys() where key != "job" {
            for kind in kinds {
                let takes = accepts(key, job: kind)
                let listed = documented[key]?.contains(kind) ?? false
                let idle = unused[key]?.contains(kind) ?? false
                if takes && !listed && !idle {
                    XCTFail("'\(key)' is accepted by '\(kind.rawValue)' jobs, but docs/manifest.md does not say so")
                }
                if !takes && (listed || idle) {
                    XCTFail("docs/manifest.md says '\(key)' is taken by '\(kind.rawValue)' jobs, but the parser refuses it")
                }
            }
        }
    }

    /// `commandName: "x"` of every command under Sources/semples, with the parent for nested ones.
    func subcommands() throws -> (top: [String], nested: [String: [String]]) {
        let folder = Self.root.appendingPathComponent("Sources/semples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }.sorted()
        var byType: [String: String] = [:]           // Swift type → command name
        var children: [String: [String]] = [:]       // Swift type → subcommand types
        for file in files {
            let source = try text("Sources/semples/" + file)
            let pattern = #"struct (\w+): ParsableCommand \{\s*static let configuration = CommandConfiguration\(\s*commandName: "([^"]+)""#
            let regex = try NSRegularExpression(pattern: pattern)
            let ns = source as NSString
            for m in regex.matches(in: source, range: NSRange(location: 0, length: ns.length)) {
                let type = ns.substring(with: m.range(at: 1))
                byType[type] = ns.substring(with: m.range(at: 2))
                // Its own subcommands, if it lists them.
                let rest = ns.substring(from: m.range.location)
                let end = rest.range(of: "\n}")?.lowerBound ?? rest.endIndex
                if let list = rest[..<end].range(of: #"subcommands: \[[^\]]*\]"#, options: .regularExpression) {
                    children[type] = try captures(#"(\w+)\.self"#, in: String(rest[list]))
                }
            }
        }
        let commands = try text("Sources/semples/Commands.swift")
        let topTypes = try captures(#"(\w+)\.self"#, in: commands)
        XCTAssertGreaterThan(topTypes.count, 5, "the command list of Commands.swift was not found; update DocsTests")
        var top: [String] = []
        var nested: [String: [String]] = [:]
        for type in topTypes {
            guard let name = byType[type] else { XCTFail("no commandName found for \(type)"); continue }
            top.append(name)
            if let kids = children[type] {
                nested[name] = kids.compactMap { byType[$0] }
                XCTAssertEqual(nested[name]?.count, kids.count, "a subcommand of '\(name)' has no commandName found")
            }
        }
        return (top, nested)
    }

    func testEverySubcommandIsDocumented() throws {
        let cli = try text("docs/cli.md")
        let man = try text("man/semples.1")
        let (top, nested) = try subcommands()
        XCTAssertTrue(top.contains("run") && top.contains("submit"), "subcommands found: \(top)")
        for name in top {
            XCTAssertTrue(cli.contains("semples \(name)"), "'semples \(name)' is not in docs/cli.md")
            XCTAssertTrue(cli.contains("## \(name)") || cli.contains("### \(name)") || cli.contains("### cancel, hold, release, retry") && ["cancel", "hold", "release", "retry"].contains(name),
                          "'\(name)' has no section in docs/cli.md")
            XCTAssertTrue(mentions(man, name), "'\(name)' is not in man/semples.1 (run scripts/make-docs.sh)")
        }
        for (parent, kids) in nested {
            for kid in kids {
                XCTAssertTrue(cli.contains("semples \(parent) \(kid)"), "'semples \(parent) \(kid)' is not in docs/cli.md")
                XCTAssertTrue(mentions(man, kid), "'\(parent) \(kid)' is not in man/semples.1 (run scripts/make-docs.sh)")
            }
        }
        for shell in ["semples.bash", "_semples", "semples.fish", "semplesd.bash", "_semplesd", "semplesd.fish"] {
            let path = Self.root.appendingPathComponent("completions/" + shell).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), "completions/\(shell) is missing (run scripts/make-docs.sh)")
        }
        let bash = try text("completions/semples.bash")
        for name in top { XCTAssertTrue(mentions(bash, name), "'\(name)' is not in completions/semples.bash (run scripts/make-docs.sh)") }
    }

    /// The committed completions are exactly what the built binaries generate (scripts/make-docs.sh
    /// writes them with `--generate-completion-script`): nothing is kept by hand.
    func testCompletionsAreGeneratedByTheBinaries() throws {
        // The binaries beside the test bundle (any build folder), else the repository's debug build.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let build = FileManager.default.isExecutableFile(atPath: bundle + "/semples")
            ? bundle : Self.root.appendingPathComponent(".build/debug").path
        for bin in ["semples", "semplesd"] {
            let executable = build + "/" + bin
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw XCTSkip("'\(executable)' is not built")
            }
            for (shell, file) in [("bash", "\(bin).bash"), ("zsh", "_\(bin)"), ("fish", "\(bin).fish")] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = ["--generate-completion-script", shell]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let generated = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                XCTAssertEqual(process.terminationStatus, 0, "\(bin) --generate-completion-script \(shell)")
                XCTAssertEqual(String(decoding: generated, as: UTF8.self), try text("completions/" + file),
                               "completions/\(file) differs from what \(bin) generates (run scripts/make-docs.sh)")
            }
        }
    }

    func testEveryDaemonSettingIsDocumented() throws {
        let source = try text("Sources/SemplesSpool/Config.swift")
        guard let list = source.range(of: #"public static let keys: \[String\] = \[[^\]]*\]"#, options: .regularExpression),
              let retry = source.range(of: #"static let retryKeys = \[[^\]]*\]"#, options: .regularExpression) else {
            return XCTFail("the key lists of Config.swift were not found; update DocsTests")
        }
        let keys = try captures(#""([a-z_]+)""#, in: String(source[list]))
        let retryKeys = try captures(#""([a-z_]+)""#, in: String(source[retry]))
        XCTAssertGreaterThan(keys.count, 5)
        let daemon = try text("docs/daemon.md")
        let man = try text("man/semplesd.8")
        for key in keys where key != "retry" {
            XCTAssertTrue(daemon.contains("`\(key)`"), "configuration key '\(key)' is not in docs/daemon.md")
        }
        for key in retryKeys {
            XCTAssertTrue(daemon.contains("`retry.\(key)`"), "configuration key 'retry.\(key)' is not in docs/daemon.md")
        }
        // The generated page carries the hand-written CONFIGURATION section of man/extra/semplesd.8.in.
        for key in keys + retryKeys {
            XCTAssertTrue(man.contains(".It Cm \(key)") || man.contains(".Cm \(key)"), "configuration key '\(key)' is not in man/semplesd.8 (man/extra/semplesd.8.in, then scripts/make-docs.sh)")
        }
    }

    /// ```yaml blocks whose first line is `# example`, from every Markdown file under docs/ and README.md.
    func exampleBlocks() throws -> [(file: String, line: Int, text: String)] {
        let docs = Self.root.appendingPathComponent("docs")
        var files = try FileManager.default.contentsOfDirectory(atPath: docs.path).filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        files.append("README.md")
        var blocks: [(String, Int, String)] = []
        for file in files {
            let lines = try text(file).components(separatedBy: "\n")
            var i = 0
            while i < lines.count {
                if lines[i].trimmingCharacters(in: .whitespaces) == "```yaml", i + 1 < lines.count,
                   lines[i + 1].trimmingCharacters(in: .whitespaces) == "# example" {
                    let start = i + 1
                    var body: [String] = []
                    i += 1
                    while i < lines.count && lines[i].trimmingCharacters(in: .whitespaces) != "```" { body.append(lines[i]); i += 1 }
                    blocks.append((file, start + 1, body.joined(separator: "\n")))
                }
                i += 1
            }
        }
        return blocks
    }

    func testExampleManifestsParse() throws {
        let blocks = try exampleBlocks()
        XCTAssertGreaterThanOrEqual(blocks.count, 7, "expected the examples of docs/manifest.md and docs/voc-coco.md")
        var kinds = Set<JobKind>()
        for block in blocks {
            do {
                let m = try Manifest.parse(block.text, file: "/docs/example.yaml", checkFiles: false)
                if block.file == "docs/manifest.md" { kinds.insert(m.job) }
            } catch {
                XCTFail("\(block.file) line \(block.line): example does not parse: \(error)")
            }
        }
        for kind in JobKind.available where !kinds.contains(kind) {
            XCTFail("docs/manifest.md has no '# example' manifest for job: \(kind.rawValue)")
        }
    }

    /// The parser refuses a broken example, so the check above can fail.
    func testBrokenExampleIsRefused() {
        XCTAssertThrowsError(try Manifest.parse("# example\njob: cam\ndata_path: /d\nimg_list: /d/l.txt\nresume: /m.pth\npool_typ: max\n",
                                                file: "/docs/example.yaml", checkFiles: false)) { error in
            XCTAssertEqual((error as? ManifestError)?.key, "pool_typ")
        }
    }
}
