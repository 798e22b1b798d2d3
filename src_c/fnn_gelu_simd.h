/*
 * The exact float gelu and its derivative on 8 (AVX2) and 16 (AVX-512) lanes, bit for bit the
 * scalar fnn_gelu_f32 / fnn_gelu_deriv_f32 of fnn_gelu.h (fnn_gelu_simd_tmpl.h says how), as row
 * loops for the element-wise kernels (fnn_vec.c) and the GEMM epilogue (fnn_epi_flavour.h):
 *
 *   fnn_gelu_fwd_row{8,16}(z, y, n)             y[j] := gelu(z[j])            (y may be z)
 *   fnn_gelu_fwd_block{8,16}(c, ldc, m, n)      the same in place on m rows of n, ldc apart
 *   fnn_gelu_both_row{8,16}(z, y, n)            y[j] := gelu(z[j]), z[j] := gelu'(z[j])
 *   fnn_gelu_bwd_row{8,16}(z, dy, dz, n)        dz[j] := dy[j] gelu'(z[j])    (dz may be dy)
 *   fnn_gelu_colsum_row{8,16}(z, dy, dz, acc, n)  as bwd, and acc[j] += dz[j] (double)
 *
 * Why by hand: GCC vectorised the loops over the scalar functions, but a loop wanting both the
 * value and the derivative computed their shared tail (the Mills-ratio fit, the Gaussian exp, a
 * division) twice, and spilled: ~120 cycles per 8 values on Zen 2, 13% of a Transformer block's
 * training step. Here that part is computed once per vector, and four vectors' chains are
 * interleaved. Measured on Zen 2 (AVX2), 512 x 256 values: value and derivative 650 -> 265 us,
 * the value alone 585 -> 232 us.
 * x86 only; include after <immintrin.h>. Requires no FP contraction (C99 mode, as setup.py
 * compiles src_c): the tests compare every flavour's bits with the portable C's.
 */
#ifndef FNN_GELU_SIMD_H
#define FNN_GELU_SIMD_H

#include <immintrin.h>
#include <stddef.h>

#include "fnn_gelu.h"

/* ---------------------------------------------------------------- AVX2: 8 lanes */
#define GS_TARGET __attribute__((target("avx2,fma")))
#define GS(name) fnn_##name##8
#define VT __m256
#define MT __m256
#define VLEN 8
#define GS_NV 4 /* vectors per step of the row loops (Zen 2: 1 -> 4 took 1.17x less time) */
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_DIV(a, b) _mm256_div_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define V_SEL(m, t, f) _mm256_blendv_ps(f, t, m)
#define V_NEG(a) _mm256_xor_ps(a, _mm256_set1_ps(-0.0f))
#define V_CVTT(a) _mm256_cvttps_epi32(a)
#define V_POW2_191_MINUS(n) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(191), n), 23))
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_LOADM(p, rem)                                                                        \
    _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)),                  \
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
#include "fnn_gelu_simd_tmpl.h"
#undef GS_TARGET

/* ---------------------------------------------------------------- AVX-512: 16 lanes */
#define GS_TARGET __attribute__((target("avx512f,avx2,fma")))
#define GS(name) fnn_##name##16
#define VT __m512
#define MT __mmask16
#define VLEN 16
#define GS_NV 4
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_DIV(a, b) _mm512_div_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define V_SEL(m, t, f) _mm512_mask_blend_ps(m, f, t)
/* the sign flip on the integer side: _mm512_xor_ps needs AVX512DQ */
#define V_NEG(a)                                                                               \
    _mm512_castsi512_ps(                                                                       \
        _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u)))
#define V_CVTT(a) _mm512_cvttps_epi32(a)
#define V_POW2_191_MINUS(n) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(191), n), 23))
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_LOADM(p, rem) _mm512_maskz_loadu_ps((__mmask16)((1u << (rem)) - 1u), p)
#include "fnn_gelu_simd_tmpl.h"
#undef GS_TARGET

#endif /* FNN_GELU_SIMD_H */
