import Foundation
import SemplesEngine

extension Npy {
    /// Writes a label dictionary `{image id: float32 [C]}` as the reference's `cls_labels.npy`
    /// (a pickled dict in a 0-d object array), ids in sorted order.
    public static func writeLabelDict(_ labels: [String: [Float]], to path: String) throws {
        var entries: [(key: PickleValue, value: PickleValue)] = []
        for id in labels.keys.sorted() {
            let vector = labels[id]!
            let t = vector.withUnsafeBufferPointer { buf -> PickleValue in
                let view = TensorView(UnsafeMutablePointer(mutating: buf.baseAddress!), [vector.count])
                return .array(float32Array(view))
            }
            entries.append((.string(id), t))
        }
        try AtomicFile.write(try encodeObject(.dict(entries)), to: path)
    }
}
