// Element-wise kernels: one source (kernels_body.h), two compilations, chosen at run time.
//
// Swift compiles the engine for the x86-64 baseline (SSE2), which every CPU a lab may have can
// run; its 8-lane SIMD types then become two 128-bit halves and no fused multiply-add. The
// activation and softmax passes around the GEMMs are bound by that arithmetic (erf, exp), so they
// live here, compiled a second time for AVX2 + FMA and picked by the CPU's flags at the first call.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "semples_kernels.h"

// The generic copy passes 8-lane vectors between its (always inlined) helpers without AVX; that is
// consistent within the copy, and nothing with a vector in its signature crosses between copies.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef unsigned int v8u __attribute__((vector_size(32)));

// Helpers as macros: a function taking or returning a 256-bit vector would have a different ABI
// in the two compilations, so nothing with vector arguments is shared between them.
#define splat8(x) ((v8f){0} + (float)(x))
#define load8(p) ({ v8f v8_; memcpy(&v8_, (p), sizeof v8_); v8_; })
#define store8(v, p) do { v8f s8_ = (v); memcpy((p), &s8_, sizeof s8_); } while (0)
/// Lanes of a where mask is set (all ones), else b.
#define select8(mask, a, b) ((v8f)(((mask) & (v8i)(a)) | (~(mask) & (v8i)(b))))
/// Clamps each lane to [lo, hi]; NaN stays NaN.
#define clamp8(v, lo, hi) ({ v8f c8_ = (v); c8_ = select8(c8_ < (lo), splat8(lo), c8_); select8(c8_ > (hi), splat8(hi), c8_); })
#define lane_index8() ((v8i){0, 1, 2, 3, 4, 5, 6, 7})
/// Sum of the lanes, halves first (the order is fixed, whatever the variant).
#define hsum8(v) ({ v8f h8_ = (v); ((h8_[0] + h8_[4]) + (h8_[2] + h8_[6])) + ((h8_[1] + h8_[5]) + (h8_[3] + h8_[7])); })

struct kernel_table {
    void (*activation_forward)(int, float *, const float *, float *, long, long, int);
    void (*activation_backward)(int, const float *, const float *, float *, long, int);
    void (*softmax_rows)(float *, long, long, long, int, long);
    void (*softmax_row)(const float *, float *, long);
    float (*exponentiate_row)(const float *, float *, long);
    void (*softmax_rows_backward)(const float *, const float *, float *, long, long, long, float, int);
    void (*exp_span)(const float *, float *, long);
    void (*erf_span)(const float *, float *, long);
    void (*column_sums)(const float *, long, long, float *, long, long);
    void (*layernorm_parameter_gradients)(const float *, const float *, const float *, const float *, long, long,
                                          float *, float *, long, long);
};

#define NAME(x) x##_generic
#include "kernels_body.h"
#undef NAME

#if defined(__x86_64__) && defined(__clang__)
#define SEMPLES_HAVE_AVX2_VARIANT 1
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define NAME(x) x##_avx2
#include "kernels_body.h"
#undef NAME
#pragma clang attribute pop
#endif

static int cpu_has_avx2_fma(void) {
#if defined(SEMPLES_HAVE_AVX2_VARIANT)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/// -1 until chosen. Racing first calls all store the same choice.
static int chosen = -1;

static const struct kernel_table *table_for(int isa) {
#if defined(SEMPLES_HAVE_AVX2_VARIANT)
    if (isa == SEMPLES_ISA_AVX2_FMA) return &table_avx2;
#endif
    (void)isa;
    return &table_generic;
}

int semples_kernels_isa(void) {
    int isa = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (isa >= 0) return isa;
    isa = cpu_has_avx2_fma() ? SEMPLES_ISA_AVX2_FMA : SEMPLES_ISA_GENERIC;
    const char *forced = getenv("SEMPLES_SIMD");
    if (forced && strcmp(forced, "generic") == 0) isa = SEMPLES_ISA_GENERIC;
    __atomic_store_n(&chosen, isa, __ATOMIC_RELAXED);
    return isa;
}

int semples_kernels_supported(int isa) {
    return isa == SEMPLES_ISA_GENERIC || (isa == SEMPLES_ISA_AVX2_FMA && cpu_has_avx2_fma());
}

int semples_kernels_set_isa(int isa) {
    if (!semples_kernels_supported(isa)) return 0;
    __atomic_store_n(&chosen, isa, __ATOMIC_RELAXED);
    return 1;
}

const char *semples_kernels_isa_name(void) {
    return semples_kernels_isa() == SEMPLES_ISA_AVX2_FMA ? "avx2+fma" : "generic";
}

static inline const struct kernel_table *kernels(void) { return table_for(semples_kernels_isa()); }

void semples_activation_forward(int kind, float *pre, const float *bias, float *out, long rows, long cols,
                                int store_pre) {
    kernels()->activation_forward(kind, pre, bias, out, rows, cols, store_pre);
}

void semples_activation_backward(int kind, const float *dy, const float *x, float *dx, long count,
                                 int accumulate) {
    kernels()->activation_backward(kind, dy, x, dx, count, accumulate);
}

void semples_softmax_rows(float *s, long rows, long cols, long ld, int causal, long causal_offset) {
    kernels()->softmax_rows(s, rows, cols, ld, causal, causal_offset);
}

void semples_softmax_row(const float *x, float *p, long c) { kernels()->softmax_row(x, p, c); }

float semples_exponentiate_row(const float *x, float *p, long c) { return kernels()->exponentiate_row(x, p, c); }

void semples_softmax_rows_backward(const float *dp, const float *p, float *dx, long rows, long cols, long ld,
                                   float scale, int accumulate) {
    kernels()->softmax_rows_backward(dp, p, dx, rows, cols, ld, scale, accumulate);
}

void semples_exp(const float *x, float *y, long count) { kernels()->exp_span(x, y, count); }

void semples_erf(const float *x, float *y, long count) { kernels()->erf_span(x, y, count); }

void semples_column_sums(const float *x, long rows, long ld, float *g, long j0, long j1) {
    kernels()->column_sums(x, rows, ld, g, j0, j1);
}

void semples_layernorm_parameter_gradients(const float *dy, const float *x, const float *mean, const float *rstd,
                                           long rows, long c, float *gw, float *gb, long j0, long j1) {
    kernels()->layernorm_parameter_gradients(dy, x, mean, rstd, rows, c, gw, gb, j0, j1);
}
