/*
 * The filter-vectorised kernel gradient (fnn_conv_wgrad_tmpl.h) for AVX-512 and AVX2+FMA, float
 * and double, and the pick of the flavour (the GEMM's, so FASTNN_KERNEL applies; the generic
 * flavour has none and keeps the GEMM path). Included once, by fnn_conv.c, after the x86
 * intrinsics.
 */
#if FNN_CONV_X86
#define WTARGET __attribute__((target("avx512f,avx2,fma")))
#define FT float
#define VT __m512
#define VW 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define WFN(name) wgrad_##name##_avx512_f32
#include "fnn_conv_wgrad_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef WFN
#define FT double
#define VT __m512d
#define VW 8
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSET1(x) _mm512_set1_pd(x)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define WFN(name) wgrad_##name##_avx512_f64
#include "fnn_conv_wgrad_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef WFN
#undef WTARGET

#define WTARGET __attribute__((target("avx2,fma")))
#define FT float
#define VT __m256
#define VW 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define WFN(name) wgrad_##name##_avx2_f32
#include "fnn_conv_wgrad_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef WFN
#define FT double
#define VT __m256d
#define VW 4
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSET1(x) _mm256_set1_pd(x)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define WFN(name) wgrad_##name##_avx2_f64
#include "fnn_conv_wgrad_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef WFN
#undef WTARGET
#endif

typedef void (*fnn_wgrad_block_f32)(int, ptrdiff_t, const unsigned char *, ptrdiff_t, ptrdiff_t,
                                    const float *, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t,
                                    ptrdiff_t, float *);
typedef void (*fnn_wgrad_block_f64)(int, ptrdiff_t, const unsigned char *, ptrdiff_t, ptrdiff_t,
                                    const double *, ptrdiff_t, const double *, ptrdiff_t,
                                    ptrdiff_t, ptrdiff_t, double *);
/* vector width (0: no filter-vectorised path in this flavour) and the block kernel */
typedef struct { int vw; fnn_wgrad_block_f32 block; } fnn_wgrad_f32;
typedef struct { int vw; fnn_wgrad_block_f64 block; } fnn_wgrad_f64;

static fnn_wgrad_f32 fnn_wgrad_flavour_f32(void)
{
    fnn_wgrad_f32 w = {0, NULL};
#if FNN_CONV_X86
    const int flavour = fnn_active_flavour();
    if (flavour == FNN_FLAVOUR_AVX512) { w.vw = 16; w.block = wgrad_block_avx512_f32; }
    else if (flavour == FNN_FLAVOUR_AVX2) { w.vw = 8; w.block = wgrad_block_avx2_f32; }
#endif
    return w;
}

static fnn_wgrad_f64 fnn_wgrad_flavour_f64(void)
{
    fnn_wgrad_f64 w = {0, NULL};
#if FNN_CONV_X86
    const int flavour = fnn_active_flavour();
    if (flavour == FNN_FLAVOUR_AVX512) { w.vw = 8; w.block = wgrad_block_avx512_f64; }
    else if (flavour == FNN_FLAVOUR_AVX2) { w.vw = 4; w.block = wgrad_block_avx2_f64; }
#endif
    return w;
}
