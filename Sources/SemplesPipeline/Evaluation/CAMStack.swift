import SemplesEngine
import SemplesFormats

/// The CAMs of one image as evaluation sees them (spec §6): one float32 [H, W] plane per positive
/// class, in ascending class order, with a constant background plane equal to the threshold in front.
public struct CAMStack: @unchecked Sendable {
    /// 0-based class indices, ascending (the dict keys of the `.npy` file).
    public let classIndices: [Int]
    /// Map size [height, width] shared by all planes.
    public let height: Int
    public let width: Int
    /// planes[i]: [height, width], the CAM of classIndices[i].
    public let planes: [Tensor]

    /// Builds the stack from a `{class: [H, W]}` dictionary; `source` names the file in errors.
    /// An empty dictionary is allowed when the size is given: every pixel is then background.
    public init(_ cams: [Int: Tensor], height: Int? = nil, width: Int? = nil, source: String) throws {
        let keys = cams.keys.sorted()
        var h = height, w = width
        for key in keys {
            let plane = cams[key]!
            guard key >= 0, key < 255 else {
                throw FormatError(source, "class key \(key) is outside 0…254 (label values are key + 1 in a byte)")
            }
            guard plane.shape.rank == 2 else {
                throw FormatError(source, "class \(key): expected a [H, W] map, found shape \(plane.shape)")
            }
            if let hh = h, let ww = w, (plane.shape[0], plane.shape[1]) != (hh, ww) {
                throw FormatError(source, "class \(key): map is \(plane.shape[0])×\(plane.shape[1]), expected \(hh)×\(ww)")
            }
            h = plane.shape[0]
            w = plane.shape[1]
        }
        guard let hh = h, let ww = w else {
            throw FormatError(source, "no class maps and no image size: cannot evaluate")
        }
        classIndices = keys
        planes = keys.map { cams[$0]! }
        self.height = hh
        self.width = ww
    }

    /// Label value of each stack index: `[0, k1 + 1, k2 + 1, …]`.
    public var labelLookup: [UInt8] { [0] + classIndices.map { UInt8($0 + 1) } }

    /// Number of stack entries including the background plane (the CRF's label count).
    public var stackCount: Int { classIndices.count + 1 }

    /// Per pixel, the stack index of the largest value among [t, cam_1, …, cam_K]; ties go to the
    /// lower index, so to background. The reference applies a softmax first, which is monotone.
    /// Writes `indices`: [height × width].
    public func argmaxIndices(threshold: Double, into indices: UnsafeMutableBufferPointer<UInt8>) {
        let n = height * width
        precondition(indices.count >= n, "index buffer \(indices.count) < \(n)")
        let t = Float(threshold)  // the reference pads a float32 array with the float64 threshold
        let best = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { best.deallocate() }
        best.update(repeating: t, count: n)
        indices.baseAddress!.update(repeating: 0, count: n)
        for (i, plane) in planes.enumerated() {
            let p = plane.data
            let index = UInt8(i + 1)
            for j in 0..<n where p[j] > best[j] {
                best[j] = p[j]
                indices[j] = index
            }
        }
    }

    /// The predicted label map at threshold t: argmax indices mapped through `labelLookup`.
    public func labels(threshold: Double) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: height * width)
        out.withUnsafeMutableBufferPointer { argmaxIndices(threshold: threshold, into: $0) }
        let lookup = labelLookup
        for j in out.indices { out[j] = lookup[Int(out[j])] }
        return out
    }
}
