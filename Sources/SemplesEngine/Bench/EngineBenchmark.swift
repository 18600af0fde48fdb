import Foundation

/// Speed figures of the engine, measured the same way as scripts/bench_torch.py measures PyTorch:
/// one transformer block at the two model geometries, and raw sgemm. All buffers come from an arena
/// made before timing; nothing allocates inside the timed loop.
public enum EngineBenchmark {
    /// One figure: the median over `iterations` timed runs (after `warmup` untimed runs).
    public struct Figure: Codable, Sendable, Equatable {
        /// Stable key shared with the PyTorch script, e.g. "vit_s16_block_forward".
        public var name: String
        public var medianMilliseconds: Double
        public var minimumMilliseconds: Double
        /// Only for the sgemm figure.
        public var gflops: Double?
        public var iterations: Int
        /// Heap allocations per timed iteration (semples only; nil where they are not counted).
        public var allocations: Double?
    }

    public struct Options: Sendable {
        public var threads: Int
        public var iterations: Int
        public var warmup: Int
        /// Restrict to these figure names (all when empty).
        public var only: Set<String>

        public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount, iterations: Int = 10, warmup: Int = 2,
                    only: Set<String> = []) {
            self.threads = threads
            self.iterations = iterations
            self.warmup = warmup
            self.only = only
        }
    }

    public struct Report: Codable, Sendable {
        public var threads: Int
        public var figures: [Figure]
    }

    /// Geometry of a benchmarked block.
    struct BlockCase {
        var prefix: String
        var batch: Int, tokens: Int, dimension: Int, heads: Int
        var activation: Activation
        var eps: Float
        /// Second figure: full backward (parameter + input gradients) or input gradient only.
        var parameterGradients: Bool
        var backwardName: String
    }

    static let cases = [
        BlockCase(prefix: "vit_s16_block", batch: 8, tokens: 216, dimension: 384, heads: 6, activation: .gelu,
                  eps: 1e-6, parameterGradients: true, backwardName: "forward_backward"),
        BlockCase(prefix: "vit_b32_block", batch: 8, tokens: 50, dimension: 768, heads: 12, activation: .quickGELU,
                  eps: 1e-5, parameterGradients: false, backwardName: "forward_input_gradient"),
    ]

    /// Names of every figure, in report order.
    public static let figureNames = ["vit_s16_block_forward", "vit_s16_block_forward_backward",
                                     "vit_b32_block_forward", "vit_b32_block_forward_input_gradient", "sgemm"]

    /// Runs the benchmark with `options.threads` engine and BLAS threads.
    public static func run(_ options: Options = Options()) -> Report {
        let previous = Parallel.threads
        Parallel.configure(threads: options.threads)
        defer { Parallel.configure(threads: previous) }
        var figures: [Figure] = []
        let want = { (name: String) in options.only.isEmpty || options.only.contains(name) }
        for c in cases {
            let fwd = c.prefix + "_forward", bwd = c.prefix + "_" + c.backwardName
            if want(fwd) || want(bwd) { figures += blockFigures(c, options, forward: want(fwd), backward: want(bwd)) }
        }
        if want("sgemm") { figures.append(sgemmFigure(options)) }
        return Report(threads: options.threads, figures: figures)
    }

    static func blockFigures(_ c: BlockCase, _ options: Options, forward: Bool, backward: Bool) -> [Figure] {
        let store = ParameterStore(gradients: c.parameterGradients)
        let config = TransformerBlock.Configuration(dimension: c.dimension, headCount: c.heads,
                                                    hiddenDimension: 4 * c.dimension, eps: c.eps,
                                                    activation: c.activation)
        let block = TransformerBlock(store, prefix: "", config)
        store.materialise()
        var rng = SeededGenerator(seed: 1)
        for p in store.parameters {
            let isNormWeight = p.name.hasSuffix("norm1.weight") || p.name.hasSuffix("norm2.weight")
            for i in 0..<p.count { p.value.data[i] = isNormWeight ? 1 : rng.nextNormal() * 0.02 }
        }
        let B = c.batch, T = c.tokens, D = c.dimension
        let blockFloats = 4 * B * T * D + 3 * B * T * 4 * D + 3 * B * c.heads * T * T + 10 * B * T * D + 4 * B * T * 4 * D
        let arena = Arena(capacity: blockFloats + 64 * 16)
        let cache = block.makeCache(arena, batch: B, tokens: T)
        let scratch = block.makeScratch(arena, batch: B, tokens: T)
        let x = arena.allocate(Shape(B, T, D)), y = arena.allocate(Shape(B, T, D))
        let dy = arena.allocate(Shape(B, T, D)), dx = arena.allocate(Shape(B, T, D))
        for i in 0..<x.count { x.data[i] = rng.nextNormal(); dy.data[i] = rng.nextNormal() * 0.01 }
        var out: [Figure] = []
        if forward {
            out.append(measure(c.prefix + "_forward", options) {
                block.forward(x, into: y, cache: cache)
            })
        }
        if backward {
            out.append(measure(c.prefix + "_" + c.backwardName, options) {
                block.forward(x, into: y, cache: cache)
                if c.parameterGradients { store.zeroGradients() }
                block.backward(dy, x: x, cache: cache, scratch: scratch, dx: dx, accumulate: false,
                               parameterGradients: c.parameterGradients)
            })
        }
        return out
    }

    /// sgemm at the ViT-S fc1 shape: [1728, 384] · [384, 1536].
    static func sgemmFigure(_ options: Options) -> Figure {
        let m = 8 * 216, k = 384, n = 1536
        let a = Tensor([m, k]), b = Tensor([n, k]), c = Tensor([m, n])
        var rng = SeededGenerator(seed: 2)
        for i in 0..<a.count { a.data[i] = rng.nextNormal() }
        for i in 0..<b.count { b.data[i] = rng.nextNormal() }
        var f = measure("sgemm", options) {
            BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, beta: 0, c: c.data, ldc: n)
        }
        f.gflops = 2 * Double(m) * Double(n) * Double(k) / (f.medianMilliseconds * 1e6)
        return f
    }

    static func measure(_ name: String, _ options: Options, _ body: () -> Void) -> Figure {
        for _ in 0..<options.warmup { body() }
        var times: [Double] = []
        times.reserveCapacity(max(1, options.iterations))
        let allocationsBefore = AllocationCount.total
        for _ in 0..<max(1, options.iterations) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        let allocations = Double(AllocationCount.total - allocationsBefore) / Double(times.count)
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2]
            : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        return Figure(name: name, medianMilliseconds: median, minimumMilliseconds: times[0], gflops: nil,
                      iterations: times.count, allocations: AllocationCount.isCounting ? allocations : nil)
    }

    /// Speed ratios engine/PyTorch (>1 means the engine is faster) for the figures both reports hold.
    /// For block figures the ratio is torch ms / engine ms; for sgemm, engine GFLOP/s / torch GFLOP/s.
    public static func ratios(engine: Report, torch: Report) -> [String: Double] {
        var out: [String: Double] = [:]
        for f in engine.figures {
            guard let t = torch.figures.first(where: { $0.name == f.name }) else { continue }
            if let g = f.gflops, let tg = t.gflops, tg > 0 { out[f.name] = g / tg } else if f.medianMilliseconds > 0 {
                out[f.name] = t.medianMilliseconds / f.medianMilliseconds
            }
        }
        return out
    }
}
