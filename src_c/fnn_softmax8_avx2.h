/*
 * Float softmax pieces in AVX2 registers for the softmax kernel (fnn_vec.c), giving the bits of
 * the portable softmax (softmax_portable_f32): the exp of fnn_vexp.h, row sums in double over
 * the 16-lane tree of sum16_tree, and the scaling in double rounded once to float -- the
 * AVX-512 pieces of fnn_softmax16_avx512.h with 8 lanes. x86 only; target attributes.
 */
#ifndef FNN_SOFTMAX8_AVX2_H
#define FNN_SOFTMAX8_AVX2_H

#include <immintrin.h>

#define FNN_SM8 __attribute__((target("avx2"), always_inline)) static inline

/* fnn_expf (fnn_vexp.h) on 8 lanes: the same operations in the same order (no FMA), so the same
 * bits. */
FNN_SM8 __m256 fnn_vexp8_f32(__m256 x)
{
    const __m256 xc = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(89.0f)),
                                    _mm256_set1_ps(-104.0f));
    const __m256 round = _mm256_set1_ps(12582912.0f);
    const __m256 nf = _mm256_sub_ps(
        _mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), round), round);
    const __m256i n = _mm256_cvttps_epi32(nf), n1 = _mm256_srai_epi32(n, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 r = _mm256_sub_ps(
        _mm256_sub_ps(xc, _mm256_mul_ps(nf, _mm256_set1_ps(0.693145751953125f))),
        _mm256_mul_ps(nf, _mm256_set1_ps(1.428606765330187e-06f)));
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(
                             _mm256_add_epi32(_mm256_sub_epi32(n, n1), bias), 23)));
    return _mm256_blendv_ps(x, p, _mm256_cmp_ps(x, x, _CMP_ORD_Q));
}

/* The 8 floats of v widened to double: lanes 0-3 and 4-7. */
#define FNN_WIDEN8_LO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define FNN_WIDEN8_HI(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))

/* Softmax across a[0..m) (m <= 16) in each lane: lane r holds row r's m values, one per vector;
 * a[q] := softmax of the lane's row, column q. The max, exp(a - max), the sum in double over
 * sum16_tree's order (column l + 8 into l, then l + 4, l + 2, l + 1; columns past m add
 * nothing) and the scaling by its reciprocal, lane by lane. */
FNN_SM8 void fnn_softmax_lanes8_f32(__m256 *a, int m)
{
    __m256 mx = a[0];
    __m256d lo[8], hi[8], rlo, rhi;
    int q;
#pragma GCC unroll 16
    for (q = 1; q < 16; q++)
        if (q < m) mx = _mm256_max_ps(a[q], mx);
#pragma GCC unroll 16
    for (q = 0; q < 16; q++)
        if (q < m) a[q] = fnn_vexp8_f32(_mm256_sub_ps(a[q], mx));
#pragma GCC unroll 8
    for (q = 0; q < 8; q++) { /* tree level 1: column q + 8 into q */
        if (q < m) {
            lo[q] = FNN_WIDEN8_LO(a[q]);
            hi[q] = FNN_WIDEN8_HI(a[q]);
            if (q + 8 < m) {
                lo[q] = _mm256_add_pd(lo[q], FNN_WIDEN8_LO(a[q + 8]));
                hi[q] = _mm256_add_pd(hi[q], FNN_WIDEN8_HI(a[q + 8]));
            }
        } else {
            lo[q] = hi[q] = _mm256_setzero_pd();
        }
    }
#pragma GCC unroll 4
    for (q = 0; q < 4; q++) {
        lo[q] = _mm256_add_pd(lo[q], lo[q + 4]);
        hi[q] = _mm256_add_pd(hi[q], hi[q + 4]);
    }
    rlo = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_add_pd(lo[0], lo[2]),
                                                           _mm256_add_pd(lo[1], lo[3])));
    rhi = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_add_pd(hi[0], hi[2]),
                                                           _mm256_add_pd(hi[1], hi[3])));
#pragma GCC unroll 16
    for (q = 0; q < 16; q++)
        if (q < m) {
            const __m128 l = _mm256_cvtpd_ps(_mm256_mul_pd(FNN_WIDEN8_LO(a[q]), rlo));
            const __m128 h = _mm256_cvtpd_ps(_mm256_mul_pd(FNN_WIDEN8_HI(a[q]), rhi));
            a[q] = _mm256_insertf128_ps(_mm256_castps128_ps256(l), h, 1);
        }
}

#undef FNN_SM8

#endif
