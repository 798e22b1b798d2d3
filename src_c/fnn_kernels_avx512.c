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
#include <stdint.h>

#include "fnn_gemm_internal.h"

#if FNN_X86
#include <immintrin.h>

#include "fnn_gelu_simd.h"
#include "fnn_softmax16_avx512.h"
#include "fnn_tr16_avx512.h"
#include "fnn_vact_simd.h"

#define FNN_AVX512 __attribute__((target("avx512f,avx2,fma")))

#define MR_S 12
#define MR_D 12

/* The kernels come in two heights: 12 rows (24 accumulators) and 8 rows, used for row counts
 * that are a multiple of 8 but not of 12 (batches of 32 or 64: 12-row tiles would compute 36 or
 * 72 rows). The body is written once (fnn_ukr_avx512_tmpl.h); both heights do the same
 * operations per element in the same order: identical results. */

#define FNN_V16_ACT fnn_vact16_f32
#define FNN_V8_ACT fnn_vact8_f64

#define MR 12
#define UKR_F32 ukr_avx512_f32
#define UKRE_F32 ukre_avx512_f32
#define UKR_F64 ukr_avx512_f64
#define UKRE_F64 ukre_avx512_f64
#include "fnn_ukr_avx512_tmpl.h"
#define MR 8
#define UKR_F32 ukr8_avx512_f32
#define UKRE_F32 ukre8_avx512_f32
#define UKR_F64 ukr8_avx512_f64
#define UKRE_F64 ukre8_avx512_f64
#include "fnn_ukr_avx512_tmpl.h"
#undef FNN_V16_ACT
#undef FNN_V8_ACT


/* Direct tiles for small products: up to 8 rows x 2 zmm, masked column tails. */
#define DT_TARGET FNN_AVX512
#define DT_MAXMB 8
#define GV_MAXNV 8 /* gemv blocks of 8 vectors */
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MASK(rem) ((rem) >= 16 ? (__mmask16)0xFFFF : (rem) <= 0 ? (__mmask16)0 \
                                  : (__mmask16)((1u << (rem)) - 1u))
#define V_LOADM(m, p) _mm512_maskz_loadu_ps(m, p)
#define V_STOREP(p, rem, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define FT float
#define VT __m512
#define MT __mmask16
#define VLEN 16
#define DT(x) x##_avx512_f32
#define UT uint32_t
#define AT __m512i
#define V_AMAX_ZERO() _mm512_setzero_si512()
#define V_AMAX(am, z, m) _mm512_mask_max_epu32(am, m, am, _mm512_and_si512(_mm512_castps_si512(z), \
                                                       _mm512_set1_epi32(0x7fffffff)))
#define V_AMAX_ALL(am, z) _mm512_max_epu32(am, _mm512_and_si512(_mm512_castps_si512(z), \
                                              _mm512_set1_epi32(0x7fffffff)))
#define V_AMAX_REDUCE(am) ((uint32_t)_mm512_reduce_max_epu32(am))
#define V_HSUM(v) _mm512_reduce_add_ps(v) /* a fixed tree of halvings */
#define V_RELU(z) fnn_vact16_f32(z, FNN_ACT_RELU, z)
#define V_LEAKY(z, vp) fnn_vact16_f32(z, FNN_ACT_LEAKY_RELU, vp)
#define V_STEP(z, vp) fnn_vact16_f32(z, FNN_ACT_STEP, vp)
#include "fnn_dtile_tmpl.h"

#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_MUL(a, b) _mm512_mul_pd(a, b)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_MASK(rem) ((rem) >= 8 ? (__mmask8)0xFF : (rem) <= 0 ? (__mmask8)0 \
                                 : (__mmask8)((1u << (rem)) - 1u))
#define V_LOADM(m, p) _mm512_maskz_loadu_pd(m, p)
#define V_STOREP(p, rem, m, v) _mm512_mask_storeu_pd(p, m, v)
#define V_LOADU(p) _mm512_loadu_pd(p)
#define V_STOREU(p, v) _mm512_storeu_pd(p, v)
#define FT double
#define VT __m512d
#define MT __mmask8
#define VLEN 8
#define DT(x) x##_avx512_f64
#define UT uint64_t
#define AT __m512i
#define V_AMAX_ZERO() _mm512_setzero_si512()
#define V_AMAX(am, z, m) _mm512_mask_max_epu64(am, m, am, _mm512_and_si512(_mm512_castpd_si512(z), \
                                        _mm512_set1_epi64(INT64_C(0x7fffffffffffffff))))
#define V_AMAX_ALL(am, z) _mm512_max_epu64(am, _mm512_and_si512(_mm512_castpd_si512(z), \
                                   _mm512_set1_epi64(INT64_C(0x7fffffffffffffff))))
#define V_AMAX_REDUCE(am) ((uint64_t)_mm512_reduce_max_epu64(am))
#define V_HSUM(v) _mm512_reduce_add_pd(v)
#define V_RELU(z) fnn_vact8_f64(z, FNN_ACT_RELU, z)
#define V_LEAKY(z, vp) fnn_vact8_f64(z, FNN_ACT_LEAKY_RELU, vp)
#define V_STEP(z, vp) fnn_vact8_f64(z, FNN_ACT_STEP, vp)
#include "fnn_dtile_tmpl.h"
#undef DT_TARGET
#undef DT_MAXMB
#undef GV_MAXNV

/* A 16 x kq block (kq <= 16) transposed: dst[q*r + i] = src[i*ld + q] for i < 16, q < kq;
 * nothing past column kq is read or row kq written. */
FNN_AVX512 static inline __attribute__((always_inline)) void
tr16xk_f32(const float *src, ptrdiff_t ld, float *dst, ptrdiff_t r, int kq)
{
    const __mmask16 mk = (__mmask16)(kq >= 16 ? 0xFFFFu : (1u << kq) - 1u);
    __m512 a[16];
    int i;
#pragma GCC unroll 16
    for (i = 0; i < 16; i++) a[i] = _mm512_maskz_loadu_ps(mk, src + i * ld);
    fnn_tr16_f32(a);
#pragma GCC unroll 16
    for (i = 0; i < 16; i++)
        if (i < kq) _mm512_storeu_ps(dst + i * r, a[i]);
}

/* The transposed store of a narrow product (fnn_gemm_internal.h): 16 columns of T at a time
 * transposed in registers, so each row of C is one masked vector that gets the bias, the
 * activation and the |C| maximum before its store. The same operations as the direct tile's
 * epilogue. */
FNN_AVX512 static void tstore_avx512_f32(const float *T, ptrdiff_t ldt, ptrdiff_t n, ptrdiff_t m,
                                         float *C, ptrdiff_t ldc, const float *bias, int act,
                                         float param, uint32_t *amax)
{
    const __mmask16 mn = (__mmask16)((1u << n) - 1u); /* n < 16 */
    const __m512 vb = bias ? _mm512_maskz_loadu_ps(mn, bias) : _mm512_setzero_ps();
    const __m512 vp = _mm512_set1_ps(param);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    __m512i mx = _mm512_setzero_si512();
    ptrdiff_t j0;
    int i;
    for (j0 = 0; j0 < m; j0 += 16) {
        const int cols = (m - j0 < 16) ? (int)(m - j0) : 16;
        const __mmask16 mc = (__mmask16)(cols >= 16 ? 0xFFFFu : (1u << cols) - 1u);
        __m512 a[16];
#pragma GCC unroll 16
        for (i = 0; i < 16; i++)
            a[i] = (i < n) ? _mm512_maskz_loadu_ps(mc, T + i * ldt + j0) : _mm512_setzero_ps();
        if (act == FNN_ACT_SOFTMAX) { /* across the n rows of T: the lanes are C's rows */
            if (bias)
                for (i = 0; i < n; i++) a[i] = _mm512_add_ps(a[i], _mm512_set1_ps(bias[i]));
            fnn_softmax_lanes16_f32(a, (int)n);
        }
        fnn_tr16_f32(a); /* a[j]: row j0 + j of C */
#pragma GCC unroll 16
        for (i = 0; i < 16; i++) {
            if (i < cols) {
                __m512 z = a[i];
                if (act != FNN_ACT_SOFTMAX) {
                    if (bias) z = _mm512_add_ps(z, vb);
                    z = fnn_vact16_f32(z, act, vp);
                }
                if (amax)
                    mx = _mm512_mask_max_epu32(mx, mn, mx,
                                               _mm512_and_si512(_mm512_castps_si512(z), absm));
                _mm512_mask_storeu_ps(C + (j0 + i) * ldc, mn, z);
            }
        }
    }
    if (amax) {
        const uint32_t u = (uint32_t)_mm512_reduce_max_epu32(mx);
        if (u > *amax) *amax = u;
    }
}

/* The transposing sliver pack (fnn_gemm_internal.h): 16 x 16 blocks for slivers at least 16
 * wide (the B slivers of transposed weights), the AVX2 8 x 8 pack for narrower ones (the A
 * slivers). A copy either way: the same result as the portable pack. */
FNN_AVX512 static void fnn_pack_t_avx512_f32(int r, ptrdiff_t cnt, ptrdiff_t kc,
                                             const float *src, ptrdiff_t ld, float *dst)
{
    ptrdiff_t i0, p;
    if (r < 16) {
        fnn_pack_t_avx2_f32(r, cnt, kc, src, ld, dst);
        return;
    }
    for (i0 = 0; i0 + 16 <= cnt; i0 += 16) {
        const float *s = src + i0 * ld;
        float *d = dst + i0;
        for (p = 0; p + 16 <= kc; p += 16) tr16xk_f32(s + p, ld, d + p * r, r, 16);
        if (p < kc) tr16xk_f32(s + p, ld, d + p * r, r, (int)(kc - p));
    }
    fnn_pack_t_rest_f32(r, i0, cnt, kc, src, ld, dst); /* fewer than 16 rows left */
}

/* One row's share of the untransposed pack: `full` slivers of R values each, from x to y with
 * sliver stride `step`, then a partial sliver of `rem` values zero-padded to R. R is a
 * compile-time constant in the instantiations below (the kernels' MR and NR). */
FNN_AVX512 static inline __attribute__((always_inline)) void
pack_n_row_avx512_f32(const int R, ptrdiff_t full, ptrdiff_t rem, ptrdiff_t step, const float *x,
                      float *y)
{
    const __mmask16 mt = (__mmask16)((1u << (R % 16)) - 1u);
    ptrdiff_t s;
    int i;
    for (s = 0; s < full; s++, x += R, y += step) {
        for (i = 0; i + 16 <= R; i += 16) _mm512_storeu_ps(y + i, _mm512_loadu_ps(x + i));
        if (R % 16) _mm512_mask_storeu_ps(y + i, mt, _mm512_maskz_loadu_ps(mt, x + i));
    }
    if (rem) /* rem < R values, then zeros up to R */
        for (i = 0; i < R; i += 16) {
            const int have = (rem - i > 16) ? 16 : (rem - i < 0) ? 0 : (int)(rem - i);
            const int width = (R - i > 16) ? 16 : R - i;
            _mm512_mask_storeu_ps(y + i, (__mmask16)((1u << width) - 1u),
                                  _mm512_maskz_loadu_ps((__mmask16)((1u << have) - 1u), x + i));
        }
}

/* The untransposed sliver pack (fnn_gemm_internal.h; the weights of a forward product, the
 * inputs of a weight gradient): each row of the panel copied a vector at a time, masked for a
 * sliver's partial vector and the last sliver's padding. The compiler's code for the portable
 * pack moves 16 bytes at a time, and 12-wide slivers one value at a time. */
FNN_AVX512 static void fnn_pack_n_avx512_f32(int r, ptrdiff_t len, ptrdiff_t kc,
                                             const float *src, ptrdiff_t ld, float *dst)
{
    const ptrdiff_t full = len / r, rem = len % r, step = (ptrdiff_t)r * kc;
    ptrdiff_t p;
    for (p = 0; p < kc; p++) {
        const float *x = src + p * ld;
        float *y = dst + p * r;
        switch (r) {
        case 8: pack_n_row_avx512_f32(8, full, rem, step, x, y); break;
        case 12: pack_n_row_avx512_f32(12, full, rem, step, x, y); break;
        case 32: pack_n_row_avx512_f32(32, full, rem, step, x, y); break;
        default: pack_n_row_avx512_f32(r, full, rem, step, x, y); break;
        }
    }
}

/* The epilogue, compiled with this file's vectors. */
#define EPI_TARGET FNN_AVX512
#define EPI_F32 epi_avx512_f32
#define EPI_F64 epi_avx512_f64
#define EPI_GELU_BLOCK_F32 fnn_gelu_fwd_block16
#include "fnn_epi_flavour.h"

/* Blocking, measured on Sapphire Rapids (48 KiB L1d, 2 MiB L2):
 *  - KC = 256: the kc x NR B sliver is 32 KiB (both types) and stays in L1 across the MC/MR
 *    A slivers that stream past it from L2 (prefetched in the kernel);
 *  - MC = 144: the packed A block (144 KiB float, 288 KiB double) sits in L2;
 *  - NC: the packed B panel is kept near 1 MiB (1024 float / 512 double columns) so it also stays
 *    in L2 -- at 2048^3 double this was worth ~8% over NC = 4080.
 * KC 192/320/384 and MC 96/240/288 were within noise of these. */
const fnn_arch fnn_arch_avx512 = {
    "avx512",
    {MR_S, 32, 144, 256, 1024, ukr_avx512_f32, 32, 8, dtile_avx512_f32, 8, ukr8_avx512_f32,
     epi_avx512_f32, fnn_pack_t_avx512_f32, ukre_avx512_f32, ukre8_avx512_f32,
     tstore_avx512_f32, fnn_pack_n_avx512_f32, 0, gemv_avx512_f32, 128, dots_avx512_f32},
    {MR_D, 16, 144, 256, 512, ukr_avx512_f64, 16, 8, dtile_avx512_f64, 8, ukr8_avx512_f64,
     epi_avx512_f64, fnn_pack_t_f64, ukre_avx512_f64, ukre8_avx512_f64, NULL, NULL, 0,
     gemv_avx512_f64, 64, dots_avx512_f64},
};

#else
typedef int fnn_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
