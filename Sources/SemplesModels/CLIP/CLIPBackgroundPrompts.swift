import SemplesEngine

/// The fixed tokens around learnable background prompts (spec §2.3.1):
/// `[SOT, "a photo of", p_0 … p_{L−1}, ".", EOT, 0 …]`.
public struct CLIPPromptTemplate: Equatable, Sendable {
    public var start: Int32
    public var prefix: [Int32]
    /// "." as a non-word-final token (13), not the word-final 269 (spec §10, item 9).
    public var period: Int32
    public var end: Int32

    public init(start: Int32, prefix: [Int32], period: Int32, end: Int32) {
        self.start = start
        self.prefix = prefix
        self.period = period
        self.end = end
    }

    /// The template SemPLeS uses: 49406, "a photo of" = 320 1125 539, "." = 13, 49407.
    public static let semples = CLIPPromptTemplate(start: CLIPTokenizer.startOfText, prefix: [320, 1125, 539],
                                                   period: 13, end: CLIPTokenizer.endOfText)

    /// Position of the first prompt vector.
    public var promptOffset: Int { 1 + prefix.count }

    /// Position of the EOT token for prompts of `length` vectors (5 + L for the SemPLeS template).
    public func endPosition(length: Int) -> Int { promptOffset + length + 1 }

    /// The full `context` ids with nil where the prompt vectors go.
    public func layout(length: Int, context: Int = CLIPTokenizer.contextLength) -> [Int32?] {
        let head: [Int32?] = [start] + prefix.map { Optional($0) }
        let tail: [Int32?] = [period, end]
        let padding = context - head.count - length - tail.count
        precondition(padding >= 0, "prompt length \(length) does not fit the context of \(context)")
        return head + [Int32?](repeating: nil, count: length) + tail + [Int32?](repeating: 0, count: padding)
    }
}

extension CLIPTextEncoder {
    /// The gradient state of a background-prompt pass.
    public struct PromptPass {
        public let text: Pass
        let length: Int
        let offset: Int
    }

    /// prompts: [C, L, W] → features [C, E] (spec §2.3.1: token embeddings of the template around
    /// the prompt vectors, positions, causal transformer, ln_final at 5 + L, text_projection).
    /// Padding after the EOT is not run (causality).
    @discardableResult
    public func encodeBackgroundPrompts(_ prompts: TensorView, template: CLIPPromptTemplate = .semples,
                                        into features: TensorView, arena: Arena,
                                        keepActivations: Bool = false) -> PromptPass {
        let C = prompts.shape[0], L = prompts.shape[1], W = config.textWidth
        precondition(prompts.shape == Shape(C, L, W), "background prompts \(prompts.shape), width \(W)")
        let layout = template.layout(length: L, context: config.contextLength)
        let end = template.endPosition(length: L)
        let T = end + 1
        let ids = [Int32](layout.prefix(T).map { $0 ?? 0 })
        let x = arena.allocate(Shape(C, T, W))
        embed([[Int32]](repeating: ids, count: C), tokens: T, into: x)
        for k in 0..<C {
            (x.data + (k * T + template.promptOffset) * W).update(from: prompts.data + k * L * W, count: L * W)
        }
        let pass = forward(embeddings: x, endPositions: [Int](repeating: end, count: C), into: features,
                           arena: arena, keepActivations: keepActivations)
        return PromptPass(text: pass, length: L, offset: template.promptOffset)
    }

    /// dFeatures: [C, E] → dPrompts: [C, L, W] (+=).
    public func backwardBackgroundPrompts(_ dFeatures: TensorView, pass: PromptPass, promptsGradient: TensorView,
                                          arena: Arena) {
        let C = pass.text.batch, T = pass.text.tokens, W = config.textWidth, L = pass.length
        precondition(promptsGradient.shape == Shape(C, L, W), "prompt gradient \(promptsGradient.shape)")
        let mark = arena.mark
        defer { arena.release(to: mark) }
        let dx = arena.zeros(Shape(C, T, W))
        backward(dFeatures, pass: pass.text, embeddingsGradient: dx, arena: arena)
        for k in 0..<C {
            BLAS.axpy(count: L * W, alpha: 1, x: dx.data + (k * T + pass.offset) * W,
                      y: promptsGradient.data + k * L * W)
        }
    }
}
