/*
 * AVX2 + FMA micro-kernels (Haswell and later, Zen 1-4), compiled with function target
 * attributes so the rest of the library needs no -mavx2; only called after CPU detection.
 *
 * Register budget (16 ymm): float 6x16 -> 12 accumulators + 2 B vectors + 1 broadcast of A;
 * double 6x8 likewise. Per k step: 2 loads of B, 6 broadcasts of A, 12 FMAs.
 */
#include <math.h>
#include <string.h>

#include "fnn_gemm_internal.h"

#if FNN_X86
#include <immintrin.h>

#include "fnn_gelu_simd.h"
#include "fnn_tr8_avx2.h"
#include "fnn_vact_simd.h"

#define FNN_AVX2 __attribute__((target("avx2,fma")))

/* The largest |C| bit pattern (see FNN_ABS_BITS_F32): sign-cleared patterns compare the same as
 * signed integers, which AVX2 has for 64-bit lanes. */
FNN_AVX2 static inline __m256i amax_u64(__m256i am, __m256i x)
{
    return _mm256_blendv_epi8(am, x, _mm256_cmpgt_epi64(x, am));
}

FNN_AVX2 static inline uint32_t amax_reduce_u32(__m256i am)
{
    uint32_t lane[8], u = 0;
    int i;
    _mm256_storeu_si256((__m256i *)lane, am);
    for (i = 0; i < 8; i++) u = lane[i] > u ? lane[i] : u;
    return u;
}

/* The sum of a vector's lanes, always in one order: (0+4) + (2+6), then + ((1+5) + (3+7)). */
FNN_AVX2 static inline float hsum_f32(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

/* (0+2) + (1+3) */
FNN_AVX2 static inline double hsum_f64(__m256d v)
{
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
}

FNN_AVX2 static inline uint64_t amax_reduce_u64(__m256i am)
{
    uint64_t lane[4], u = 0;
    int i;
    _mm256_storeu_si256((__m256i *)lane, am);
    for (i = 0; i < 4; i++) u = lane[i] > u ? lane[i] : u;
    return u;
}

/* C[6x16] := alpha * sum_p a[p, 0:6]^T b[p, 0:16] + beta * C, then with E the epilogue in
 * registers before the one store: C := act(C + bias), *amax := max(*amax, |C| bits) -- the same
 * operations as the plain kernel followed by fnn_epi_tmpl.h, without reading the tile back (on
 * Zen 3 that second pass took ~11% of a digits epoch). */
FNN_AVX2 static inline __attribute__((always_inline)) void
ukr_avx2_f32_body(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                  ptrdiff_t ldc, float alpha, float beta, const int E, const float *bias, int act,
                  float param, uint32_t *amax)
{
    __m256 acc[6][2];
    const float *cp = c;
    uint32_t sc[3]; /* alpha, beta, param */
    ptrdiff_t p;
    int i;
    /* 12 accumulators, 2 B vectors and a broadcast take 15 of the 16 ymm registers: the scalar
     * arguments wait out the k loop in general registers (left in xmm registers, gcc spilled an
     * accumulator of the fused kernel to the stack: 2x slower) */
    memcpy(&sc[0], &alpha, sizeof alpha);
    memcpy(&sc[1], &beta, sizeof beta);
    memcpy(&sc[2], &param, sizeof param);
    __asm__("" : "+r"(sc[0]), "+r"(sc[1]), "+r"(sc[2]));
#pragma GCC unroll 6
    for (i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        /* pull the C tile in during the first k steps, one line per step (needed after the
         * loop; a burst of prefetches would exhaust the line fill buffers) */
        if (p < 12) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 15 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += 6;
        b += ldb;
    }
    memcpy(&alpha, &sc[0], sizeof alpha);
    memcpy(&beta, &sc[1], sizeof beta);
    memcpy(&param, &sc[2], sizeof param);
    {
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        const __m256 vp = _mm256_set1_ps(param);
        const __m256 bias0 = (E && bias) ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        const __m256 bias1 = (E && bias) ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        const __m256i absm = _mm256_set1_epi32((int)FNN_ABS_BITS_F32);
        __m256i mx = _mm256_setzero_si256();
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            float *ci = c + i * ldc;
            __m256 z0 = _mm256_mul_ps(va, acc[i][0]), z1 = _mm256_mul_ps(va, acc[i][1]);
            if (beta != 0.0f) {
                z0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), z0);
                z1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), z1);
            }
            if (E) {
                if (bias) {
                    z0 = _mm256_add_ps(z0, bias0);
                    z1 = _mm256_add_ps(z1, bias1);
                }
                z0 = fnn_vact8_f32(z0, act, vp);
                z1 = fnn_vact8_f32(z1, act, vp);
                if (amax) {
                    mx = _mm256_max_epu32(mx, _mm256_and_si256(_mm256_castps_si256(z0), absm));
                    mx = _mm256_max_epu32(mx, _mm256_and_si256(_mm256_castps_si256(z1), absm));
                }
            }
            _mm256_storeu_ps(ci, z0);
            _mm256_storeu_ps(ci + 8, z1);
        }
        if (E && amax) {
            const uint32_t m = amax_reduce_u32(mx);
            if (m > *amax) *amax = m;
        }
    }
}

FNN_AVX2 static void ukr_avx2_f32_6x16(ptrdiff_t kc, const float *a, const float *b,
                                       ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha,
                                       float beta)
{
    ukr_avx2_f32_body(kc, a, b, ldb, c, ldc, alpha, beta, 0, NULL, FNN_ACT_LINEAR, 0.0f, NULL);
}

FNN_AVX2 static void ukre_avx2_f32_6x16(ptrdiff_t kc, const float *a, const float *b,
                                        ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha,
                                        float beta, const float *bias, int act, float param,
                                        uint32_t *amax)
{
    ukr_avx2_f32_body(kc, a, b, ldb, c, ldc, alpha, beta, 1, bias, act, param, amax);
}

/* C[6x8] := alpha * sum_p a[p, 0:6]^T b[p, 0:8] + beta * C, then with E the epilogue as above */
FNN_AVX2 static inline __attribute__((always_inline)) void
ukr_avx2_f64_body(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb, double *c,
                  ptrdiff_t ldc, double alpha, double beta, const int E, const double *bias,
                  int act, double param, uint64_t *amax)
{
    __m256d acc[6][2];
    const double *cp = c;
    uint64_t sc[3]; /* alpha, beta, param */
    ptrdiff_t p;
    int i;
    /* 12 accumulators, 2 B vectors and a broadcast take 15 of the 16 ymm registers: the scalar
     * arguments wait out the k loop in general registers (left in xmm registers, gcc spilled an
     * accumulator of the fused kernel to the stack: 2x slower) */
    memcpy(&sc[0], &alpha, sizeof alpha);
    memcpy(&sc[1], &beta, sizeof beta);
    memcpy(&sc[2], &param, sizeof param);
    __asm__("" : "+r"(sc[0]), "+r"(sc[1]), "+r"(sc[2]));
#pragma GCC unroll 6
    for (i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
    for (p = 0; p < kc; p++) {
        const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
        if (p < 12) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 7 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            const __m256d ai = _mm256_broadcast_sd(a + i);
            acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += 6;
        b += ldb;
    }
    memcpy(&alpha, &sc[0], sizeof alpha);
    memcpy(&beta, &sc[1], sizeof beta);
    memcpy(&param, &sc[2], sizeof param);
    {
        const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
        const __m256d vp = _mm256_set1_pd(param);
        const __m256d bias0 = (E && bias) ? _mm256_loadu_pd(bias) : _mm256_setzero_pd();
        const __m256d bias1 = (E && bias) ? _mm256_loadu_pd(bias + 4) : _mm256_setzero_pd();
        const __m256i absm = _mm256_set1_epi64x((long long)FNN_ABS_BITS_F64);
        __m256i mx = _mm256_setzero_si256();
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            double *ci = c + i * ldc;
            __m256d z0 = _mm256_mul_pd(va, acc[i][0]), z1 = _mm256_mul_pd(va, acc[i][1]);
            if (beta != 0.0) {
                z0 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci), z0);
                z1 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4), z1);
            }
            if (E) {
                if (bias) {
                    z0 = _mm256_add_pd(z0, bias0);
                    z1 = _mm256_add_pd(z1, bias1);
                }
                z0 = fnn_vact4_f64(z0, act, vp);
                z1 = fnn_vact4_f64(z1, act, vp);
                if (amax) {
                    mx = amax_u64(mx, _mm256_and_si256(_mm256_castpd_si256(z0), absm));
                    mx = amax_u64(mx, _mm256_and_si256(_mm256_castpd_si256(z1), absm));
                }
            }
            _mm256_storeu_pd(ci, z0);
            _mm256_storeu_pd(ci + 4, z1);
        }
        if (E && amax) {
            const uint64_t m = amax_reduce_u64(mx);
            if (m > *amax) *amax = m;
        }
    }
}

FNN_AVX2 static void ukr_avx2_f64_6x8(ptrdiff_t kc, const double *a, const double *b,
                                      ptrdiff_t ldb, double *c, ptrdiff_t ldc, double alpha,
                                      double beta)
{
    ukr_avx2_f64_body(kc, a, b, ldb, c, ldc, alpha, beta, 0, NULL, FNN_ACT_LINEAR, 0.0, NULL);
}

FNN_AVX2 static void ukre_avx2_f64_6x8(ptrdiff_t kc, const double *a, const double *b,
                                       ptrdiff_t ldb, double *c, ptrdiff_t ldc, double alpha,
                                       double beta, const double *bias, int act, double param,
                                       uint64_t *amax)
{
    ukr_avx2_f64_body(kc, a, b, ldb, c, ldc, alpha, beta, 1, bias, act, param, amax);
}

/* The first rem (0 < rem < 4) lanes of a double vector, as fnn_store_part8_f32 (fnn_tr8_avx2.h)
 * does for float. */
FNN_AVX2 static inline __attribute__((always_inline)) void store_part_f64(double *p,
                                                                          ptrdiff_t rem,
                                                                          __m256d v)
{
    __m128d x = _mm256_castpd256_pd128(v);
    if (rem & 2) {
        _mm_storeu_pd(p, x);
        x = _mm256_extractf128_pd(v, 1);
        p += 2;
    }
    if (rem & 1) _mm_store_sd(p, x);
}

/* Direct tiles for small products: up to 6 rows x 2 ymm (12 accumulators, as the packed
 * kernel), masked loads and partial stores for column tails. */
#define DT_TARGET FNN_AVX2
#define DT_MAXMB 6
#define GV_MAXNV 15 /* gemv blocks: 15 accumulators and a broadcast in 16 registers */
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MASK(rem) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)), \
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_LOADM(m, p) _mm256_maskload_ps(p, m)
#define V_STOREP(p, rem, m, v) fnn_store_part8_f32(p, rem, v)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define FT float
#define VT __m256
#define MT __m256i
#define VLEN 8
#define DT(x) x##_avx2_f32
#define UT uint32_t
#define AT __m256i
#define V_AMAX_ZERO() _mm256_setzero_si256()
#define V_AMAX(am, z, m) _mm256_max_epu32(am, _mm256_and_si256(m, _mm256_and_si256( \
                             _mm256_castps_si256(z), _mm256_set1_epi32(0x7fffffff))))
#define V_AMAX_ALL(am, z) _mm256_max_epu32(am, _mm256_and_si256( \
                              _mm256_castps_si256(z), _mm256_set1_epi32(0x7fffffff)))
#define V_AMAX_REDUCE(am) amax_reduce_u32(am)
#define V_HSUM(v) hsum_f32(v)
#define V_RELU(z) fnn_vact8_f32(z, FNN_ACT_RELU, z)
#define V_LEAKY(z, vp) fnn_vact8_f32(z, FNN_ACT_LEAKY_RELU, vp)
#define V_STEP(z, vp) fnn_vact8_f32(z, FNN_ACT_STEP, vp)
#include "fnn_dtile_tmpl.h"

#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_MUL(a, b) _mm256_mul_pd(a, b)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_MASK(rem) _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(rem)), \
                                       _mm256_setr_epi64x(0, 1, 2, 3))
#define V_LOADM(m, p) _mm256_maskload_pd(p, m)
#define V_STOREP(p, rem, m, v) store_part_f64(p, rem, v)
#define V_LOADU(p) _mm256_loadu_pd(p)
#define V_STOREU(p, v) _mm256_storeu_pd(p, v)
#define FT double
#define VT __m256d
#define MT __m256i
#define VLEN 4
#define DT(x) x##_avx2_f64
#define UT uint64_t
#define AT __m256i
#define V_AMAX_ZERO() _mm256_setzero_si256()
#define V_AMAX(am, z, m) amax_u64(am, _mm256_and_si256(m, _mm256_and_si256( \
                             _mm256_castpd_si256(z), _mm256_set1_epi64x(0x7fffffffffffffffLL))))
#define V_AMAX_ALL(am, z) amax_u64(am, _mm256_and_si256( \
                              _mm256_castpd_si256(z), _mm256_set1_epi64x(0x7fffffffffffffffLL)))
#define V_AMAX_REDUCE(am) amax_reduce_u64(am)
#define V_HSUM(v) hsum_f64(v)
#define V_RELU(z) fnn_vact4_f64(z, FNN_ACT_RELU, z)
#define V_LEAKY(z, vp) fnn_vact4_f64(z, FNN_ACT_LEAKY_RELU, vp)
#define V_STEP(z, vp) fnn_vact4_f64(z, FNN_ACT_STEP, vp)
#include "fnn_dtile_tmpl.h"
#undef DT_TARGET
#undef DT_MAXMB
#undef GV_MAXNV

/* The transposing sliver pack (fnn_gemm_internal.h) with 8x8 in-register transposes: 8 rows of
 * the source at a time (6 for the 6-row A slivers), 8 k-steps at a time. A copy, so the result is
 * exactly the portable pack's; also used by the AVX-512 flavour. */
FNN_AVX2 void fnn_pack_t_avx2_f32(int r, ptrdiff_t cnt, ptrdiff_t kc, const float *src,
                                  ptrdiff_t ld, float *dst)
{
    ptrdiff_t i0 = 0, i, p;
    __m256 v[8];
    if (r == 6 && cnt == 6) {
        /* a whole 6-row sliver: 8 k-steps are 48 consecutive values of dst, written as 8
         * overlapping vectors (each one's 2 lanes past its step are the next one's start) */
        for (p = 0; p + 8 <= kc; p += 8) {
            float *d = dst + p * 6;
#pragma GCC unroll 6
            for (i = 0; i < 6; i++) v[i] = _mm256_loadu_ps(src + i * ld + p);
            v[6] = v[7] = _mm256_setzero_ps();
            fnn_tr8_f32(v);
#pragma GCC unroll 7
            for (i = 0; i < 7; i++) _mm256_storeu_ps(d + 6 * i, v[i]);
            fnn_store_part8_f32(d + 42, 6, v[7]);
        }
        for (; p < kc; p++)
            for (i = 0; i < 6; i++) dst[p * 6 + i] = src[i * ld + p];
        return;
    }
    for (; i0 + 8 <= cnt; i0 += 8) {
        const float *s = src + i0 * ld;
        float *d = dst + i0;
        for (p = 0; p + 8 <= kc; p += 8) {
#pragma GCC unroll 8
            for (i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(s + i * ld + p);
            fnn_tr8_f32(v);
#pragma GCC unroll 8
            for (i = 0; i < 8; i++) _mm256_storeu_ps(d + (p + i) * r, v[i]);
        }
        for (; p < kc; p++)
            for (i = 0; i < 8; i++) d[p * r + i] = s[i * ld + p];
    }
    if (cnt - i0 >= 4) {
        /* four rows in the low halves of an 8 x 8 transpose (r = 12: rows 8..11 of each sliver,
         * a third of the values, which went one at a time through the rest below) */
        const float *s = src + i0 * ld;
        float *d = dst + i0;
        for (p = 0; p + 8 <= kc; p += 8) {
#pragma GCC unroll 4
            for (i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(s + i * ld + p);
            v[4] = v[5] = v[6] = v[7] = _mm256_setzero_ps();
            fnn_tr8_f32(v);
#pragma GCC unroll 8
            for (i = 0; i < 8; i++) _mm_storeu_ps(d + (p + i) * r, _mm256_castps256_ps128(v[i]));
        }
        for (; p < kc; p++)
            for (i = 0; i < 4; i++) d[p * r + i] = s[i * ld + p];
        i0 += 4;
    }
    fnn_pack_t_rest_f32(r, i0, cnt, kc, src, ld, dst); /* fewer than 4 rows left */
}

/* The untransposed sliver pack (fnn_gemm_internal.h; the weights of a forward product, the
 * inputs of a weight gradient) for the kernel's widths, 16 (B) and 6 (a transposed A), never
 * reading past a row's len values. One sliver at a time, its rows in order: the writes are one
 * sequential stream and the rows' pieces come from L1 (the portable pack goes row by row across
 * all slivers, a write kc * r values apart each time). Zen 3, hot or cold source: 144 x 256
 * six-wide 13.6 -> 4.3 us, 256 x 512 101 -> 34 us; 16-wide 192 x 256 7.9 -> 4.4 us. The
 * compiler's code for the portable pack moved 16 bytes at a time, and 6-wide slivers one value
 * at a time. */
FNN_AVX2 static void fnn_pack_n_avx2_f32(int r, ptrdiff_t len, ptrdiff_t kc, const float *src,
                                         ptrdiff_t ld, float *dst)
{
    const ptrdiff_t full = len / r, rem = len % r;
    ptrdiff_t p, s, i;
    for (s = 0; s < full; s++) {
        const float *x = src + s * r;
        float *y = dst + s * r * kc;
        p = 0;
        if (r == 16) {
            for (; p < kc; p++, x += ld, y += 16) {
                _mm256_storeu_ps(y, _mm256_loadu_ps(x));
                _mm256_storeu_ps(y + 8, _mm256_loadu_ps(x + 8));
            }
        } else if (r == 6) {
            /* four rows' 24 values: 6 stores of 4 (each row's last two paired with the next
             * row's first two, or its first two with the previous row's last two) */
            for (; p + 4 <= kc; p += 4, x += 4 * ld, y += 24) {
                const __m128 z = _mm_setzero_ps();
                const __m128 a0 = _mm_loadu_ps(x), a1 = _mm_loadu_ps(x + ld);
                const __m128 a2 = _mm_loadu_ps(x + 2 * ld), a3 = _mm_loadu_ps(x + 3 * ld);
                const __m128 b0 = _mm_loadl_pi(z, (const __m64 *)(x + 4));
                const __m128 b1 = _mm_loadl_pi(z, (const __m64 *)(x + ld + 4));
                const __m128 b2 = _mm_loadl_pi(z, (const __m64 *)(x + 2 * ld + 4));
                const __m128 b3 = _mm_loadl_pi(z, (const __m64 *)(x + 3 * ld + 4));
                _mm_storeu_ps(y, a0);
                _mm_storeu_ps(y + 4, _mm_movelh_ps(b0, a1));
                _mm_storeu_ps(y + 8, _mm_shuffle_ps(a1, b1, _MM_SHUFFLE(1, 0, 3, 2)));
                _mm_storeu_ps(y + 12, a2);
                _mm_storeu_ps(y + 16, _mm_movelh_ps(b2, a3));
                _mm_storeu_ps(y + 20, _mm_shuffle_ps(a3, b3, _MM_SHUFFLE(1, 0, 3, 2)));
            }
        }
        for (; p < kc; p++, x += ld, y += r)
            for (i = 0; i < r; i++) y[i] = x[i];
    }
    if (rem) { /* rem < r values a row, then zeros up to r */
        const float *x = src + full * r;
        float *y = dst + full * r * kc;
        for (p = 0; p < kc; p++, x += ld, y += r) {
            for (i = 0; i < rem; i++) y[i] = x[i];
            for (; i < r; i++) y[i] = 0.0f;
        }
    }
}

/* The epilogue, compiled with this file's vectors. */
#define EPI_TARGET FNN_AVX2
#define EPI_F32 epi_avx2_f32
#define EPI_F64 epi_avx2_f64
#define EPI_GELU_BLOCK_F32 fnn_gelu_fwd_block8
#include "fnn_epi_flavour.h"

/* Blocking (Zen 3: 32 KiB L1d, 512 KiB L2): the kc x 16 float B sliver (16 KiB at kc = 256)
 * stays in L1 while MC x KC of packed A (144 KiB) stays in L2.
 * direct_m: a one-thread product of up to 32 rows (a small batch) runs on direct tiles: no
 * packing, and a 2-row tail tile instead of a padded 6-row one. Zen 3, one thread: 32x64x256
 * 14.0 -> 11.3 us, 32x256x64 14.3 -> 13.0, 32x128x256 26.0 -> 24.4, dz @ W.T 32x128x256
 * 28.4 -> 25.5; 16 rows the same either way. */
const fnn_arch fnn_arch_avx2 = {
    "avx2",
    {6, 16, 144, 256, 4080, ukr_avx2_f32_6x16, 16, 6, dtile_avx2_f32, 0, NULL, epi_avx2_f32,
     fnn_pack_t_avx2_f32, ukre_avx2_f32_6x16, NULL, NULL, fnn_pack_n_avx2_f32, 32, gemv_avx2_f32,
     120, dots_avx2_f32},
    {6, 8, 72, 256, 4080, ukr_avx2_f64_6x8, 8, 6, dtile_avx2_f64, 0, NULL, epi_avx2_f64,
     fnn_pack_t_f64, ukre_avx2_f64_6x8, NULL, NULL, NULL, 32, gemv_avx2_f64, 60, dots_avx2_f64},
};

#else
typedef int fnn_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
