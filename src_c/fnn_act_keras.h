/*
 * Keras' elu, selu, softplus and silu (swish), with their derivatives, for float and double. One
 * definition for the GEMM epilogue (fnn_epi_tmpl.h), the derivative kernel (fnn_vec.c) and the
 * Cython loops (fastnn/_ext/_elementwise.pxd), so that every path gives the same bits; the NumPy
 * backend repeats the same double operations with libm's functions (math.expm1, math.log1p,
 * math.exp), so it gives them too.
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
 * Every function computes in double and the float versions round once at the end (plain loops;
 * a few libm calls an element). Limits: silu(-inf) = 0 and silu'(+-inf) = 1, 0 (not the NaN of
 * z s); elu(-inf) = -a, softplus(-inf) = 0; NaN stays NaN.
 * No FP contraction (C99 mode, or no FMA in the target): the same operations on every path.
 */
#ifndef FNN_ACT_KERAS_H
#define FNN_ACT_KERAS_H

#include <math.h>

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

static inline float fnn_elu_f32(float z, float a)
{
    return z > 0.0f ? z : (float)fnn_elu_f64((double)z, (double)a);
}
static inline float fnn_elu_deriv_f32(float y, float a)
{
    return (float)fnn_elu_deriv_f64((double)y, (double)a);
}
static inline float fnn_selu_f32(float z) { return (float)fnn_selu_f64((double)z); }
static inline float fnn_selu_deriv_f32(float y) { return (float)fnn_selu_deriv_f64((double)y); }
static inline float fnn_softplus_f32(float z) { return (float)fnn_softplus_f64((double)z); }
static inline float fnn_softplus_deriv_f32(float y)
{
    return (float)fnn_softplus_deriv_f64((double)y);
}
static inline float fnn_silu_f32(float z) { return (float)fnn_silu_f64((double)z); }
static inline float fnn_silu_deriv_f32(float z) { return (float)fnn_silu_deriv_f64((double)z); }

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
