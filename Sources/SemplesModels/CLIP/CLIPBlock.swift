import SemplesEngine

/// One pre-norm residual block of CLIP's transformers (spec §2.2):
/// x += out_proj(MHA(ln_1(x))); x += c_proj(quickGELU(c_fc(ln_2(x)))).
/// Parameters carry the state-dict names (`<prefix>attn.in_proj_weight`, …).
struct CLIPResidualBlock {
    let ln1: LayerNorm
    let attention: MultiHeadAttention
    let ln2: LayerNorm
    let fc: Linear    // c_fc [4D, D]
    let proj: Linear  // c_proj [D, 4D]

    init(_ store: ParameterStore, prefix: String, width: Int, heads: Int, causal: Bool, eps: Float) {
        ln1 = LayerNorm(weight: store.declare(prefix + "ln_1.weight", [width]),
                        bias: store.declare(prefix + "ln_1.bias", [width]), eps: eps)
        attention = MultiHeadAttention(
            qkv: Linear(weight: store.declare(prefix + "attn.in_proj_weight", [3 * width, width]),
                        bias: store.declare(prefix + "attn.in_proj_bias", [3 * width])),
            projection: Linear(weight: store.declare(prefix + "attn.out_proj.weight", [width, width]),
                               bias: store.declare(prefix + "attn.out_proj.bias", [width])),
            headCount: heads, causal: causal)
        ln2 = LayerNorm(weight: store.declare(prefix + "ln_2.weight", [width]),
                        bias: store.declare(prefix + "ln_2.bias", [width]), eps: eps)
        fc = Linear(weight: store.declare(prefix + "mlp.c_fc.weight", [4 * width, width]),
                    bias: store.declare(prefix + "mlp.c_fc.bias", [4 * width]))
        proj = Linear(weight: store.declare(prefix + "mlp.c_proj.weight", [width, 4 * width]),
                      bias: store.declare(prefix + "mlp.c_proj.bias", [width]))
    }

    /// Everything one block keeps from forward for backward.
    struct Activations {
        let input: TensorView       // [B, T, D] block input (kept for ln_1 backward)
        let normed1: TensorView     // [B, T, D] ln_1(x)
        let mean1, rstd1: TensorView  // [B·T]
        let attention: MultiHeadAttention.Cache
        let middle: TensorView      // [B, T, D] x after the attention residual
        let normed2: TensorView     // [B, T, D]
        let mean2, rstd2: TensorView
        let hidden: TensorView      // [B, T, 4D] c_fc output (+ bias), before quickGELU
        let activated: TensorView   // [B, T, 4D] quickGELU(hidden)
    }

    func makeActivations(_ arena: Arena, batch B: Int, tokens T: Int) -> Activations {
        let D = ln1.channels
        return Activations(
            input: arena.allocate(Shape(B, T, D)), normed1: arena.allocate(Shape(B, T, D)),
            mean1: arena.allocate(Shape(B * T)), rstd1: arena.allocate(Shape(B * T)),
            attention: attention.makeCache(arena, batch: B, tokens: T),
            middle: arena.allocate(Shape(B, T, D)), normed2: arena.allocate(Shape(B, T, D)),
            mean2: arena.allocate(Shape(B * T)), rstd2: arena.allocate(Shape(B * T)),
            hidden: arena.allocate(Shape(B, T, 4 * D)), activated: arena.allocate(Shape(B, T, 4 * D)))
    }

    /// Where a forward pass laid out the kept activations of consecutive blocks in its arena:
    /// block i's at `start + i·stride`, since every block makes the same buffers in the same
    /// order. Backward makes their views again from there, so a pass keeps no array of them.
    struct ActivationLayout {
        let arena: Arena
        let start: Int
        let stride: Int
        let batch: Int
        let tokens: Int

        /// The activations block i of the pass kept (`block` is that block).
        func activations(_ i: Int, of block: CLIPResidualBlock) -> Activations {
            arena.reallocating(from: start + i * stride) { block.makeActivations(arena, batch: batch, tokens: tokens) }
        }
    }

    /// Runs `blocks` in order on the residual stream x: [B, T, D]. With `keepActivations`, each
    /// block's activations are laid out one after another in `arena` (equal sizes, checked) and
    /// their layout is returned for backward; without, the blocks share one set and nil comes back.
    static func forward(_ blocks: some Collection<CLIPResidualBlock>, _ x: TensorView, scratch: TensorView,
                        arena: Arena, batch B: Int, tokens T: Int, keepActivations: Bool) -> ActivationLayout? {
        let shared = keepActivations ? nil : blocks.first?.makeActivations(arena, batch: B, tokens: T)
        let start = arena.mark
        var blockFloats = 0
        for (i, block) in blocks.enumerated() {
            let a = shared ?? block.makeActivations(arena, batch: B, tokens: T)
            if shared == nil {
                if i == 0 { blockFloats = arena.mark - start }
                precondition(arena.mark == start + (i + 1) * blockFloats, "CLIP block activations of unequal size")
            }
            block.forward(x, saved: a, scratch: scratch)
        }
        return keepActivations && !blocks.isEmpty
            ? ActivationLayout(arena: arena, start: start, stride: blockFloats, batch: B, tokens: T) : nil
    }

    /// x: [B, T, D] updated in place (the residual stream). The block's input is copied into
    /// `saved.input` for backward.
    func forward(_ x: TensorView, saved a: Activations, scratch: TensorView) {
        a.input.copy(from: x)
        ln1.forward(x, into: a.normed1, mean: a.mean1, rstd: a.rstd1)
        attention.forward(a.normed1, into: scratch, cache: a.attention)
        add(scratch, into: x)
        a.middle.copy(from: x)
        ln2.forward(x, into: a.normed2, mean: a.mean2, rstd: a.rstd2)
        fc.forwardWithoutBias(a.normed2, into: a.hidden)
        Activation.quickGELU.forwardAddingBias(a.hidden, bias: fc.bias!.value, into: a.activated)
        proj.forward(a.activated, into: scratch)
        add(scratch, into: x)
    }

    /// Temporaries of backward.
    struct Scratch {
        let attention: MultiHeadAttention.Scratch
        let normedGradient: TensorView  // [B, T, D]
        let hiddenGradient: TensorView  // [B, T, 4D]
    }

    func makeScratch(_ arena: Arena, batch B: Int, tokens T: Int) -> Scratch {
        let D = ln1.channels
        return Scratch(attention: attention.makeScratch(arena, batch: B, tokens: T),
                       normedGradient: arena.allocate(Shape(B, T, D)), hiddenGradient: arena.allocate(Shape(B, T, 4 * D)))
    }

    /// dx: [B, T, D], on entry ∂L/∂(block output), on return ∂L/∂(block input). Weight
    /// gradients accumulate (+=) when the store keeps them (a trainable CLIP); a frozen CLIP has
    /// no gradient memory, so the layers skip them and only the input gradient is formed (spec §9).
    func backward(_ dx: TensorView, saved a: Activations, scratch s: Scratch) {
        // MLP branch: output = middle + c_proj(quickGELU(c_fc(ln_2(middle)))).
        proj.backward(dx, x: a.activated, dx: s.hiddenGradient, accumulate: false, parameterGradients: true)
        Activation.quickGELU.backward(s.hiddenGradient, x: a.hidden, dx: s.hiddenGradient, accumulate: false)
        fc.backward(s.hiddenGradient, x: a.normed2, dx: s.normedGradient, accumulate: false, parameterGradients: true)
        ln2.backward(s.normedGradient, x: a.middle, mean: a.mean2, rstd: a.rstd2, dx: dx, accumulate: true,
                     parameterGradients: true)
        // Attention branch: middle = input + out_proj(MHA(ln_1(input))).
        attention.backward(dx, x: a.normed1, cache: a.attention, scratch: s.attention, dx: s.normedGradient,
                           accumulate: false, parameterGradients: true)
        ln1.backward(s.normedGradient, x: a.input, mean: a.mean1, rstd: a.rstd1, dx: dx, accumulate: true,
                     parameterGradients: true)
    }
}

/// y += x (same element count).
func add(_ x: TensorView, into y: TensorView) {
    precondition(x.count == y.count, "add \(x.shape) into \(y.shape)")
    BLAS.axpy(count: x.count, alpha: 1, x: x.data, y: y.data)
}
