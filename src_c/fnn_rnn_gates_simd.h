/*
 * The float gate nonlinearities of the recurrent steps written with AVX2 and AVX-512 intrinsics:
 * the element-wise activation (act) and the LSTM forward of Keras' default activations (tanh,
 * sigmoid) in one pass per row. Compiled from C without contraction, the gates (five exps and
 * five divisions per unit of an LSTM step, every product and sum a separate instruction) took
 * 15% of a small LSTM's training step; here the exp is fnn_vexp_simd.h's (FMAs) and the
 * polynomials run on FMAs, so these flavours differ from the portable loops in the last bits (as
 * their GEMMs already do); each is deterministic, and rows and units are independent, so the
 * results do not depend on the thread count.
 * AVX-512 (fnn_exp16_le0):
 *   sigmoid(z) = 1 / (1 + e) for z >= 0, else e / (1 + e), with e = exp(-|z|) (never overflows);
 *   tanh(z) = sign(z) (1 - e) / (1 + e) with e = exp(-2|z|) where that has no cancellation
 *   (|z| >= 0.5), its Taylor series to z^15 below (as fnn_rnn.c's fnn_rnn_tanhf).
 * AVX2, with fewer steps (rnn_expneg8n: exp of any argument, clamped to normal results):
 *   sigmoid(z) = 1 / (1 + exp(-z)); tanh(z) = (1 - e) / (1 + e), e = exp(-2z), for |z| >= 0.5,
 *   the same Taylor series below. NaN propagates in both.
 * Included by fnn_rnn.c on x86 after the gate loops of fnn_rnn_gates_tmpl.h (it calls the
 * flavours' act and lstm_fwd for what it does not cover).
 */
#include <immintrin.h>

#include "fnn_vexp_simd.h"

#define RV2 __attribute__((target("avx2,fma")))
#define RV5 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define RNN_AI inline __attribute__((always_inline))

/* tanh's Taylor coefficients of a^3 .. a^15 (highest first) */
#define RNN_T15 (-929569.0f / 638512875.0f)
#define RNN_T13 (21844.0f / 6081075.0f)
#define RNN_T11 (-1382.0f / 155925.0f)
#define RNN_T9 (62.0f / 2835.0f)
#define RNN_T7 (-17.0f / 315.0f)
#define RNN_T5 (2.0f / 15.0f)
#define RNN_T3 (-1.0f / 3.0f)

/* ---------------------------------------------------------------- AVX-512: 16 lanes */

static RV5 RNN_AI __m512 rnn_sigmoid16(__m512 z)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = fnn_exp16_le0(_mm512_or_ps(z, _mm512_set1_ps(-0.0f))); /* exp(-|z|) */
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    return _mm512_mask_mul_ps(s, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), e, s);
}

static RV5 RNN_AI __m512 rnn_tanh16(__m512 z)
{
    const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    const __m512 a = _mm512_andnot_ps(sign, z), a2 = _mm512_mul_ps(a, a);
    const __m512 e = fnn_exp16_le0(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    const __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(RNN_T15), a2, _mm512_set1_ps(RNN_T13));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(RNN_T11));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(RNN_T9));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(RNN_T7));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(RNN_T5));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(RNN_T3));
    p = _mm512_fmadd_ps(_mm512_mul_ps(a, a2), p, a);
    /* NaN: a < 0.5 is false, big is NaN; the sign of z onto t >= 0 */
    return _mm512_or_ps(
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.5f), _CMP_LT_OQ), big, p),
        _mm512_and_ps(z, sign));
}

static RV5 RNN_AI __mmask16 rnn_mask16(ptrdiff_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* y := act(y) on len values (sigmoid and tanh here, the others by the flavour's loop) */
static RV5 void act_avx512i_f32(float *y, ptrdiff_t len, int act)
{
    ptrdiff_t j;
    if (act != FNN_ACT_SIGMOID && act != FNN_ACT_TANH) {
        act_avx512_f32(y, len, act);
        return;
    }
    for (j = 0; j < len; j += 16) {
        const __mmask16 m = rnn_mask16(len - j);
        const __m512 z = _mm512_maskz_loadu_ps(m, y + j);
        _mm512_mask_storeu_ps(y + j, m, act == FNN_ACT_SIGMOID ? rnn_sigmoid16(z) : rnn_tanh16(z));
    }
}

/* The LSTM step (fnn_rnn_gates_tmpl.h's lstm_fwd) for tanh and sigmoid, a row of u units at a
 * time in one pass; other activations by the flavour's loops. */
static RV5 void lstm_fwd_avx512i_f32(float *z, const float *c_prev, float *c_next, float *a,
                                     float *h_next, ptrdiff_t ldh, ptrdiff_t n, ptrdiff_t u,
                                     int act, int rec)
{
    ptrdiff_t b, j;
    if (act != FNN_ACT_TANH || rec != FNN_ACT_SIGMOID) {
        lstm_fwd_avx512_f32(z, c_prev, c_next, a, h_next, ldh, n, u, act, rec);
        return;
    }
    for (b = 0; b < n; b++) {
        float *zi = z + b * 4 * u, *zf = zi + u, *zg = zi + 2 * u, *zo = zi + 3 * u;
        const float *cp = c_prev + b * u;
        float *cn = c_next + b * u, *ab = a + b * u, *hb = h_next + b * ldh;
        for (j = 0; j < u; j += 16) {
            const __mmask16 m = rnn_mask16(u - j);
            const __m512 i = rnn_sigmoid16(_mm512_maskz_loadu_ps(m, zi + j));
            const __m512 f = rnn_sigmoid16(_mm512_maskz_loadu_ps(m, zf + j));
            const __m512 g = rnn_tanh16(_mm512_maskz_loadu_ps(m, zg + j));
            const __m512 o = rnn_sigmoid16(_mm512_maskz_loadu_ps(m, zo + j));
            const __m512 c =
                _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cp + j), _mm512_mul_ps(i, g));
            const __m512 t = rnn_tanh16(c);
            _mm512_mask_storeu_ps(zi + j, m, i);
            _mm512_mask_storeu_ps(zf + j, m, f);
            _mm512_mask_storeu_ps(zg + j, m, g);
            _mm512_mask_storeu_ps(zo + j, m, o);
            _mm512_mask_storeu_ps(cn + j, m, c);
            _mm512_mask_storeu_ps(ab + j, m, t);
            _mm512_mask_storeu_ps(hb + j, m, _mm512_mul_ps(o, t));
        }
    }
}

/* ---------------------------------------------------------------- AVX2: 8 lanes */

/* z[0..N) := exp(-z[k]) for any z, N vectors (a constant after inlining) with their
 * instructions interleaved stage by stage: one vector's chain of dependent FMAs leaves the pipes
 * idle, and the compiler keeps the source's order. -z is clamped to [-87.3, 88.3], whose exps
 * (1.2e-38, 2.2e38) are normal floats, so 1 / (1 + e) still reaches its limits 1 and 0 (a
 * subnormal, flushed). Cody-Waite as fnn_vexp_simd.h, with n = round(-z log2(e)) from adding
 * 1.5 * 2^23 + 127 (the sum's low bits are then n's biased exponent: 2^n is one shift) and
 * the degree-7 Taylor polynomial of exp(-r) in r = z + n ln2 (|r| <= ln2 / 2). NaN stays NaN.
 * Each lane's result is the same whatever N. */
#define RNN_EACH for (k = 0; k < N; k++)

static RV2 RNN_AI void rnn_expneg8n(const int N, __m256 *z)
{
    const __m256 shift = _mm256_set1_ps(12582912.0f + 127.0f);
    __m256 t[4], n[4], r[4], p[4];
    int k;
#pragma GCC unroll 4
    RNN_EACH z[k] = _mm256_max_ps(_mm256_set1_ps(-88.3f),
                                  _mm256_min_ps(_mm256_set1_ps(87.3f), z[k])); /* NaN: z */
#pragma GCC unroll 4
    RNN_EACH t[k] = _mm256_fnmadd_ps(z[k], _mm256_set1_ps(FNN_VEXP_LOG2E), shift);
#pragma GCC unroll 4
    RNN_EACH n[k] = _mm256_sub_ps(t[k], shift);
#pragma GCC unroll 4
    RNN_EACH r[k] = _mm256_fmadd_ps(n[k], _mm256_set1_ps(FNN_VEXP_LN2_HI), z[k]);
#pragma GCC unroll 4
    RNN_EACH r[k] = _mm256_fmadd_ps(n[k], _mm256_set1_ps(FNN_VEXP_LN2_LO), r[k]);
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(_mm256_set1_ps(-1.0f / 5040.0f), r[k],
                                    _mm256_set1_ps(1.0f / 720.0f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(-1.0f / 120.0f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.0f / 24.0f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(-1.0f / 6.0f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(0.5f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(-1.0f));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.0f));
#pragma GCC unroll 4
    RNN_EACH z[k] = _mm256_mul_ps(
        p[k], _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t[k]), 23)));
}

/* z[0..N) := sigmoid(z[k]) and tanh(z[k]), N vectors interleaved (rnn_expneg8n):
 *   sigmoid(z) = 1 / (1 + exp(-z)): no cancellation for either sign, exp's relative error
 *   carries through;
 *   tanh(z) = (1 - e) / (1 + e), e = exp(-2z), for |z| >= 0.5, its Taylor series to z^15 below
 *   (where 1 - e cancels). */
static RV2 RNN_AI void rnn_sigmoid8n(const int N, __m256 *z)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int k;
    rnn_expneg8n(N, z);
#pragma GCC unroll 4
    RNN_EACH z[k] = _mm256_div_ps(one, _mm256_add_ps(one, z[k]));
}

static RV2 RNN_AI void rnn_tanh8n(const int N, __m256 *z)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 a2[4], e[4], p[4];
    int k;
#pragma GCC unroll 4
    RNN_EACH {
        a2[k] = _mm256_mul_ps(z[k], z[k]);
        e[k] = _mm256_add_ps(z[k], z[k]);
    }
    rnn_expneg8n(N, e);
#pragma GCC unroll 4
    RNN_EACH e[k] = _mm256_div_ps(_mm256_sub_ps(one, e[k]), _mm256_add_ps(one, e[k]));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(_mm256_set1_ps(RNN_T15), a2[k], _mm256_set1_ps(RNN_T13));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], a2[k], _mm256_set1_ps(RNN_T11));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], a2[k], _mm256_set1_ps(RNN_T9));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], a2[k], _mm256_set1_ps(RNN_T7));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], a2[k], _mm256_set1_ps(RNN_T5));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(p[k], a2[k], _mm256_set1_ps(RNN_T3));
#pragma GCC unroll 4
    RNN_EACH p[k] = _mm256_fmadd_ps(_mm256_mul_ps(z[k], a2[k]), p[k], z[k]);
    /* NaN: a2 < 0.25 is false, the quotient is NaN */
#pragma GCC unroll 4
    RNN_EACH z[k] = _mm256_blendv_ps(e[k], p[k],
                                     _mm256_cmp_ps(a2[k], _mm256_set1_ps(0.25f), _CMP_LT_OQ));
}

static RV2 RNN_AI __m256 rnn_sigmoid8(__m256 z)
{
    rnn_sigmoid8n(1, &z);
    return z;
}

static RV2 RNN_AI __m256 rnn_tanh8(__m256 z)
{
    rnn_tanh8n(1, &z);
    return z;
}

/* lanes < left set, for the masked loads and stores of a row's last few units */
static RV2 RNN_AI __m256i rnn_mask8(ptrdiff_t left)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), lane);
}

/* 8 values at p: plain loads and stores for whole vectors (AVX2's masked stores are slow on
 * some cores), masked ones for a row's last few */
static RV2 RNN_AI __m256 rnn_load8(const float *p, int whole, __m256i m)
{
    return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

static RV2 RNN_AI void rnn_store8(float *p, __m256 v, int whole, __m256i m)
{
    if (whole)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

static RV2 RNN_AI void rnn_act8(float *y, int whole, __m256i m, int sigmoid)
{
    const __m256 z = rnn_load8(y, whole, m);
    rnn_store8(y, sigmoid ? rnn_sigmoid8(z) : rnn_tanh8(z), whole, m);
}

static RV2 void act_avx2i_f32(float *y, ptrdiff_t len, int act)
{
    const __m256i none = _mm256_setzero_si256();
    const int sigmoid = act == FNN_ACT_SIGMOID;
    ptrdiff_t j;
    if (act != FNN_ACT_SIGMOID && act != FNN_ACT_TANH) {
        act_avx2_f32(y, len, act);
        return;
    }
    for (j = 0; j + 8 <= len; j += 8) rnn_act8(y + j, 1, none, sigmoid);
    if (j < len) rnn_act8(y + j, 0, rnn_mask8(len - j), sigmoid);
}

/* N x 8 units (j..) of one LSTM row, the vectors' instructions interleaved (rnn_sigmoid8n) */
static RV2 RNN_AI void rnn_lstm8n(const int N, float *zi, float *zf, float *zg, float *zo,
                                  const float *cp, float *cn, float *ab, float *hb, int whole,
                                  __m256i m)
{
    __m256 i[4], f[4], g[4], o[4], c[4], t[4];
    int k;
#pragma GCC unroll 4
    RNN_EACH {
        i[k] = rnn_load8(zi + 8 * k, whole, m);
        f[k] = rnn_load8(zf + 8 * k, whole, m);
        g[k] = rnn_load8(zg + 8 * k, whole, m);
        o[k] = rnn_load8(zo + 8 * k, whole, m);
    }
    rnn_sigmoid8n(N, i);
    rnn_sigmoid8n(N, f);
    rnn_tanh8n(N, g);
    rnn_sigmoid8n(N, o);
#pragma GCC unroll 4
    RNN_EACH {
        c[k] = _mm256_fmadd_ps(f[k], rnn_load8(cp + 8 * k, whole, m), _mm256_mul_ps(i[k], g[k]));
        t[k] = c[k];
    }
    rnn_tanh8n(N, t);
#pragma GCC unroll 4
    RNN_EACH {
        rnn_store8(zi + 8 * k, i[k], whole, m);
        rnn_store8(zf + 8 * k, f[k], whole, m);
        rnn_store8(zg + 8 * k, g[k], whole, m);
        rnn_store8(zo + 8 * k, o[k], whole, m);
        rnn_store8(cn + 8 * k, c[k], whole, m);
        rnn_store8(ab + 8 * k, t[k], whole, m);
        rnn_store8(hb + 8 * k, _mm256_mul_ps(o[k], t[k]), whole, m);
    }
}

static RV2 void lstm_fwd_avx2i_f32(float *z, const float *c_prev, float *c_next, float *a,
                                   float *h_next, ptrdiff_t ldh, ptrdiff_t n, ptrdiff_t u,
                                   int act, int rec)
{
    const __m256i none = _mm256_setzero_si256();
    ptrdiff_t b, j;
    if (act != FNN_ACT_TANH || rec != FNN_ACT_SIGMOID) {
        lstm_fwd_avx2_f32(z, c_prev, c_next, a, h_next, ldh, n, u, act, rec);
        return;
    }
    for (b = 0; b < n; b++) {
        float *zi = z + b * 4 * u, *zf = zi + u, *zg = zi + 2 * u, *zo = zi + 3 * u;
        const float *cp = c_prev + b * u;
        float *cn = c_next + b * u, *ab = a + b * u, *hb = h_next + b * ldh;
        for (j = 0; j + 32 <= u; j += 32)
            rnn_lstm8n(4, zi + j, zf + j, zg + j, zo + j, cp + j, cn + j, ab + j, hb + j, 1,
                       none);
        for (; j + 16 <= u; j += 16)
            rnn_lstm8n(2, zi + j, zf + j, zg + j, zo + j, cp + j, cn + j, ab + j, hb + j, 1,
                       none);
        if (j + 8 <= u) {
            rnn_lstm8n(1, zi + j, zf + j, zg + j, zo + j, cp + j, cn + j, ab + j, hb + j, 1,
                       none);
            j += 8;
        }
        if (j < u)
            rnn_lstm8n(1, zi + j, zf + j, zg + j, zo + j, cp + j, cn + j, ab + j, hb + j, 0,
                       rnn_mask8(u - j));
    }
}

/* 8 units (j..) of one row of the LSTM backward step (fnn_rnn_gates_tmpl.h's lstm_bwd) for tanh
 * and sigmoid: the template's operations in its order, each a separate instruction (no FMA, as
 * the template is compiled), so the same bits; written out because the template's loop, general
 * over the activations (a polynomial and a relu select per derivative), compiled to ~110
 * instructions per vector with spilled constants, 4% of a small LSTM's training step. */
static RV2 RNN_AI void rnn_lstm_bwd8(float *zi, float *zf, float *zg, float *zo, const float *cp,
                                     const float *ab, const float *dh, float *dc, int whole,
                                     __m256i m)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 i = rnn_load8(zi, whole, m), f = rnn_load8(zf, whole, m);
    const __m256 g = rnn_load8(zg, whole, m), o = rnn_load8(zo, whole, m);
    const __m256 a = rnn_load8(ab, whole, m), d = rnn_load8(dh, whole, m);
    /* act'(y) = 1 - y^2 (tanh), rec'(y) = y (1 - y) (sigmoid): the template's k0 + y (k1 + k2 y)
     * with the same roundings (its zero terms add exactly) */
    const __m256 c = _mm256_add_ps(rnn_load8(dc, whole, m),
                                   _mm256_mul_ps(_mm256_mul_ps(d, o),
                                                 _mm256_sub_ps(one, _mm256_mul_ps(a, a))));
    rnn_store8(zi, _mm256_mul_ps(_mm256_mul_ps(c, g), _mm256_mul_ps(i, _mm256_sub_ps(one, i))),
               whole, m);
    rnn_store8(zf, _mm256_mul_ps(_mm256_mul_ps(c, rnn_load8(cp, whole, m)),
                                 _mm256_mul_ps(f, _mm256_sub_ps(one, f))), whole, m);
    rnn_store8(zg, _mm256_mul_ps(_mm256_mul_ps(c, i), _mm256_sub_ps(one, _mm256_mul_ps(g, g))),
               whole, m);
    rnn_store8(zo, _mm256_mul_ps(_mm256_mul_ps(d, a), _mm256_mul_ps(o, _mm256_sub_ps(one, o))),
               whole, m);
    rnn_store8(dc, _mm256_mul_ps(c, f), whole, m);
}

/* A step's product on the GEMM path (fnn_rnn_tmpl.h's step_gemm): C := A B (+ C when beta1)
 * (+ bias), A (n, k) rows lda apart, B (k, m) rows ldb apart read in place, n a multiple of 4, m
 * of 16. Tiles of 4 rows x 3 vectors: 12 accumulators fed by 4 broadcasts and 3 B loads per
 * term, where the GEMM's direct tiles of 2 vectors take 6 or 5 rows (16 rows: 6, 5, 5), and its
 * 5-row tiles feed 10 accumulators with 7 loads: 16 x 256 x 96 (an LSTM of 64 units' forward
 * step) 85 -> 99 GFLOP/s. Each C[i, j] is the sum of the GEMM's 2-vector direct tiles (one
 * accumulator over p in order, then C and the bias added; its alpha 1 and beta 1 are exact):
 * the same bits (its 1-vector tiles split k in two, hence m a multiple of 16). */
#define RNN_STEP4_TILE(NV)                                                                    \
    static RV2 RNN_AI void rnn_step4_tile##NV(ptrdiff_t k, const float *A, ptrdiff_t lda,      \
                                              const float *B, ptrdiff_t ldb, int beta1,       \
                                              float *C, ptrdiff_t ldc, const float *bias)     \
    {                                                                                         \
        __m256 acc[4][NV];                                                                    \
        ptrdiff_t p;                                                                          \
        int i, v;                                                                             \
        _Pragma("GCC unroll 4") for (i = 0; i < 4; i++)                                       \
            _Pragma("GCC unroll 3") for (v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps(); \
        for (p = 0; p < k; p++) {                                                             \
            __m256 b[NV];                                                                     \
            _Pragma("GCC unroll 3") for (v = 0; v < NV; v++)                                  \
                b[v] = _mm256_loadu_ps(B + p * ldb + 8 * v);                                  \
            _Pragma("GCC unroll 4") for (i = 0; i < 4; i++) {                                 \
                const __m256 a = _mm256_broadcast_ss(A + i * lda + p);                        \
                _Pragma("GCC unroll 3") for (v = 0; v < NV; v++)                              \
                    acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);                          \
            }                                                                                 \
        }                                                                                     \
        _Pragma("GCC unroll 4") for (i = 0; i < 4; i++)                                       \
            _Pragma("GCC unroll 3") for (v = 0; v < NV; v++) {                                \
                __m256 z = acc[i][v];                                                         \
                if (beta1) z = _mm256_add_ps(_mm256_loadu_ps(C + i * ldc + 8 * v), z);        \
                if (bias) z = _mm256_add_ps(z, _mm256_loadu_ps(bias + 8 * v));                \
                _mm256_storeu_ps(C + i * ldc + 8 * v, z);                                     \
            }                                                                                 \
    }
RNN_STEP4_TILE(3)
RNN_STEP4_TILE(2)
RNN_STEP4_TILE(1)
#undef RNN_STEP4_TILE

static RV2 void step4_avx2i_f32(ptrdiff_t n, ptrdiff_t m, ptrdiff_t k, const float *A,
                                ptrdiff_t lda, const float *B, ptrdiff_t ldb, int beta1, float *C,
                                ptrdiff_t ldc, const float *bias)
{
    ptrdiff_t j0 = 0, r;
    /* a column block of B (k x 3 vectors) stays in L1 through all row blocks */
    for (; j0 + 24 <= m; j0 += 24)
        for (r = 0; r < n; r += 4)
            rnn_step4_tile3(k, A + r * lda, lda, B + j0, ldb, beta1, C + r * ldc + j0, ldc,
                            bias ? bias + j0 : NULL);
    if (m - j0 >= 16) {
        for (r = 0; r < n; r += 4)
            rnn_step4_tile2(k, A + r * lda, lda, B + j0, ldb, beta1, C + r * ldc + j0, ldc,
                            bias ? bias + j0 : NULL);
        j0 += 16;
    }
    if (m - j0 >= 8)
        for (r = 0; r < n; r += 4)
            rnn_step4_tile1(k, A + r * lda, lda, B + j0, ldb, beta1, C + r * ldc + j0, ldc,
                            bias ? bias + j0 : NULL);
}

static RV2 void lstm_bwd_avx2i_f32(float *z, const float *c_prev, const float *a,
                                   const float *dh, float *dc, ptrdiff_t n, ptrdiff_t u, int act,
                                   int rec)
{
    const __m256i none = _mm256_setzero_si256();
    ptrdiff_t b, j;
    if (act != FNN_ACT_TANH || rec != FNN_ACT_SIGMOID) {
        lstm_bwd_avx2_f32(z, c_prev, a, dh, dc, n, u, act, rec);
        return;
    }
    for (b = 0; b < n; b++) {
        float *zi = z + b * 4 * u, *zf = zi + u, *zg = zi + 2 * u, *zo = zi + 3 * u;
        const float *cp = c_prev + b * u, *ab = a + b * u, *dhb = dh + b * u;
        float *dcb = dc + b * u;
        for (j = 0; j + 8 <= u; j += 8)
            rnn_lstm_bwd8(zi + j, zf + j, zg + j, zo + j, cp + j, ab + j, dhb + j, dcb + j, 1,
                          none);
        if (j < u)
            rnn_lstm_bwd8(zi + j, zf + j, zg + j, zo + j, cp + j, ab + j, dhb + j, dcb + j, 0,
                          rnn_mask8(u - j));
    }
}

#undef RNN_EACH
#undef RV2
#undef RV5
#undef RNN_AI
#undef RNN_T15
#undef RNN_T13
#undef RNN_T11
#undef RNN_T9
#undef RNN_T7
#undef RNN_T5
#undef RNN_T3
