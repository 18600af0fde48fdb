// Element-wise kernels of the engine (activations, softmax rows), written once with 8-lane vector
// types and compiled twice: for any x86-64 CPU (two SSE halves per vector) and for CPUs with AVX2
// and FMA (one 256-bit register, fused multiply-adds). The variant is chosen once, at the first
// call, from the CPU's flags; SEMPLES_SIMD=generic forces the variant every x86-64 CPU can run.
#ifndef SEMPLES_KERNELS_H
#define SEMPLES_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Activation kinds, in the order of the engine's `Activation` cases.
enum {
    SEMPLES_ACT_GELU = 0,
    SEMPLES_ACT_QUICK_GELU = 1,
    SEMPLES_ACT_RELU = 2,
    SEMPLES_ACT_SIGMOID = 3,
    SEMPLES_ACT_IDENTITY = 4,
};

/// Instruction-set variants.
enum {
    SEMPLES_ISA_GENERIC = 0,
    SEMPLES_ISA_AVX2_FMA = 1,
};

/// The variant in use ("generic" or "avx2+fma"); selects it on first use.
const char *semples_kernels_isa_name(void);
int semples_kernels_isa(void);
/// Non-zero when this CPU can run the variant.
int semples_kernels_supported(int isa);
/// Forces a variant (tests compare them); returns 0 when this CPU cannot run it.
int semples_kernels_set_isa(int isa);

/// Over rows × cols: pre[i, j] += bias[j] when bias is given (stored back into pre only when
/// store_pre is non-zero), out[i, j] = f(pre[i, j]). out may alias pre only for identity.
void semples_activation_forward(int kind, float *pre, const float *bias, float *out,
                                long rows, long cols, int store_pre);

/// dx = dy ⊙ f′(x) (+ dx when accumulate). dx may alias dy.
void semples_activation_backward(int kind, const float *dy, const float *x, float *dx, long count,
                                 int accumulate);

/// In place over `rows` rows of a row-major matrix with leading dimension ld: each row r becomes
/// softmax of its first len(r) entries, where len(r) = cols, or r + 1 + causal_offset capped to
/// cols when causal is non-zero; the entries past len(r) are set to 0.
void semples_softmax_rows(float *s, long rows, long cols, long ld, int causal, long causal_offset);

/// Softmax of one row of length c; p may alias x.
void semples_softmax_row(const float *x, float *p, long c);

/// p = exp(x − max x) over one row of length c (p may alias x); returns 1 / Σ p.
float semples_exponentiate_row(const float *x, float *p, long c);

/// Over rows: dx = scale · p ⊙ (dp − Σ_row dp ⊙ p) (+ dx when accumulate). dx may alias dp.
void semples_softmax_rows_backward(const float *dp, const float *p, float *dx, long rows, long cols,
                                   long ld, float scale, int accumulate);

/// g[j] += Σ_i x[i·ld + j] for columns j in [j0, j1), rows summed in order (bias gradients).
void semples_column_sums(const float *x, long rows, long ld, float *g, long j0, long j1);

/// LayerNorm parameter gradients over columns [j0, j1) of [rows, c] matrices: gw[j] += Σ_i dy·x̂,
/// gb[j] += Σ_i dy, x̂ = (x − mean[i])·rstd[i]. gw or gb may be NULL.
void semples_layernorm_parameter_gradients(const float *dy, const float *x, const float *mean, const float *rstd,
                                           long rows, long c, float *gw, float *gb, long j0, long j1);

/// e^x and erf(x) over count elements (the engine's polynomials), for tests and scalar callers.
void semples_exp(const float *x, float *y, long count);
void semples_erf(const float *x, float *y, long count);

#ifdef __cplusplus
}
#endif
#endif
