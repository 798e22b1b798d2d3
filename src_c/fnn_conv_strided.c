/*
 * fastnn's stride-1 convolution (see fnn_conv_strided.h): the micro-kernels of
 * fnn_conv_strided_tmpl.h for each flavour and type, the tasks, and the driver of
 * fnn_conv_strided_drv.h for float and double.
 */
#if !defined(_POSIX_C_SOURCE) && (defined(__unix__) || defined(__APPLE__))
#define _POSIX_C_SOURCE 200809L /* posix_memalign under -std=c99 */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fnn_conv_strided.h"
#include "fnn_ftz.h"
#include "fnn_gemm.h"
#include "fnn_gemm_internal.h"
#include "fnn_threads.h"

#if FNN_X86
#include <immintrin.h>

#include "fnn_vact_simd.h"

/* ---------------------------------------------------------------- the kernels per flavour */

/* AVX2: 6 rows x 2 vectors (12 accumulators + 2 of B + a broadcast in 16 registers); the
 * narrow twins (_n_) 12 rows x 1 vector, for at most a vector of filters (with 6 rows, 6 chains
 * of FMAs did not cover the FMA latency of 2 pipes, and 7 loads fed 6 FMAs: LeNet-5's conv2 dx
 * ran at half the FMA peak on Zen 2) */
#define ST_TARGET __attribute__((target("avx2,fma")))
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_ACT(z, act, vp) fnn_vact8_f32(z, act, vp)
#define FT float
#define VT __m256
#define VLEN 8
#define SK_NV 2
#define SK_MAXMR 6
#define SK(name) sk_##name##_avx2_f32
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_ACT(z, act, vp) fnn_vact8_f32(z, act, vp)
#define FT float
#define VT __m256
#define VLEN 8
#define SK_NV 1
#define SK_MAXMR 12
#define SK(name) sk_##name##_n_avx2_f32
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_LOADU(p) _mm256_loadu_pd(p)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_STOREU(p, v) _mm256_storeu_pd(p, v)
#define V_ACT(z, act, vp) fnn_vact4_f64(z, act, vp)
#define FT double
#define VT __m256d
#define VLEN 4
#define SK_NV 2
#define SK_MAXMR 6
#define SK(name) sk_##name##_avx2_f64
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_LOADU(p) _mm256_loadu_pd(p)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_STOREU(p, v) _mm256_storeu_pd(p, v)
#define V_ACT(z, act, vp) fnn_vact4_f64(z, act, vp)
#define FT double
#define VT __m256d
#define VLEN 4
#define SK_NV 1
#define SK_MAXMR 12
#define SK(name) sk_##name##_n_avx2_f64
#include "fnn_conv_strided_tmpl.h"
#undef ST_TARGET

/* AVX-512: 12 rows x 2 vectors (24 accumulators, as the GEMM's kernel); the narrow twins 12 x 1 */
#define ST_TARGET __attribute__((target("avx512f,avx2,fma")))
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_ACT(z, act, vp) fnn_vact16_f32(z, act, vp)
#define FT float
#define VT __m512
#define VLEN 16
#define SK_NV 2
#define SK_MAXMR 12
#define SK(name) sk_##name##_avx512_f32
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_ACT(z, act, vp) fnn_vact16_f32(z, act, vp)
#define FT float
#define VT __m512
#define VLEN 16
#define SK_NV 1
#define SK_MAXMR 12
#define SK(name) sk_##name##_n_avx512_f32
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_LOADU(p) _mm512_loadu_pd(p)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_STOREU(p, v) _mm512_storeu_pd(p, v)
#define V_ACT(z, act, vp) fnn_vact8_f64(z, act, vp)
#define FT double
#define VT __m512d
#define VLEN 8
#define SK_NV 2
#define SK_MAXMR 12
#define SK(name) sk_##name##_avx512_f64
#include "fnn_conv_strided_tmpl.h"
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_LOADU(p) _mm512_loadu_pd(p)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_STOREU(p, v) _mm512_storeu_pd(p, v)
#define V_ACT(z, act, vp) fnn_vact8_f64(z, act, vp)
#define FT double
#define VT __m512d
#define VLEN 8
#define SK_NV 1
#define SK_MAXMR 12
#define SK(name) sk_##name##_n_avx512_f64
#include "fnn_conv_strided_tmpl.h"
#undef ST_TARGET

/* ---------------------------------------------------------------- the flavour in use */

typedef void (*sk_f32)(ptrdiff_t, const float *, ptrdiff_t,
                       const float *, float *, ptrdiff_t, int, int, const float *, int, float);
typedef void (*sk_f64)(ptrdiff_t, const double *, ptrdiff_t,
                       const double *, double *, ptrdiff_t, int, int, const double *, int,
                       double);
/* rows of the tall and the short kernel, columns of both */
typedef struct { ptrdiff_t mr, mr2, nr; sk_f32 tall, shrt; } sk_flav_f32;
typedef struct { ptrdiff_t mr, mr2, nr; sk_f64 tall, shrt; } sk_flav_f64;

/* The AVX-512 kernels, else the AVX2 ones (the generic flavour never comes here), for f
 * filters: the narrow twins when one vector holds them all. */
static sk_flav_f32 sk_flavour_f32(ptrdiff_t f)
{
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        const sk_flav_f32 w = {12, 8, 32, sk_tall_avx512_f32, sk_short_avx512_f32};
        const sk_flav_f32 n = {12, 8, 16, sk_tall_n_avx512_f32, sk_short_n_avx512_f32};
        return f <= 16 ? n : w;
    } else {
        const sk_flav_f32 w = {6, 4, 16, sk_tall_avx2_f32, sk_short_avx2_f32};
        const sk_flav_f32 n = {12, 8, 8, sk_tall_n_avx2_f32, sk_short_n_avx2_f32};
        return f <= 8 ? n : w;
    }
}

static sk_flav_f64 sk_flavour_f64(ptrdiff_t f)
{
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {
        const sk_flav_f64 w = {12, 8, 16, sk_tall_avx512_f64, sk_short_avx512_f64};
        const sk_flav_f64 n = {12, 8, 8, sk_tall_n_avx512_f64, sk_short_n_avx512_f64};
        return f <= 8 ? n : w;
    } else {
        const sk_flav_f64 w = {6, 4, 8, sk_tall_avx2_f64, sk_short_avx2_f64};
        const sk_flav_f64 n = {12, 8, 4, sk_tall_n_avx2_f64, sk_short_n_avx2_f64};
        return f <= 4 ? n : w;
    }
}

/* ---------------------------------------------------------------- tasks */

/* Output positions per task: about this many (whole output rows of one image). */
#define SK_TASK_POSITIONS 256
/* Steps of k per block at most: the block's B rows (kc x nr, 32 KiB for the AVX-512 float
 * kernel) stay in L1 while every tile of the task streams past them, as in the GEMM. */
#define SK_KC 256
/* A serial call's stack buffer (the packed kernel and the task's buffers, when they fit). */
#define SK_STACK_BYTES 32768

typedef struct {
    ptrdiff_t per, cpi, tasks; /* output rows per task, tasks per image, all tasks */
    ptrdiff_t rs;              /* positions per padded buffer row: the padded width + mr slack */
    size_t buf_elems;          /* the padded rows of one task */
    ptrdiff_t ntl, ntall;      /* tiles per output row, the first ntall of them tall */
    size_t tile_elems;         /* the scratch of a task's partial tiles (ntl per output row) */
    ptrdiff_t ns;              /* slivers of filters */
    ptrdiff_t nblk;            /* blocks of k: block j is pieces [pb[j], pb[j+1]), from step kb[j] */
    ptrdiff_t *pb, *kb;
    ptrdiff_t *off, *len;      /* piece q: len[q] steps from a[off[q] + ...] */
    ptrdiff_t *ky;             /* piece q's kernel row */
    int skip_pad;              /* 1: pieces whose kernel row reads a padding row are skipped */
    ptrdiff_t inl[64];         /* pb..ky when they fit (else allocated: sk_free_shape) */
} sk_shape;

/* The tiles of an output row: as few rows computed past ow as the two heights allow, ties to
 * more tall tiles (with mr = 12, mr2 = 8: ow = 32 as 12 + 12 + 8, ow = 16 as 8 + 8, not as
 * 12 + 8 with 4 rows thrown away). Returns the number of tall tiles (they come first), the
 * number of short ones at *nshort. Fewer than ow + mr2 rows in all (all short tiles would be). */
static ptrdiff_t sk_plan_row(ptrdiff_t ow, ptrdiff_t mr, ptrdiff_t mr2, ptrdiff_t *nshort)
{
    ptrdiff_t best_a = 0, best_b = (ow + mr2 - 1) / mr2, best = best_b * mr2, a;
    for (a = 1; a <= (ow + mr - 1) / mr; a++) {
        const ptrdiff_t left = ow - a * mr > 0 ? ow - a * mr : 0;
        const ptrdiff_t b = (left + mr2 - 1) / mr2, rows = a * mr + b * mr2;
        if (rows <= best) { best = rows; best_a = a; best_b = b; }
    }
    *nshort = best_b;
    return best_a;
}

/* The tasks, tiles and blocks of g (pb, kb, off, len, ky in one array at pb: sh->inl or an
 * allocation, released by sk_free_shape); 0 when it could not be allocated. */
static int sk_make_shape(const fnn_conv_geom *g, ptrdiff_t mr, ptrdiff_t mr2, ptrdiff_t nr,
                         sk_shape *sh)
{
    /* segments: a kernel row's taps (one run of kw*c values when dw = 1), or one tap */
    const ptrdiff_t nseg = g->dw == 1 ? g->kh : g->kh * g->kw;
    const ptrdiff_t slen = g->dw == 1 ? g->kw * g->c : g->c, K = nseg * slen;
    ptrdiff_t nshort, j, q, kc;
    sh->per = SK_TASK_POSITIONS / g->ow;
    if (sh->per < 1) sh->per = 1;
    if (sh->per > g->oh) sh->per = g->oh;
    sh->cpi = (g->oh + sh->per - 1) / sh->per;
    sh->tasks = g->n * sh->cpi;
    sh->rs = g->ow + (g->kw - 1) * g->dw + mr;
    sh->buf_elems = (size_t)((sh->per - 1 + (g->kh - 1) * g->dh + 1) * sh->rs * g->c);
    sh->ntall = sk_plan_row(g->ow, mr, mr2, &nshort);
    sh->ntl = sh->ntall + nshort;
    sh->tile_elems = (size_t)(sh->per * sh->ntl * mr * nr);
    sh->ns = (g->f + nr - 1) / nr;
    /* blocks of near-equal length (no short last block) */
    sh->nblk = (K + SK_KC - 1) / SK_KC;
    kc = (K + sh->nblk - 1) / sh->nblk;
    {
        const size_t cnt = (size_t)(2 * (sh->nblk + 1) + 3 * (nseg + sh->nblk));
        sh->pb = cnt <= sizeof sh->inl / sizeof sh->inl[0]
                     ? sh->inl : (ptrdiff_t *)malloc(cnt * sizeof(ptrdiff_t));
    }
    if (!sh->pb) return 0;
    sh->kb = sh->pb + sh->nblk + 1;
    sh->off = sh->kb + sh->nblk + 1;
    sh->len = sh->off + nseg + sh->nblk;
    sh->ky = sh->len + nseg + sh->nblk;
    sh->skip_pad = 0;
    for (j = 0, q = 0; j < sh->nblk; j++) {
        const ptrdiff_t k0 = j * kc, k1 = (k0 + kc < K) ? k0 + kc : K;
        ptrdiff_t k = k0;
        sh->pb[j] = q;
        sh->kb[j] = k0;
        while (k < k1) { /* the piece of segment k / slen in this block */
            const ptrdiff_t sg = k / slen, p0 = k - sg * slen;
            const ptrdiff_t end = ((sg + 1) * slen < k1) ? (sg + 1) * slen : k1;
            const ptrdiff_t ky = g->dw == 1 ? sg : sg / g->kw, kx = g->dw == 1 ? 0 : sg % g->kw;
            sh->off[q] = (ky * g->dh * sh->rs + kx * g->dw) * g->c + p0;
            sh->len[q] = end - k;
            sh->ky[q] = ky;
            q++;
            k = end;
        }
    }
    sh->pb[sh->nblk] = q;
    sh->kb[sh->nblk] = K;
    return 1;
}

static void sk_free_shape(sk_shape *sh)
{
    if (sh->pb != sh->inl) free(sh->pb);
}

/* Threads for the tasks: 1 below the GEMM's floor for threads, else all allowed. */
static int sk_threads(const fnn_conv_geom *g, ptrdiff_t tasks)
{
    const double work = (double)(g->n * g->oh * g->ow) * (double)(g->kh * g->kw * g->c) *
                        (double)g->f;
    int nt = fnn_max_threads();
    if (tasks < 2 || work < fnn_par_min_work()) return 1;
    if (nt > tasks) nt = (int)tasks;
    return nt < 1 ? 1 : nt;
}

int fnn_conv_strided_use(const fnn_conv_geom *g)
{
    ptrdiff_t mr, mr2, nr, nshort, ntall;
    /* the generic flavour: plain C kernels (scalar, or GCC's 4-lane vectors) ran 2-3x slower
     * than its GEMM path, so it keeps that */
    if (fnn_active_flavour() == FNN_FLAVOUR_GENERIC) return 0;
    /* measured with AVX-512 at 1 thread against the GEMM path (32x32 images, 3x3 and 5x5,
     * batches 1 and 32): 1.3-1.9x from 8 channels in and 32 filters out; 16 -> 16 filters ran
     * 0.9x with 32-wide slivers (half of each zero), and 1.35x (forward; 1.7x its input
     * gradient) with the narrow kernels, which take 9 to 16 filters: 8 -> 16 1.6x, 16 -> 12
     * 1.4x, LeNet-5's 6 -> 16 (5x5 on 14x14) 1.1x; 8 -> 8 ran 0.95x. Inputs of up to 4 channels
     * go to the direct path before this one. */
    if (g->sh != 1 || g->sw != 1 || g->c < 5) return 0;
    { const sk_flav_f32 fl = sk_flavour_f32(g->f); mr = fl.mr; mr2 = fl.mr2; nr = fl.nr; }
    if (g->f >= 32 ? g->c < 8 : !(2 * g->f > nr && g->f <= nr)) return 0;
    ntall = sk_plan_row(g->ow, mr, mr2, &nshort);
    /* rows computed per output row: at most 4/3 of ow (ow = 6 in 8 rows still ran 1.16x,
     * ow = 4 in 8 rows 0.46x) */
    return 3 * (ntall * mr + nshort * mr2) <= 4 * g->ow;
}

/* The forward convolution whose output is dx (see fnn_conv_strided_dx): dz as its input. */
static void sk_dx_geom(const fnn_conv_geom *g, fnn_conv_geom *t)
{
    *t = *g;
    t->h = g->oh; t->w = g->ow; t->c = g->f; t->f = g->c;
    t->pt = (g->kh - 1) * g->dh - g->pt;
    t->pl = (g->kw - 1) * g->dw - g->pl;
    t->oh = g->h; t->ow = g->w;
}

int fnn_conv_strided_dx_use(const fnn_conv_geom *g)
{
    fnn_conv_geom t;
    if (g->sh != 1 || g->sw != 1) return 0;
    sk_dx_geom(g, &t);
    /* padding wider than the kernel's span (a negative padding here) stays on the GEMM path */
    if (t.pt < 0 || t.pl < 0 || !fnn_conv_strided_use(&t)) return 0;
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {
        /* the padding rows are skipped (row_pieces), the padding columns multiplied: the
         * (position, tap) pairs of a dx row that read dz's columns, against all of them. AVX2
         * on Zen 2, 1 thread, whole backward, strided / GEMM path: 'same' convolutions (0.93
         * and more of the pairs) 0.69-0.80x the time, 'valid' ones (0.71: LeNet-5's 5x5 6 -> 16
         * on 14x14; 0.8: 3x3 5 -> 16 on 10x10) 1.08-1.2x: those keep the GEMM path. */
        ptrdiff_t kx, inside = 0;
        for (kx = 0; kx < t.kw; kx++) {
            /* dx column ix reads dz column ix - t.pl + kx*dw, inside when in [0, t.w) */
            ptrdiff_t lo = t.pl - kx * t.dw, hi = lo + t.w;
            lo = lo < 0 ? 0 : lo;
            hi = hi > t.ow ? t.ow : hi;
            inside += hi > lo ? hi - lo : 0;
        }
        if (20 * inside < 17 * t.ow * t.kw) return 0; /* below 0.85 */
    }
    return 1;
}

/* ---------------------------------------------------------------- the drivers */

#define FT float
#define SFN(name) name##_f32
#define SK_FLAV sk_flav_f32
#define SK_FLAVOUR sk_flavour_f32
#define GEMM fnn_sgemm
#define EPI_T fnn_epilogue_f32
#include "fnn_conv_strided_drv.h"
#undef FT
#undef SFN
#undef SK_FLAV
#undef SK_FLAVOUR
#undef GEMM
#undef EPI_T

#define FT double
#define SFN(name) name##_f64
#define SK_FLAV sk_flav_f64
#define SK_FLAVOUR sk_flavour_f64
#define GEMM fnn_dgemm
#define EPI_T fnn_epilogue_f64
#include "fnn_conv_strided_drv.h"
#undef FT
#undef SFN
#undef SK_FLAV
#undef SK_FLAVOUR
#undef GEMM
#undef EPI_T

#else
typedef int fnn_conv_strided_unused; /* ISO C forbids an empty translation unit */
#endif
