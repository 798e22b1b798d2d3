/*
 * AVX-512F micro-kernels (Skylake-SP and later, Zen 4), compiled with function target
 * attributes and only called after CPU detection.
 *
 * Register budget (32 zmm): float 12x32 -> 24 accumulators + 2 B vectors + broadcasts of A
 * (folded into the FMA as {1to16} memory operands); double 12x16 likewise.
 * Per k step: 2 loads of B, 12 broadcasts, 24 FMAs -- enough independent FMAs to cover the
 * 4-cycle latency on 2 FMA ports.
 */
#include "fnn_gemm_internal.h"

#if FNN_X86
#include <immintrin.h>
#include <math.h>

#define FNN_AVX512 __attribute__((target("avx512f,avx2,fma")))

#define MR_S 12
#define MR_D 12

/* C[12x32] := alpha * sum_p a[p, 0:12]^T b[p, 0:32] + beta * C */
FNN_AVX512 static void ukr_avx512_f32(ptrdiff_t kc, const float *a, const float *b, float *c,
                                      ptrdiff_t ldc, float alpha, float beta)
{
    __m512 acc[MR_S][2];
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR_S; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        /* start pulling the C tile in now; it is needed only after the k loop */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
    }
    for (p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
        for (i = 0; i < MR_S; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR_S;
        b += 32;
    }
    {
        const __m512 va = _mm512_set1_ps(alpha);
        if (beta == 0.0f) {
#pragma GCC unroll 16
            for (i = 0; i < MR_S; i++) {
                _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
                _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR_S; i++) {
                float *ci = c + i * ldc;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci),
                                                     _mm512_mul_ps(va, acc[i][0])));
                _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                          _mm512_mul_ps(va, acc[i][1])));
            }
        }
    }
}

/* C[12x16] := alpha * sum_p a[p, 0:12]^T b[p, 0:16] + beta * C */
FNN_AVX512 static void ukr_avx512_f64(ptrdiff_t kc, const double *a, const double *b, double *c,
                                      ptrdiff_t ldc, double alpha, double beta)
{
    __m512d acc[MR_D][2];
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR_D; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_pd();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    for (p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
#pragma GCC unroll 16
        for (i = 0; i < MR_D; i++) {
            const __m512d ai = _mm512_set1_pd(a[i]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += MR_D;
        b += 16;
    }
    {
        const __m512d va = _mm512_set1_pd(alpha);
        if (beta == 0.0) {
#pragma GCC unroll 16
            for (i = 0; i < MR_D; i++) {
                _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc[i][0]));
                _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc[i][1]));
            }
        } else {
            const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR_D; i++) {
                double *ci = c + i * ldc;
                _mm512_storeu_pd(ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci),
                                                     _mm512_mul_pd(va, acc[i][0])));
                _mm512_storeu_pd(ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8),
                                                         _mm512_mul_pd(va, acc[i][1])));
            }
        }
    }
}

/* Direct small-product path, auto-vectorized for AVX-512 with fused multiply-adds. */
#define DTARGET FNN_AVX512

#define FT float
#define DFN(x) x##_avx512_f32
#define DFMA(a, b, c) fmaf(a, b, c)
#define DEPI fnn_epilogue_block_f32
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DFMA
#undef DEPI

#define FT double
#define DFN(x) x##_avx512_f64
#define DFMA(a, b, c) fma(a, b, c)
#define DEPI fnn_epilogue_block_f64
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DFMA
#undef DEPI

#undef DTARGET

const fnn_arch fnn_arch_avx512 = {
    "avx512",
    {MR_S, 32, 144, 256, 4080, ukr_avx512_f32},
    {MR_D, 16, 144, 256, 4080, ukr_avx512_f64},
    direct_avx512_f32,
    direct_avx512_f64,
};

#else
typedef int fnn_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
