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
    let vertexCount: Int
    /// [N × (d+1)]: vertex index and barycentric weight of each point's simplex corners.
    private let offsets: [Int32]
    private let weights: [Float]
    /// [(d+1) × M × 2]: the two neighbours of every vertex along each lattice direction, −1 if absent.
    private let neighbours: [Int32]
    /// The splat as a gather: vertex m receives the (point, weight) pairs
    /// splatPoints/splatWeights[splatStart[m] ..< splatStart[m+1]], in ascending point order, so the
    /// sums round exactly as a point-by-point scatter does, and vertices can be filled in parallel.
    private let splatStart: [Int32]
    private let splatPoints: [Int32]
    private let splatWeights: [Float]

    /// features: [N, d] row-major, already divided by the kernel widths.
    init(features: UnsafePointer<Float>, dimension d: Int, count n: Int) {
        precondition(d >= 1 && d <= 16, "lattice dimension \(d) unsupported")
        dimension = d
        pointCount = n
        // Everything is built in locals and stored at the end, so the loops touch no class fields.
        var offsets = [Int32](repeating: 0, count: n * (d + 1))
        var weights = [Float](repeating: 0, count: n * (d + 1))

        // canonical[r·(d+1) + j]: the remainder-r vertex of the canonical simplex.
        var canonical = [Int](repeating: 0, count: (d + 1) * (d + 1))
        for r in 0...d {
            for j in 0...d { canonical[r * (d + 1) + j] = j <= d - r ? r : r - (d + 1) }
        }
        // Diagonal part of the elevation matrix E, scaled so the blur has the expected std (p.5–6).
        let inverseStd = Float(sqrt(2.0 / 3.0) * Double(d + 1))
        let scale = (0..<d).map { Float(1.0 / sqrt(Double((($0 + 2) * ($0 + 1)))) * Double(inverseStd)) }

        // The simplex of every point, in parallel: d+1 vertex keys ([N × (d+1) × d]) and weights.
        let vertexKeys = UnsafeMutablePointer<Int16>.allocate(capacity: max(1, n * (d + 1) * d))
        defer { vertexKeys.deallocate() }
        let chunk = 4096
        weights.withUnsafeMutableBufferPointer { weights in
            let weightOut = weights.baseAddress!
            canonical.withUnsafeBufferPointer { canonical in
                scale.withUnsafeBufferPointer { scale in
                    Parallel.forEach((n + chunk - 1) / chunk) { block in
                        PermutohedralLattice.locate(features: features, dimension: d,
                                                    points: (block * chunk)..<min(n, (block + 1) * chunk),
                                                    scale: scale.baseAddress!, canonical: canonical.baseAddress!,
                                                    keys: vertexKeys, weights: weightOut)
                    }
                }
            }
        }
        // Vertex indices, assigned serially in point order.
        var table = LatticeHashTable(keySize: d, expected: n)
        defer { table.release() }
        offsets.withUnsafeMutableBufferPointer { offsets in
            for e in 0..<(n * (d + 1)) { offsets[e] = Int32(table.insert(vertexKeys + e * d)) }
        }

        let m = table.count
        var neighbours = [Int32](repeating: -1, count: (d + 1) * m * 2)
        let frozen = table.frozen
        neighbours.withUnsafeMutableBufferPointer { neighbours in
            let out = neighbours.baseAddress!
            Parallel.forEach((m + chunk - 1) / chunk) { block in
                let n1 = UnsafeMutablePointer<Int16>.allocate(capacity: d)
                let n2 = UnsafeMutablePointer<Int16>.allocate(capacity: d)
                defer {
                    n1.deallocate()
                    n2.deallocate()
                }
                for i in (block * chunk)..<min(m, (block + 1) * chunk) {
                    let key = frozen.key(i)
                    for j in 0...d {
                        for c in 0..<d {
                            n1[c] = key[c] &- 1
                            n2[c] = key[c] &+ 1
                        }
                        if j < d {
                            n1[j] = key[j] &+ Int16(d)
                            n2[j] = key[j] &- Int16(d)
                        }
                        out[(j * m + i) * 2] = Int32(frozen.lookup(n1))
                        out[(j * m + i) * 2 + 1] = Int32(frozen.lookup(n2))
                    }
                }
            }
        }

        // Gather lists for the splat (counting sort by vertex keeps points ascending).
        let entries = n * (d + 1)
        var start = [Int32](repeating: 0, count: m + 1)
        for e in 0..<entries { start[Int(offsets[e]) + 1] += 1 }
        for i in 0..<m { start[i + 1] += start[i] }
        var fill = Array(start[0..<m])
        var splatPoints = [Int32](repeating: 0, count: entries)
        var splatWeights = [Float](repeating: 0, count: entries)
        for e in 0..<entries {
            let vertex = Int(offsets[e])
            let slot = Int(fill[vertex])
            fill[vertex] += 1
            splatPoints[slot] = Int32(e / (d + 1))
            splatWeights[slot] = weights[e]
        }
        self.offsets = offsets
        self.weights = weights
        self.neighbours = neighbours
        self.splatStart = start
        self.splatPoints = splatPoints
        self.splatWeights = splatWeights
        vertexCount = m
    }

    /// The enclosing simplex of each point in `points`: writes its d+1 vertex keys
    /// (keys[(k·(d+1) + r)·d ..< +d]) and barycentric weights (weights[k·(d+1) + r]).
    private static func locate(features: UnsafePointer<Float>, dimension d: Int, points: Range<Int>,
                               scale: UnsafePointer<Float>, canonical: UnsafePointer<Int>,
                               keys: UnsafeMutablePointer<Int16>, weights: UnsafeMutablePointer<Float>) {
        let down: Float = 1.0 / Float(d + 1)
        let up = Float(d + 1)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 3 * (d + 2))
        let rank = UnsafeMutablePointer<Int>.allocate(capacity: d + 1)
        defer {
            scratch.deallocate()
            rank.deallocate()
        }
        let elevated = scratch, rem0 = scratch + (d + 2), barycentric = scratch + 2 * (d + 2)
        for k in points {
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
            // The d+1 simplex vertices. Keys are 16-bit as in the reference (wrapping rather than
            // trapping on huge images).
            for r in 0...d {
                let key = keys + (k * (d + 1) + r) * d
                for i in 0..<d { key[i] = Int16(truncatingIfNeeded: Int(rem0[i] + Float(canonical[r * (d + 1) + rank[i]]))) }
                weights[k * (d + 1) + r] = barycentric[r]
            }
        }
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
/// Inserts are serial; `frozen` gives a read-only view for lookups from several threads.
/// The memory is managed by hand: call `release()` once done.
struct LatticeHashTable {
    let keySize: Int
    private var keys: UnsafeMutablePointer<Int16>
    private var keyCapacity: Int
    private var table: UnsafeMutablePointer<Int32>
    private var capacity: Int
    private(set) var count = 0

    init(keySize: Int, expected: Int) {
        self.keySize = keySize
        capacity = 64
        while capacity < 4 * expected { capacity <<= 1 }
        table = .allocate(capacity: capacity)
        table.initialize(repeating: -1, count: capacity)
        keyCapacity = max(expected, 16)
        keys = .allocate(capacity: keyCapacity * keySize)
    }

    /// Frees the table's memory; the table must not be used afterwards.
    func release() {
        table.deallocate()
        keys.deallocate()
    }

    @inline(__always)
    fileprivate static func slot(_ k: UnsafePointer<Int16>, keySize: Int, mask: Int) -> Int {
        var r: UInt64 = 0
        for i in 0..<keySize { r = (r &+ UInt64(bitPattern: Int64(k[i]))) &* 1664525 }
        r = (r ^ (r >> 31)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: r >> 32) & mask
    }

    @inline(__always)
    fileprivate static func matches(_ stored: UnsafePointer<Int16>, _ k: UnsafePointer<Int16>, keySize: Int) -> Bool {
        for i in 0..<keySize where stored[i] != k[i] { return false }
        return true
    }

    /// Index of `key`, inserting it when absent.
    mutating func insert(_ key: UnsafePointer<Int16>) -> Int {
        if 4 * count >= capacity { grow() }  // at most a quarter full: short probes
        // Stored properties are read once into locals: the probe loop then runs without
        // exclusivity checks on the class's fields.
        let (table, keys, keySize, mask) = (self.table, self.keys, self.keySize, self.capacity - 1)
        var h = LatticeHashTable.slot(key, keySize: keySize, mask: mask)
        while true {
            let e = Int(table[h])
            if e < 0 {
                append(key)
                table[h] = Int32(count - 1)
                return count - 1
            }
            if LatticeHashTable.matches(keys + e * keySize, key, keySize: keySize) { return e }
            h = (h + 1) & mask
        }
    }

    private mutating func append(_ key: UnsafePointer<Int16>) {
        if count == keyCapacity {
            let bigger = UnsafeMutablePointer<Int16>.allocate(capacity: 2 * keyCapacity * keySize)
            bigger.update(from: keys, count: count * keySize)
            keys.deallocate()
            keys = bigger
            keyCapacity *= 2
        }
        (keys + count * keySize).update(from: key, count: keySize)
        count += 1
    }

    /// A read-only view for concurrent lookups, valid until the next insert.
    var frozen: FrozenLatticeTable {
        FrozenLatticeTable(table: table, keys: keys, keySize: keySize, mask: capacity - 1)
    }

    /// Index of `key`, or −1 when absent, in a table that no longer changes.
    fileprivate static func find(_ key: UnsafePointer<Int16>, table: UnsafeMutablePointer<Int32>,
                                 keys: UnsafeMutablePointer<Int16>, keySize: Int, mask: Int) -> Int {
        var h = slot(key, keySize: keySize, mask: mask)
        while true {
            let e = Int(table[h])
            if e < 0 { return -1 }
            if matches(keys + e * keySize, key, keySize: keySize) { return e }
            h = (h + 1) & mask
        }
    }

    private mutating func grow() {
        table.deallocate()
        capacity *= 2
        let (table, keys, keySize, mask) = (UnsafeMutablePointer<Int32>.allocate(capacity: capacity), self.keys, self.keySize, capacity - 1)
        table.initialize(repeating: -1, count: capacity)
        for e in 0..<count {
            var h = LatticeHashTable.slot(keys + e * keySize, keySize: keySize, mask: mask)
            while table[h] >= 0 { h = (h + 1) & mask }
            table[h] = Int32(e)
        }
        self.table = table
    }
}

/// The hash table's memory seen as constants, so lookups from worker threads touch no class state.
struct FrozenLatticeTable: @unchecked Sendable {
    let table: UnsafeMutablePointer<Int32>
    let keys: UnsafeMutablePointer<Int16>
    let keySize: Int
    let mask: Int

    /// Index of `key`, or −1 when absent.
    @inline(__always)
    func lookup(_ key: UnsafePointer<Int16>) -> Int {
        LatticeHashTable.find(key, table: table, keys: keys, keySize: keySize, mask: mask)
    }

    /// The stored key of vertex `index`.
    @inline(__always)
    func key(_ index: Int) -> UnsafePointer<Int16> { UnsafePointer(keys + index * keySize) }
}
