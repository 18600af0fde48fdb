/// Where the daemon runs jobs.
public enum Executor: String, Codable { case local, slurm }

/// Resources one Slurm job asks for; a manifest's `resources:` overrides the configuration's defaults.
public struct SlurmResources: Equatable, Codable {
    public var cpus: Int?
    /// Memory as sbatch takes it ("16G", "4000M").
    public var mem: String?
    /// Wall-time limit as sbatch takes it ("2-00:00:00", "90").
    public var time: String?
    public var partition: String?
    public var gres: String?
    public init() {}

    public static let keys = ["cpus", "mem", "time", "partition", "gres"]

    /// `self` with the fields `other` sets taking precedence.
    public func overridden(by other: SlurmResources) -> SlurmResources {
        var r = self
        if let v = other.cpus { r.cpus = v }
        if let v = other.mem { r.mem = v }
        if let v = other.time { r.time = v }
        if let v = other.partition { r.partition = v }
        if let v = other.gres { r.gres = v }
        return r
    }

    /// sbatch options for these resources.
    public var sbatchArguments: [String] {
        var a: [String] = []
        if let v = cpus { a.append("--cpus-per-task=\(v)") }
        if let v = mem { a.append("--mem=\(v)") }
        if let v = time { a.append("--time=\(v)") }
        if let v = partition { a.append("--partition=\(v)") }
        if let v = gres { a.append("--gres=\(v)") }
        return a
    }

    /// Reads a `resources:` mapping; `where` names the file and key for errors.
    public static func parse(_ value: Any, where place: String) throws -> SlurmResources {
        guard let map = value as? [String: Any] else { throw ConfigError(path: place, detail: "expected a mapping of \(keys.joined(separator: ", ")), found '\(value)'") }
        var r = SlurmResources()
        for key in map.keys.sorted() where !keys.contains(key) {
            throw ConfigError(path: place, detail: "unknown key '\(key)' (known: \(keys.joined(separator: ", ")))")
        }
        func text(_ key: String) throws -> String? {
            guard let v = map[key] else { return nil }
            let s = (v as? String) ?? (v as? Int).map { String($0) }
            guard let t = s, !t.isEmpty, t.allSatisfy({ $0.isLetter || $0.isNumber || ":-_.,=+".contains($0) }) else {
                throw ConfigError(path: place, detail: "key '\(key)': expected a Slurm value such as '16G' or '2:00:00', found '\(v)'")
            }
            return t
        }
        if let v = map["cpus"] {
            guard let n = v as? Int, n >= 1, n <= 4096 else { throw ConfigError(path: place, detail: "key 'cpus': expected an integer in [1, 4096], found '\(v)'") }
            r.cpus = n
        }
        r.mem = try text("mem")
        r.time = try text("time")
        r.partition = try text("partition")
        r.gres = try text("gres")
        return r
    }
}

/// The `slurm:` section of semplesd.yaml.
public struct SlurmSettings: Equatable {
    /// Defaults for every job; a manifest's `resources:` overrides them.
    public var resources = SlurmResources()
    /// Seconds between squeue polls of the submitted jobs.
    public var pollInterval: Double = 10
    /// The folder holding sbatch, squeue, scontrol and scancel (empty: searched in $PATH).
    public var binDirectory: String = ""
    /// Extra sbatch options (e.g. --account=lab), passed as is.
    public var sbatchOptions: [String] = []

    public init() {}

    public static let keys = ["poll_s", "bin_dir", "sbatch_options"] + SlurmResources.keys

    static func parse(_ value: Any, path: String) throws -> SlurmSettings {
        guard let map = value as? [String: Any] else { throw ConfigError(path: path, detail: "key 'slurm': expected a mapping, found '\(value)'") }
        var s = SlurmSettings()
        for key in map.keys.sorted() where !keys.contains(key) {
            throw ConfigError(path: path, detail: "unknown key 'slurm.\(key)' (known: \(keys.joined(separator: ", ")))")
        }
        var resourceMap = map
        for key in ["poll_s", "bin_dir", "sbatch_options"] { resourceMap[key] = nil }
        do { s.resources = try SlurmResources.parse(resourceMap, where: path) } catch let e as ConfigError {
            throw ConfigError(path: path, detail: "in 'slurm': " + e.detail)
        }
        if let v = map["poll_s"] {
            guard let d = (v as? Double) ?? (v as? Int).map(Double.init), d >= 0.1, d <= 3600 else {
                throw ConfigError(path: path, detail: "key 'slurm.poll_s': expected seconds in [0.1, 3600], found '\(v)'")
            }
            s.pollInterval = d
        }
        if let v = map["bin_dir"] {
            guard let d = v as? String, d.hasPrefix("/") else { throw ConfigError(path: path, detail: "key 'slurm.bin_dir': expected an absolute folder, found '\(v)'") }
            s.binDirectory = d
        }
        if let v = map["sbatch_options"] {
            guard let list = v as? [Any], case let strings = list.compactMap({ $0 as? String }), strings.count == list.count else {
                throw ConfigError(path: path, detail: "key 'slurm.sbatch_options': expected a list of strings, found '\(v)'")
            }
            s.sbatchOptions = strings
        }
        return s
    }
}
