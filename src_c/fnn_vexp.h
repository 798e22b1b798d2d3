/*
 * exp(x) for float without a libm call, so a loop over it vectorises.
 *
 * libm's expf is a function call per element, which no compiler vectorises without -ffast-math;
 * in a softmax over a few classes that call costs more than everything else in the row. This is
 * the classic Cody-Waite scheme, branch-free:
 *
 *   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2   (ln2 split in a high and a low part)
 *   exp(r) ~ 1 + r + r^2/2! + ... + r^7/7!                 (Horner, relative error < 2e-8)
 *   exp(x) = exp(r) * 2^n1 * 2^n2,  n1 = floor(n / 2), n2 = n - n1
 *
 * Scaling by two powers of two keeps each factor a normal float, so results in the subnormal
 * range are rounded once, like libm's (the kernels themselves run in flush-to-zero mode, see
 * fnn_ftz.h, where they become 0); x is clamped to
 * [-104, 89], beyond which the float result is 0 or overflows to inf anyway. NaN propagates.
 * Accuracy: within 2 ulp of the correctly rounded result over the whole range (compared with
 * double exp in the tests).
 */
#ifndef FNN_VEXP_H
#define FNN_VEXP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* GCC if-converts the clamps below (and so vectorises loops over fnn_expf) only when it may
 * ignore floating-point exception flags, which fastnn never reads. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

static inline float fnn_pow2i_f32(int32_t e) /* 2^e for -126 <= e <= 127 */
{
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float fnn_expf(float x)
{
    const float hi = 89.0f, lo = -104.0f;
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer (to even) */
    float xc, nf, r, p, y;
    int32_t n, n1;
    /* clamp, in the operand order of SSE minps/maxps so that the loop vectorises; NaN becomes
     * hi here (no float-to-int conversion of NaN) and is restored at the end */
    xc = x < hi ? x : hi;
    xc = xc > lo ? xc : lo;
    nf = (xc * log2e + round) - round;
    n = (int32_t)nf;
    r = (xc - nf * ln2_hi) - nf * ln2_lo;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    n1 = n >> 1; /* floor(n / 2) (n >= -150: an arithmetic shift on every supported compiler) */
    y = p * fnn_pow2i_f32(n1) * fnn_pow2i_f32(n - n1);
    return (x == x) ? y : x;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
