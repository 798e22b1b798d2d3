/*
 * Keras' elu, selu, softplus and silu (swish), with their derivatives, for float and double. One
 * definition for the GEMM epilogue (fnn_epi_tmpl.h), the derivative kernel (fnn_vec.c) and the
 * Cython loops (fastnn/_ext/_elementwise.pxd), so that every path gives the same bits. The double
 * functions call libm (expm1, log1p, exp), which the NumPy backend calls too (math.expm1, ...);
 * the float ones are float arithmetic that vectorises (below), which the NumPy backend repeats
 * in float32 (fastnn/backends/numpy_keras_f32.py): both backends give the same bits.
 *
 *   elu(z)      = z > 0 ? z : a (e^z - 1)             elu'      = y > 0 ? 1 : y + a      (from y)
 *   selu(z)     = S (z > 0 ? z : A (e^z - 1))         selu'     = y > 0 ? S : y + S A    (from y)
 *   softplus(z) = max(z, 0) + log1p(e^-|z|)           softplus' = 1 - e^-y = -expm1(-y)  (from y)
 *   silu(z)     = z s,  s = sigmoid(z)                silu'     = s + z s (1 - s)        (from z)
 *
 * Keras' formulas (keras.src.backend.numpy.nn: elu with expm1, selu = S elu(z, A) with Keras'
 * constants below, softplus = logaddexp(z, 0), silu = z sigmoid(z)); a is elu's alpha (the
 * activation's parameter, 1 by default; y > 0 exactly when z > 0 for a >= 0). The derivatives
 * from y are exact rewrites: for z <= 0, a e^z = y + a, and sigmoid(z) = 1 - e^-softplus(z).
 * silu is not monotonic: like gelu its derivative takes the pre-activation z.
 * Limits: silu(-inf) = 0 and silu'(+-inf) = 1, 0 (not the NaN of z s); elu(-inf) = -a,
 * softplus(-inf) = 0; NaN stays NaN.
 * No FP contraction (C99 mode, or no FMA in the target): the same operations on every path.
 */
#ifndef FNN_ACT_KERAS_H
#define FNN_ACT_KERAS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FNN_SELU_ALPHA 1.6732632423543772848170429916717
#define FNN_SELU_SCALE 1.0507009873554804934193349852946
#define FNN_SELU_SCALE_ALPHA 1.7580993408473768599402175208123 /* S A, for selu' */

static inline double fnn_elu_f64(double z, double a) { return z > 0.0 ? z : a * expm1(z); }

static inline double fnn_elu_deriv_f64(double y, double a) { return y > 0.0 ? 1.0 : y + a; }

static inline double fnn_selu_f64(double z)
{
    return z > 0.0 ? FNN_SELU_SCALE * z : FNN_SELU_SCALE * (FNN_SELU_ALPHA * expm1(z));
}

static inline double fnn_selu_deriv_f64(double y)
{
    return y > 0.0 ? FNN_SELU_SCALE : y + FNN_SELU_SCALE_ALPHA;
}

static inline double fnn_softplus_f64(double z)
{
    return (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static inline double fnn_softplus_deriv_f64(double y) { return -expm1(-y); }

/* s = sigmoid(z) and 1 - s, each without cancellation (exp of a non-positive number only) */
static inline double fnn_silu_s_f64(double z, double *s1)
{
    const double e = exp(-fabs(z));
    if (z >= 0.0) {
        *s1 = e / (1.0 + e);
        return 1.0 / (1.0 + e);
    }
    *s1 = 1.0 / (1.0 + e);
    return e / (1.0 + e);
}

static inline double fnn_silu_f64(double z)
{
    double s1;
    const double s = fnn_silu_s_f64(z, &s1);
    return s == 0.0 ? 0.0 : z * s;
}

static inline double fnn_silu_deriv_f64(double z)
{
    double s1;
    const double s = fnn_silu_s_f64(z, &s1);
    const double q = s * s1;
    return q == 0.0 ? s : s + z * q;
}

/*
 * The float functions: branch-free float arithmetic (selects, no libm), so that a loop over them
 * vectorises with each flavour's vectors (fnn_vec.c's loops, the GEMM epilogue); the NumPy
 * backend repeats the same IEEE operations in float32 (fastnn/backends/numpy_keras_f32.py), so
 * every path and both backends give the same bits. Method (written for fastnn):
 *
 *   reduction: a = n ln2 - r for 0 <= a <= 104, n = round(a / ln2), |r| <= ln2 / 2, with ln2
 *     split in two (Cody-Waite, as fnn_expf): n ln2_hi - a is exact, so r is rounded once;
 *   expm1(r) = r + r^2 q(r), Taylor to degree 8 (remainder below 2e-10 relative), the r term
 *     exact, so the rounding errors of the small r^2 q(r) hardly count;
 *   exp(-a) 2^64 = (1 + expm1(r)) 2^(64 - n), the power of two from its exponent bits: within
 *     about half an ulp; carried times 2^64 so that it stays a normal float out to a = 104 (the
 *     kernels run flush-to-zero, fnn_ftz.h), scaled back last;
 *   expm1(-a) = 2^-n expm1(r) + (2^-n - 1) for 0 <= a <= 20 (n = 0 near 0, so tiny arguments
 *     keep their relative accuracy); 2^-n - 1 is exact up to n = 24, beyond which the result is
 *     -1 in float anyway;
 *   log1p(e) = 2 atanh(s) = t (1 + u/3 + u^2/5 + ... + u^6/13), s = e / (2 + e), t = 2 s,
 *     u = s^2 <= 1/9 for 0 <= e <= 1 (the series' remainder is below 2e-9 relative); for
 *     e < 2^-34 (a > 24) log1p(e) = e;
 *   silu: z / (1 + e) or z e / (1 + e), e = exp(-|z|), one division; the derivative from
 *     s = 1 / (1 + e) and 1 - s = e / (1 + e) as fnn_silu_s_f64; for z < 0 the value and the
 *     derivative are formed times 2^64 (e 2^64 stays normal) and scaled back last.
 *
 * selu's scaling (and selu' = y + S A) is done in double and rounded once. Accuracy, for normal
 * results (tests/test_activations_simd.py measures it): elu, selu, softplus within 3 float ulps
 * of the exact functions, silu within 4; elu' and selu' from y correctly rounded, softplus'
 * within 1 ulp, silu' within 5 ulps of the larger of its size and its two terms' sum.
 * Beyond |z| = 104 (silu, softplus) or z = -20 (elu, selu) the limits are returned; NaN passes.
 * Signed zeros: elu(-0) = selu(-0) = +0 (as PyTorch's), silu(-0) = -0.
 * No FP contraction (C99 mode): the same operations, and so the same bits, with any vector width.
 */
#define FNN_ACT_2P64 18446744073709551616.0f /* 2^64 */
#define FNN_ACT_2M64 5.42101086242752217e-20f /* 2^-64 */

static inline float fnn_act_pow2i_f32(int32_t e) /* 2^e for -126 <= e <= 127 */
{
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n (returned) and r of a = n ln2 - r, for 0 <= a <= 104 */
static inline int32_t fnn_act_reduce_f32(float a, float *r)
{
    const float log2e = 1.44269504f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860677e-06f;
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float nf = (a * log2e + round) - round;
    *r = (nf * ln2_hi - a) + nf * ln2_lo;
    return (int32_t)nf;
}

/* expm1(r) for |r| <= ln2 / 2: r + r^2 q(r), Taylor to degree 8, the r term exact */
static inline float fnn_act_expm1r_f32(float r)
{
    const float r2 = r * r, r4 = r2 * r2;
    const float q = (0.5f + r * 0.16666667f) + r2 * (0.041666668f + r * 0.008333334f)
                    + r4 * ((0.0013888889f + r * 0.0001984127f) + r2 * 0.000024801588f);
    return r + r2 * q;
}

/* exp(-a) 2^64 for 0 <= a <= 104: (1 + expm1(r)) 2^(64 - n), one rounding in the sum */
static inline float fnn_act_exp64_f32(float a)
{
    float r;
    const int32_t n = fnn_act_reduce_f32(a, &r);
    return (1.0f + fnn_act_expm1r_f32(r)) * fnn_act_pow2i_f32(64 - n);
}

/* expm1(-a) for 0 <= a <= 20 */
static inline float fnn_act_expm1n_f32(float a)
{
    float r;
    const int32_t n = fnn_act_reduce_f32(a, &r);
    const float s = fnn_act_pow2i_f32(-n); /* 2^-n */
    return s * fnn_act_expm1r_f32(r) + (s - 1.0f);
}

/* expm1(z) for z <= 0 (z clamped to [-20, 0]; NaN becomes -20) */
static inline float fnn_act_expm1_neg_f32(float z)
{
    float a = z > -20.0f ? -z : 20.0f;
    a = a > 0.0f ? a : 0.0f;
    return fnn_act_expm1n_f32(a);
}

static inline float fnn_elu_f32(float z, float alpha)
{
    const float y = z > 0.0f ? z : alpha * fnn_act_expm1_neg_f32(z);
    return z == z ? y : z;
}

static inline float fnn_elu_deriv_f32(float y, float alpha) { return y > 0.0f ? 1.0f : y + alpha; }

static inline float fnn_selu_f32(float z)
{
    const double em1 = (double)fnn_act_expm1_neg_f32(z);
    const float y = z > 0.0f ? (float)(FNN_SELU_SCALE * (double)z)
                             : (float)(FNN_SELU_SCALE_ALPHA * em1);
    return z == z ? y : z;
}

static inline float fnn_selu_deriv_f32(float y)
{
    return y > 0.0f ? (float)FNN_SELU_SCALE : (float)((double)y + FNN_SELU_SCALE_ALPHA);
}

static inline float fnn_softplus_f32(float z)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 104.0f ? a : 104.0f; /* NaN becomes 104 (restored below) */
    const float e = fnn_act_exp64_f32(ac) * FNN_ACT_2M64; /* e^-|z|; 0 once subnormal (FTZ) */
    const float s = e / (2.0f + e), t = 2.0f * s, u = s * s, u2 = u * u, u4 = u2 * u2;
    const float q = (0.33333334f + u * 0.2f) + u2 * (0.14285715f + u * 0.11111111f)
                    + u4 * (0.09090909f + u * 0.07692308f);
    float l = t + t * (u * q);       /* log1p(e) */
    float y;
    l = ac > 24.0f ? e : l;
    y = z > 0.0f ? z + l : l;
    return z == z ? y : z;
}

/* 1 - e^-y = -expm1(-y), for y = softplus(z) >= 0 */
static inline float fnn_softplus_deriv_f32(float y)
{
    float a = y < 20.0f ? y : 20.0f; /* NaN becomes 20 (restored below) */
    a = a > 0.0f ? a : 0.0f;
    return y == y ? 0.0f - fnn_act_expm1n_f32(a) : y;
}

/* silu(z) and, when d is not NULL, silu'(z) into *d */
static inline float fnn_silu_both_f32(float z, float *d)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 104.0f ? a : 104.0f; /* NaN becomes 104 (restored below) */
    const float zc = z < 0.0f ? -ac : ac;
    const float e64 = fnn_act_exp64_f32(ac); /* e^-|z| 2^64 */
    const float e = e64 * FNN_ACT_2M64;      /* 0 once subnormal (FTZ) */
    const float one_e = 1.0f + e;
    /* z < 0: z e / (1 + e), times 2^64 until the end; else z / (1 + e) */
    float y = z < 0.0f ? ((zc * e64) / one_e) * FNN_ACT_2M64 : zc / one_e;
    y = z > 104.0f ? z : y;
    if (d) {
        /* z < 0: s + z s (1 - s) = e (1 + e + z) / (1 + e)^2 (times 2^64 until the end);
         * z >= 0: r + z e r^2, r = 1 / (1 + e) */
        const float r = 1.0f / one_e, q = (e * r) * r;
        float g = z < 0.0f ? ((e64 * (one_e + zc)) / (one_e * one_e)) * FNN_ACT_2M64
                           : r + zc * q;
        g = z > 104.0f ? 1.0f : g;
        g = z < -104.0f ? 0.0f : g;
        *d = z == z ? g : z;
    }
    return z == z ? y : z;
}

static inline float fnn_silu_f32(float z) { return fnn_silu_both_f32(z, (float *)0); }

static inline float fnn_silu_deriv_f32(float z)
{
    float d;
    (void)fnn_silu_both_f32(z, &d);
    return d;
}

/* By code (FNN_ACT_ELU .. FNN_ACT_SILU of fnn_gemm.h: 10..13; param is elu's alpha). The
 * derivative takes y for elu, selu and softplus, z for silu. Callers route only these codes. */
static inline double fnn_keras_act_f64(int act, double z, double param)
{
    switch (act) {
    case 10: return fnn_elu_f64(z, param);
    case 11: return fnn_selu_f64(z);
    case 12: return fnn_softplus_f64(z);
    default: return fnn_silu_f64(z);
    }
}

static inline double fnn_keras_deriv_f64(int act, double y, double param)
{
    switch (act) {
    case 10: return fnn_elu_deriv_f64(y, param);
    case 11: return fnn_selu_deriv_f64(y);
    case 12: return fnn_softplus_deriv_f64(y);
    default: return fnn_silu_deriv_f64(y);
    }
}

static inline float fnn_keras_act_f32(int act, float z, float param)
{
    switch (act) {
    case 10: return fnn_elu_f32(z, param);
    case 11: return fnn_selu_f32(z);
    case 12: return fnn_softplus_f32(z);
    default: return fnn_silu_f32(z);
    }
}

static inline float fnn_keras_deriv_f32(int act, float y, float param)
{
    switch (act) {
    case 10: return fnn_elu_deriv_f32(y, param);
    case 11: return fnn_selu_deriv_f32(y);
    case 12: return fnn_softplus_deriv_f32(y);
    default: return fnn_silu_deriv_f32(y);
    }
}

#endif /* FNN_ACT_KERAS_H */
