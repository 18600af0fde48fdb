import Foundation
import SemplesEngine
import SemplesFormats
import XCTest

/// Loads the committed fixtures written by scripts/fixtures/evaluation.py.
enum EvaluationFixtures {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("fixtures/evaluation")
    }()

    static func tensors(_ name: String) throws -> [String: Tensor] {
        let (list, _) = try SafeTensors.read(directory.appendingPathComponent(name).path)
        return Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0.tensor) })
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// One generated image: CAM dictionary, ground truth and size.
    struct Image {
        let id: String
        let cams: [Int: Tensor]
        let groundTruth: [UInt8]
        let height: Int
        let width: Int
    }

    static func sweepImages(_ name: String) throws -> (images: [Image], expected: [String: Any]) {
        let t = try tensors("sweep_\(name).safetensors")
        let expected = try json("sweep_\(name).json")
        let ids = expected["image_ids"] as! [String]
        let images = ids.map { id -> Image in
            let stack = t["\(id).cams"]!
            let keys = t["\(id).keys"]!.toArray().map { Int($0) }
            let (k, h, w) = (stack.shape[0], stack.shape[1], stack.shape[2])
            var cams: [Int: Tensor] = [:]
            for (i, key) in keys.enumerated() {
                let plane = Tensor([h, w])
                plane.view.copy(from: stack.view[i])
                cams[key] = plane
            }
            precondition(keys.count == k)
            let gt = t["\(id).gt"]!.toArray().map { UInt8($0) }
            return Image(id: id, cams: cams, groundTruth: gt, height: h, width: w)
        }
        return (images, expected)
    }

    /// JSON numbers or null as optional doubles.
    static func optionalDoubles(_ value: Any?) -> [Double?] {
        (value as! [Any]).map { $0 is NSNull ? nil : ($0 as! NSNumber).doubleValue }
    }
}
