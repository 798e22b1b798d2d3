/*
 * Float softmax pieces in AVX-512 registers, shared by the softmax kernel (fnn_vec.c) and the
 * transposed store of narrow GEMM outputs (fnn_kernels_avx512.c), so that both give the bits of
 * the portable softmax (fnn_vec.c's softmax_portable_f32): the exp of fnn_vexp.h, row sums in
 * double over the 16-lane tree of sum16_tree, and the scaling in double rounded once to float.
 * Included by files that compile AVX-512 code through target attributes; x86 only.
 */
#ifndef FNN_SOFTMAX16_AVX512_H
#define FNN_SOFTMAX16_AVX512_H

#include <immintrin.h>

#define FNN_SM16 __attribute__((target("avx512f"), always_inline)) static inline

/* fnn_expf (fnn_vexp.h) on 16 lanes: the same operations in the same order, so the same bits. */
FNN_SM16 __m512 fnn_vexp16_f32(__m512 x)
{
    const __m512 xc = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)),
                                    _mm512_set1_ps(-104.0f));
    const __m512 round = _mm512_set1_ps(12582912.0f);
    const __m512 nf = _mm512_sub_ps(
        _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), round), round);
    const __m512i n = _mm512_cvttps_epi32(nf), n1 = _mm512_srai_epi32(n, 1);
    const __m512i bias = _mm512_set1_epi32(127);
    const __m512 r = _mm512_sub_ps(
        _mm512_sub_ps(xc, _mm512_mul_ps(nf, _mm512_set1_ps(0.693145751953125f))),
        _mm512_mul_ps(nf, _mm512_set1_ps(1.428606765330187e-06f)));
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23)));
    p = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(
                             _mm512_add_epi32(_mm512_sub_epi32(n, n1), bias), 23)));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x, p);
}

/* The 16 floats of v widened to double: lanes 0-7 and 8-15. */
#define FNN_WIDEN_LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define FNN_WIDEN_HI(v) \
    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))

/* 16 floats times the double (lo, hi) factors of their lanes, each rounded once to float. */
FNN_SM16 __m512 fnn_scale16x2_f32(__m512 v, __m512d rlo, __m512d rhi)
{
    const __m256 a = _mm512_cvtpd_ps(_mm512_mul_pd(FNN_WIDEN_LO(v), rlo));
    const __m256 b = _mm512_cvtpd_ps(_mm512_mul_pd(FNN_WIDEN_HI(v), rhi));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)),
                                               _mm256_castps_pd(b), 1));
}

FNN_SM16 __m512 fnn_scale16_f32(__m512 v, __m512d vr) { return fnn_scale16x2_f32(v, vr, vr); }

/* 1 / (the lanes of lo + hi summed in sum16_tree's order), in every lane */
FNN_SM16 __m512d fnn_recip_tree16(__m512d lo, __m512d hi)
{
    const __m512d s8 = _mm512_add_pd(lo, hi);
    const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm512_set1_pd(1.0 / _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2))));
}

/* Softmax across a[0..m) (m <= 16) in each lane: lane r holds row r's m values, one per vector;
 * a[q] := softmax of the lane's row, column q. The max, exp(a - max), the sum in double over
 * sum16_tree's order (column l + 8 into l, then l + 4, l + 2, l + 1; columns past m add
 * nothing) and the scaling by its reciprocal, lane by lane. */
FNN_SM16 void fnn_softmax_lanes16_f32(__m512 *a, int m)
{
    __m512 mx = a[0];
    __m512d lo[8], hi[8], rlo, rhi;
    int q;
    /* fully unrolled, each column guarded: a[] then stays in registers */
#pragma GCC unroll 16
    for (q = 1; q < 16; q++)
        if (q < m) mx = _mm512_max_ps(a[q], mx);
#pragma GCC unroll 16
    for (q = 0; q < 16; q++)
        if (q < m) a[q] = fnn_vexp16_f32(_mm512_sub_ps(a[q], mx));
#pragma GCC unroll 8
    for (q = 0; q < 8; q++) { /* tree level 1: column q + 8 into q */
        if (q < m) {
            lo[q] = FNN_WIDEN_LO(a[q]);
            hi[q] = FNN_WIDEN_HI(a[q]);
            if (q + 8 < m) {
                lo[q] = _mm512_add_pd(lo[q], FNN_WIDEN_LO(a[q + 8]));
                hi[q] = _mm512_add_pd(hi[q], FNN_WIDEN_HI(a[q + 8]));
            }
        } else {
            lo[q] = hi[q] = _mm512_setzero_pd();
        }
    }
#pragma GCC unroll 4
    for (q = 0; q < 4; q++) {
        lo[q] = _mm512_add_pd(lo[q], lo[q + 4]);
        hi[q] = _mm512_add_pd(hi[q], hi[q + 4]);
    }
    rlo = _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(_mm512_add_pd(lo[0], lo[2]),
                                                           _mm512_add_pd(lo[1], lo[3])));
    rhi = _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(_mm512_add_pd(hi[0], hi[2]),
                                                           _mm512_add_pd(hi[1], hi[3])));
#pragma GCC unroll 16
    for (q = 0; q < 16; q++)
        if (q < m) a[q] = fnn_scale16x2_f32(a[q], rlo, rhi);
}

#undef FNN_SM16

#endif
