/*
 * fastnn element-wise kernels (fnn_vec.h): fnn_vec_tmpl.h instantiated for float and double in
 * three flavours -- portable C, AVX2 and AVX-512 (target attributes, no global -m flags) -- and
 * dispatched to the flavour of the GEMM micro-kernel in use (fnn_gemm.c chooses it once).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fnn_gemm_internal.h"
#include "fnn_vec.h"

#include "fnn_ftz.h"
#include "fnn_gelu.h"
#include "fnn_vexp.h"

#if FNN_X86
#include <immintrin.h>

#include "fnn_gelu_simd.h"
#include "fnn_softmax16_avx512.h"
#include "fnn_softmax8_avx2.h"
#include "fnn_tr16_avx512.h"
#include "fnn_tr8_avx2.h"
#define FNN_VEC_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FNN_VEC_AVX2 __attribute__((target("avx2,fma")))
#endif

typedef struct {
    void (*deriv_colsum)(const float *, const float *, float *, double *restrict, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, int, float);
    void (*sgd)(float *restrict, const float *restrict, float *restrict, ptrdiff_t, float, float,
                int, float);
    void (*adam)(float *restrict, const float *restrict, float *restrict, float *restrict,
                 ptrdiff_t, float, float, float, float, float, float, float, float, float);
    void (*rmsprop)(float *restrict, const float *restrict, float *restrict, float *restrict,
                    float *restrict, ptrdiff_t, float, float, float, float, float, int);
    void (*adamw)(float *restrict, const float *restrict, float *restrict, float *restrict,
                  ptrdiff_t, float, float, float, float, float, float, float, float, float);
    void (*adagrad)(float *restrict, const float *restrict, float *restrict, ptrdiff_t, float, float,
                    float);
    void (*adamax)(float *restrict, const float *restrict, float *restrict, float *restrict,
                   ptrdiff_t, float, float, float, float, float);
    void (*nadam)(float *restrict, const float *restrict, float *restrict, float *restrict,
                  ptrdiff_t, float, float, float, float, float, float, float, float, float);
    double (*max_abs)(const float *, ptrdiff_t);
    double (*sum_squares)(const float *, ptrdiff_t);
    void (*scale_copy)(const float *restrict, float *restrict, ptrdiff_t, float);
    void (*clamp_copy)(const float *restrict, float *restrict, ptrdiff_t, float);
    void (*exp)(const float *, float *, ptrdiff_t);
} vec_f32;

typedef struct {
    void (*deriv_colsum)(const double *, const double *, double *, double *restrict, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, int, double);
    void (*sgd)(double *restrict, const double *restrict, double *restrict, ptrdiff_t, double,
                double, int, double);
    void (*adam)(double *restrict, const double *restrict, double *restrict, double *restrict,
                 ptrdiff_t, double, double, double, double, double, double, double, double,
                 double);
    void (*rmsprop)(double *restrict, const double *restrict, double *restrict, double *restrict,
                    double *restrict, ptrdiff_t, double, double, double, double, double, int);
    void (*adamw)(double *restrict, const double *restrict, double *restrict, double *restrict,
                  ptrdiff_t, double, double, double, double, double, double, double, double,
                  double);
    void (*adagrad)(double *restrict, const double *restrict, double *restrict, ptrdiff_t, double, double,
                    double);
    void (*adamax)(double *restrict, const double *restrict, double *restrict, double *restrict,
                   ptrdiff_t, double, double, double, double, double);
    void (*nadam)(double *restrict, const double *restrict, double *restrict, double *restrict,
                  ptrdiff_t, double, double, double, double, double, double, double, double, double);
    double (*max_abs)(const double *, ptrdiff_t);
    double (*sum_squares)(const double *, ptrdiff_t);
    void (*scale_copy)(const double *restrict, double *restrict, ptrdiff_t, double);
    void (*clamp_copy)(const double *restrict, double *restrict, ptrdiff_t, double);
} vec_f64;

#define VEC_F32(SUFFIX)                                                                        \
    {deriv_colsum_##SUFFIX##_f32, sgd_##SUFFIX##_f32, adam_##SUFFIX##_f32,                      \
     rmsprop_##SUFFIX##_f32, adamw_##SUFFIX##_f32, adagrad_##SUFFIX##_f32,                       \
     adamax_##SUFFIX##_f32, nadam_##SUFFIX##_f32, max_abs_##SUFFIX##_f32,                     \
     sum_squares_##SUFFIX##_f32, scale_copy_##SUFFIX##_f32, clamp_copy_##SUFFIX##_f32,           \
     exp_##SUFFIX##_f32}
#define VEC_F64(SUFFIX)                                                                        \
    {deriv_colsum_##SUFFIX##_f64, sgd_##SUFFIX##_f64, adam_##SUFFIX##_f64,                      \
     rmsprop_##SUFFIX##_f64, adamw_##SUFFIX##_f64, adagrad_##SUFFIX##_f64,                       \
     adamax_##SUFFIX##_f64, nadam_##SUFFIX##_f64, max_abs_##SUFFIX##_f64,                     \
     sum_squares_##SUFFIX##_f64, scale_copy_##SUFFIX##_f64, clamp_copy_##SUFFIX##_f64}

/* The template for one element type in each flavour (fnn_vec_flavours.h), float then double. */
#define FT float
#define UT uint32_t
#define ST int32_t
#define ABS_MASK UINT32_C(0x7fffffff)
#define INF_BITS UINT32_C(0x7f800000)
#define FT_SQRT sqrtf
#define VSUF _f32
#include "fnn_vec_flavours.h"

#define FT double
#define UT uint64_t
#define ST int64_t
#define ABS_MASK UINT64_C(0x7fffffffffffffff)
#define INF_BITS UINT64_C(0x7ff0000000000000)
#define FT_SQRT sqrt
#define VSUF _f64
#include "fnn_vec_flavours.h"

/* The float exp loop (fnn_vexp.h) in each flavour. */
#define FNN_EXP_FLAVOUR(NAME, TARGET)                                  \
    TARGET static void NAME(const float *x, float *y, ptrdiff_t n)     \
    {                                                                  \
        ptrdiff_t j;                                                   \
        for (j = 0; j < n; j++) y[j] = fnn_expf(x[j]);                 \
    }
FNN_EXP_FLAVOUR(exp_generic_f32, )
#if FNN_X86
FNN_EXP_FLAVOUR(exp_avx2_f32, __attribute__((target("avx2,fma"))))
FNN_EXP_FLAVOUR(exp_avx512_f32, __attribute__((target("avx512f,avx2,fma"))))
#endif
#undef FNN_EXP_FLAVOUR

/* ---------------------------------------------------------------- dispatch */

/* Indexed by fnn_active_flavour(): 0 portable, 1 AVX2, 2 AVX-512. */
#if FNN_X86
static const vec_f32 vec_f32_of[] = {VEC_F32(generic), VEC_F32(avx2), VEC_F32(avx512)};
static const vec_f64 vec_f64_of[] = {VEC_F64(generic), VEC_F64(avx2), VEC_F64(avx512)};
#else
static const vec_f32 vec_f32_of[] = {VEC_F32(generic)};
static const vec_f64 vec_f64_of[] = {VEC_F64(generic)};
#endif

#define vs() (&vec_f32_of[fnn_active_flavour()])
#define vd() (&vec_f64_of[fnn_active_flavour()])

#if FNN_X86
/* dz := dy * act'(y) for 16 lanes, as fnn_vec_tmpl.h's deriv_colsum writes it. */
FNN_VEC_AVX512 static inline __attribute__((always_inline)) __m512
deriv16(int act, __m512 y, __m512 g, __m512 vp)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    switch (act) {
    case FNN_ACT_RELU:
        return _mm512_mul_ps(g, _mm512_maskz_mov_ps(
                                    _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), one));
    case FNN_ACT_LEAKY_RELU:
        return _mm512_mul_ps(g, _mm512_mask_blend_ps(
                                    _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), vp,
                                    one));
    case FNN_ACT_SIGMOID: return _mm512_mul_ps(g, _mm512_mul_ps(y, _mm512_sub_ps(one, y)));
    case FNN_ACT_TANH: return _mm512_mul_ps(g, _mm512_sub_ps(one, _mm512_mul_ps(y, y)));
    default: return g;
    }
}

/* Up to 64 columns (four vectors) at a time, their sums held in eight double registers for all
 * rows: the template's loop keeps them in memory, and each row's add waits on the previous
 * row's store. The same operations in the same (row) order, so the same bits. */
FNN_VEC_AVX512 static inline __attribute__((always_inline)) void
deriv_colsum_block16(int act, const float *y, const float *dy, float *dz, double *acc,
                     ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, float param)
{
    const __m512 vp = _mm512_set1_ps(param);
    ptrdiff_t i, j0;
    int v;
    for (j0 = 0; j0 < w; j0 += 64) {
        __mmask16 mk[4];
        __m512d a[8];
        for (v = 0; v < 4; v++) {
            const ptrdiff_t rem = w - j0 - 16 * v;
            mk[v] = (__mmask16)(rem >= 16 ? 0xFFFFu : rem <= 0 ? 0u : (1u << rem) - 1u);
            a[2 * v] = _mm512_maskz_loadu_pd((__mmask8)mk[v], acc + j0 + 16 * v);
            a[2 * v + 1] = _mm512_maskz_loadu_pd((__mmask8)(mk[v] >> 8), acc + j0 + 16 * v + 8);
        }
        for (i = 0; i < n; i++) {
            const ptrdiff_t o = i * ld + j0;
#pragma GCC unroll 4
            for (v = 0; v < 4; v++) {
                if (mk[v]) {
                    const __m512 d = deriv16(act, _mm512_maskz_loadu_ps(mk[v], y + o + 16 * v),
                                             _mm512_maskz_loadu_ps(mk[v], dy + o + 16 * v), vp);
                    if (act != FNN_ACT_LINEAR || dz != dy) /* else d is already there */
                        _mm512_mask_storeu_ps(dz + o + 16 * v, mk[v], d);
                    a[2 * v] = _mm512_add_pd(a[2 * v], _mm512_cvtps_pd(_mm512_castps512_ps256(d)));
                    a[2 * v + 1] = _mm512_add_pd(
                        a[2 * v + 1], _mm512_cvtps_pd(_mm256_castpd_ps(
                                          _mm512_extractf64x4_pd(_mm512_castps_pd(d), 1))));
                }
            }
        }
        for (v = 0; v < 4; v++) {
            _mm512_mask_storeu_pd(acc + j0 + 16 * v, (__mmask8)mk[v], a[2 * v]);
            _mm512_mask_storeu_pd(acc + j0 + 16 * v + 8, (__mmask8)(mk[v] >> 8), a[2 * v + 1]);
        }
    }
}

FNN_VEC_AVX512 static void deriv_colsum_x512_f32(const float *y, const float *dy, float *dz,
                                                 double *acc, ptrdiff_t n, ptrdiff_t ld,
                                                 ptrdiff_t w, int act, float param)
{
    if (w < 16 && !((act == FNN_ACT_LINEAR || act == FNN_ACT_STEP) && dz == dy)) {
        /* one part-filled vector per row, rows closer than a vector apart: each row's masked
         * store would hold up the next row's loads, which the template's loop does not do */
        deriv_colsum_avx512_f32(y, dy, dz, acc, n, ld, w, act, param);
        return;
    }
    switch (act) { /* one copy per activation, no branch in the loop */
    case FNN_ACT_RELU:
        deriv_colsum_block16(FNN_ACT_RELU, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_LEAKY_RELU:
        deriv_colsum_block16(FNN_ACT_LEAKY_RELU, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_SIGMOID:
        deriv_colsum_block16(FNN_ACT_SIGMOID, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_TANH:
        deriv_colsum_block16(FNN_ACT_TANH, y, dy, dz, acc, n, ld, w, param);
        break;
    default:
        deriv_colsum_block16(FNN_ACT_LINEAR, y, dy, dz, acc, n, ld, w, param);
        break;
    }
}
#endif

#if FNN_X86
/* dz := dy * act'(y) for 8 lanes, as fnn_vec_tmpl.h's deriv_colsum writes it. */
FNN_VEC_AVX2 static inline __attribute__((always_inline)) __m256
deriv8(int act, __m256 y, __m256 g, __m256 vp)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    switch (act) {
    case FNN_ACT_RELU:
        return _mm256_mul_ps(g, _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ),
                                              one));
    case FNN_ACT_LEAKY_RELU:
        return _mm256_mul_ps(g, _mm256_blendv_ps(vp, one, _mm256_cmp_ps(y, _mm256_setzero_ps(),
                                                                        _CMP_GT_OQ)));
    case FNN_ACT_SIGMOID: return _mm256_mul_ps(g, _mm256_mul_ps(y, _mm256_sub_ps(one, y)));
    case FNN_ACT_TANH: return _mm256_mul_ps(g, _mm256_sub_ps(one, _mm256_mul_ps(y, y)));
    default: return g;
    }
}

/* deriv_colsum_block16 with AVX2: up to 32 columns (four vectors) at a time, their sums in eight
 * double registers for all rows; a partial vector's stores are plain 16-, 8- and 4-byte ones.
 * The same operations in the same (row) order as the template, so the same bits. */
FNN_VEC_AVX2 static inline __attribute__((always_inline)) void
deriv_colsum_block8(int act, const float *y, const float *dy, float *dz, double *acc,
                    ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, float param)
{
    const __m256 vp = _mm256_set1_ps(param);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    ptrdiff_t i, j0;
    int v;
    for (j0 = 0; j0 < w; j0 += 32) {
        ptrdiff_t rem[4];
        __m256i mk[4];
        __m256d a[8];
        for (v = 0; v < 4; v++) {
            const ptrdiff_t r = w - j0 - 8 * v;
            rem[v] = r >= 8 ? 8 : r <= 0 ? 0 : r;
            mk[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem[v]), lane);
            a[2 * v] = _mm256_maskload_pd(acc + j0 + 8 * v, _mm256_cvtepi32_epi64(
                                                                _mm256_castsi256_si128(mk[v])));
            a[2 * v + 1] = _mm256_maskload_pd(acc + j0 + 8 * v + 4, _mm256_cvtepi32_epi64(
                                                  _mm256_extracti128_si256(mk[v], 1)));
        }
        for (i = 0; i < n; i++) {
            const ptrdiff_t o = i * ld + j0;
#pragma GCC unroll 4
            for (v = 0; v < 4; v++) {
                if (rem[v]) {
                    const ptrdiff_t ov = o + 8 * v;
                    const __m256 d = deriv8(act, _mm256_maskload_ps(y + ov, mk[v]),
                                            _mm256_maskload_ps(dy + ov, mk[v]), vp);
                    if (act != FNN_ACT_LINEAR || dz != dy) { /* else d is already there */
                        if (rem[v] == 8)
                            _mm256_storeu_ps(dz + ov, d);
                        else
                            fnn_store_part8_f32(dz + ov, rem[v], d);
                    }
                    a[2 * v] = _mm256_add_pd(a[2 * v], _mm256_cvtps_pd(_mm256_castps256_ps128(d)));
                    a[2 * v + 1] = _mm256_add_pd(a[2 * v + 1],
                                                 _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)));
                }
            }
        }
        for (v = 0; v < 4; v++) {
            _mm256_maskstore_pd(acc + j0 + 8 * v,
                                _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mk[v])), a[2 * v]);
            _mm256_maskstore_pd(acc + j0 + 8 * v + 4,
                                _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mk[v], 1)),
                                a[2 * v + 1]);
        }
    }
}

FNN_VEC_AVX2 static void deriv_colsum_x2_f32(const float *y, const float *dy, float *dz,
                                             double *acc, ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w,
                                             int act, float param)
{
    if (w < 8 && !((act == FNN_ACT_LINEAR || act == FNN_ACT_STEP) && dz == dy)) {
        /* rows narrower than a vector: the template's loop (see deriv_colsum_x512_f32) */
        deriv_colsum_avx2_f32(y, dy, dz, acc, n, ld, w, act, param);
        return;
    }
    switch (act) { /* one copy per activation, no branch in the loop */
    case FNN_ACT_RELU:
        deriv_colsum_block8(FNN_ACT_RELU, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_LEAKY_RELU:
        deriv_colsum_block8(FNN_ACT_LEAKY_RELU, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_SIGMOID:
        deriv_colsum_block8(FNN_ACT_SIGMOID, y, dy, dz, acc, n, ld, w, param);
        break;
    case FNN_ACT_TANH:
        deriv_colsum_block8(FNN_ACT_TANH, y, dy, dz, acc, n, ld, w, param);
        break;
    default:
        deriv_colsum_block8(FNN_ACT_LINEAR, y, dy, dz, acc, n, ld, w, param);
        break;
    }
}
#endif

/* gelu's derivative from the pre-activation z (fnn_gelu.h). Double: libm per element, one plain
 * loop for every flavour. Float: the branch-free functions, a loop per flavour that the compiler
 * vectorises with that flavour's vectors (the same operations: the same bits whichever runs). */
#define GELU_DERIV_COLSUM(FT, DERIV)                                                            \
    {                                                                                          \
        ptrdiff_t i, j;                                                                        \
        for (i = 0; i < n; i++) {                                                              \
            const FT *zi = y + i * ld, *gi = dy + i * ld;                                      \
            FT *oi = dz + i * ld;                                                              \
            for (j = 0; j < w; j++) {                                                          \
                const FT d = gi[j] * DERIV(zi[j]);                                             \
                oi[j] = d;                                                                     \
                acc[j] += d;                                                                   \
            }                                                                                  \
        }                                                                                      \
        return;                                                                                \
    }

#define FNN_GIVEN(d) (d) /* FNN_ACT_DERIV_GIVEN: y holds the derivative */

/* The exact gelu's rows in the portable flavour: loops over the scalar functions (fnn_gelu.h),
 * which the SIMD flavours' fnn_gelu_simd.h reproduces lane by lane */
static void fnn_gelu_fwd_row_c(const float *z, float *y, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++) y[j] = fnn_gelu_f32(z[j]);
}

static void fnn_gelu_both_row_c(float *z, float *y, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        const float v = z[j];
        y[j] = fnn_gelu_f32(v);
        z[j] = fnn_gelu_deriv_f32(v);
    }
}

static void fnn_gelu_bwd_row_c(const float *z, const float *dy, float *dz, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++) dz[j] = dy[j] * fnn_gelu_deriv_f32(z[j]);
}

static void fnn_gelu_colsum_row_c(const float *z, const float *dy, float *dz, double *acc,
                                  ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        const float d = dy[j] * fnn_gelu_deriv_f32(z[j]);
        dz[j] = d;
        acc[j] += d;
    }
}

/* For the float gelus in each flavour:
 *   colsum:  dz[i, j] := dy[i, j] gelu'(z[i, j]),  acc[j] += dz[i, j]   (as fnn_deriv_colsum_f32)
 *   fwd:     y[j] := gelu(z[j])                 (y may be z)
 *   both:    y[j] := gelu(z[j]), z[j] := gelu'(z[j])
 *   given:   dz[i, j] := dy[i, j] d[i, j] with d = y the saved derivative, acc[j] += dz[i, j]
 *   bwd:     dz[j] := dy[j] gelu'(z[j])         (dz may be dy)
 * The exact gelu through the rows fnn_gelu_*_row##W (_c above, 8 and 16 in fnn_gelu_simd.h: the
 * same bits); gelu_tanh's loops over the scalar functions, which the compiler vectorises. */
#define GELU_F32_FLAVOUR(SUF, TARGET, W)                                                       \
    TARGET static void gelu_colsum_##SUF(const float *y, const float *dy, float *dz,           \
                                         double *acc, ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w,   \
                                         int act)                                              \
    {                                                                                          \
        if (act == FNN_ACT_GELU) {                                                             \
            ptrdiff_t i;                                                                       \
            for (i = 0; i < n; i++)                                                            \
                fnn_gelu_colsum_row##W(y + i * ld, dy + i * ld, dz + i * ld, acc, w);          \
            return;                                                                            \
        }                                                                                      \
        GELU_DERIV_COLSUM(float, fnn_gelu_tanh_deriv_f32)                                      \
    }                                                                                          \
    TARGET static void gelu_fwd_##SUF(const float *z, float *y, ptrdiff_t n, int act)          \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        if (act == FNN_ACT_GELU)                                                               \
            fnn_gelu_fwd_row##W(z, y, n);                                                      \
        else                                                                                   \
            for (j = 0; j < n; j++) y[j] = fnn_gelu_tanh_f32(z[j]);                            \
    }                                                                                          \
    TARGET static void gelu_both_##SUF(float *z, float *y, ptrdiff_t n, int act)               \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        if (act == FNN_ACT_GELU)                                                               \
            fnn_gelu_both_row##W(z, y, n);                                                     \
        else                                                                                   \
            for (j = 0; j < n; j++) {                                                          \
                const float v = z[j];                                                          \
                y[j] = fnn_gelu_tanh_f32(v);                                                   \
                z[j] = fnn_gelu_tanh_deriv_f32(v);                                             \
            }                                                                                  \
    }                                                                                          \
    TARGET static void given_colsum_##SUF(const float *y, const float *dy, float *dz,          \
                                          double *acc, ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w)  \
        GELU_DERIV_COLSUM(float, FNN_GIVEN)                                                    \
    TARGET static void gelu_bwd_##SUF(const float *z, const float *dy, float *dz, ptrdiff_t n, \
                                      int act)                                                 \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        if (act == FNN_ACT_GELU)                                                               \
            fnn_gelu_bwd_row##W(z, dy, dz, n);                                                 \
        else                                                                                   \
            for (j = 0; j < n; j++) dz[j] = dy[j] * fnn_gelu_tanh_deriv_f32(z[j]);             \
    }
GELU_F32_FLAVOUR(generic, , _c)
#if FNN_X86
GELU_F32_FLAVOUR(avx2, FNN_VEC_AVX2, 8)
GELU_F32_FLAVOUR(avx512, FNN_VEC_AVX512, 16)
#endif
#undef GELU_F32_FLAVOUR

void fnn_gelu_forward_f32(const float *z, float *y, ptrdiff_t n, int act)
{
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        gelu_fwd_avx512(z, y, n, act);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        gelu_fwd_avx2(z, y, n, act);
        return;
    }
#endif
    gelu_fwd_generic(z, y, n, act);
}

void fnn_gelu_backward_f32(const float *z, const float *dy, float *dz, ptrdiff_t n, int act)
{
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        gelu_bwd_avx512(z, dy, dz, n, act);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        gelu_bwd_avx2(z, dy, dz, n, act);
        return;
    }
#endif
    gelu_bwd_generic(z, dy, dz, n, act);
}

void fnn_gelu_value_deriv_f32(float *z, float *y, ptrdiff_t n, int act)
{
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        gelu_both_avx512(z, y, n, act);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        gelu_both_avx2(z, y, n, act);
        return;
    }
#endif
    gelu_both_generic(z, y, n, act);
}

/* Keras' elu, selu, softplus, silu in float (fnn_act_keras.h): branch-free functions, a loop per
 * activation and flavour that the compiler vectorises with that flavour's vectors (the same
 * operations, so the same bits whichever runs). The derivative takes y (silu: z).
 *   fwd:     y[j] := act(z[j])                     (y may be z)
 *   bwd:     dz[j] := dy[j] act'(y[j])             (dz may be dy)
 *   both:    y[j] := silu(z[j]), z[j] := silu'(z[j])
 *   colsum:  dz[i, j] := dy[i, j] act'(y[i, j]),  acc[j] += dz[i, j]  (as fnn_deriv_colsum_f32) */
#define KERAS_ROWS(CASE_LOOP)                                                                  \
    switch (act) {                                                                             \
    case FNN_ACT_ELU: CASE_LOOP(fnn_elu_f32(V, param), fnn_elu_deriv_f32(V, param)) break;     \
    case FNN_ACT_SELU: CASE_LOOP(fnn_selu_f32(V), fnn_selu_deriv_f32(V)) break;                \
    case FNN_ACT_SOFTPLUS: CASE_LOOP(fnn_softplus_f32(V), fnn_softplus_deriv_f32(V)) break;    \
    default: CASE_LOOP(fnn_silu_f32(V), fnn_silu_deriv_f32(V)) break;                          \
    }
#define KERAS_FWD_LOOP(F, D)                                                                   \
    for (j = 0; j < n; j++) {                                                                  \
        const float V = z[j];                                                                  \
        y[j] = F;                                                                              \
    }
#define KERAS_BWD_LOOP(F, D)                                                                   \
    for (j = 0; j < n; j++) {                                                                  \
        const float V = y[j];                                                                  \
        dz[j] = dy[j] * (D);                                                                   \
    }
#define KERAS_COLSUM_LOOP(F, D)                                                                \
    for (i = 0; i < n; i++) {                                                                  \
        const float *yi = y + i * ld, *gi = dy + i * ld;                                       \
        float *oi = dz + i * ld;                                                               \
        for (j = 0; j < w; j++) {                                                              \
            const float V = yi[j];                                                             \
            const float d = gi[j] * (D);                                                       \
            oi[j] = d;                                                                         \
            acc[j] += d;                                                                       \
        }                                                                                      \
    }
#define KERAS_F32_FLAVOUR(SUF, TARGET)                                                         \
    TARGET static void keras_fwd_##SUF(const float *z, float *y, ptrdiff_t n, int act,         \
                                       float param)                                            \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        KERAS_ROWS(KERAS_FWD_LOOP)                                                             \
    }                                                                                          \
    TARGET static void keras_bwd_##SUF(const float *y, const float *dy, float *dz, ptrdiff_t n, \
                                       int act, float param)                                   \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        KERAS_ROWS(KERAS_BWD_LOOP)                                                             \
    }                                                                                          \
    TARGET static void keras_colsum_##SUF(const float *y, const float *dy, float *dz,          \
                                          double *acc, ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, \
                                          int act, float param)                                \
    {                                                                                          \
        ptrdiff_t i, j;                                                                        \
        KERAS_ROWS(KERAS_COLSUM_LOOP)                                                          \
    }                                                                                          \
    TARGET static void keras_both_##SUF(float *z, float *y, ptrdiff_t n)                       \
    {                                                                                          \
        ptrdiff_t j;                                                                           \
        for (j = 0; j < n; j++) {                                                              \
            float d;                                                                           \
            y[j] = fnn_silu_both_f32(z[j], &d);                                                \
            z[j] = d;                                                                          \
        }                                                                                      \
    }
KERAS_F32_FLAVOUR(generic, )
#if FNN_X86
KERAS_F32_FLAVOUR(avx2, FNN_VEC_AVX2)
KERAS_F32_FLAVOUR(avx512, FNN_VEC_AVX512)
#endif
#undef KERAS_F32_FLAVOUR
#undef KERAS_ROWS
#undef KERAS_FWD_LOOP
#undef KERAS_BWD_LOOP
#undef KERAS_COLSUM_LOOP

/* call keras_NAME_<flavour>(ARGS) for the flavour in use */
#if FNN_X86
#define KERAS_DISPATCH(NAME, ARGS)                                                             \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {                                          \
        keras_##NAME##_avx512 ARGS;                                                            \
        return;                                                                                \
    }                                                                                          \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {                                            \
        keras_##NAME##_avx2 ARGS;                                                              \
        return;                                                                                \
    }                                                                                          \
    keras_##NAME##_generic ARGS;
#else
#define KERAS_DISPATCH(NAME, ARGS) keras_##NAME##_generic ARGS;
#endif

void fnn_keras_forward_f32(const float *z, float *y, ptrdiff_t n, int act, float param)
{
    KERAS_DISPATCH(fwd, (z, y, n, act, param))
}

void fnn_keras_backward_f32(const float *y, const float *dy, float *dz, ptrdiff_t n, int act,
                            float param)
{
    KERAS_DISPATCH(bwd, (y, dy, dz, n, act, param))
}

void fnn_silu_value_deriv_f32(float *z, float *y, ptrdiff_t n) { KERAS_DISPATCH(both, (z, y, n)) }

static void keras_colsum_f32(const float *y, const float *dy, float *dz, double *acc, ptrdiff_t n,
                             ptrdiff_t ld, ptrdiff_t w, int act, float param)
{
    KERAS_DISPATCH(colsum, (y, dy, dz, acc, n, ld, w, act, param))
}
#undef KERAS_DISPATCH

static void given_colsum_f32(const float *y, const float *dy, float *dz, double *acc,
                             ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w)
{
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        given_colsum_avx512(y, dy, dz, acc, n, ld, w);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        given_colsum_avx2(y, dy, dz, acc, n, ld, w);
        return;
    }
#endif
    given_colsum_generic(y, dy, dz, acc, n, ld, w);
}

static void gelu_colsum_f32(const float *y, const float *dy, float *dz, double *acc, ptrdiff_t n,
                            ptrdiff_t ld, ptrdiff_t w, int act)
{
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        gelu_colsum_avx512(y, dy, dz, acc, n, ld, w, act);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        gelu_colsum_avx2(y, dy, dz, acc, n, ld, w, act);
        return;
    }
#endif
    gelu_colsum_generic(y, dy, dz, acc, n, ld, w, act);
}

/* Keras' elu, selu, softplus (from y) and silu (from z) in double: scalar loops over
 * fnn_act_keras.h's functions, one for every flavour (libm per element: the same bits) */
#define KERAS_DERIV_COLSUM(FT, DERIV)                                                           \
    {                                                                                          \
        ptrdiff_t i, j;                                                                        \
        for (i = 0; i < n; i++) {                                                              \
            const FT *yi = y + i * ld, *gi = dy + i * ld;                                      \
            FT *oi = dz + i * ld;                                                              \
            for (j = 0; j < w; j++) {                                                          \
                const FT d = gi[j] * DERIV(act, yi[j], param);                                 \
                oi[j] = d;                                                                     \
                acc[j] += d;                                                                   \
            }                                                                                  \
        }                                                                                      \
        return;                                                                                \
    }

void fnn_deriv_colsum_f32(const float *y, const float *dy, float *dz, double *acc, ptrdiff_t n,
                          ptrdiff_t ld, ptrdiff_t w, int act, float param)
{
    if (FNN_ACT_KERAS(act)) {
        keras_colsum_f32(y, dy, dz, acc, n, ld, w, act, param);
        return;
    }
    if (act == FNN_ACT_GELU || act == FNN_ACT_GELU_TANH) {
        gelu_colsum_f32(y, dy, dz, acc, n, ld, w, act);
        return;
    }
    if (act == FNN_ACT_DERIV_GIVEN) {
        given_colsum_f32(y, dy, dz, acc, n, ld, w);
        return;
    }
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        deriv_colsum_x512_f32(y, dy, dz, acc, n, ld, w, act, param);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        deriv_colsum_x2_f32(y, dy, dz, acc, n, ld, w, act, param);
        return;
    }
#endif
    vs()->deriv_colsum(y, dy, dz, acc, n, ld, w, act, param);
}

void fnn_deriv_colsum_f64(const double *y, const double *dy, double *dz, double *acc,
                          ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, int act, double param)
{
    if (act == FNN_ACT_GELU) GELU_DERIV_COLSUM(double, fnn_gelu_deriv_f64)
    if (act == FNN_ACT_GELU_TANH) GELU_DERIV_COLSUM(double, fnn_gelu_tanh_deriv_f64)
    if (act == FNN_ACT_DERIV_GIVEN) GELU_DERIV_COLSUM(double, FNN_GIVEN)
    if (FNN_ACT_KERAS(act)) KERAS_DERIV_COLSUM(double, fnn_keras_deriv_f64)
    vd()->deriv_colsum(y, dy, dz, acc, n, ld, w, act, param);
}

void fnn_sgd_f32(float *p, const float *grad, float *v, ptrdiff_t n, float lr, float mu,
                 int nesterov, float wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->sgd(p, grad, v, n, lr, mu, nesterov, wd);
    fnn_ftz_leave(saved);
}

void fnn_sgd_f64(double *p, const double *grad, double *v, ptrdiff_t n, double lr, double mu,
                 int nesterov, double wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->sgd(p, grad, v, n, lr, mu, nesterov, wd);
    fnn_ftz_leave(saved);
}

void fnn_adam_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                  float b1, float b2, float one_b1, float one_b2, float bc1, float bc2, float eps,
                  float wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->adam(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd);
    fnn_ftz_leave(saved);
}

void fnn_adam_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                  double b1, double b2, double one_b1, double one_b2, double bc1, double bc2,
                  double eps, double wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->adam(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd);
    fnn_ftz_leave(saved);
}

void fnn_rmsprop_f32(float *p, const float *grad, float *v, float *a, float *b, ptrdiff_t n,
                     float lr, float rho, float one_rho, float mu, float eps, int centered)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->rmsprop(p, grad, v, a, b, n, lr, rho, one_rho, mu, eps, centered);
    fnn_ftz_leave(saved);
}

void fnn_rmsprop_f64(double *p, const double *grad, double *v, double *a, double *b, ptrdiff_t n,
                     double lr, double rho, double one_rho, double mu, double eps, int centered)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->rmsprop(p, grad, v, a, b, n, lr, rho, one_rho, mu, eps, centered);
    fnn_ftz_leave(saved);
}

void fnn_adamw_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                   float b1, float b2, float one_b1, float one_b2, float bc1, float bc2, float eps,
                   float lr_wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->adamw(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, lr_wd);
    fnn_ftz_leave(saved);
}

void fnn_adamw_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                   double b1, double b2, double one_b1, double one_b2, double bc1, double bc2,
                   double eps, double lr_wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->adamw(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, lr_wd);
    fnn_ftz_leave(saved);
}

void fnn_adagrad_f32(float *p, const float *grad, float *a, ptrdiff_t n, float lr, float eps,
                     float a_max)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->adagrad(p, grad, a, n, lr, eps, a_max);
    fnn_ftz_leave(saved);
}

void fnn_adamax_f32(float *p, const float *grad, float *m, float *u, ptrdiff_t n, float lr, float one_b1,
                    float b2, float bc1, float eps)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->adamax(p, grad, m, u, n, lr, one_b1, b2, bc1, eps);
    fnn_ftz_leave(saved);
}

void fnn_nadam_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr, float one_b1,
                   float one_b2, float mu1, float d1, float one_mu, float d2, float bc2, float eps)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->nadam(p, grad, m, v, n, lr, one_b1, one_b2, mu1, d1, one_mu, d2, bc2, eps);
    fnn_ftz_leave(saved);
}

void fnn_adagrad_f64(double *p, const double *grad, double *a, ptrdiff_t n, double lr, double eps,
                     double a_max)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->adagrad(p, grad, a, n, lr, eps, a_max);
    fnn_ftz_leave(saved);
}

void fnn_adamax_f64(double *p, const double *grad, double *m, double *u, ptrdiff_t n, double lr, double one_b1,
                    double b2, double bc1, double eps)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->adamax(p, grad, m, u, n, lr, one_b1, b2, bc1, eps);
    fnn_ftz_leave(saved);
}

void fnn_nadam_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr, double one_b1,
                   double one_b2, double mu1, double d1, double one_mu, double d2, double bc2, double eps)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->nadam(p, grad, m, v, n, lr, one_b1, one_b2, mu1, d1, one_mu, d2, bc2, eps);
    fnn_ftz_leave(saved);
}

double fnn_max_abs_f32(const float *x, ptrdiff_t n) { return vs()->max_abs(x, n); }

void fnn_exp_f32(const float *x, float *y, ptrdiff_t n) { vs()->exp(x, y, n); }

double fnn_max_abs_f64(const double *x, ptrdiff_t n) { return vd()->max_abs(x, n); }

/* The clipping loops run in flush-to-zero mode like the updates they feed (the compiled
 * training step is in it already), so both routes give the same bits. */
double fnn_sum_squares_f32(const float *x, ptrdiff_t n)
{
    const unsigned int saved = fnn_ftz_enter();
    const double s = vs()->sum_squares(x, n);
    fnn_ftz_leave(saved);
    return s;
}

double fnn_sum_squares_f64(const double *x, ptrdiff_t n)
{
    const unsigned int saved = fnn_ftz_enter();
    const double s = vd()->sum_squares(x, n);
    fnn_ftz_leave(saved);
    return s;
}

void fnn_scale_copy_f32(const float *x, float *out, ptrdiff_t n, float s)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->scale_copy(x, out, n, s);
    fnn_ftz_leave(saved);
}

void fnn_scale_copy_f64(const double *x, double *out, ptrdiff_t n, double s)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->scale_copy(x, out, n, s);
    fnn_ftz_leave(saved);
}

void fnn_clamp_copy_f32(const float *x, float *out, ptrdiff_t n, float c)
{
    vs()->clamp_copy(x, out, n, c);
}

void fnn_clamp_copy_f64(const double *x, double *out, ptrdiff_t n, double c)
{
    vd()->clamp_copy(x, out, n, c);
}

/* ---------------------------------------------------------------- softmax rows (float) */

/* A row's sum in double, in the order an AVX-512 register reduction takes, written out for every
 * flavour: columns fold into 16 lanes (lane l += column 16c + l, chunk after chunk), then lane
 * l + 8 is added to lane l, then l + 4, l + 2 and l + 1. */
static double sum16_tree(const double *lane)
{
    double s8[8], s4[4];
    int l;
    for (l = 0; l < 8; l++) s8[l] = lane[l] + lane[l + 8];
    for (l = 0; l < 4; l++) s4[l] = s8[l] + s8[l + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static void softmax_portable_f32(const float *z, float *y, ptrdiff_t n, ptrdiff_t m)
{
    ptrdiff_t i, j;
    for (i = 0; i < n; i++) {
        const float *zi = z + i * m;
        float *yi = y + i * m;
        float mx = zi[0];
        for (j = 1; j < m; j++)
            if (zi[j] > mx) mx = zi[j];
        for (j = 0; j < m; j++) yi[j] = zi[j] - mx;
    }
    fnn_exp_f32(y, y, n * m);
    for (i = 0; i < n; i++) {
        float *yi = y + i * m;
        double lane[16] = {0}, r;
        for (j = 0; j < m; j++) lane[j & 15] += (double)yi[j];
        r = 1.0 / sum16_tree(lane);
        for (j = 0; j < m; j++) yi[j] = (float)((double)yi[j] * r);
    }
}

#if FNN_X86
/* Rows of up to 16 columns, 16 rows at a time: the block transposed in registers so that each
 * lane is a row, then the portable version's operations lane-wise (the max, the exp, the double
 * sum in sum16_tree's order and the scaling), then transposed back. Working a row at a time in
 * its own register instead would leave most lanes idle and chain every row's reductions, and
 * the masked store of one row would stall the load of the next (their vectors overlap). */
FNN_VEC_AVX512 static void softmax_cols_avx512_f32(const float *z, float *y, ptrdiff_t n,
                                                   int m)
{
    const __mmask16 mk = (__mmask16)((1u << m) - 1u);
    ptrdiff_t r0;
    int i;
    for (r0 = 0; r0 < n; r0 += 16) {
        const int rows = (n - r0 < 16) ? (int)(n - r0) : 16;
        __m512 a[16];
#pragma GCC unroll 16
        for (i = 0; i < 16; i++)
            a[i] = (i < rows) ? _mm512_maskz_loadu_ps(mk, z + (r0 + i) * m) : _mm512_setzero_ps();
        fnn_tr16_f32(a); /* a[q]: column q of the 16 rows */
        fnn_softmax_lanes16_f32(a, m);
        fnn_tr16_f32(a); /* back: a[i] is row i (lanes past m unused) */
#pragma GCC unroll 16
        for (i = 0; i < 16; i++)
            if (i < rows) _mm512_mask_storeu_ps(y + (r0 + i) * m, mk, a[i]);
    }
}

/* The same with AVX2, 8 rows at a time, for rows of up to 16 columns: each 8 x 8 block of the
 * rows transposed so that a lane is a row. Loads and stores never go past a row's m values
 * (masked loads; plain 16-, 8- and 4-byte stores for a partial vector, as a masked store is slow
 * on AMD Zen). */
FNN_VEC_AVX2 static void softmax_cols_avx2_f32(const float *z, float *y, ptrdiff_t n, int m)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(m), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(m - 8), lane);
    ptrdiff_t r0;
    int i;
    for (r0 = 0; r0 < n; r0 += 8) {
        const int rows = (n - r0 < 8) ? (int)(n - r0) : 8;
        __m256 a[16];
#pragma GCC unroll 8
        for (i = 0; i < 8; i++) {
            const float *zi = z + (r0 + i) * m;
            a[i] = (i < rows) ? _mm256_maskload_ps(zi, m0) : _mm256_setzero_ps();
            a[8 + i] = (i < rows && m > 8) ? _mm256_maskload_ps(zi + 8, m1) : _mm256_setzero_ps();
        }
        fnn_tr8_f32(a); /* a[q]: column q of the 8 rows */
        if (m > 8) fnn_tr8_f32(a + 8);
        fnn_softmax_lanes8_f32(a, m);
        fnn_tr8_f32(a); /* back: a[i] holds row i's columns 0-7, a[8 + i] its columns 8-15 */
        if (m > 8) fnn_tr8_f32(a + 8);
        for (i = 0; i < rows; i++) {
            float *yi = y + (r0 + i) * m;
            if (m >= 8) {
                _mm256_storeu_ps(yi, a[i]);
                if (m == 16) _mm256_storeu_ps(yi + 8, a[8 + i]);
                else if (m > 8) fnn_store_part8_f32(yi + 8, m - 8, a[8 + i]);
            } else {
                fnn_store_part8_f32(yi, m, a[i]);
            }
        }
    }
}

/* Wider rows: the portable version's operations, 16 columns of a row per register. */
FNN_VEC_AVX512 static void softmax_avx512_f32(const float *z, float *y, ptrdiff_t n,
                                              ptrdiff_t m)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    ptrdiff_t i, j;
    if (m <= 16) {
        softmax_cols_avx512_f32(z, y, n, (int)m);
        return;
    }
#define TAIL(j) ((__mmask16)(m - (j) >= 16 ? 0xFFFFu : (1u << (m - (j))) - 1u))
    for (i = 0; i < n; i++) {
        const float *zi = z + i * m;
        float *yi = y + i * m;
        __m512 vm = ninf, vmx;
        __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd(), vr;
        for (j = 0; j < m; j += 16)
            vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, TAIL(j), zi + j));
        /* the largest value (a row holding NaN comes out all NaN either way, through its sum) */
        vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
        for (j = 0; j < m; j += 16) {
            const __m512 z16 = _mm512_maskz_loadu_ps(TAIL(j), zi + j);
            const __m512 e = _mm512_maskz_mov_ps(TAIL(j), fnn_vexp16_f32(_mm512_sub_ps(z16, vmx)));
            lo = _mm512_add_pd(lo, FNN_WIDEN_LO(e));
            hi = _mm512_add_pd(hi, FNN_WIDEN_HI(e));
            _mm512_mask_storeu_ps(yi + j, TAIL(j), e);
        }
        vr = fnn_recip_tree16(lo, hi);
        for (j = 0; j < m; j += 16)
            _mm512_mask_storeu_ps(yi + j, TAIL(j),
                                  fnn_scale16_f32(_mm512_maskz_loadu_ps(TAIL(j), yi + j), vr));
    }
#undef TAIL
}
#endif

void fnn_softmax_rows_f32(const float *z, float *y, ptrdiff_t n, ptrdiff_t m)
{
    if (n < 1 || m < 1) return;
#if FNN_X86
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        softmax_avx512_f32(z, y, n, m);
        return;
    }
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2 && m <= 16) {
        softmax_cols_avx2_f32(z, y, n, (int)m);
        return;
    }
#endif
    softmax_portable_f32(z, y, n, m);
}

/* Double rows: exp(z - max) summed in column order, each divided by the sum (y may be z). */
void fnn_softmax_rows_f64(const double *z, double *y, ptrdiff_t n, ptrdiff_t m)
{
    ptrdiff_t i, j;
    for (i = 0; i < n; i++) {
        const double *zi = z + i * m;
        double *yi = y + i * m;
        double mx = zi[0], s = 0;
        for (j = 1; j < m; j++)
            if (zi[j] > mx) mx = zi[j];
        for (j = 0; j < m; j++) yi[j] = exp(zi[j] - mx);
        for (j = 0; j < m; j++) s += yi[j];
        for (j = 0; j < m; j++) yi[j] = yi[j] / s;
    }
}

/* ---------------------------------------------------------------- one query against n keys */

static void dot_rows_portable_f32(const float *q, const float *k, ptrdiff_t D, ptrdiff_t n,
                                  float *s)
{
    ptrdiff_t i, j;
    for (j = 0; j < n; j++) {
        const float *kj = k + j * D;
        float acc = 0.0f;
        for (i = 0; i < D; i++) acc = acc + q[i] * kj[i];
        s[j] = acc;
    }
}

#if FNN_X86
/* q . kj in eight lanes (lane l takes i = l, l + 8, ...): whole vectors, then the last D % 8
 * values through `tail`, zeros after them (never reading past them) */
FNN_VEC_AVX2 static inline __m256 dot_key_avx2(const float *q, const float *kj, ptrdiff_t D,
                                               __m256i tail)
{
    __m256 acc = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= D; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), acc);
    if (i < D)
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + i, tail), _mm256_maskload_ps(kj + i, tail),
                              acc);
    return acc;
}

FNN_VEC_AVX2 static void dot_rows_avx2_f32(const float *q, const float *k, ptrdiff_t D,
                                           ptrdiff_t n, float *s)
{
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(D % 8)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v[8];
    ptrdiff_t j = 0;
    int r;
    for (; j + 8 <= n; j += 8) {
        __m256 sum;
        for (r = 0; r < 8; r++) v[r] = dot_key_avx2(q, k + (j + r) * D, D, tail);
        fnn_tr8_f32(v); /* v[l] = lane l of the eight keys */
        sum = v[0];
        for (r = 1; r < 8; r++) sum = _mm256_add_ps(sum, v[r]);
        _mm256_storeu_ps(s + j, sum);
    }
    for (; j < n; j++) {
        float lanes[8], acc;
        _mm256_storeu_ps(lanes, dot_key_avx2(q, k + j * D, D, tail));
        acc = lanes[0];
        for (r = 1; r < 8; r++) acc = acc + lanes[r];
        s[j] = acc;
    }
}
#endif

void fnn_dot_rows_f32(const float *q, const float *k, ptrdiff_t D, ptrdiff_t n, float *s)
{
#if FNN_X86
    if (fnn_active_flavour() != FNN_FLAVOUR_GENERIC) {
        dot_rows_avx2_f32(q, k, D, n, s);
        return;
    }
#endif
    dot_rows_portable_f32(q, k, D, n, s);
}
