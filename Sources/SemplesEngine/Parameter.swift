/// A named trainable (or frozen) tensor: its value and, when the store keeps them, its gradient.
///
/// Parameters are declared on a `ParameterStore` while a model is built and get their memory when the
/// store is materialised (one flat block for values, one for gradients), so that zeroing gradients
/// and the optimizer step run over contiguous memory. A parameter can also own its memory directly
/// (`Parameter(name:dims:)`), which tests and small standalone layers use.
public final class Parameter: @unchecked Sendable {
    /// Name within the model (the engine's own naming; models map checkpoint keys onto it).
    public let name: String
    public let shape: Shape
    /// When false, backward passes skip this parameter's gradient and the optimizer skips it.
    public var requiresGradient: Bool

    private var valueView: TensorView?
    private var gradView: TensorView?
    private var owned: [Tensor] = []
    /// Offset (in floats) inside the store's flat blocks; -1 when not store-backed.
    public internal(set) var offset: Int = -1

    init(declaredName: String, shape: Shape) {
        self.name = declaredName
        self.shape = shape
        self.requiresGradient = true
    }

    /// A standalone parameter owning zero-initialised memory for its value (and gradient).
    public init(name: String, dims: [Int], gradient: Bool = true) {
        self.name = name
        self.shape = Shape(dims)
        self.requiresGradient = gradient
        let v = Tensor(dims)
        owned.append(v)
        valueView = v.view
        if gradient {
            let g = Tensor(dims)
            owned.append(g)
            gradView = g.view
        }
    }

    /// The value view; the store must have been materialised.
    public var value: TensorView {
        guard let v = valueView else {
            preconditionFailure("parameter '\(name)' used before its store was materialised")
        }
        return v
    }

    /// The gradient view, or nil when the store keeps no gradients.
    public var grad: TensorView? { gradView }

    /// The gradient to accumulate into during backward, or nil when it must be skipped.
    public var activeGrad: TensorView? { requiresGradient ? gradView : nil }

    public var count: Int { shape.count }

    func bind(value: TensorView, grad: TensorView?, offset: Int) {
        valueView = value
        gradView = grad
        self.offset = offset
    }
}

/// All parameters of a model in one flat block of values (and one of gradients), with named views.
///
/// Build phase: `declare(name, dims)` for each tensor; then `materialise()` allocates once.
public final class ParameterStore: @unchecked Sendable {
    public private(set) var parameters: [Parameter] = []
    private var byName: [String: Parameter] = [:]
    public let keepsGradients: Bool
    /// Which parameters get gradient memory when the store keeps gradients (nil: all).
    private let gradientFilter: ((String) -> Bool)?
    public private(set) var values: Tensor?
    public private(set) var gradients: Tensor?
    private var totalCount = 0

    /// gradients: false for frozen models (no gradient memory at all). `only`, when given, keeps
    /// gradient memory just for the parameters whose name it accepts; the others are frozen.
    public init(gradients: Bool = true, only filter: ((String) -> Bool)? = nil) {
        keepsGradients = gradients
        gradientFilter = filter
    }

    /// Declares a parameter of `dims`; memory is assigned by `materialise()`.
    @discardableResult
    public func declare(_ name: String, _ dims: [Int]) -> Parameter {
        precondition(values == nil, "declare('\(name)') after the store was materialised")
        precondition(byName[name] == nil, "parameter '\(name)' declared twice")
        let p = Parameter(declaredName: name, shape: Shape(dims))
        p.requiresGradient = keepsGradients && (gradientFilter?(name) ?? true)
        parameters.append(p)
        byName[name] = p
        return p
    }

    /// Allocates the flat blocks (16-float aligned per parameter) and binds every view. Zero-filled.
    public func materialise() {
        precondition(values == nil, "store materialised twice")
        // Values of every parameter in one block; gradients, in a second block, only for those
        // declared with gradient memory (requiresGradient at declaration).
        var offsets: [Int] = [], gradientOffsets: [Int?] = []
        var n = 0, gn = 0
        for p in parameters {
            offsets.append(n)
            n += (p.count + 15) & ~15
            gradientOffsets.append(p.requiresGradient ? gn : nil)
            if p.requiresGradient { gn += (p.count + 15) & ~15 }
        }
        totalCount = n
        let v = Tensor([max(n, 1)])
        values = v
        let g: Tensor? = keepsGradients ? Tensor([max(gn, 1)]) : nil
        gradients = g
        for (p, (o, go)) in zip(parameters, zip(offsets, gradientOffsets)) {
            p.bind(value: TensorView(v.data + o, p.shape, owner: v),
                   grad: g.flatMap { g in go.map { TensorView(g.data + $0, p.shape, owner: g) } }, offset: o)
        }
    }

    public subscript(_ name: String) -> Parameter? { byName[name] }

    /// Number of scalars in all parameters (without alignment padding).
    public var scalarCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Zeros every gradient in one pass.
    public func zeroGradients() {
        guard let g = gradients else { return }
        g.view.zero()
    }

    /// Marks every parameter (or those whose name has `prefix`) as frozen or trainable.
    public func setRequiresGradient(_ flag: Bool, prefix: String = "") {
        for p in parameters where p.name.hasPrefix(prefix) {
            p.requiresGradient = flag && p.grad != nil
        }
    }
}
