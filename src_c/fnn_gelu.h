/*
 * GELU, exact and tanh-approximated, with their derivatives, for float and double. One
 * definition for the GEMM epilogue (fnn_epi_tmpl.h), the derivative kernel (fnn_vec.c) and the
 * Cython loops (fastnn/_ext/_elementwise.pxd), so that every path gives the same bits.
 *
 *   gelu(z)      = z Phi(z) = z/2 erfc(-z/sqrt(2))           gelu'(z) = Phi(z) + z phi(z)
 *   gelu_tanh(z) = z/2 (1 + tanh u) = z s,  s = sigmoid(2u),  u = sqrt(2/pi) (z + 0.044715 z^3)
 *                  gelu_tanh'(z) = s + 2 z u'(z) s (1 - s),   u'(z) = sqrt(2/pi) (1 + 0.134145 z^2)
 *
 * These are Keras' and PyTorch's functions (approximate=False / "none", True / "tanh"), written
 * with erfc instead of 1 + erf and with sigmoid(2u) instead of (1 + tanh u) / 2: for negative z
 * those sums cancel (1 + erf(z/sqrt(2)) has no correct digit left below z = -8.3), these keep a
 * few ulps of relative accuracy everywhere. Limits: gelu(-inf) = 0, gelu(inf) = inf, the
 * derivatives 0 and 1 there; NaN stays NaN.
 * The derivatives take the pre-activation z: gelu is not monotonic, so unlike the other
 * activations its derivative is not a function of its output.
 * No FP contraction (C99 mode, or no FMA in the target): the same operations on every path.
 */
#ifndef FNN_GELU_H
#define FNN_GELU_H

#include <math.h>

#include "fnn_vexp.h"
#include "fnn_act_keras.h" /* the other libm activations, for the same includers */

#define FNN_GELU_SQRT1_2 0.70710678118654752440    /* 1 / sqrt(2) */
#define FNN_GELU_INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define FNN_GELU_SQRT_2_PI 0.79788456080286535588  /* sqrt(2 / pi) */
#define FNN_GELU_K 0.044715
#define FNN_GELU_3K 0.134145

static inline double fnn_gelu_f64(double z)
{
    const double c = erfc(-z * FNN_GELU_SQRT1_2);
    return c == 0.0 ? 0.0 : 0.5 * z * c;
}

static inline double fnn_gelu_deriv_f64(double z)
{
    const double cdf = 0.5 * erfc(-z * FNN_GELU_SQRT1_2);
    const double pdf = exp(-0.5 * z * z) * FNN_GELU_INV_SQRT_2PI;
    return pdf == 0.0 ? cdf : cdf + z * pdf;
}

/* s = sigmoid(2u) and 1 - s, each without cancellation (exp of a non-positive number only) */
static inline double fnn_gelu_tanh_s_f64(double z, double *s1)
{
    const double t = 2.0 * FNN_GELU_SQRT_2_PI * (z + FNN_GELU_K * z * z * z);
    double e;
    if (t >= 0.0) {
        e = exp(-t);
        *s1 = e / (1.0 + e);
        return 1.0 / (1.0 + e);
    }
    e = exp(t);
    *s1 = 1.0 / (1.0 + e);
    return e / (1.0 + e);
}

static inline double fnn_gelu_tanh_f64(double z)
{
    double s1;
    const double s = fnn_gelu_tanh_s_f64(z, &s1);
    return s == 0.0 ? 0.0 : z * s;
}

static inline double fnn_gelu_tanh_deriv_f64(double z)
{
    double s1;
    const double s = fnn_gelu_tanh_s_f64(z, &s1);
    const double q = s * s1;
    /* q == 0: |z| so large that 2 z u' may be inf (and 0 * inf NaN); the term is 0 */
    return q == 0.0 ? s : s + (2.0 * z * FNN_GELU_SQRT_2_PI * (1.0 + FNN_GELU_3K * z * z)) * q;
}

/*
 * The float functions are branch-free, so that a loop over them vectorises (the epilogue, the
 * element-wise loops of fnn_vec.c in each flavour): the double-precision ones above call libm's
 * erfc and exp per element. Method (written for fastnn):
 *
 *   gelu_tanh: sigmoid(+-2u) from e = exp(-|2u|) = exp(32 - |2u|) e^-32, 2u computed in double;
 *     32 - |2u| is split into a float hi (the argument of fnn_expf, fnn_vexp.h) and a small
 *     double lo (exp(hi + lo) = exp(hi) (1 + lo), |lo| < 4e-6); the shift by 32 keeps exp(hi) a
 *     normal float out to |z| = 10.5, where gelu_tanh(-|z|) is below any float.
 *   1 - Phi(x) = exp(-x^2/2) M(x) for x >= 0.6, M = Mills' ratio / sqrt(2 pi) (Mills 1926,
 *     Abramowitz & Stegun 26.2.12 on), fitted as t P(w), t = 1/(x + 4), w = (t - tc) / h
 *     mapping [0.6, 14] onto [-1, 1], P of degree 10: a relative least-squares fit on 4000
 *     Chebyshev nodes against libm's erfc in double, within 3e-10 relative;
 *   Phi(x) - 1/2 = x S(x^2) for |x| < 0.6 (erf's Taylor series reshaped, the same kind of fit,
 *     degree 5, 2e-12 relative); the two ranges meet where neither sum cancels more than a bit.
 *     For float, exp(-x^2/2) and both fits are evaluated in float (below).
 *
 * gelu_tanh's float functions do everything but the float exp in double and round once; the
 * exact gelu's stay in float with the argument of its exp kept exact. Both are within a few
 * float ulps of the exact functions (the tests measure it). Beyond
 * |z| = 14 (gelu) or 10.5 (gelu_tanh) the limits are returned (z or 0; derivative 1 or 0), which
 * are the float results there, and NaN is passed through.
 * No FP contraction: the same operations, and so the same bits, with any vector width.
 */
#define FNN_GELU_E_M32 1.2664165549094176e-14 /* e^-32 */

/* exp(-a) for 0 <= a <= 99, as hi/lo above (gelu_tanh) */
static inline double fnn_gelu_expm_f32(double a)
{
    const double b = 32.0 - a;
    const float hi = (float)b;
    const double lo = b - (double)hi;
    return (double)fnn_expf(hi) * (1.0 + lo) * FNN_GELU_E_M32;
}

/*
 * The exact gelu in float arithmetic only (16 lanes of AVX-512, 8 of AVX2: a version in double ran
 * at half the width and paid a double division per element, ~5 ns a value).
 * The same two ranges and fits, the coefficients rounded to float; what keeps the result within
 * a few float ulps in the tail, where gelu(-a) = -a exp(-a^2/2) M(a) is tiny:
 *   - a^2 / 2 is split exactly into hi + lo (Veltkamp: a = ah + al, ah of 12 bits, so ah^2 is
 *     exact and lo = ah al + al^2 / 2 is small), and exp(-hi - lo) is reduced by n ln2 with
 *     ln2 split in two (Cody-Waite, as fnn_expf): the argument's rounding, which alone would
 *     cost up to a^2/2 * 2^-24 relative (6e-6 at a = 14), never happens;
 *   - the result is carried times 2^64 (E64 = exp(-a^2/2) 2^64 is a normal float out to a = 14)
 *     and scaled back last, so values in the subnormal range are rounded once.
 * The functions above are unchanged for gelu_tanh (its argument 2u needs more than float).
 * fnn_gelu_simd.h repeats the operations of the four functions below (fnn_gelu_gauss64_f32 to
 * fnn_gelu_deriv_f32) with AVX2 and AVX-512 intrinsics, for those flavours' loops: change one,
 * change the other (tests/test_gelu.py compares their bits on every path).
 */
#define FNN_GELU_2P64 18446744073709551616.0f /* 2^64 */
#define FNN_GELU_2M64 5.42101086242752217e-20f /* 2^-64 */

/* exp(-a^2/2) 2^64 for 0 <= a <= 14 */
static inline float fnn_gelu_gauss64_f32(float a)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    const float round = 12582912.0f; /* 1.5 * 2^23 */
    const float c = 4097.0f * a;
    const float ah = c - (c - a), al = a - ah;
    const float hi = 0.5f * (ah * ah);              /* exact: ah has 12 significant bits */
    const float lo = ah * al + 0.5f * (al * al);    /* hi + lo = a^2 / 2 */
    const float nf = (hi * log2e + round) - round;  /* 0 <= n <= 142 */
    const int32_t n = (int32_t)nf;
    /* nf ln2_hi (24 bits) - hi is exact (a multiple of 2^-25 below 1/2 in size) */
    const float r = ((nf * ln2_hi - hi) + nf * ln2_lo) - lo; /* n ln2 - a^2/2, |r| < 0.4 */
    /* exp(r) to degree 7, in Estrin's order: shorter dependency chains than Horner's (measured
     * 1.05-1.3x faster in a vectorised loop); the polynomials below likewise */
    const float r2 = r * r, r4 = r2 * r2;
    const float p = ((1.0f + r) + r2 * (0.5f + r * (1.0f / 6.0f)))
                    + r4 * ((1.0f / 24.0f + r * (1.0f / 120.0f))
                            + r2 * (1.0f / 720.0f + r * (1.0f / 5040.0f)));
    return p * fnn_pow2i_f32(64 - n);                /* 2^(64 - n), 64 - n >= -78 */
}

/* The upper tail 1 - Phi(a) times 2^64, and E64 = exp(-a^2/2) 2^64, for 0 <= a <= 14 */
static inline float fnn_gelu_tail64_f32(float a, float *E64)
{
    const float e = fnn_gelu_gauss64_f32(a);
    const float t = 1.0f / (a + 4.0f);
    const float w = (t - 0.13647342995169082f) * 12.358208955223878f;
    const float u = a * a, u2 = u * u;
    const float w2 = w * w, w4 = w2 * w2, w8 = w4 * w4;
    const float p = (((0.81449258550242531f + w * 0.44269780431535688f)
                      + w2 * (0.18505626228476071f + w * 0.056769979265533781f))
                     + w4 * ((0.011128762798756412f + w * 0.00060714311288723437f)
                             + w2 * (-0.00032958566916284392f + w * -6.913743121999748e-05f)))
                    + w8 * ((9.5963862795674952e-06f + w * 3.6334961543577535e-06f)
                            + w2 * -3.0918603714947077e-07f);
    const float s = (0.39894228040075469f + u * -0.066490379932224827f)
                    + u2 * ((0.0099735526610744175f + u * -0.0011872767008922743f)
                            + u2 * (0.00011515778815045824f + u * -8.7532676402557481e-06f));
    *E64 = e;
    return a < 0.6f ? (0.5f - a * s) * FNN_GELU_2P64 : e * (t * p);
}

static inline float fnn_gelu_f32(float z)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 14.0f ? a : 14.0f; /* NaN becomes 14 (restored below) */
    const float zc = z < 0.0f ? -ac : ac;
    float E64, q64, y;
    q64 = fnn_gelu_tail64_f32(ac, &E64);
    /* z < 0: z (1 - Phi(a)), scaled back last; z >= 0: z (1 - (1 - Phi(a))) */
    y = z < 0.0f ? (zc * q64) * FNN_GELU_2M64 : zc * (1.0f - q64 * FNN_GELU_2M64);
    y = z > 14.0f ? z : y;
    y = z < -14.0f ? 0.0f : y;
    return z == z ? y : z;
}

static inline float fnn_gelu_deriv_f32(float z)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 14.0f ? a : 14.0f;
    const float zc = z < 0.0f ? -ac : ac;
    const float inv_sqrt_2pi = 0.39894228040143267794f;
    float E64, q64, d;
    q64 = fnn_gelu_tail64_f32(ac, &E64);
    /* Phi(z) + z phi(z), phi(z) = exp(-z^2/2) / sqrt(2 pi) */
    d = z < 0.0f ? (q64 + zc * (E64 * inv_sqrt_2pi)) * FNN_GELU_2M64
                 : (1.0f - q64 * FNN_GELU_2M64) + zc * ((E64 * inv_sqrt_2pi) * FNN_GELU_2M64);
    d = z > 14.0f ? 1.0f : d;
    d = z < -14.0f ? 0.0f : d;
    return z == z ? d : z;
}

/* s = sigmoid(2u) and s1 = 1 - s for |z| <= 10.5, each without cancellation */
static inline double fnn_gelu_tanh_s_f32(double z, double *s1)
{
    const double t = 2.0 * FNN_GELU_SQRT_2_PI * (z + FNN_GELU_K * z * z * z);
    const double e = fnn_gelu_expm_f32(t < 0.0 ? -t : t); /* |t| <= 99.5 */
    const double r = 1.0 / (1.0 + e);
    *s1 = t >= 0.0 ? e * r : r;
    return t >= 0.0 ? r : e * r;
}

static inline float fnn_gelu_tanh_f32(float z)
{
    float zc = z < 10.5f ? z : 10.5f;
    double s, s1;
    float y;
    zc = zc > -10.5f ? zc : -10.5f;
    s = fnn_gelu_tanh_s_f32((double)zc, &s1);
    y = (float)((double)zc * s);
    y = z > 10.5f ? z : y;
    y = z < -10.5f ? 0.0f : y;
    return z == z ? y : z;
}

static inline float fnn_gelu_tanh_deriv_f32(float z)
{
    float zc = z < 10.5f ? z : 10.5f;
    double s, s1, x;
    float d;
    zc = zc > -10.5f ? zc : -10.5f;
    x = (double)zc;
    s = fnn_gelu_tanh_s_f32(x, &s1);
    d = (float)(s + (2.0 * x * FNN_GELU_SQRT_2_PI * (1.0 + FNN_GELU_3K * x * x)) * (s * s1));
    d = z > 10.5f ? 1.0f : d;
    d = z < -10.5f ? 0.0f : d;
    return z == z ? d : z;
}

#endif /* FNN_GELU_H */
