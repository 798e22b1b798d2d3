/*
 * fastnn convolution (see fnn_conv.h): the plan of chunks, groups and tasks, then the driver of
 * fnn_conv_tmpl.h for float and double.
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

#include "fnn_conv.h"
#include "fnn_conv_strided.h"
#include "fnn_conv_wino.h"
#include "fnn_ftz.h"
#include "fnn_gemm.h"
#include "fnn_gemm_internal.h"
#include "fnn_threads.h"

#define FNN_ALIGN_CONV 64
/* A GEMM floor no product reaches: the chunks' products run on their own thread. */
#define FNN_CONV_SERIAL (1e300)
/* Rows of a chunk: at most this many (and a multiple of 16 below it). */
#define FNN_CONV_MAX_ROWS 256
/* The direct path takes inputs of at most this many channels. */
#define FNN_CONV_DIRECT_MAX_C 4

/* The direct path's filter groups: the width of the row kernel (4, 6, 8 or 16 accumulators per
 * block of positions, at most maxfg) that takes the next `left` filters. 6 only where maxfg is
 * 8 (AVX2's 16 registers): 12 accumulators for 2 blocks at once, where 8 filters fit 1 block. */
static inline int fnn_direct_fgn(ptrdiff_t left, int maxfg)
{
    if (left <= 4) return 4;
    if (left <= 6 && maxfg == 8) return 6;
    return (left <= 8 || maxfg == 8) ? 8 : 16;
}

typedef struct {
    ptrdiff_t P, M, K;       /* positions per image, all positions, patch length */
    ptrdiff_t chunk_rows;    /* rows of the largest chunk (its buffer) */
    int per_image;           /* 1: images split in cpi chunks; 0: chunks of ipc whole images */
    ptrdiff_t cpi, ipc, rows_each;
    ptrdiff_t nchunks, groups, tasks;
    int direct;              /* 1x1, unit strides, no padding: x is the patch matrix */
    double work;             /* multiply-adds of the forward product */
} fnn_conv_plan;

/* The kernel gradient's chunks (fnn_conv2d_backward's group path): dkernel += P_chunk^T dz_chunk
 * is a product of depth k = the chunk's rows that reads and writes the whole K x f partial, so
 * the forward's chunks (as few as 16-64 rows when K is large) leave it bound by that traffic.
 * Its chunks hold up to 4x the values and 1024 rows. */
#define FNN_CONV_WGRAD_ELEMS (4 * FNN_CONV_CHUNK_ELEMS)
#define FNN_CONV_WGRAD_MAX_ROWS 1024
/* ... where the partial has this many values or more (512 KiB in float32, a Zen 3 core's L2):
 * smaller ones stay in cache, and there the forward's chunks measured as fast or faster. */
#define FNN_CONV_WGRAD_DEEP_FROM 131072

/* The chunks of a call: at most `elems` values (and max_rows rows) of patches each. */
static void fnn_conv_make_plan_sized(const fnn_conv_geom *g, fnn_conv_plan *pl, ptrdiff_t elems,
                                     ptrdiff_t max_rows)
{
    ptrdiff_t R;
    memset(pl, 0, sizeof *pl);
    pl->P = g->oh * g->ow;
    pl->M = g->n * pl->P;
    pl->K = g->kh * g->kw * g->c;
    pl->work = (double)pl->M * (double)pl->K * (double)g->f;
    pl->direct = (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 &&
                  g->pl == 0 && g->oh == g->h && g->ow == g->w);
    R = elems / pl->K / 16 * 16;
    if (R < 16) R = 16;
    if (R > max_rows) R = max_rows;
    if (pl->P >= R) { /* each image in cpi near-equal chunks */
        pl->per_image = 1;
        pl->cpi = (pl->P + R - 1) / R;
        pl->rows_each = (pl->P + pl->cpi - 1) / pl->cpi;
        pl->nchunks = g->n * pl->cpi;
        pl->chunk_rows = pl->rows_each;
        pl->tasks = g->n;
    } else {          /* chunks of whole images, as even as the count allows */
        ptrdiff_t ipc = R / pl->P, nch = (g->n + ipc - 1) / ipc;
        if (nch < 1) nch = 1;
        pl->ipc = (g->n + nch - 1) / nch;
        if (pl->ipc < 1) pl->ipc = 1;
        pl->nchunks = (g->n + pl->ipc - 1) / pl->ipc;
        pl->chunk_rows = pl->ipc * pl->P;
        pl->tasks = pl->nchunks;
    }
    pl->groups = pl->nchunks < FNN_CONV_GROUPS ? pl->nchunks : FNN_CONV_GROUPS;
}

static void fnn_conv_make_plan(const fnn_conv_geom *g, fnn_conv_plan *pl)
{
    fnn_conv_make_plan_sized(g, pl, FNN_CONV_CHUNK_ELEMS, FNN_CONV_MAX_ROWS);
}

/* Chunk j's first row and number of rows. */
static void fnn_conv_chunk(const fnn_conv_plan *pl, ptrdiff_t j, ptrdiff_t *row0, ptrdiff_t *rows)
{
    if (pl->per_image) {
        const ptrdiff_t img = j / pl->cpi, part = j % pl->cpi;
        const ptrdiff_t start = part * pl->rows_each;
        *row0 = img * pl->P + start;
        *rows = (pl->P - start < pl->rows_each) ? pl->P - start : pl->rows_each;
    } else {
        const ptrdiff_t img0 = j * pl->ipc, n = pl->M / pl->P;
        *row0 = img0 * pl->P;
        *rows = ((n - img0 < pl->ipc) ? n - img0 : pl->ipc) * pl->P;
    }
}

/* Threads for `items` independent pieces of the call: 1 below the GEMM's floor for threads or
 * with a single piece (whose products may then take threads themselves), else all allowed. */
static int fnn_conv_threads_for(double work, ptrdiff_t items)
{
    int nt = fnn_max_threads();
    if (items < 2 || work < fnn_par_min_work()) return 1;
    if (nt > items) nt = (int)items;
    return nt < 1 ? 1 : nt;
}

static int fnn_conv_threads(const fnn_conv_plan *pl, ptrdiff_t items)
{
    return fnn_conv_threads_for(pl->work, items);
}

/* A multiply-add of the direct path (few channels) costs about this many of the GEMM's, whose
 * floor fnn_par_min_work counts: measured on Ice Lake (AVX-512), LeNet-5's first layer at batch
 * 64 (7.5M multiply-adds) took 0.6 ms forward and 0.5 ms for its kernel gradient, as long as the
 * GEMM takes for ~50M; weighed as GEMM work both stayed on one thread, and a second thread made
 * both 1.8x faster. */
#define FNN_CONV_DIRECT_COST 4.0

/* ---------------------------------------------------------------- direct (few channels) */

/* The single-channel kernel gradient (fnn_conv_dgrad1_tmpl.h): output rows per block, and the
 * most filters (its table of expansion indices is on the stack). */
#define FNN_DG1_RB 32
#define FNN_DG1_MAX_F 64
/* dz's rows of n values in its buffer: whole runs of 4 vectors (the most a flavour holds) */
#define FNN_DG1_LZ(n, vw) (((n) + 4 * (vw) - 1) / (4 * (vw)) * (4 * (vw)))

static ptrdiff_t fnn_conv_gcd(ptrdiff_t a, ptrdiff_t b)
{
    while (b) {
        const ptrdiff_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The pooled kernel gradient's shapes (fnn_conv_pooled_tmpl.h): F filters; pn pooled entries an
 * image per filter; na output positions an image, off[a] the patch of position a in the image's
 * padded copy, whose rows of kernel row ky are ky*rowstep apart; kh rows of nv vectors a patch. */
typedef struct {
    ptrdiff_t F, pn, na, kh, nv, rowstep;
    const ptrdiff_t *off;
} fnn_pooled_args;

/* The buffer of grad_rows_c1 in elements for vectors of vw lanes, or 0 where it does not run:
 * c = 1, at most FNN_DG1_MAX_F filters, and a block's input rows and sums of bounded size. */
static size_t fnn_conv_dgrad1_elems(const fnn_conv_geom *g, ptrdiff_t vw)
{
    const ptrdiff_t F = g->f, LZ = FNN_DG1_LZ(g->ow * F, vw);
    const ptrdiff_t LX = (LZ + (g->kw - 1) * g->dw * F + vw - 1) / vw * vw;
    const ptrdiff_t NI = FNN_DG1_RB + (g->kh - 1) * g->dh;
    if (g->c != 1 || g->sh != 1 || F > FNN_DG1_MAX_F || NI > 64 ||
        g->kh * g->kw * LZ > ((ptrdiff_t)1 << 18))
        return 0;
    return (size_t)(g->kh * g->kw * LZ + NI * LX + FNN_DG1_RB * LZ + LX / F + vw + 1);
}
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_CONV_X86 1
#include <immintrin.h>
#include "fnn_tr8_avx2.h"
#else
#define FNN_CONV_X86 0
#endif

/* portable: one lane */
#define DTARGET
#define DTB 1
#define VW 1
#define VZERO() ((VT)0)
#define VLOAD(p) (*(p))
#define VSET1(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSTORE(p, v) (*(p) = (v))
#define VADD(a, b) ((a) + (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define FT float
#define VT float
#define DFN(name) direct_##name##_generic_f32
#include "fnn_conv_direct_tmpl.h"
#undef FT
#undef VT
#undef DFN
#define FT double
#define VT double
#define DFN(name) direct_##name##_generic_f64
#include "fnn_conv_direct_tmpl.h"
#undef FT
#undef VT
#undef DFN
#undef DTARGET
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef VADD
#undef VMAX

#if FNN_CONV_X86
#undef DTB
#define DTB 1
#define DTARGET __attribute__((target("avx2,fma")))
#define FT float
#define VT __m256
#define VW 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define DFN(name) direct_##name##_avx2_f32
#define DG1_KYB 3 /* 9 sums in 16 registers */
#define DG1_KXB 3
#define DG1_SHAPES /* register blocks of constant shapes (fnn_conv_dgrad1_tmpl.h) */
#define DG1_EXPAND(dst, src, ip)                                                                 \
    _mm256_storeu_ps(dst, _mm256_permutevar8x32_ps(_mm256_loadu_ps(src),                         \
                                                   _mm256_loadu_si256((const __m256i *)(ip))))
/* A block of up to 8 filters' vectors transposed in registers (zero vectors past FGN), then one
 * position's filters per store: 8 values where they stay inside y[ob + l, f0:F] or run only into
 * later positions' filters of this row, which it stores after (one group of all F < 8 filters,
 * 8 values before the row's end: room is the values from yo to it), else fg values (scalar
 * stores past 8-byte pieces). It replaced 8 * fg scalar loads and stores per block: 40% of
 * LeNet-5's first convolution on Zen 2. */
__attribute__((target("avx2,fma"))) static inline int
direct_tstore_avx2_f32(__m256 t[8], float *yo, ptrdiff_t F, ptrdiff_t f0, ptrdiff_t fg,
                       ptrdiff_t lanes, ptrdiff_t room)
{
    const int overlap = f0 == 0 && fg == F;
    ptrdiff_t l;
    fnn_tr8_f32(t);
    for (l = 0; l < lanes; l++) {
        if (fg == 8 || (overlap && l * F + 8 <= room))
            _mm256_storeu_ps(yo + l * F, t[l]);
        else
            fnn_store_part8_f32(yo + l * F, fg, t[l]);
    }
    return 1;
}
#define DIRECT_TSTORE(FGN, acc, yo, F, f0, fg, lanes, room)                                      \
    ((FGN) <= 8 && __extension__({                                                               \
         __m256 t_[8];                                                                           \
         int j_;                                                                                 \
         for (j_ = 0; j_ < 8; j_++) t_[j_] = j_ < (FGN) ? (acc)[j_ < (FGN) ? j_ : 0] : VZERO(); \
         direct_tstore_avx2_f32(t_, yo, F, f0, fg, lanes, room);                                 \
     }))
#include "fnn_conv_direct_tmpl.h"
#undef DIRECT_TSTORE
#undef DG1_EXPAND
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef VADD
#undef VMAX
#undef DFN
#define FT double
#define VT __m256d
#define VW 4
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSET1(x) _mm256_set1_pd(x)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VADD(a, b) _mm256_add_pd(a, b)
#define VMAX(a, b) _mm256_max_pd(a, b)
#define DFN(name) direct_##name##_avx2_f64
#define DG1_KYB 3 /* 9 sums in 16 registers */
#define DG1_KXB 3
#define DG1_SHAPES /* register blocks of constant shapes (fnn_conv_dgrad1_tmpl.h) */
#include "fnn_conv_direct_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef VADD
#undef VMAX
#undef DFN
#undef DTARGET

#undef DTB
#define DTB 2 /* taps per pass of the kernel gradient: 16 accumulators + 8 dz in 32 registers */
#define DTARGET __attribute__((target("avx512f,avx2,fma")))
#define FT float
#define VT __m512
#define VW 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define DFN(name) direct_##name##_avx512_f32
#define DG1_EXPAND(dst, src, ip)                                                                 \
    _mm512_storeu_ps(dst, _mm512_permutexvar_ps(_mm512_loadu_si512((const void *)(ip)),          \
                                                _mm512_loadu_ps(src)))
#include "fnn_conv_direct_tmpl.h"
#undef DG1_EXPAND
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef VADD
#undef VMAX
#undef DFN
#define FT double
#define VT __m512d
#define VW 8
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSET1(x) _mm512_set1_pd(x)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VADD(a, b) _mm512_add_pd(a, b)
#define VMAX(a, b) _mm512_max_pd(a, b)
#define DFN(name) direct_##name##_avx512_f64
#include "fnn_conv_direct_tmpl.h"
#undef FT
#undef VT
#undef VW
#undef VZERO
#undef VLOAD
#undef VSET1
#undef VFMA
#undef VSTORE
#undef VADD
#undef VMAX
#undef DFN
#undef DTARGET
#endif

#undef DTB

#include "fnn_conv_wgrad.h"

/* The direct path's flavour: the GEMM's (fnn_active_flavour(), so FASTNN_KERNEL applies). */
typedef struct {
    int vw, maxfg;
    void (*fwd_f32)(const fnn_conv_geom *, const float *, const float *, ptrdiff_t, ptrdiff_t,
                    ptrdiff_t, int, float *, float *, const float *, int, float);
    void (*grad_f32)(const fnn_conv_geom *, const float *, const float *, ptrdiff_t, ptrdiff_t,
                     ptrdiff_t, float *, float *);
    void (*pooled_f32)(const fnn_pooled_args *, const int64_t *, const float *, const float *,
                       const float *, float *, double *);
} fnn_direct_f32;
typedef struct {
    int vw, maxfg;
    void (*fwd_f64)(const fnn_conv_geom *, const double *, const double *, ptrdiff_t, ptrdiff_t,
                    ptrdiff_t, int, double *, double *, const double *, int, double);
    void (*grad_f64)(const fnn_conv_geom *, const double *, const double *, ptrdiff_t,
                     ptrdiff_t, ptrdiff_t, double *, double *);
    void (*pooled_f64)(const fnn_pooled_args *, const int64_t *, const double *,
                       const double *, const double *, double *, double *);
} fnn_direct_f64;

static fnn_direct_f32 fnn_direct_flavour_f32(void)
{
    fnn_direct_f32 d = {1, 16, direct_forward_rows_generic_f32, direct_grad_rows_generic_f32,
                        direct_pooled_image_generic_f32};
#if FNN_CONV_X86
    const int flavour = fnn_active_flavour();
    if (flavour == FNN_FLAVOUR_AVX512) {
        d.vw = 16; d.maxfg = 16;
        d.fwd_f32 = direct_forward_rows_avx512_f32; d.grad_f32 = direct_grad_rows_avx512_f32;
        d.pooled_f32 = direct_pooled_image_avx512_f32;
    } else if (flavour == FNN_FLAVOUR_AVX2) {
        d.vw = 8; d.maxfg = 8;
        d.fwd_f32 = direct_forward_rows_avx2_f32; d.grad_f32 = direct_grad_rows_avx2_f32;
        d.pooled_f32 = direct_pooled_image_avx2_f32;
    }
#endif
    return d;
}

static fnn_direct_f64 fnn_direct_flavour_f64(void)
{
    fnn_direct_f64 d = {1, 16, direct_forward_rows_generic_f64, direct_grad_rows_generic_f64,
                        direct_pooled_image_generic_f64};
#if FNN_CONV_X86
    const int flavour = fnn_active_flavour();
    if (flavour == FNN_FLAVOUR_AVX512) {
        d.vw = 8; d.maxfg = 16;
        d.fwd_f64 = direct_forward_rows_avx512_f64; d.grad_f64 = direct_grad_rows_avx512_f64;
        d.pooled_f64 = direct_pooled_image_avx512_f64;
    } else if (flavour == FNN_FLAVOUR_AVX2) {
        d.vw = 4; d.maxfg = 8;
        d.fwd_f64 = direct_forward_rows_avx2_f64; d.grad_f64 = direct_grad_rows_avx2_f64;
        d.pooled_f64 = direct_pooled_image_avx2_f64;
    }
#endif
    return d;
}

/* ---------------------------------------------------------------- Winograd (fnn_conv_wino.h) */

#define WTARGET
#define FT float
#define WFN(name) name##_generic_f32
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#define FT double
#define WFN(name) name##_generic_f64
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#undef WTARGET
#if FNN_CONV_X86
#define WTARGET __attribute__((target("avx2")))
#define FT float
#define WFN(name) name##_avx2_f32
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#define FT double
#define WFN(name) name##_avx2_f64
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#undef WTARGET
#define WTARGET __attribute__((target("avx512f,avx2")))
#define FT float
#define WFN(name) name##_avx512_f32
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#define FT double
#define WFN(name) name##_avx512_f64
#include "fnn_conv_wino_tmpl.h"
#undef FT
#undef WFN
#undef WTARGET
#endif

/* The transforms of the active flavour (they round alike on all; the wider ones are faster). */
#define WINO_FLAVOUR_FN(FT_, sfx)                                                               \
    typedef struct {                                                                           \
        void (*in)(const fnn_conv_geom *, const FT_ *, ptrdiff_t, ptrdiff_t, ptrdiff_t,         \
                   ptrdiff_t, const FT_ *, ptrdiff_t, FT_ *, FT_ *);                            \
        void (*out)(const fnn_conv_geom *, const FT_ *, ptrdiff_t, ptrdiff_t, ptrdiff_t,        \
                    ptrdiff_t, ptrdiff_t, FT_ *);                                               \
    } fnn_wino_##sfx;                                                                          \
    static fnn_wino_##sfx fnn_wino_flavour_##sfx(void)                                         \
    {                                                                                          \
        fnn_wino_##sfx wf = {wino_in_generic_##sfx, wino_out_generic_##sfx};                   \
        WINO_PICK(sfx)                                                                         \
        return wf;                                                                             \
    }
#if FNN_CONV_X86
#define WINO_PICK(sfx)                                                                          \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {                                           \
        wf.in = wino_in_avx512_##sfx; wf.out = wino_out_avx512_##sfx;                           \
    } else if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {                                      \
        wf.in = wino_in_avx2_##sfx; wf.out = wino_out_avx2_##sfx;                               \
    }
#else
#define WINO_PICK(sfx)
#endif
WINO_FLAVOUR_FN(float, f32)
WINO_FLAVOUR_FN(double, f64)
#undef WINO_PICK
#undef WINO_FLAVOUR_FN

/* FASTNN_CONV_WINOGRAD=0 (or off/no/false) turns the Winograd path off; read once. */
static int fnn_conv_wino_enabled(void)
{
    static int enabled = -1;
    int e = enabled;
    if (e < 0) {
        const char *s = getenv("FASTNN_CONV_WINOGRAD");
        e = !(s && (strcmp(s, "0") == 0 || strcmp(s, "off") == 0 || strcmp(s, "no") == 0 ||
                    strcmp(s, "false") == 0));
        enabled = e;
    }
    return e;
}

int fnn_conv_wino_use(const fnn_conv_geom *g)
{
    if (g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1)
        return 0;
    if (g->c < FNN_WINO_MIN_C || g->f < FNN_WINO_MIN_F || g->c * g->f < FNN_WINO_MIN_CF)
        return 0;
    /* tiles may compute at most 1.6x the outputs (7x7: 1.31, 5x5: 1.44; 3x3: 1.78 and one row
     * or column: 2x stay on the stride-1 path) */
    if (5 * (4 * ((g->oh + 1) / 2) * ((g->ow + 1) / 2)) > 8 * g->oh * g->ow) return 0;
    return fnn_conv_wino_enabled();
}

/* The forward convolution whose output is dx (as fnn_conv_strided's sk_dx_geom). */
static void fnn_conv_wino_dx_geom(const fnn_conv_geom *g, fnn_conv_geom *t)
{
    *t = *g;
    t->h = g->oh; t->w = g->ow; t->c = g->f; t->f = g->c;
    t->pt = 2 - g->pt; t->pl = 2 - g->pl;
    t->oh = g->h; t->ow = g->w;
}

int fnn_conv_wino_dx_use(const fnn_conv_geom *g)
{
    fnn_conv_geom t;
    if (g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1)
        return 0;
    fnn_conv_wino_dx_geom(g, &t);
    return t.pt >= 0 && t.pl >= 0 && fnn_conv_wino_use(&t);
}

/* Few input channels and unit horizontal stride: the direct path (see fnn_conv_direct_tmpl.h). */
static int fnn_conv_use_direct(const fnn_conv_geom *g)
{
    /* measured on Zen 4 (AVX-512): 6 channels -> 16 filters of 5x5 ran 1.7x (forward) and 3x
     * (kernel gradient) slower here than on the GEMM path, so only the first layers come */
    return g->sw == 1 && g->c <= FNN_CONV_DIRECT_MAX_C;
}

#define FT float
#define CFN(name) name##_f32
#define GEMM fnn_sgemm
#define EPI_T fnn_epilogue_f32
#define DIRECT_T fnn_direct_f32
#define DIRECT_FLAVOUR fnn_direct_flavour_f32
#define DFWD fwd_f32
#define DGRAD grad_f32
#define DPOOLED pooled_f32
#define GEMM_BP fnn_sgemm_bp
#define PACK_B fnn_sgemm_pack_b
#define DBL 0
#define WINO_T fnn_wino_f32
#define WINO_FLAVOUR fnn_wino_flavour_f32
#include "fnn_conv_tmpl.h"
#undef GEMM_BP
#undef PACK_B
#undef DBL
#undef WINO_T
#undef WINO_FLAVOUR
#undef FT
#undef CFN
#undef GEMM
#undef EPI_T
#undef DIRECT_T
#undef DIRECT_FLAVOUR
#undef DFWD
#undef DGRAD
#undef DPOOLED

#define FT double
#define CFN(name) name##_f64
#define GEMM fnn_dgemm
#define EPI_T fnn_epilogue_f64
#define DIRECT_T fnn_direct_f64
#define DIRECT_FLAVOUR fnn_direct_flavour_f64
#define DFWD fwd_f64
#define DGRAD grad_f64
#define DPOOLED pooled_f64
#define GEMM_BP fnn_dgemm_bp
#define PACK_B fnn_dgemm_pack_b
#define DBL 1
#define WINO_T fnn_wino_f64
#define WINO_FLAVOUR fnn_wino_flavour_f64
#include "fnn_conv_tmpl.h"
#undef GEMM_BP
#undef PACK_B
#undef DBL
#undef WINO_T
#undef WINO_FLAVOUR
#undef FT
#undef CFN
#undef GEMM
#undef EPI_T
#undef DIRECT_T
#undef DIRECT_FLAVOUR
#undef DFWD
#undef DGRAD
#undef DPOOLED

/* ---------------------------------------------------------------- Conv3D (fnn_conv3d.h) */

#if FNN_X86
/* 1 when fnn_conv2d_forward takes the stride-1 path for g (the checks it makes before, in
 * its order), so the stackless forward gives what the stack's would. */
static int fnn_conv3d_strided_taken(const fnn_conv_geom *g)
{
    fnn_conv_plan pl;
    fnn_conv_make_plan(g, &pl);
    return pl.M > 0 && !pl.direct && !fnn_conv_use_direct(g) && !fnn_conv_wino_use(g) &&
           fnn_conv_strided_use(g);
}
#endif

int fnn_conv2d_dx_on_gemm(const fnn_conv_geom *g)
{
    if (fnn_conv_wino_dx_use(g)) return 0;
#if FNN_X86
    if (fnn_conv_strided_dx_use(g)) return 0;
#endif
    return 1;
}

int fnn_conv3d_forward_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds, const float *x,
                           const float *kernel, const float *bias, int act, float param,
                           float *y)
{
#if FNN_X86
    if (fnn_conv3d_strided_taken(g)) {
        int ok;
        const unsigned int saved_csr = fnn_ftz_enter();
        ok = fnn_conv_strided_forward_depth_f32(g, ds, x, kernel, bias, act, param, y);
        fnn_ftz_leave(saved_csr);
        return ok;
    }
#endif
    (void)ds; (void)x; (void)kernel; (void)bias; (void)act; (void)param; (void)y;
    return -1;
}

int fnn_conv3d_forward_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds, const double *x,
                           const double *kernel, const double *bias, int act, double param,
                           double *y)
{
#if FNN_X86
    if (fnn_conv3d_strided_taken(g)) {
        int ok;
        const unsigned int saved_csr = fnn_ftz_enter();
        ok = fnn_conv_strided_forward_depth_f64(g, ds, x, kernel, bias, act, param, y);
        fnn_ftz_leave(saved_csr);
        return ok;
    }
#endif
    (void)ds; (void)x; (void)kernel; (void)bias; (void)act; (void)param; (void)y;
    return -1;
}
