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
 *   exp(-x^2/2) = exp(32 - x^2/2) e^-32: x^2/2 is exact in double (a float has 24 bits), its
 *     difference from 32 is split into a float hi (the argument of fnn_expf, fnn_vexp.h) and a
 *     small double lo (exp(hi + lo) = exp(hi) (1 + lo), |lo| < 4e-6); the shift by 32 keeps
 *     exp(hi) a normal float out to |x| = 14, where gelu(-|x|) is below any float.
 *   1 - Phi(x) = exp(-x^2/2) M(x) for x >= 0.6, M = Mills' ratio / sqrt(2 pi) (Mills 1926,
 *     Abramowitz & Stegun 26.2.12 on), fitted as t P(w), t = 1/(x + 4), w = (t - tc) / h
 *     mapping [0.6, 14] onto [-1, 1], P of degree 10: a relative least-squares fit on 4000
 *     Chebyshev nodes against libm's erfc in double, within 3e-10 relative;
 *   Phi(x) - 1/2 = x S(x^2) for |x| < 0.6 (erf's Taylor series reshaped, the same kind of fit,
 *     degree 5, 2e-12 relative); the two ranges meet where neither sum cancels more than a bit.
 *   gelu_tanh: sigmoid(+-2u) from e = exp(-|2u|) by the same split, 2u computed in double.
 *
 * Everything but the float exp is done in double and rounded once, so the results are within a
 * few float ulps of the exact functions (the tests measure it; the exp is the main term). Beyond
 * |z| = 14 (gelu) or 10.5 (gelu_tanh) the limits are returned (z or 0; derivative 1 or 0), which
 * are the float results there, and NaN is passed through.
 * No FP contraction: the same operations, and so the same bits, with any vector width.
 */
#define FNN_GELU_E_M32 1.2664165549094176e-14 /* e^-32 */

/* exp(-a) for 0 <= a <= 99, as hi/lo above */
static inline double fnn_gelu_expm_f32(double a)
{
    const double b = 32.0 - a;
    const float hi = (float)b;
    const double lo = b - (double)hi;
    return (double)fnn_expf(hi) * (1.0 + lo) * FNN_GELU_E_M32;
}

/* the upper tail 1 - Phi(x) and E = exp(-x^2/2), for 0 <= x <= 14 */
static inline double fnn_gelu_tail_f32(double x, double *E)
{
    const double e = fnn_gelu_expm_f32(0.5 * x * x);
    const double t = 1.0 / (x + 4.0);
    const double w = (t - 0.13647342995169082) * 12.358208955223878;
    double p = -3.0918603714947077e-07, s, u = x * x;
    p = p * w + 3.6334961543577535e-06;
    p = p * w + 9.5963862795674952e-06;
    p = p * w - 6.913743121999748e-05;
    p = p * w - 0.00032958566916284392;
    p = p * w + 0.00060714311288723437;
    p = p * w + 0.011128762798756412;
    p = p * w + 0.056769979265533781;
    p = p * w + 0.18505626228476071;
    p = p * w + 0.44269780431535688;
    p = p * w + 0.81449258550242531;
    s = -8.7532676402557481e-06;
    s = s * u + 0.00011515778815045824;
    s = s * u - 0.0011872767008922743;
    s = s * u + 0.0099735526610744175;
    s = s * u - 0.066490379932224827;
    s = s * u + 0.39894228040075469;
    *E = e;
    return x < 0.6 ? 0.5 - x * s : e * (t * p);
}

static inline float fnn_gelu_f32(float z)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 14.0f ? a : 14.0f; /* NaN becomes 14 (restored below) */
    const double x = (double)ac, zc = z < 0.0f ? -x : x;
    double E, q, cdf;
    float y;
    q = fnn_gelu_tail_f32(x, &E);
    cdf = z < 0.0f ? q : 1.0 - q;
    y = (float)(zc * cdf);
    y = z > 14.0f ? z : y;
    y = z < -14.0f ? 0.0f : y;
    return z == z ? y : z;
}

static inline float fnn_gelu_deriv_f32(float z)
{
    const float a = z < 0.0f ? -z : z;
    const float ac = a < 14.0f ? a : 14.0f;
    const double x = (double)ac, zc = z < 0.0f ? -x : x;
    double E, q, cdf;
    float d;
    q = fnn_gelu_tail_f32(x, &E);
    cdf = z < 0.0f ? q : 1.0 - q;
    d = (float)(cdf + zc * (E * FNN_GELU_INV_SQRT_2PI));
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
