/*
 * AVX2 + FMA micro-kernels (Haswell and later, Zen 1-4), compiled with function target
 * attributes so the rest of the library needs no -mavx2; only called after CPU detection.
 *
 * Register budget (16 ymm): float 6x16 -> 12 accumulators + 2 B vectors + 1 broadcast of A;
 * double 6x8 likewise. Per k step: 2 loads of B, 6 broadcasts of A, 12 FMAs.
 */
#include "fnn_gemm_internal.h"

#if FNN_X86
#include <immintrin.h>
#include <math.h>

#define FNN_AVX2 __attribute__((target("avx2,fma")))

/* C[6x16] := alpha * sum_p a[p, 0:6]^T b[p, 0:16] + beta * C */
FNN_AVX2 static void ukr_avx2_f32_6x16(ptrdiff_t kc, const float *a, const float *b, float *c,
                                       ptrdiff_t ldc, float alpha, float beta)
{
    __m256 acc[6][2];
    ptrdiff_t p;
    int i;
#pragma GCC unroll 6
    for (i = 0; i < 6; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        /* start pulling the C tile in now; it is needed only after the k loop */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    for (p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += 6;
        b += 16;
    }
    {
        const __m256 va = _mm256_set1_ps(alpha);
        if (beta == 0.0f) {
#pragma GCC unroll 6
            for (i = 0; i < 6; i++) {
                _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
            for (i = 0; i < 6; i++) {
                float *ci = c + i * ldc;
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci),
                                                     _mm256_mul_ps(va, acc[i][0])));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8),
                                                         _mm256_mul_ps(va, acc[i][1])));
            }
        }
    }
}

/* C[6x8] := alpha * sum_p a[p, 0:6]^T b[p, 0:8] + beta * C */
FNN_AVX2 static void ukr_avx2_f64_6x8(ptrdiff_t kc, const double *a, const double *b, double *c,
                                      ptrdiff_t ldc, double alpha, double beta)
{
    __m256d acc[6][2];
    ptrdiff_t p;
    int i;
#pragma GCC unroll 6
    for (i = 0; i < 6; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_pd();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 7), _MM_HINT_T0);
    }
    for (p = 0; p < kc; p++) {
        const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
#pragma GCC unroll 6
        for (i = 0; i < 6; i++) {
            const __m256d ai = _mm256_broadcast_sd(a + i);
            acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += 6;
        b += 8;
    }
    {
        const __m256d va = _mm256_set1_pd(alpha);
        if (beta == 0.0) {
#pragma GCC unroll 6
            for (i = 0; i < 6; i++) {
                _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, acc[i][0]));
                _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, acc[i][1]));
            }
        } else {
            const __m256d vb = _mm256_set1_pd(beta);
#pragma GCC unroll 6
            for (i = 0; i < 6; i++) {
                double *ci = c + i * ldc;
                _mm256_storeu_pd(ci, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci),
                                                     _mm256_mul_pd(va, acc[i][0])));
                _mm256_storeu_pd(ci + 4, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4),
                                                         _mm256_mul_pd(va, acc[i][1])));
            }
        }
    }
}

/* Direct small-product path, auto-vectorized for AVX2 with fused multiply-adds. */
#define DTARGET FNN_AVX2

#define FT float
#define DFN(x) x##_avx2_f32
#define DFMA(a, b, c) fmaf(a, b, c)
#define DEPI fnn_epilogue_block_f32
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DFMA
#undef DEPI

#define FT double
#define DFN(x) x##_avx2_f64
#define DFMA(a, b, c) fma(a, b, c)
#define DEPI fnn_epilogue_block_f64
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DFMA
#undef DEPI

#undef DTARGET

/* Blocking (Zen 3: 32 KiB L1d, 512 KiB L2): the kc x 16 float B sliver (16 KiB at kc = 256)
 * stays in L1 while MC x KC of packed A (144 KiB) stays in L2. */
const fnn_arch fnn_arch_avx2 = {
    "avx2",
    {6, 16, 144, 256, 4080, ukr_avx2_f32_6x16},
    {6, 8, 72, 256, 4080, ukr_avx2_f64_6x8},
    direct_avx2_f32,
    direct_avx2_f64,
};

#else
typedef int fnn_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
