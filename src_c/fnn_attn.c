/*
 * fastnn scaled dot-product attention (see fnn_attn.h): the row loops of fnn_attn_rows_tmpl.h in
 * each instruction-set flavour, then the driver of fnn_attn_tmpl.h for float and double.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fnn_attn.h"
#include "fnn_ftz.h"
#include "fnn_gemm.h"
#include "fnn_gemm_internal.h"
#include "fnn_threads.h"
#include "fnn_vexp.h"

#define AF_LANES 8 /* partial results of the row reductions (fnn_attn_rows_tmpl.h) */

#ifndef FNN_ATTN_CHUNK_TILES
#define FNN_ATTN_CHUNK_TILES 2 /* key tiles a backward chunk holds at least */
#endif
#ifndef FNN_ATTN_BWD_TASKS
#define FNN_ATTN_BWD_TASKS 8 /* backward tasks a call is cut into at most, by key chunks */
#endif

/* Few pairs of long keys (L = 1024, 4 heads, batch 1: four pairs) gave the backward one task per
 * pair, so two threads could not even out when one core was slowed, and a call could not use
 * more threads than it has pairs. Zen 3, that shape, two threads with a busy process on the
 * second CPU: 36.0 -> 31.2 ms (medians of the two builds alternating); one thread unchanged.
 * Each chunk repeats the pair's D and its Q and dout packing (about 1% of a chunk of two tiles)
 * and adds Lq D values at the end. The partial sums take at most an eighth of what one (Lq x Lk)
 * score matrix per pair would ((chunks - 1) D <= Lk / 8), and (chunks - 1) pairs <= 7. */
ptrdiff_t fnn_attn_key_chunks(const fnn_attn_geom *g)
{
    const ptrdiff_t tiles = (g->lk + FNN_ATTN_BC - 1) / FNN_ATTN_BC;
    const ptrdiff_t want = g->pairs > 0 ? (FNN_ATTN_BWD_TASKS + g->pairs - 1) / g->pairs : 1;
    const ptrdiff_t room = 1 + g->lk / (8 * g->d);
    ptrdiff_t c = tiles / FNN_ATTN_CHUNK_TILES;
    if (c > want) c = want;
    if (c > room) c = room;
    return c < 1 ? 1 : c;
}

ptrdiff_t fnn_attn_scratch_shared(const fnn_attn_geom *g)
{
    return g->pairs * (fnn_attn_key_chunks(g) - 1) * g->lq * g->d;
}

int fnn_attn_threads(const fnn_attn_geom *g, int backward)
{
    const ptrdiff_t tasks = backward ? g->pairs * fnn_attn_key_chunks(g)
                                     : g->pairs * ((g->lq + FNN_ATTN_BR - 1) / FNN_ATTN_BR);
    /* multiply-adds: the forward's two products, the backward's five */
    const double work = (double)g->pairs * (double)g->lq * (double)g->lk *
                        (double)(g->d + g->dv) * (backward ? 2.5 : 1.0) *
                        (g->causal ? 0.5 : 1.0);
    int nt = fnn_max_threads();
    if (tasks < 2 || work < fnn_par_min_work()) return 1;
    if ((ptrdiff_t)nt > tasks) nt = (int)tasks;
    return nt < 1 ? 1 : nt;
}

static fnn_attn_layout attn_packed(ptrdiff_t heads, ptrdiff_t l, ptrdiff_t w)
{
    fnn_attn_layout o;
    o.rs = w;
    o.hs = l * w;
    o.bs = heads * l * w;
    return o;
}

void fnn_attn_contiguous(fnn_attn_geom *g)
{
    g->q = g->dq = attn_packed(g->heads, g->lq, g->d);
    g->k = g->dk = attn_packed(g->heads, g->lk, g->d);
    g->v = g->dv_ = attn_packed(g->heads, g->lk, g->dv);
    g->out = g->dout = attn_packed(g->heads, g->lq, g->dv);
    g->drop_rate = 0.0;
    g->drop_key = 0;
    g->qk_mask = NULL;
}

/* Every flavour's micro-tile (fnn_kernels_*.c, float and double) has mr dividing 12 and nr
 * dividing 32, so x rows cut into slivers take at most FNN_ATTN_PAD(x, 12) (or 32) of them. */
#define FNN_ATTN_MR 12
#define FNN_ATTN_NR 32
#define FNN_ATTN_PAD(x, r) (((x) + (r) - 1) / (r) * (r))

/* The layouts are attn_fwd_tile's and attn_bwd_pair's (fnn_attn_tmpl.h): score tiles, row
 * statistics, and the packed operands of the tile products. */
ptrdiff_t fnn_attn_scratch(const fnn_attn_geom *g, int backward)
{
    const ptrdiff_t br = FNN_ATTN_BR, bc = FNN_ATTN_BC, d = g->d, dv = g->dv;
    const ptrdiff_t brp = FNN_ATTN_PAD(br, FNN_ATTN_MR), bcp = FNN_ATTN_PAD(bc, FNN_ATTN_MR);
    const ptrdiff_t bcn = FNN_ATTN_PAD(bc, FNN_ATTN_NR);
    const ptrdiff_t dn = FNN_ATTN_PAD(d, FNN_ATTN_NR), dvn = FNN_ATTN_PAD(dv, FNN_ATTN_NR);
    if (!backward) /* S, m, l, Q, P, V, the pair's packed K^T */
        return br * bc + 2 * br + brp * d + brp * bc + dvn * bc +
               FNN_ATTN_PAD(g->lk, FNN_ATTN_NR) * d;
    /* S, dP, D, the pair's packed q and dout, the transposed tiles, packed k, v, q, dout */
    return 2 * br * bc + g->lq + FNN_ATTN_PAD(g->lq, FNN_ATTN_MR) * (d + dv) +
           (bcp * br > brp * bc ? bcp * br : brp * bc) +
           bcn * (d + dv) + dn * (bc + br) + dvn * br;
}

#define FNN_ATTN_CAT_(a, b, c) a##b##c
#define FNN_ATTN_CAT(a, b, c) FNN_ATTN_CAT_(a, b, c)

#define FT float
#define A_EXP fnn_expf
#define ATARGET
#define AFN(x) FNN_ATTN_CAT(x, _generic, _f32)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#if FNN_X86
#define A_ROW_DOT_ONLY /* online_row and grad_row: fnn_attn_rows_simd.h */
#define ATARGET __attribute__((target("avx2,fma")))
#define AFN(x) FNN_ATTN_CAT(x, _avx2, _f32)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#define ATARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define AFN(x) FNN_ATTN_CAT(x, _avx512, _f32)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#undef A_ROW_DOT_ONLY
#endif
#undef FT
#undef A_EXP

#define FT double
#define A_EXP exp
#define ATARGET
#define AFN(x) FNN_ATTN_CAT(x, _generic, _f64)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#if FNN_X86
#define ATARGET __attribute__((target("avx2,fma")))
#define AFN(x) FNN_ATTN_CAT(x, _avx2, _f64)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#define ATARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define AFN(x) FNN_ATTN_CAT(x, _avx512, _f64)
#include "fnn_attn_rows_tmpl.h"
#undef AFN
#undef ATARGET
#endif
#undef FT
#undef A_EXP

#define FNN_ATTN_ROWS_TABLE(FT, SUF)                                                         \
    typedef struct {                                                                         \
        FT (*row_dot)(const FT *, const FT *, ptrdiff_t);                                    \
        void (*online_row)(FT *, ptrdiff_t, FT *, FT *, FT *, ptrdiff_t);                    \
        void (*grad_row)(FT *, FT *, ptrdiff_t, FT, FT, FT);                                 \
    } fnn_attn_rows##SUF;
FNN_ATTN_ROWS_TABLE(float, _f32)
FNN_ATTN_ROWS_TABLE(double, _f64)

#define FNN_ATTN_ENTRY(FL, SUF) {row_dot_##FL##SUF, online_row_##FL##SUF, grad_row_##FL##SUF}

#if FNN_X86
#include "fnn_attn_rows_simd.h"
static const fnn_attn_rows_f32 rows_f32_of[] = {
    FNN_ATTN_ENTRY(generic, _f32),
    {row_dot_avx2_f32, online_row_v8_f32, grad_row_v8_f32},
    {row_dot_avx512_f32, online_row_v16_f32, grad_row_v16_f32}};
static const fnn_attn_rows_f64 rows_f64_of[] = {
    FNN_ATTN_ENTRY(generic, _f64), FNN_ATTN_ENTRY(avx2, _f64), FNN_ATTN_ENTRY(avx512, _f64)};
#else
static const fnn_attn_rows_f32 rows_f32_of[] = {FNN_ATTN_ENTRY(generic, _f32)};
static const fnn_attn_rows_f64 rows_f64_of[] = {FNN_ATTN_ENTRY(generic, _f64)};
#endif

#if FNN_X86
#include "fnn_attn_small_avx2.h"
#define A_SMALL /* float pairs small enough run attn_small_*_f32 (the AVX2 flavour) */
#else
void fnn_attn_set_small(int on) { (void)on; }
#endif

/* The tables are indexed by fnn_active_flavour() (fnn_gemm.c; FASTNN_KERNEL applies). */
#define FT float
#define TFN(x) x##_f32
#define KERN fnn_kern_f32
#define KERN_OF() (&fnn_active_arch()->s)
#define ROWS fnn_attn_rows_f32
#define ROWS_OF() (&rows_f32_of[fnn_active_flavour()])
#define LOG logf
#include "fnn_attn_tmpl.h"
#undef FT
#undef TFN
#undef KERN
#undef KERN_OF
#undef ROWS
#undef ROWS_OF
#undef LOG
#undef A_SMALL

#define FT double
#define TFN(x) x##_f64
#define KERN fnn_kern_f64
#define KERN_OF() (&fnn_active_arch()->d)
#define ROWS fnn_attn_rows_f64
#define ROWS_OF() (&rows_f64_of[fnn_active_flavour()])
#define LOG log
#include "fnn_attn_tmpl.h"
#undef FT
#undef TFN
#undef KERN
#undef KERN_OF
#undef ROWS
#undef ROWS_OF
#undef LOG
