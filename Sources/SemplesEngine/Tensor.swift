import Foundation

/// A tensor shape of rank 0…6, stored inline so that making a view never allocates.
public struct Shape: Equatable, CustomStringConvertible, Sendable {
    @usableFromInline var _rank: Int = 0
    public var rank: Int { _rank }
    @usableFromInline var storage: (Int, Int, Int, Int, Int, Int)

    /// Inlinable so that an array literal passed here (`reshaped([B * T, D])`) is built on the
    /// stack: shapes are made in every layer call and must not allocate.
    @inlinable
    public init(_ dims: [Int]) {
        // No message below captures `dims`: a captured array escapes and is then heap-allocated.
        let n = dims.count
        precondition(n <= 6, "rank \(n) > 6 is not supported")
        _rank = n
        storage = (0, 0, 0, 0, 0, 0)
        for i in 0..<n {
            let d = dims[i]
            precondition(d >= 0, "negative dimension \(d) at axis \(i)")
            self[i] = d
        }
    }

    @inlinable
    public subscript(_ i: Int) -> Int {
        get {
            precondition(i >= 0 && i < rank, "axis \(i) out of range for rank \(rank)")
            switch i {
            case 0: return storage.0
            case 1: return storage.1
            case 2: return storage.2
            case 3: return storage.3
            case 4: return storage.4
            default: return storage.5
            }
        }
        set {
            precondition(i >= 0 && i < 6, "axis \(i) out of range")
            switch i {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            case 3: storage.3 = newValue
            case 4: storage.4 = newValue
            default: storage.5 = newValue
            }
        }
    }

    /// Number of elements (1 for rank 0).
    @inlinable
    public var count: Int {
        var n = 1
        for i in 0..<rank { n *= self[i] }
        return n
    }

    public var dims: [Int] { (0..<rank).map { self[$0] } }

    /// Shapes of rank 1…5 from their sizes, without an array (hot paths: an array literal
    /// passed to `init(_ dims: [Int])` is a heap allocation).
    @inlinable public init(_ d0: Int) { self.init(rank: 1, (d0, 0, 0, 0, 0, 0)) }
    @inlinable public init(_ d0: Int, _ d1: Int) { self.init(rank: 2, (d0, d1, 0, 0, 0, 0)) }
    @inlinable public init(_ d0: Int, _ d1: Int, _ d2: Int) { self.init(rank: 3, (d0, d1, d2, 0, 0, 0)) }
    @inlinable public init(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int) { self.init(rank: 4, (d0, d1, d2, d3, 0, 0)) }
    @inlinable public init(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int, _ d4: Int) {
        self.init(rank: 5, (d0, d1, d2, d3, d4, 0))
    }

    @inlinable
    init(rank: Int, _ sizes: (Int, Int, Int, Int, Int, Int)) {
        precondition(sizes.0 >= 0 && sizes.1 >= 0 && sizes.2 >= 0 && sizes.3 >= 0 && sizes.4 >= 0,
                     "negative dimension in a shape")
        _rank = rank
        storage = sizes
    }

    /// The shape without its first axis (no array is made).
    public var droppingFirst: Shape {
        precondition(rank >= 1, "a rank-0 shape has no first axis")
        var s = Shape()
        s._rank = rank - 1
        s.storage = (storage.1, storage.2, storage.3, storage.4, storage.5, 0)
        return s
    }

    private init() {
        _rank = 0
        storage = (0, 0, 0, 0, 0, 0)
    }
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    public static func == (a: Shape, b: Shape) -> Bool {
        guard a.rank == b.rank else { return false }
        for i in 0..<a.rank where a[i] != b[i] { return false }
        return true
    }
}

/// A view of contiguous row-major float32 memory: pointer + shape, and a strong reference to the
/// object that owns the memory (a `Tensor` or an `Arena`), so that a view can never outlive its
/// storage. Swift may free an owner right after its last use, not at the end of the scope; a view
/// made from `tensor.view` or `arena.allocate` keeps the owner alive for as long as the view
/// itself, and every view derived from it (`reshaped`, `rows`, subscripts, `offset`) carries
/// the same owner. Views made from a bare pointer (`owner: nil`) are valid only inside the
/// closure or scope that made the pointer valid.
public struct TensorView: @unchecked Sendable {
    public let data: UnsafeMutablePointer<Float>
    public let shape: Shape
    /// The object whose lifetime bounds `data`; nil for memory the caller keeps alive itself.
    public let owner: AnyObject?

    @inlinable
    public init(_ data: UnsafeMutablePointer<Float>, _ shape: Shape, owner: AnyObject? = nil) {
        self.data = data
        self.shape = shape
        self.owner = owner
    }

    @inlinable
    public init(_ data: UnsafeMutablePointer<Float>, _ dims: [Int], owner: AnyObject? = nil) {
        self.init(data, Shape(dims), owner: owner)
    }

    /// The view of `shape` starting `offset` floats into this one, with the same owner.
    @inlinable
    public func slice(offset: Int, _ shape: Shape) -> TensorView {
        precondition(offset >= 0 && offset + shape.count <= count,
                     "slice of \(shape.count) floats at \(offset) is outside a view of \(count)")
        return TensorView(data + offset, shape, owner: owner)
    }

    /// The view of `dims` elements starting `offset` floats into this one, with the same owner.
    @inlinable
    public func slice(offset: Int, _ dims: [Int]) -> TensorView {
        let s = Shape(dims)
        precondition(offset >= 0 && offset + s.count <= count,
                     "slice of \(s.count) floats at \(offset) is outside a view of \(count)")
        return TensorView(data + offset, s, owner: owner)
    }

    @inlinable
    public var count: Int { shape.count }

    /// The same memory seen with another shape of equal element count.
    @inlinable
    public func reshaped(_ shape: Shape) -> TensorView {
        precondition(shape.count == count, "cannot reshape \(self.shape) to \(shape)")
        return TensorView(data, shape, owner: owner)
    }

    /// The same memory seen with another shape of equal element count.
    @inlinable
    public func reshaped(_ dims: [Int]) -> TensorView {
        let s = Shape(dims)
        precondition(s.count == count, "cannot reshape \(shape) to \(s)")
        return TensorView(data, s, owner: owner)
    }

    /// Sub-view of rows [start, start+length) along axis 0.
    @inlinable
    public func rows(_ start: Int, _ length: Int) -> TensorView {
        precondition(shape.rank >= 1 && start >= 0 && start + length <= shape[0],
                     "rows \(start)..<\(start + length) out of range for \(shape)")
        let inner = count / max(shape[0], 1)
        var s = shape
        s[0] = length
        return TensorView(data + start * inner, s, owner: owner)
    }

    /// The i-th slice along axis 0 (rank reduced by one).
    public subscript(_ i: Int) -> TensorView {
        precondition(shape.rank >= 1 && i >= 0 && i < shape[0], "index \(i) out of range for \(shape)")
        let inner = count / shape[0]
        return TensorView(data + i * inner, shape.droppingFirst, owner: owner)
    }

    public func fill(_ value: Float) {
        data.update(repeating: value, count: count)
    }

    public func zero() { fill(0) }

    public func copy(from other: TensorView) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// Copies the contents into a Swift array (tests and I/O, never hot paths).
    public func toArray() -> [Float] { Array(buffer) }
}

/// Memory for `count` floats, 64-byte aligned. Blocks of 4 MiB and more are aligned to 2 MiB and
/// offered to the kernel as transparent huge pages (MADV_HUGEPAGE; where THP is "madvise", the
/// default of many distributions, large buffers otherwise get 4 KiB pages): GEMM packing and the
/// element-wise passes stream through tens of MB per layer, and with 4 KiB pages each 2 MiB costs
/// 512 TLB entries. Without THP the advice is ignored and nothing changes but the alignment.
func allocateFloats(_ count: Int) -> UnsafeMutableRawPointer {
    let bytes = count * 4
    let huge = 2 << 20
    guard bytes >= 2 * huge else { return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
    let rounded = (bytes + huge - 1) / huge * huge
    let raw = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: huge)
    #if os(Linux)
    _ = madvise(raw, rounded, MADV_HUGEPAGE)
    #endif
    return raw
}

/// An owning float32 tensor; memory is 64-byte aligned and zero-initialised.
public final class Tensor: @unchecked Sendable {
    public let shape: Shape
    public let data: UnsafeMutablePointer<Float>

    public init(_ dims: [Int]) {
        shape = Shape(dims)
        let raw = allocateFloats(max(shape.count, 1))
        data = raw.bindMemory(to: Float.self, capacity: max(shape.count, 1))
        data.initialize(repeating: 0, count: max(shape.count, 1))
    }

    public convenience init(_ dims: [Int], values: [Float]) {
        self.init(dims)
        precondition(values.count == shape.count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { data.deallocate() }

    public var count: Int { shape.count }
    public var view: TensorView { TensorView(data, shape, owner: self) }
    public func toArray() -> [Float] { view.toArray() }
}

/// A bump allocator for activations and scratch space. Allocation is O(1) and never calls malloc
/// after construction; `reset()` frees everything at once (e.g. at the start of each step).
public final class Arena: @unchecked Sendable {
    public let capacity: Int
    public private(set) var used = 0
    public private(set) var highWater = 0
    private let base: UnsafeMutablePointer<Float>

    /// capacity: in float32 elements.
    public init(capacity: Int) {
        self.capacity = capacity
        let raw = allocateFloats(max(capacity, 16))
        base = raw.bindMemory(to: Float.self, capacity: max(capacity, 16))
    }

    deinit { base.deallocate() }

    /// A view of `dims` elements, 16-float (64-byte) aligned. Contents are unspecified.
    public func allocate(_ dims: [Int]) -> TensorView {
        allocate(Shape(dims))
    }

    public func allocate(_ shape: Shape) -> TensorView {
        let n = (shape.count + 15) & ~15
        precondition(used + n <= capacity,
                     "arena overflow: need \(n) floats, \(capacity - used) of \(capacity) left")
        let v = TensorView(base + used, shape, owner: self)
        used += n
        highWater = max(highWater, used)
        return v
    }

    /// Allocates and zero-fills.
    public func zeros(_ dims: [Int]) -> TensorView {
        zeros(Shape(dims))
    }

    /// Allocates and zero-fills (from another module, an array literal of dims is a heap array;
    /// a `Shape` is not).
    public func zeros(_ shape: Shape) -> TensorView {
        let v = allocate(shape)
        v.zero()
        return v
    }

    /// Marks a position to roll back to.
    public var mark: Int { used }
    public func release(to mark: Int) {
        precondition(mark <= used, "arena release past the current position")
        used = mark
    }

    public func reset() { used = 0 }

    /// Runs body with the position moved back to `mark`, then puts it back. Allocations made inside
    /// return the views first allocated from that position when they are made in the same order
    /// with the same shapes: a forward pass that lays out the same buffers for every block, one
    /// block after another, can hand them to backward as a start and a stride rather than as an
    /// array of views (an allocation per pass).
    public func reallocating<T>(from mark: Int, _ body: () throws -> T) rethrows -> T {
        precondition(mark >= 0 && mark <= used, "arena position \(mark) is past the current one (\(used))")
        let current = used
        used = mark
        defer { used = current }
        let value = try body()
        precondition(used <= current, "reallocation past the arena's position (\(used) > \(current))")
        return value
    }
}
