import Foundation
import SemplesEngine

/// Gaussian filtering in a d-dimensional feature space with the permutohedral lattice
/// (Adams, Baek and Davis 2010), built as the dense-CRF code builds it: features are elevated onto
/// the hyperplane Σx = 0 of R^(d+1), each point is splatted onto the d+1 vertices of its enclosing
/// simplex with barycentric weights, the lattice is blurred with [1/2, 1, 1/2] along each of the
/// d+1 lattice directions, and values are sliced back with the same weights times 1/(1 + 2^−d).
/// The filter includes each point's own contribution.
final class PermutohedralLattice {
    /// Feature dimension d and point count N.
    let dimension: Int
    let pointCount: Int
    /// Number of lattice vertices M.
    private(set) var vertexCount = 0
    /// [N × (d+1)]: vertex index and barycentric weight of each point's simplex corners.
    private var offsets: [Int32]
    private var weights: [Float]
    /// [(d+1) × M × 2]: the two neighbours of every vertex along each lattice direction, −1 if absent.
    private var neighbours: [Int32] = []
    /// The splat as a gather: vertex m receives the (point, weight) pairs
    /// splatPoints/splatWeights[splatStart[m] ..< splatStart[m+1]], in ascending point order, so the
    /// sums round exactly as a point-by-point scatter does, and vertices can be filled in parallel.
    private var splatStart: [Int32] = []
    private var splatPoints: [Int32] = []
    private var splatWeights: [Float] = []

    /// features: [N, d] row-major, already divided by the kernel widths.
    init(features: UnsafePointer<Float>, dimension d: Int, count n: Int) {
        precondition(d >= 1 && d <= 16, "lattice dimension \(d) unsupported")
        dimension = d
        pointCount = n
        offsets = [Int32](repeating: 0, count: n * (d + 1))
        weights = [Float](repeating: 0, count: n * (d + 1))
        var table = LatticeHashTable(keySize: d, expected: n)

        // canonical[r·(d+1) + j]: the remainder-r vertex of the canonical simplex.
        var canonical = [Int](repeating: 0, count: (d + 1) * (d + 1))
        for r in 0...d {
            for j in 0...d { canonical[r * (d + 1) + j] = j <= d - r ? r : r - (d + 1) }
        }
        // Diagonal part of the elevation matrix E, scaled so the blur has the expected std (p.5–6).
        let inverseStd = Float(sqrt(2.0 / 3.0) * Double(d + 1))
        let scale = (0..<d).map { Float(1.0 / sqrt(Double((($0 + 2) * ($0 + 1)))) * Double(inverseStd)) }
        let down: Float = 1.0 / Float(d + 1)
        let up = Float(d + 1)

        var elevated = [Float](repeating: 0, count: d + 1)
        var rem0 = [Float](repeating: 0, count: d + 1)
        var rank = [Int](repeating: 0, count: d + 1)
        var barycentric = [Float](repeating: 0, count: d + 2)
        var key = [Int16](repeating: 0, count: d)

        for k in 0..<n {
            let f = features + k * d
            // Elevate: y = E f.
            var sm: Float = 0
            for j in stride(from: d, to: 0, by: -1) {
                let cf = f[j - 1] * scale[j - 1]
                elevated[j] = sm - Float(j) * cf
                sm += cf
            }
            elevated[0] = sm
            // Nearest remainder-0 point: round each coordinate to a multiple of d+1.
            var sum: Float = 0
            for i in 0...d {
                let v = (down * elevated[i]).rounded(.toNearestOrEven)
                rem0[i] = v * up
                sum += v
            }
            // Rank of each coordinate's residual (its position in descending order).
            for i in 0...d { rank[i] = 0 }
            for i in 0..<d {
                let di = elevated[i] - rem0[i]
                for j in (i + 1)...d {
                    if di < elevated[j] - rem0[j] { rank[i] += 1 } else { rank[j] += 1 }
                }
            }
            // Bring the point back onto the plane when the rounded coordinates do not sum to 0.
            let shift = Int(sum)
            for i in 0...d {
                rank[i] += shift
                if rank[i] < 0 {
                    rank[i] += d + 1
                    rem0[i] += up
                } else if rank[i] > d {
                    rank[i] -= d + 1
                    rem0[i] -= up
                }
            }
            // Barycentric coordinates (p.10).
            for i in 0...(d + 1) { barycentric[i] = 0 }
            for i in 0...d {
                let v = (elevated[i] - rem0[i]) * down
                barycentric[d - rank[i]] += v
                barycentric[d - rank[i] + 1] -= v
            }
            barycentric[0] += 1 + barycentric[d + 1]
            // The d+1 simplex vertices.
            for r in 0...d {
                // Keys are 16-bit as in the reference (wrapping rather than trapping on huge images).
                for i in 0..<d { key[i] = Int16(truncatingIfNeeded: Int(rem0[i] + Float(canonical[r * (d + 1) + rank[i]]))) }
                offsets[k * (d + 1) + r] = Int32(key.withUnsafeBufferPointer { table.find($0.baseAddress!, create: true) })
                weights[k * (d + 1) + r] = barycentric[r]
            }
        }

        vertexCount = table.count
        let m = vertexCount
        neighbours = [Int32](repeating: -1, count: (d + 1) * m * 2)
        var n1 = [Int16](repeating: 0, count: d)
        var n2 = [Int16](repeating: 0, count: d)
        for j in 0...d {
            for i in 0..<m {
                table.withKey(i) { key in
                    for c in 0..<d {
                        n1[c] = key[c] &- 1
                        n2[c] = key[c] &+ 1
                    }
                    if j < d {
                        n1[j] = key[j] &+ Int16(d)
                        n2[j] = key[j] &- Int16(d)
                    }
                }
                neighbours[(j * m + i) * 2] = Int32(n1.withUnsafeBufferPointer { table.find($0.baseAddress!, create: false) })
                neighbours[(j * m + i) * 2 + 1] = Int32(n2.withUnsafeBufferPointer { table.find($0.baseAddress!, create: false) })
            }
        }

        // Gather lists for the splat (counting sort by vertex keeps points ascending).
        let entries = n * (d + 1)
        var start = [Int32](repeating: 0, count: m + 1)
        for e in 0..<entries { start[Int(offsets[e]) + 1] += 1 }
        for i in 0..<m { start[i + 1] += start[i] }
        var fill = Array(start[0..<m])
        splatPoints = [Int32](repeating: 0, count: entries)
        splatWeights = [Float](repeating: 0, count: entries)
        for e in 0..<entries {
            let vertex = Int(offsets[e])
            let slot = Int(fill[vertex])
            fill[vertex] += 1
            splatPoints[slot] = Int32(e / (d + 1))
            splatWeights[slot] = weights[e]
        }
        splatStart = start
    }

    /// Filters `valueSize` channels per point: input, output [N, valueSize] point-major.
    /// output may alias input.
    func filter(_ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, valueSize v: Int) {
        let d = dimension, m = vertexCount, n = pointCount
        // Slot 0 stands for absent neighbours and stays 0; vertex i lives at slot i+1.
        let slots = (m + 2) * v
        var current = UnsafeMutablePointer<Float>.allocate(capacity: slots)
        var next = UnsafeMutablePointer<Float>.allocate(capacity: slots)
        current.initialize(repeating: 0, count: slots)
        next.initialize(repeating: 0, count: slots)
        defer {
            current.deallocate()
            next.deallocate()
        }
        let chunk = 4096
        offsets.withUnsafeBufferPointer { offsets in
        weights.withUnsafeBufferPointer { weights in
        neighbours.withUnsafeBufferPointer { neighbours in
        splatStart.withUnsafeBufferPointer { start in
        splatPoints.withUnsafeBufferPointer { points in
        splatWeights.withUnsafeBufferPointer { splatWeights in
            // Splat, gathered per vertex.
            let splatTarget = current
            Parallel.forEach((m + chunk - 1) / chunk) { block in
                for vertex in (block * chunk)..<min(m, (block + 1) * chunk) {
                    let y = splatTarget + (vertex + 1) * v
                    for e in Int(start[vertex])..<Int(start[vertex + 1]) {
                        let x = input + Int(points[e]) * v
                        let w = splatWeights[e]
                        for c in 0..<v { y[c] += w * x[c] }
                    }
                }
            }
            // Blur along each lattice direction.
            for j in 0...d {
                let (from, to) = (current, next)
                Parallel.forEach((m + chunk - 1) / chunk) { block in
                    for i in (block * chunk)..<min(m, (block + 1) * chunk) {
                        let old = from + (i + 1) * v
                        let new = to + (i + 1) * v
                        let a = from + (Int(neighbours[(j * m + i) * 2]) + 1) * v
                        let b = from + (Int(neighbours[(j * m + i) * 2 + 1]) + 1) * v
                        for c in 0..<v { new[c] = old[c] + 0.5 * (a[c] + b[c]) }
                    }
                }
                swap(&current, &next)
            }
            // Slice. The reference multiplies weight·value·alpha for one or two channels and
            // (weight·alpha)·value for more; the order is kept so results round the same way.
            let alpha: Float = 1 / (1 + powf(2, -Float(d)))
            let values = current
            Parallel.forEach((n + chunk - 1) / chunk) { block in
                for i in (block * chunk)..<min(n, (block + 1) * chunk) {
                    let y = output + i * v
                    for c in 0..<v { y[c] = 0 }
                    for j in 0...d {
                        let o = (Int(offsets[i * (d + 1) + j]) + 1) * v
                        let w = weights[i * (d + 1) + j]
                        if v <= 2 {
                            for c in 0..<v { y[c] += w * values[o + c] * alpha }
                        } else {
                            let wa = w * alpha
                            for c in 0..<v { y[c] += wa * values[o + c] }
                        }
                    }
                }
            }
        }
        }
        }
        }
        }
        }
    }
}

/// Open-addressing hash table from d-dimensional Int16 lattice keys to dense vertex indices.
struct LatticeHashTable {
    let keySize: Int
    private var keys: [Int16] = []
    private var table: [Int32]
    private(set) var count = 0

    init(keySize: Int, expected: Int) {
        self.keySize = keySize
        var capacity = 64
        while capacity < 2 * expected { capacity <<= 1 }
        table = [Int32](repeating: -1, count: capacity)
        keys.reserveCapacity(expected * keySize)
    }

    private func hash(_ k: UnsafePointer<Int16>) -> Int {
        var r: UInt = 0
        for i in 0..<keySize { r = (r &+ UInt(bitPattern: Int(k[i]))) &* 1664525 }
        return Int(truncatingIfNeeded: (r ^ (r >> 29)) & UInt(table.count - 1))
    }

    /// Index of `key`; inserts it when `create` is set, otherwise returns −1 when absent.
    mutating func find(_ key: UnsafePointer<Int16>, create: Bool) -> Int {
        if 2 * count >= table.count { grow() }
        let mask = table.count - 1
        var h = hash(key)
        while true {
            let e = Int(table[h])
            if e < 0 {
                guard create else { return -1 }
                for i in 0..<keySize { keys.append(key[i]) }
                table[h] = Int32(count)
                count += 1
                return count - 1
            }
            var same = true
            for i in 0..<keySize where keys[e * keySize + i] != key[i] {
                same = false
                break
            }
            if same { return e }
            h = (h + 1) & mask
        }
    }

    func withKey<R>(_ index: Int, _ body: (UnsafeBufferPointer<Int16>) -> R) -> R {
        keys.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[(index * keySize)..<((index + 1) * keySize)])) }
    }

    private mutating func grow() {
        table = [Int32](repeating: -1, count: table.count * 2)
        let mask = table.count - 1
        keys.withUnsafeBufferPointer { k in
            for e in 0..<count {
                var h = hash(k.baseAddress! + e * keySize)
                while table[h] >= 0 { h = (h + 1) & mask }
                table[h] = Int32(e)
            }
        }
    }
}
