/*
 * The cheap activations (relu, leaky relu, step; any other code passes z through) on one vector
 * of each x86 flavour, the same operations as fnn_epi_tmpl.h's per element (relu keeps NaN and
 * -0 stays -0): the GEMM micro-kernels' fused epilogues (fnn_kernels_avx2.c,
 * fnn_kernels_avx512.c) and the strided convolution kernels (fnn_conv_strided.c) apply them in
 * registers before their one store. Include after <immintrin.h>, on x86 only.
 *
 *   act(z) = relu: max(0, z) | leaky relu: z > 0 ? z : vp z | step: z >= vp ? 1 : 0
 */
#ifndef FNN_VACT_SIMD_H
#define FNN_VACT_SIMD_H

#include "fnn_gemm.h"

__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) __m256
fnn_vact8_f32(__m256 z, int act, __m256 vp)
{
    switch (act) {
    case FNN_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), z);
    case FNN_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(_mm256_mul_ps(vp, z), z,
                                _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
    case FNN_ACT_STEP: return _mm256_and_ps(_mm256_cmp_ps(z, vp, _CMP_GE_OQ), _mm256_set1_ps(1.0f));
    default: return z;
    }
}

__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) __m256d
fnn_vact4_f64(__m256d z, int act, __m256d vp)
{
    switch (act) {
    case FNN_ACT_RELU: return _mm256_max_pd(_mm256_setzero_pd(), z);
    case FNN_ACT_LEAKY_RELU:
        return _mm256_blendv_pd(_mm256_mul_pd(vp, z), z,
                                _mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_GT_OQ));
    case FNN_ACT_STEP: return _mm256_and_pd(_mm256_cmp_pd(z, vp, _CMP_GE_OQ), _mm256_set1_pd(1.0));
    default: return z;
    }
}

__attribute__((target("avx512f,avx2,fma"))) static inline __attribute__((always_inline)) __m512
fnn_vact16_f32(__m512 z, int act, __m512 vp)
{
    switch (act) {
    case FNN_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), z);
    case FNN_ACT_LEAKY_RELU:
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ),
                                    _mm512_mul_ps(vp, z), z);
    case FNN_ACT_STEP:
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, vp, _CMP_GE_OQ), _mm512_set1_ps(1.0f));
    default: return z;
    }
}

__attribute__((target("avx512f,avx2,fma"))) static inline __attribute__((always_inline)) __m512d
fnn_vact8_f64(__m512d z, int act, __m512d vp)
{
    switch (act) {
    case FNN_ACT_RELU: return _mm512_max_pd(_mm512_setzero_pd(), z);
    case FNN_ACT_LEAKY_RELU:
        return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_GT_OQ),
                                    _mm512_mul_pd(vp, z), z);
    case FNN_ACT_STEP:
        return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(z, vp, _CMP_GE_OQ), _mm512_set1_pd(1.0));
    default: return z;
    }
}

#endif /* FNN_VACT_SIMD_H */
