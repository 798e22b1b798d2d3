/*
 * AVX-512F micro-kernels (Skylake-SP and later, Zen 4), compiled with function target
 * attributes and only called after CPU detection.
 *
 * Register budget (32 zmm): float 12x32 -> 24 accumulators + 2 B vectors + 1 broadcast of A;
 * double 12x16 likewise.  Per k step: 2 loads of B, 12 broadcasts, 24 FMAs -- 24 independent
 * accumulators cover the 4-cycle FMA latency on 2 FMA ports with room to spare, and the
 * 12 x 32 float tile measured as fast as OpenBLAS (within noise) on Sapphire Rapids.
 */
#include <math.h>

#include "fnn_gemm_internal.h"

#if FNN_X86
#include <immintrin.h>

#define FNN_AVX512 __attribute__((target("avx512f,avx2,fma")))

#define MR_S 12
#define MR_D 12

/* The kernels come in two heights: 12 rows (24 accumulators) and 8 rows, used for row counts
 * that are a multiple of 8 but not of 12 (batches of 32 or 64: 12-row tiles would compute 36 or
 * 72 rows). The body is written once (MR is a literal in each copy, so the accumulators stay in
 * registers); both do the same operations per element in the same order: identical results. */
#define MR 12
/* C[MRx32] := alpha * sum_p a[p, 0:MR]^T b[p, 0:32] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void ukr_avx512_f32(ptrdiff_t kc, const float *a, const float *b,
                                      ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha,
                                      float beta)
{
    __m512 acc[MR][2];
    const float *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* A streams from L2: fetch it ~16 steps ahead */
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 31 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512 va = _mm512_set1_ps(alpha);
        if (beta == 0.0f) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
                _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                float *ci = c + i * ldc;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci),
                                                     _mm512_mul_ps(va, acc[i][0])));
                _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                          _mm512_mul_ps(va, acc[i][1])));
            }
        }
    }
}

/* C[MRx16] := alpha * sum_p a[p, 0:MR]^T b[p, 0:16] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void ukr_avx512_f64(ptrdiff_t kc, const double *a, const double *b,
                                      ptrdiff_t ldb, double *c, ptrdiff_t ldc, double alpha,
                                      double beta)
{
    __m512d acc[MR][2];
    const double *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        /* A streams from L2 at 1.5 lines per step: fetch it ~8 steps ahead */
        _mm_prefetch((const char *)(a + 8 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 15 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512d ai = _mm512_set1_pd(a[i]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512d va = _mm512_set1_pd(alpha);
        if (beta == 0.0) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc[i][0]));
                _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc[i][1]));
            }
        } else {
            const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                double *ci = c + i * ldc;
                _mm512_storeu_pd(ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci),
                                                     _mm512_mul_pd(va, acc[i][0])));
                _mm512_storeu_pd(ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8),
                                                         _mm512_mul_pd(va, acc[i][1])));
            }
        }
    }
}

#undef MR

#define MR 8
/* C[MRx32] := alpha * sum_p a[p, 0:MR]^T b[p, 0:32] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void ukr8_avx512_f32(ptrdiff_t kc, const float *a, const float *b,
                                      ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha,
                                      float beta)
{
    __m512 acc[MR][2];
    const float *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* A streams from L2: fetch it ~16 steps ahead */
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 31 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512 va = _mm512_set1_ps(alpha);
        if (beta == 0.0f) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
                _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                float *ci = c + i * ldc;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci),
                                                     _mm512_mul_ps(va, acc[i][0])));
                _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                          _mm512_mul_ps(va, acc[i][1])));
            }
        }
    }
}

/* C[MRx16] := alpha * sum_p a[p, 0:MR]^T b[p, 0:16] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void ukr8_avx512_f64(ptrdiff_t kc, const double *a, const double *b,
                                      ptrdiff_t ldb, double *c, ptrdiff_t ldc, double alpha,
                                      double beta)
{
    __m512d acc[MR][2];
    const double *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        /* A streams from L2 at 1.5 lines per step: fetch it ~8 steps ahead */
        _mm_prefetch((const char *)(a + 8 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 15 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512d ai = _mm512_set1_pd(a[i]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512d va = _mm512_set1_pd(alpha);
        if (beta == 0.0) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc[i][0]));
                _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc[i][1]));
            }
        } else {
            const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                double *ci = c + i * ldc;
                _mm512_storeu_pd(ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci),
                                                     _mm512_mul_pd(va, acc[i][0])));
                _mm512_storeu_pd(ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8),
                                                         _mm512_mul_pd(va, acc[i][1])));
            }
        }
    }
}

#undef MR


/* Direct tiles for small products: up to 4 rows x 2 zmm, masked column tails. */
#define DT_TARGET FNN_AVX512
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MASK(rem) ((rem) >= 16 ? (__mmask16)0xFFFF : (rem) <= 0 ? (__mmask16)0 \
                                  : (__mmask16)((1u << (rem)) - 1u))
#define V_LOADM(m, p) _mm512_maskz_loadu_ps(m, p)
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define FT float
#define VT __m512
#define MT __mmask16
#define VLEN 16
#define DT(x) x##_avx512_f32
#define V_RELU(z) _mm512_max_ps(_mm512_setzero_ps(), z)
#define V_LEAKY(z, vp)                                                                 \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ),       \
                         _mm512_mul_ps(vp, z), z)
#define V_STEP(z, vp) \
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, vp, _CMP_GE_OQ), _mm512_set1_ps(1.0f))
#include "fnn_dtile_tmpl.h"
#undef V_ZERO
#undef V_SET1
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_MASK
#undef V_LOADM
#undef V_STOREM
#undef V_RELU
#undef V_LEAKY
#undef V_STEP
#undef FT
#undef VT
#undef MT
#undef VLEN
#undef DT

#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_MUL(a, b) _mm512_mul_pd(a, b)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_MASK(rem) ((rem) >= 8 ? (__mmask8)0xFF : (rem) <= 0 ? (__mmask8)0 \
                                 : (__mmask8)((1u << (rem)) - 1u))
#define V_LOADM(m, p) _mm512_maskz_loadu_pd(m, p)
#define V_STOREM(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define FT double
#define VT __m512d
#define MT __mmask8
#define VLEN 8
#define DT(x) x##_avx512_f64
#define V_RELU(z) _mm512_max_pd(_mm512_setzero_pd(), z)
#define V_LEAKY(z, vp)                                                                 \
    _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_GT_OQ),       \
                         _mm512_mul_pd(vp, z), z)
#define V_STEP(z, vp) \
    _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(z, vp, _CMP_GE_OQ), _mm512_set1_pd(1.0))
#include "fnn_dtile_tmpl.h"
#undef V_ZERO
#undef V_SET1
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_MASK
#undef V_LOADM
#undef V_STOREM
#undef V_RELU
#undef V_LEAKY
#undef V_STEP
#undef FT
#undef VT
#undef MT
#undef VLEN
#undef DT
#undef DT_TARGET

/* The epilogue, compiled with this file's vectors (fnn_epi_tmpl.h). */
#define EPI_STORAGE static
#define EPI_TARGET FNN_AVX512
#define FT float
#define FT_EXP expf
#define FT_TANH tanhf
#define EPI_FN epi_avx512_f32
#include "fnn_epi_tmpl.h"
#undef EPI_FN
#undef FT
#undef FT_EXP
#undef FT_TANH
#define FT double
#define FT_EXP exp
#define FT_TANH tanh
#define EPI_FN epi_avx512_f64
#include "fnn_epi_tmpl.h"
#undef EPI_FN
#undef FT
#undef FT_EXP
#undef FT_TANH
#undef EPI_STORAGE
#undef EPI_TARGET

/* Blocking, measured on Sapphire Rapids (48 KiB L1d, 2 MiB L2):
 *  - KC = 256: the kc x NR B sliver is 32 KiB (both types) and stays in L1 across the MC/MR
 *    A slivers that stream past it from L2 (prefetched in the kernel);
 *  - MC = 144: the packed A block (144 KiB float, 288 KiB double) sits in L2;
 *  - NC: the packed B panel is kept near 1 MiB (1024 float / 512 double columns) so it also stays
 *    in L2 -- at 2048^3 double this was worth ~8% over NC = 4080.
 * KC 192/320/384 and MC 96/240/288 were within noise of these. */
const fnn_arch fnn_arch_avx512 = {
    "avx512",
    {MR_S, 32, 144, 256, 1024, ukr_avx512_f32, 32, dtile_avx512_f32, 8, ukr8_avx512_f32,
     epi_avx512_f32, fnn_pack_t_avx2_f32},
    {MR_D, 16, 144, 256, 512, ukr_avx512_f64, 16, dtile_avx512_f64, 8, ukr8_avx512_f64,
     epi_avx512_f64, NULL},
};

#else
typedef int fnn_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
