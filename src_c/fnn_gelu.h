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

static inline float fnn_gelu_f32(float z)
{
    const float c = erfcf(-z * (float)FNN_GELU_SQRT1_2);
    return c == 0.0f ? 0.0f : 0.5f * z * c;
}

static inline float fnn_gelu_deriv_f32(float z)
{
    const float cdf = 0.5f * erfcf(-z * (float)FNN_GELU_SQRT1_2);
    const float pdf = expf(-0.5f * z * z) * (float)FNN_GELU_INV_SQRT_2PI;
    return pdf == 0.0f ? cdf : cdf + z * pdf;
}

static inline float fnn_gelu_tanh_s_f32(float z, float *s1)
{
    const float t = 2.0f * (float)FNN_GELU_SQRT_2_PI * (z + (float)FNN_GELU_K * z * z * z);
    float e;
    if (t >= 0.0f) {
        e = expf(-t);
        *s1 = e / (1.0f + e);
        return 1.0f / (1.0f + e);
    }
    e = expf(t);
    *s1 = 1.0f / (1.0f + e);
    return e / (1.0f + e);
}

static inline float fnn_gelu_tanh_f32(float z)
{
    float s1;
    const float s = fnn_gelu_tanh_s_f32(z, &s1);
    return s == 0.0f ? 0.0f : z * s;
}

static inline float fnn_gelu_tanh_deriv_f32(float z)
{
    float s1;
    const float s = fnn_gelu_tanh_s_f32(z, &s1);
    const float q = s * s1;
    return q == 0.0f
               ? s
               : s + (2.0f * z * (float)FNN_GELU_SQRT_2_PI * (1.0f + (float)FNN_GELU_3K * z * z)) * q;
}

#endif /* FNN_GELU_H */
