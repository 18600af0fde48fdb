// The kernels' bodies, included twice by kernels.c: once for every x86-64 CPU, once inside a
// target("avx2,fma") region. NAME(x) gives each copy its own names. Not a public header.

static inline __attribute__((always_inline)) v8f NAME(load_partial)(const float *p, long lanes, float pad) {
    if (lanes == 8) return load8(p);
    float b[8];
    for (int l = 0; l < 8; l++) b[l] = l < lanes ? p[l] : pad;
    return load8(b);
}

static inline __attribute__((always_inline)) void NAME(store_partial)(v8f v, float *p, long lanes) {
    if (lanes == 8) { store8(v, p); return; }
    float b[8];
    store8(v, b);
    for (long l = 0; l < lanes; l++) p[l] = b[l];
}

/// e^x: x = n·ln2 + r, a degree-6 polynomial in r, 2^n from the exponent bits of the rounding sum.
static inline __attribute__((always_inline)) v8f NAME(exp8)(v8f x0) {
    v8f x = clamp8(x0, -87.3f, 88.3f);
    v8f t = x * 1.44269504f + 12583039.0f;
    v8f n = t - 12583039.0f;
    v8f r = x - n * 0.693359375f;
    r = r + n * 2.1219444e-4f;
    v8f y = splat8(1.98756915e-4f);
    y = y * r + 1.39819995e-3f;
    y = y * r + 8.3334519e-3f;
    y = y * r + 4.16657959e-2f;
    y = y * r + 1.66666655e-1f;
    y = y * r + 5.00000012e-1f;
    y = y * (r * r) + r + 1.0f;
    v8u bits = ((v8u)t) << 23;
    return y * (v8f)bits;
}

/// erf(x): odd rational approximation on [−4, 4] (|error| < 4e-7), ±1 beyond.
static inline __attribute__((always_inline)) v8f NAME(erf8)(v8f x0) {
    v8f x = clamp8(x0, -4.0f, 4.0f);
    v8f x2 = x * x;
    v8f p = splat8(-2.72614225801306e-10f);
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    p = p * x;
    v8f q = splat8(-1.45660718464996e-05f);
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return p / q;
}

static inline __attribute__((always_inline)) v8f NAME(activation)(int kind, v8f v) {
    switch (kind) {
    case SEMPLES_ACT_GELU:
        return v * 0.5f * (1.0f + NAME(erf8)(v * 0.70710678118654752f));
    case SEMPLES_ACT_QUICK_GELU:
        return v / (1.0f + NAME(exp8)(v * -1.702f));
    case SEMPLES_ACT_RELU:
        return select8(v < 0.0f, splat8(0.0f), v);
    case SEMPLES_ACT_SIGMOID:
        return 1.0f / (1.0f + NAME(exp8)(-v));
    default:
        return v;
    }
}

static inline __attribute__((always_inline)) v8f NAME(derivative)(int kind, v8f v, v8f g) {
    switch (kind) {
    case SEMPLES_ACT_GELU: {
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        v8f cdf = 0.5f * (1.0f + NAME(erf8)(v * 0.70710678118654752f));
        v8f pdf = NAME(exp8)(v * v * -0.5f) * 0.39894228040143268f;
        return g * (cdf + v * pdf);
    }
    case SEMPLES_ACT_QUICK_GELU: {
        // y = x·s, s = σ(1.702x): y′ = s + 1.702·x·s·(1 − s)
        v8f s = 1.0f / (1.0f + NAME(exp8)(v * -1.702f));
        return g * (s + 1.702f * v * s * (1.0f - s));
    }
    case SEMPLES_ACT_RELU:
        return select8(v <= 0.0f, splat8(0.0f), g);
    case SEMPLES_ACT_SIGMOID: {
        v8f s = 1.0f / (1.0f + NAME(exp8)(-v));
        return g * s * (1.0f - s);
    }
    default:
        return g;
    }
}

static inline __attribute__((always_inline)) void NAME(forward_rows)(int kind, float *pre, const float *bias,
                                                                    float *out, long rows, long cols,
                                                                    int store_pre) {
    for (long i = 0; i < rows; i++) {
        float *x = pre + i * cols, *y = out + i * cols;
        for (long j = 0; j < cols; j += 8) {
            long lanes = cols - j < 8 ? cols - j : 8;
            v8f v = NAME(load_partial)(x + j, lanes, 0.0f);
            if (bias) {
                v = v + NAME(load_partial)(bias + j, lanes, 0.0f);
                if (store_pre) NAME(store_partial)(v, x + j, lanes);
            }
            NAME(store_partial)(NAME(activation)(kind, v), y + j, lanes);
        }
    }
}

static void NAME(activation_forward)(int kind, float *pre, const float *bias, float *out, long rows,
                                     long cols, int store_pre) {
    // One loop per kind, so that the kind's branch is taken outside the loop.
    switch (kind) {
    case SEMPLES_ACT_GELU: NAME(forward_rows)(SEMPLES_ACT_GELU, pre, bias, out, rows, cols, store_pre); break;
    case SEMPLES_ACT_QUICK_GELU: NAME(forward_rows)(SEMPLES_ACT_QUICK_GELU, pre, bias, out, rows, cols, store_pre); break;
    case SEMPLES_ACT_RELU: NAME(forward_rows)(SEMPLES_ACT_RELU, pre, bias, out, rows, cols, store_pre); break;
    case SEMPLES_ACT_SIGMOID: NAME(forward_rows)(SEMPLES_ACT_SIGMOID, pre, bias, out, rows, cols, store_pre); break;
    default: NAME(forward_rows)(SEMPLES_ACT_IDENTITY, pre, bias, out, rows, cols, store_pre); break;
    }
}

static inline __attribute__((always_inline)) void NAME(backward_span)(int kind, const float *dy, const float *x,
                                                                     float *dx, long count, int accumulate) {
    for (long i = 0; i < count; i += 8) {
        long lanes = count - i < 8 ? count - i : 8;
        v8f d = NAME(derivative)(kind, NAME(load_partial)(x + i, lanes, 0.0f), NAME(load_partial)(dy + i, lanes, 0.0f));
        if (accumulate) d = d + NAME(load_partial)(dx + i, lanes, 0.0f);
        NAME(store_partial)(d, dx + i, lanes);
    }
}

static void NAME(activation_backward)(int kind, const float *dy, const float *x, float *dx, long count,
                                      int accumulate) {
    switch (kind) {
    case SEMPLES_ACT_GELU: NAME(backward_span)(SEMPLES_ACT_GELU, dy, x, dx, count, accumulate); break;
    case SEMPLES_ACT_QUICK_GELU: NAME(backward_span)(SEMPLES_ACT_QUICK_GELU, dy, x, dx, count, accumulate); break;
    case SEMPLES_ACT_RELU: NAME(backward_span)(SEMPLES_ACT_RELU, dy, x, dx, count, accumulate); break;
    case SEMPLES_ACT_SIGMOID: NAME(backward_span)(SEMPLES_ACT_SIGMOID, dy, x, dx, count, accumulate); break;
    default: NAME(backward_span)(SEMPLES_ACT_IDENTITY, dy, x, dx, count, accumulate); break;
    }
}

static float NAME(exponentiate_row)(const float *x, float *p, long c) {
    v8f m8 = splat8(-INFINITY);
    for (long j = 0; j < c; j += 8) {
        long lanes = c - j < 8 ? c - j : 8;
        v8f v = NAME(load_partial)(x + j, lanes, -INFINITY);
        m8 = select8(v > m8, v, m8);
    }
    float m = m8[0];
    for (int l = 1; l < 8; l++) m = m8[l] > m ? m8[l] : m;
    v8f sum8 = splat8(0.0f);
    for (long j = 0; j < c; j += 8) {
        long lanes = c - j < 8 ? c - j : 8;
        v8f e = NAME(exp8)(NAME(load_partial)(x + j, lanes, -INFINITY) - m);
        if (lanes < 8) e = select8(lane_index8() >= (int)lanes, splat8(0.0f), e);
        sum8 = sum8 + e;
        NAME(store_partial)(e, p + j, lanes);
    }
    return 1.0f / hsum8(sum8);
}

static void NAME(softmax_row)(const float *x, float *p, long c) {
    float inv = NAME(exponentiate_row)(x, p, c);
    for (long j = 0; j < c; j += 8) {
        long lanes = c - j < 8 ? c - j : 8;
        NAME(store_partial)(NAME(load_partial)(p + j, lanes, 0.0f) * inv, p + j, lanes);
    }
}

static void NAME(softmax_rows)(float *s, long rows, long cols, long ld, int causal, long offset) {
    for (long r = 0; r < rows; r++) {
        float *row = s + r * ld;
        long len = cols;
        if (causal) {
            len = r + 1 + offset;
            if (len > cols) len = cols;
            if (len < 0) len = 0;
        }
        if (len > 0) NAME(softmax_row)(row, row, len);
        for (long j = len; j < cols; j++) row[j] = 0.0f;
    }
}

static void NAME(softmax_rows_backward)(const float *dp, const float *p, float *dx, long rows, long cols,
                                        long ld, float scale, int accumulate) {
    for (long r = 0; r < rows; r++) {
        const float *g = dp + r * ld, *q = p + r * ld;
        float *d = dx + r * ld;
        v8f s8 = splat8(0.0f);
        for (long j = 0; j < cols; j += 8) {
            long lanes = cols - j < 8 ? cols - j : 8;
            s8 = s8 + NAME(load_partial)(g + j, lanes, 0.0f) * NAME(load_partial)(q + j, lanes, 0.0f);
        }
        float s = hsum8(s8);
        for (long j = 0; j < cols; j += 8) {
            long lanes = cols - j < 8 ? cols - j : 8;
            v8f v = NAME(load_partial)(q + j, lanes, 0.0f) * (NAME(load_partial)(g + j, lanes, 0.0f) - s) * scale;
            if (accumulate) v = v + NAME(load_partial)(d + j, lanes, 0.0f);
            NAME(store_partial)(v, d + j, lanes);
        }
    }
}

static void NAME(exp_span)(const float *x, float *y, long count) {
    for (long i = 0; i < count; i += 8) {
        long lanes = count - i < 8 ? count - i : 8;
        NAME(store_partial)(NAME(exp8)(NAME(load_partial)(x + i, lanes, 0.0f)), y + i, lanes);
    }
}

static void NAME(erf_span)(const float *x, float *y, long count) {
    for (long i = 0; i < count; i += 8) {
        long lanes = count - i < 8 ? count - i : 8;
        NAME(store_partial)(NAME(erf8)(NAME(load_partial)(x + i, lanes, 0.0f)), y + i, lanes);
    }
}

/// g[j] += Σ_i x[i·ld + j] for j in [j0, j1), the rows added in order into a zeroed accumulator:
/// 32 columns (four registers) per sweep down the rows, so each row is read as whole cache lines.
static void NAME(column_sums)(const float *x, long rows, long ld, float *g, long j0, long j1) {
    long j = j0;
    for (; j + 32 <= j1; j += 32) {
        v8f a0 = splat8(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (long i = 0; i < rows; i++) {
            const float *p = x + i * ld + j;
            a0 = a0 + load8(p);
            a1 = a1 + load8(p + 8);
            a2 = a2 + load8(p + 16);
            a3 = a3 + load8(p + 24);
        }
        store8(load8(g + j) + a0, g + j);
        store8(load8(g + j + 8) + a1, g + j + 8);
        store8(load8(g + j + 16) + a2, g + j + 16);
        store8(load8(g + j + 24) + a3, g + j + 24);
    }
    for (; j < j1; j += 8) {
        long lanes = j1 - j < 8 ? j1 - j : 8;
        v8f a = splat8(0.0f);
        for (long i = 0; i < rows; i++) a = a + NAME(load_partial)(x + i * ld + j, lanes, 0.0f);
        NAME(store_partial)(NAME(load_partial)(g + j, lanes, 0.0f) + a, g + j, lanes);
    }
}

/// LayerNorm's parameter gradients over columns [j0, j1): gw[j] += Σ_i dy[i, j]·x̂[i, j] and
/// gb[j] += Σ_i dy[i, j], with x̂ = (x − mean_i)·rstd_i; gw or gb may be NULL. 16 columns per sweep.
static void NAME(layernorm_parameter_gradients)(const float *dy, const float *x, const float *mean,
                                                const float *rstd, long rows, long c, float *gw, float *gb,
                                                long j0, long j1) {
    for (long j = j0; j < j1; j += 16) {
        long lanes0 = j1 - j < 8 ? j1 - j : 8;
        long lanes1 = j1 - j - 8 < 0 ? 0 : (j1 - j - 8 < 8 ? j1 - j - 8 : 8);
        v8f w0 = splat8(0.0f), w1 = w0, b0 = w0, b1 = w0;
        for (long i = 0; i < rows; i++) {
            const float *g = dy + i * c + j, *xr = x + i * c + j;
            float m = mean[i], r = rstd[i];
            v8f g0 = NAME(load_partial)(g, lanes0, 0.0f);
            w0 = w0 + g0 * ((NAME(load_partial)(xr, lanes0, 0.0f) - m) * r);
            b0 = b0 + g0;
            if (lanes1 > 0) {
                v8f g1 = NAME(load_partial)(g + 8, lanes1, 0.0f);
                w1 = w1 + g1 * ((NAME(load_partial)(xr + 8, lanes1, 0.0f) - m) * r);
                b1 = b1 + g1;
            }
        }
        if (gw) {
            NAME(store_partial)(NAME(load_partial)(gw + j, lanes0, 0.0f) + w0, gw + j, lanes0);
            if (lanes1 > 0) NAME(store_partial)(NAME(load_partial)(gw + j + 8, lanes1, 0.0f) + w1, gw + j + 8, lanes1);
        }
        if (gb) {
            NAME(store_partial)(NAME(load_partial)(gb + j, lanes0, 0.0f) + b0, gb + j, lanes0);
            if (lanes1 > 0) NAME(store_partial)(NAME(load_partial)(gb + j + 8, lanes1, 0.0f) + b1, gb + j + 8, lanes1);
        }
    }
}

static const struct kernel_table NAME(table) = {
    NAME(activation_forward), NAME(activation_backward), NAME(softmax_rows), NAME(softmax_row),
    NAME(exponentiate_row), NAME(softmax_rows_backward), NAME(exp_span), NAME(erf_span),
    NAME(column_sums), NAME(layernorm_parameter_gradients),
};
