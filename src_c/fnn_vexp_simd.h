/*
 * exp(x) for x <= 0 (also -inf and NaN) on 8 and 16 floats, with AVX2 and AVX-512 intrinsics: the
 * Cody-Waite scheme of fnn_vexp.h's fnn_expf with FMAs (the degree-7 Taylor polynomial of exp on
 * |r| <= ln2 / 2, relative error < 2e-8 before rounding); 2^n by vscalefps on AVX-512, by the
 * exponent bits on AVX2, where arguments below -87 give 0 instead of a subnormal that the
 * kernels' flush-to-zero mode would drop anyway. NaN propagates. The two flavours and the
 * portable fnn_expf may differ in the last bit (FMA), each is deterministic.
 * Used by the attention rows (fnn_attn_rows_simd.h) and the AVX-512 recurrent gates
 * (fnn_rnn_gates_simd.h; the AVX2 gates take an exp for any argument of their own); x86 only.
 */
#ifndef FNN_VEXP_SIMD_H
#define FNN_VEXP_SIMD_H

#include <immintrin.h>

#define FNN_VEXP_LOG2E 1.44269504088896341f
#define FNN_VEXP_LN2_HI 0.693145751953125f
#define FNN_VEXP_LN2_LO 1.428606765330187e-06f

static __attribute__((target("avx2,fma"))) inline __attribute__((always_inline)) __m256
fnn_exp8_le0(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 xc = _mm256_max_ps(lo, x); /* NaN: x */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(FNN_VEXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FNN_VEXP_LN2_HI), xc), p;
    __m256i e;
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FNN_VEXP_LN2_LO), r);
    p = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 5040.0f), r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), p);
}

static __attribute__((target("avx512f,avx512dq,avx2,fma"))) inline
    __attribute__((always_inline)) __m512
    fnn_exp16_le0(__m512 x)
{
    const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* NaN: x */
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(FNN_VEXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FNN_VEXP_LN2_HI), xc), p;
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FNN_VEXP_LN2_LO), r);
    p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 5040.0f), r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#endif /* FNN_VEXP_SIMD_H */
