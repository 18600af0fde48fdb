import Foundation
import SemplesFormats
import SemplesManifest

/// A VOC12- or COCO-layout dataset under `data_path` (spec §7.2): image ids from a list file,
/// image-level labels from a pickled `cls_labels.npy` dictionary.
public struct SegmentationDataset {
    public let kind: DataSetKind
    public let root: String
    public let ids: [String]
    public let labels: [String: [Float]]

    /// Reads the id list and, when `labelsPath` is given or found beside the list, the label dictionary.
    public init(kind: DataSetKind, root: String, listPath: String, labelsPath: String?, needLabels: Bool) throws {
        self.kind = kind
        self.root = root
        ids = try Self.readIDs(listPath)
        let resolvedLabels = labelsPath ?? {
            let beside = URL(fileURLWithPath: listPath).deletingLastPathComponent().appendingPathComponent("cls_labels.npy").path
            return FileManager.default.fileExists(atPath: beside) ? beside : nil
        }()
        if let resolvedLabels {
            labels = try Npy.readLabelDict(resolvedLabels)
            if let bad = labels.first(where: { $0.value.count != kind.classCount }) {
                throw InputError("'\(resolvedLabels)': label vector for '\(bad.key)' has \(bad.value.count) entries, \(kind.rawValue) has \(kind.classCount) classes")
            }
        } else if needLabels {
            throw InputError("no image labels: set 'cls_labels' in the manifest (no cls_labels.npy beside '\(listPath)')")
        } else {
            labels = [:]
        }
    }

    /// Ids, one per line; blank lines ignored; extra columns (as in some VOC lists) ignored.
    public static func readIDs(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError("'\(path)': cannot read the image list")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InputError("'\(path)': the image list is not UTF-8 text")
        }
        var ids: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { continue }
            let id = String(trimmed.split(separator: " ").first!)
            guard !id.contains("/"), !id.hasPrefix(".") else {
                throw InputError("'\(path)' line \(n + 1): '\(id)' is not an image id")
            }
            ids.append(id)
        }
        guard !ids.isEmpty else { throw InputError("'\(path)': the image list is empty") }
        return ids
    }

    /// The image-level label vector; the reference also tries `id + ".jpg"`.
    public func labelVector(_ id: String) -> [Float]? {
        labels[id] ?? labels[id + ".jpg"]
    }

    public func imagePath(_ id: String) -> String {
        switch kind {
        case .voc12: return root + "/voc12/VOCdevkit/VOC2012/JPEGImages/\(id).jpg"
        case .coco: return root + "/coco/images/\(id).jpg"
        }
    }

    public func groundTruthPath(_ id: String) -> String {
        switch kind {
        case .voc12: return root + "/voc12/VOCdevkit/VOC2012/SegmentationClassAug/\(id).png"
        case .coco: return root + "/coco/voc_format/class_labels/\(id).png"
        }
    }

    /// Checks that every id has what `needs` asks for; reports up to 5 missing at once.
    public func checkPresent(ids: [String], images: Bool, groundTruth: Bool, labels needLabels: Bool) throws {
        var missing: [String] = []
        var count = 0
        for id in ids {
            var problems: [String] = []
            if images && !FileManager.default.isReadableFile(atPath: imagePath(id)) { problems.append("image '\(imagePath(id))'") }
            if groundTruth && !FileManager.default.isReadableFile(atPath: groundTruthPath(id)) { problems.append("ground truth '\(groundTruthPath(id))'") }
            if needLabels && labelVector(id) == nil { problems.append("labels for '\(id)'") }
            if !problems.isEmpty {
                count += 1
                if missing.count < 5 { missing.append(problems.joined(separator: ", ")) }
            }
        }
        if count > 0 {
            throw InputError("\(count) of \(ids.count) images lack inputs, e.g. " + missing.joined(separator: "; ") + " (data_path '\(root)')")
        }
    }
}
