/*
 * fastnn depthwise convolution (fnn_dwconv.h): the row kernels in three flavours (portable C,
 * AVX2 and AVX-512 through target attributes, no global -m flags) for float and double, and the
 * drivers that split rows over OpenMP threads.
 *
 * This file is its own template: the part after `#else` is included back (#include __FILE__
 * style, with FNN_DW_TMPL set) once per element type and flavour, so the whole family sits in
 * one file that the _depthwise extension compiles (and _kernels, for InferPlan's depthwise step).
 */
#ifndef FNN_DW_TMPL

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fnn_dwconv.h"
#include "fnn_ftz.h"
#include "fnn_gemm.h"
#include "fnn_gemm_internal.h"
#include "fnn_threads.h"

/* A multiply-add here costs about this many of the GEMM's, whose floor for threads
 * fnn_par_min_work counts: each one loads its input and its output (no register blocking). */
#define FNN_DW_COST 4.0

/* The output columns [lo, hi) whose tap at column offset off = kx*dw - pl lands inside the
 * input row of w columns: 0 <= ox*sw + off < w. */
static void fnn_dw_cols(ptrdiff_t off, ptrdiff_t sw, ptrdiff_t w, ptrdiff_t ow, ptrdiff_t *lo,
                        ptrdiff_t *hi)
{
    ptrdiff_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    ptrdiff_t b = (w - 1 - off) < 0 ? 0 : (w - 1 - off) / sw + 1;
    if (b > ow) b = ow;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* Threads for `items` independent pieces holding `work` multiply-adds: 1 below the GEMM's floor
 * (a second thread must not make a small call slower), else all allowed. */
static int fnn_dw_threads(double work, ptrdiff_t items)
{
    int nt = fnn_max_threads();
    if (items < 2 || work * FNN_DW_COST < fnn_par_min_work()) return 1;
    if (nt > items) nt = (int)items;
    return nt < 1 ? 1 : nt;
}

/* The widened-row cache of dm > 1 (fnn_dw_wide): slots enough that the input rows one output
 * row reads, (kh - 1)*dh + 1 apart at most, never share one; its bytes, tags first. */
static ptrdiff_t fnn_dw_slots(const fnn_dw_geom *g)
{
    const ptrdiff_t span = (g->kh - 1) * g->dh + 1;
    return span < g->h ? span : g->h;
}

static size_t fnn_dw_cache_bytes(const fnn_dw_geom *g, size_t item)
{
    const ptrdiff_t S = fnn_dw_slots(g);
    return (size_t)S * sizeof(const void *) + (size_t)(S * g->w * g->c * g->dm) * item;
}

/* The row blocks of the kernel gradient: a count from the shapes alone. */
static ptrdiff_t fnn_dw_blocks(const fnn_dw_geom *g)
{
    const ptrdiff_t rows = g->n * g->oh, each = (g->kh * g->kw + 1) * g->c * g->dm;
    ptrdiff_t nb = FNN_DW_PARTIAL_ELEMS / each;
    if (nb > FNN_DW_BLOCKS) nb = FNN_DW_BLOCKS;
    if (nb > rows) nb = rows;
    return nb < 1 ? 1 : nb;
}

#define FNN_DW_TMPL 1
#define FNN_DW_CAT_(a, b, c) a##b##c
#define FNN_DW_CAT(a, b, c) FNN_DW_CAT_(a, b, c)

/* ---------------------------------------------------------------- row kernels per flavour */
#define FT float
#define TSUF _f32
#define RTARGET
#define VBYTES 16
#define RFN(x) FNN_DW_CAT(x, _generic, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#if FNN_X86
#define RTARGET __attribute__((target("avx2,fma")))
#define VBYTES 32
#define RFN(x) FNN_DW_CAT(x, _avx2, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#define RTARGET __attribute__((target("avx512f,avx2,fma")))
#define VBYTES 64
#define RFN(x) FNN_DW_CAT(x, _avx512, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#endif
#define FNN_DW_DRIVER 1
#define EPILOGUE fnn_epilogue_block_f32
#define UT uint32_t
#include "fnn_dwconv.c"
#undef EPILOGUE
#undef UT
#undef FNN_DW_DRIVER
#undef FT
#undef TSUF

#define FT double
#define TSUF _f64
#define RTARGET
#define VBYTES 16
#define RFN(x) FNN_DW_CAT(x, _generic, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#if FNN_X86
#define RTARGET __attribute__((target("avx2,fma")))
#define VBYTES 32
#define RFN(x) FNN_DW_CAT(x, _avx2, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#define RTARGET __attribute__((target("avx512f,avx2,fma")))
#define VBYTES 64
#define RFN(x) FNN_DW_CAT(x, _avx512, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#undef VBYTES
#endif
#define FNN_DW_DRIVER 1
#define EPILOGUE fnn_epilogue_block_f64
#define UT uint64_t
#include "fnn_dwconv.c"
#undef EPILOGUE
#undef UT
#undef FNN_DW_DRIVER
#undef FT
#undef TSUF

#else /* ================================================================ the template */

#ifndef FNN_DW_DRIVER

/* buf[ix, ci*dm + m] := xr[ix, ci]: an input row widened to the output's channels. */
RTARGET static void RFN(dw_widen)(const FT *restrict xr, ptrdiff_t w, ptrdiff_t c, ptrdiff_t dm,
                                  FT *restrict buf)
{
    ptrdiff_t i, m;
    if (dm == 2) {
        for (i = 0; i < w * c; i++) {
            buf[2 * i] = xr[i];
            buf[2 * i + 1] = xr[i];
        }
        return;
    }
    for (i = 0; i < w * c; i++)
        for (m = 0; m < dm; m++) buf[i * dm + m] = xr[i];
}

/* Input row iy (at xr) widened, from the cache in buf (fnn_dw_cache_bytes: fnn_dw_slots tags,
 * the source rows the slots hold, then the slots): each row is widened once while it stays,
 * not once per output row that reads it. */
RTARGET static const FT *RFN(dw_wide)(const fnn_dw_geom *g, const FT *xr, ptrdiff_t iy, void *buf)
{
    const ptrdiff_t S = fnn_dw_slots(g), slot = iy % S, width = g->w * g->c * g->dm;
    const FT **tags = (const FT **)buf;
    FT *dst = (FT *)(tags + S) + slot * width;
    if (tags[slot] != xr) {
        RFN(dw_widen)(xr, g->w, g->c, g->dm, dst);
        tags[slot] = xr;
    }
    return dst;
}

/* The flavour's vectors (GCC's vector extensions: any load alignment, lowered to the
 * flavour's instructions), and a block of NV of them: CB channels summed in registers over
 * all of an output's (or input's) taps before one store. Every channel of a block, of a single
 * vector or of the scalar rest is summed in the same order (taps in ky, kx order from zero), so
 * the channel count never changes a result's bits. */
typedef FT RFN(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(FT)), may_alias));
#define VT RFN(vec)
#define VL ((ptrdiff_t)(VBYTES / sizeof(FT)))
#define LD(p) (*(const VT *)(p))
#define ST(p, v) (*(VT *)(p) = (v))

/* yr[ox, q] := sum_{ky, kx} x[b, iy, ix, q / dm] * kernel[ky, kx, q] for output row oy of the
 * image x_img (no bias yet); buf: the widened-row cache when dm > 1. */
RTARGET static void RFN(dw_forward_row)(const fnn_dw_geom *g, const FT *x_img, const FT *k,
                                        ptrdiff_t oy, FT *yr, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm, KH = g->kh, KW = g->kw, S = fnn_dw_slots(g);
    const FT *wide = g->dm > 1 ? (const FT *)((const FT **)(void *)buf + S) : NULL;
    ptrdiff_t ky, kx, ox, q, q0, ky0 = KH, ky1 = 0;
    /* the kernel rows whose input row is inside the image: a contiguous range */
    for (ky = 0; ky < KH; ky++) {
        const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->h) continue;
        if (ky < ky0) ky0 = ky;
        ky1 = ky + 1;
        if (g->dm > 1) RFN(dw_wide)(g, x_img + iy * g->w * g->c, iy, buf);
    }
    for (ox = 0; ox < g->ow; ox++) {
        FT *yo = yr + ox * C2;
        /* the kernel columns whose input column is inside the row */
        const ptrdiff_t base = ox * g->sw - g->pl;
        ptrdiff_t kx0 = base >= 0 ? 0 : (-base + g->dw - 1) / g->dw;
        ptrdiff_t kx1 = g->w - 1 - base < 0 ? 0 : (g->w - 1 - base) / g->dw + 1;
        if (kx1 > KW) kx1 = KW;
        for (q0 = 0; q0 + 4 * VL <= C2; q0 += 4 * VL) {
            VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (ky = ky0; ky < ky1; ky++) {
                const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
                const FT *xr = g->dm > 1 ? wide + (iy % S) * g->w * C2 : x_img + iy * g->w * g->c;
                for (kx = kx0; kx < kx1; kx++) {
                    const FT *xi = xr + (base + kx * g->dw) * C2 + q0;
                    const FT *kv = k + (ky * KW + kx) * C2 + q0;
                    a0 += LD(xi) * LD(kv);
                    a1 += LD(xi + VL) * LD(kv + VL);
                    a2 += LD(xi + 2 * VL) * LD(kv + 2 * VL);
                    a3 += LD(xi + 3 * VL) * LD(kv + 3 * VL);
                }
            }
            ST(yo + q0, a0);
            ST(yo + q0 + VL, a1);
            ST(yo + q0 + 2 * VL, a2);
            ST(yo + q0 + 3 * VL, a3);
        }
        for (; q0 + VL <= C2; q0 += VL) {
            VT a0 = {0};
            for (ky = ky0; ky < ky1; ky++) {
                const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
                const FT *xr = g->dm > 1 ? wide + (iy % S) * g->w * C2 : x_img + iy * g->w * g->c;
                for (kx = kx0; kx < kx1; kx++)
                    a0 += LD(xr + (base + kx * g->dw) * C2 + q0) * LD(k + (ky * KW + kx) * C2 + q0);
            }
            ST(yo + q0, a0);
        }
        for (q = q0; q < C2; q++) {
            FT a = 0;
            for (ky = ky0; ky < ky1; ky++) {
                const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
                const FT *xr = g->dm > 1 ? wide + (iy % S) * g->w * C2 : x_img + iy * g->w * g->c;
                for (kx = kx0; kx < kx1; kx++)
                    a += xr[(base + kx * g->dw) * C2 + q] * k[(ky * KW + kx) * C2 + q];
            }
            yo[q] = a;
        }
    }
}

/* dxr[ix, ci] := sum_{ky, kx, m} dz[b, oy, ox, ci*dm + m] * kernel[ky, kx, ci, m] over the taps
 * that read input row iy (in ky, kx order, then m); buf: w*c*dm values when dm > 1. */
RTARGET static void RFN(dw_dx_row)(const fnn_dw_geom *g, const FT *dz_img, const FT *k,
                                   ptrdiff_t iy, FT *dxr, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm, KW = g->kw;
    FT *acc = g->dm > 1 ? buf : dxr;
    ptrdiff_t ky, kx, ix, q, q0, i, m, nk = 0;
    ptrdiff_t kys[64];
    const FT *rows[64];
    /* the kernel rows that read input row iy, and the dz row each reads it from */
    for (ky = 0; ky < g->kh && g->kh <= 64; ky++) {
        const ptrdiff_t t = iy + g->pt - ky * g->dh;
        if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh) continue;
        kys[nk] = ky;
        rows[nk++] = dz_img + (t / g->sh) * g->ow * C2;
    }
    if (g->kh > 64 || KW > 64 || nk == 0) {   /* huge kernels (or no taps): per-tap passes */
        memset(acc, 0, (size_t)(g->w * C2) * sizeof(FT));
        for (ky = 0; ky < g->kh; ky++) {
            const ptrdiff_t t = iy + g->pt - ky * g->dh;
            const FT *dzr;
            ptrdiff_t ox, lo, hi;
            if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh) continue;
            dzr = dz_img + (t / g->sh) * g->ow * C2;
            for (kx = 0; kx < KW; kx++) {
                const ptrdiff_t off = kx * g->dw - g->pl;
                const FT *restrict kv = k + (ky * KW + kx) * C2;
                fnn_dw_cols(off, g->sw, g->w, g->ow, &lo, &hi);
                for (ox = lo; ox < hi; ox++) {
                    FT *restrict a = acc + (ox * g->sw + off) * C2;
                    const FT *restrict d = dzr + ox * C2;
                    for (q = 0; q < C2; q++) a[q] += d[q] * kv[q];
                }
            }
        }
    } else {
        for (ix = 0; ix < g->w; ix++) {
            FT *ao = acc + ix * C2;
            ptrdiff_t kxs[64], oxs[64], nx = 0, j, t;
            for (kx = 0; kx < KW; kx++) {
                const ptrdiff_t u = ix + g->pl - kx * g->dw;
                if (u < 0 || u % g->sw != 0 || u / g->sw >= g->ow) continue;
                kxs[nx] = kx;
                oxs[nx++] = (u / g->sw) * C2;
            }
            for (q0 = 0; q0 + 4 * VL <= C2; q0 += 4 * VL) {
                VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                for (t = 0; t < nk; t++)
                    for (j = 0; j < nx; j++) {
                        const FT *d = rows[t] + oxs[j] + q0;
                        const FT *kv = k + (kys[t] * KW + kxs[j]) * C2 + q0;
                        a0 += LD(d) * LD(kv);
                        a1 += LD(d + VL) * LD(kv + VL);
                        a2 += LD(d + 2 * VL) * LD(kv + 2 * VL);
                        a3 += LD(d + 3 * VL) * LD(kv + 3 * VL);
                    }
                ST(ao + q0, a0);
                ST(ao + q0 + VL, a1);
                ST(ao + q0 + 2 * VL, a2);
                ST(ao + q0 + 3 * VL, a3);
            }
            for (; q0 + VL <= C2; q0 += VL) {
                VT a0 = {0};
                for (t = 0; t < nk; t++)
                    for (j = 0; j < nx; j++)
                        a0 += LD(rows[t] + oxs[j] + q0) * LD(k + (kys[t] * KW + kxs[j]) * C2 + q0);
                ST(ao + q0, a0);
            }
            for (q = q0; q < C2; q++) {
                FT a = 0;
                for (t = 0; t < nk; t++)
                    for (j = 0; j < nx; j++)
                        a += rows[t][oxs[j] + q] * k[(kys[t] * KW + kxs[j]) * C2 + q];
                ao[q] = a;
            }
        }
    }
    if (g->dm > 1)
        for (i = 0; i < g->w * g->c; i++) {
            FT s = buf[i * g->dm];
            for (m = 1; m < g->dm; m++) s += buf[i * g->dm + m];
            dxr[i] = s;
        }
}

/* pk[ky, kx, q] := sum over output rows r0 <= r < r1 (r = b*oh + oy) of x * dz per tap, and
 * pb[q] := sum of dz, rows in order (each row's sum over ox first); buf: the widened-row
 * cache when dm > 1. */
RTARGET static void RFN(dw_dk_rows)(const fnn_dw_geom *g, const FT *x, const FT *dz,
                                    ptrdiff_t r0, ptrdiff_t r1, FT *pk, FT *pb, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm;
    ptrdiff_t r, ky, kx, ox, q, q0, lo, hi;
    memset(pk, 0, (size_t)(g->kh * g->kw * C2) * sizeof(FT));
    memset(pb, 0, (size_t)C2 * sizeof(FT));
    for (r = r0; r < r1; r++) {
        const ptrdiff_t b = r / g->oh, oy = r % g->oh;
        const FT *x_img = x + b * g->h * g->w * g->c, *dzr = dz + r * g->ow * C2;
        for (ox = 0; ox < g->ow; ox++) {
            FT *restrict s = pb;
            const FT *restrict d = dzr + ox * C2;
            for (q = 0; q < C2; q++) s[q] += d[q];
        }
        for (ky = 0; ky < g->kh; ky++) {
            const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
            const FT *xr;
            if (iy < 0 || iy >= g->h) continue;
            xr = x_img + iy * g->w * g->c;
            if (g->dm > 1) xr = RFN(dw_wide)(g, xr, iy, buf);
            for (kx = 0; kx < g->kw; kx++) {
                const ptrdiff_t off = kx * g->dw - g->pl;
                FT *pkv = pk + (ky * g->kw + kx) * C2;
                fnn_dw_cols(off, g->sw, g->w, g->ow, &lo, &hi);
                for (q0 = 0; q0 + 4 * VL <= C2; q0 += 4 * VL) {
                    VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                    for (ox = lo; ox < hi; ox++) {
                        const FT *xi = xr + (ox * g->sw + off) * C2 + q0;
                        const FT *d = dzr + ox * C2 + q0;
                        a0 += LD(xi) * LD(d);
                        a1 += LD(xi + VL) * LD(d + VL);
                        a2 += LD(xi + 2 * VL) * LD(d + 2 * VL);
                        a3 += LD(xi + 3 * VL) * LD(d + 3 * VL);
                    }
                    ST(pkv + q0, LD(pkv + q0) + a0);
                    ST(pkv + q0 + VL, LD(pkv + q0 + VL) + a1);
                    ST(pkv + q0 + 2 * VL, LD(pkv + q0 + 2 * VL) + a2);
                    ST(pkv + q0 + 3 * VL, LD(pkv + q0 + 3 * VL) + a3);
                }
                for (; q0 + VL <= C2; q0 += VL) {
                    VT a0 = {0};
                    for (ox = lo; ox < hi; ox++)
                        a0 += LD(xr + (ox * g->sw + off) * C2 + q0) * LD(dzr + ox * C2 + q0);
                    ST(pkv + q0, LD(pkv + q0) + a0);
                }
                for (q = q0; q < C2; q++) {
                    FT a = 0;
                    for (ox = lo; ox < hi; ox++)
                        a += xr[(ox * g->sw + off) * C2 + q] * dzr[ox * C2 + q];
                    pkv[q] += a;
                }
            }
        }
    }
}

#undef VT
#undef VL
#undef LD
#undef ST

#else /* ---------------------------------------------------------------- drivers per type */

#define DFN(x) FNN_DW_CAT(fnn_, x, TSUF)
#define RFLAV(x, f) FNN_DW_CAT(x, f, TSUF)

typedef void (*DFN(dw_fwd_t))(const fnn_dw_geom *, const FT *, const FT *, ptrdiff_t, FT *, FT *);
typedef void (*DFN(dw_dx_t))(const fnn_dw_geom *, const FT *, const FT *, ptrdiff_t, FT *, FT *);
typedef void (*DFN(dw_dk_t))(const fnn_dw_geom *, const FT *, const FT *, ptrdiff_t, ptrdiff_t,
                             FT *, FT *, FT *);

#if FNN_X86
static const DFN(dw_fwd_t) DFN(dw_fwd_of)[] = {RFLAV(dw_forward_row, _generic),
                                               RFLAV(dw_forward_row, _avx2),
                                               RFLAV(dw_forward_row, _avx512)};
static const DFN(dw_dx_t) DFN(dw_dx_of)[] = {RFLAV(dw_dx_row, _generic), RFLAV(dw_dx_row, _avx2),
                                             RFLAV(dw_dx_row, _avx512)};
static const DFN(dw_dk_t) DFN(dw_dk_of)[] = {RFLAV(dw_dk_rows, _generic),
                                             RFLAV(dw_dk_rows, _avx2),
                                             RFLAV(dw_dk_rows, _avx512)};
#define DW_PICK(table) (table[fnn_active_flavour()])
#else
#define DW_PICK(table) (table[0])
static const DFN(dw_fwd_t) DFN(dw_fwd_of)[] = {RFLAV(dw_forward_row, _generic)};
static const DFN(dw_dx_t) DFN(dw_dx_of)[] = {RFLAV(dw_dx_row, _generic)};
static const DFN(dw_dk_t) DFN(dw_dk_of)[] = {RFLAV(dw_dk_rows, _generic)};
#endif

int DFN(dwconv2d_forward)(const fnn_dw_geom *g, const FT *x, const FT *kernel, const FT *bias,
                          int act, FT param, FT *y)
{
    const ptrdiff_t C2 = g->c * g->dm, rows = g->n * g->oh;
    const DFN(dw_fwd_t) row = DW_PICK(DFN(dw_fwd_of));
    const int nt = fnn_dw_threads((double)rows * g->ow * C2 * g->kh * g->kw, rows);
    const unsigned int ftz = fnn_ftz_enter();
    int ok = 1;
    ptrdiff_t r;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int tftz = fnn_ftz_enter();
        FT *buf = NULL;
        if (g->dm > 1) {
            if (!(buf = (FT *)malloc(fnn_dw_cache_bytes(g, sizeof(FT)))))
                FNN_OMP_FAIL(ok);
            else
                memset(buf, 0, (size_t)fnn_dw_slots(g) * sizeof(const void *));
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (r = 0; r < rows; r++) {
            FT *yr = y + r * g->ow * C2;
            if (g->dm > 1 && !buf) continue;
            row(g, x + (r / g->oh) * g->h * g->w * g->c, kernel, r % g->oh, yr, buf);
            EPILOGUE(yr, C2, g->ow, C2, bias, act, param, (UT *)NULL);
        }
        free(buf);
        fnn_ftz_leave(tftz);
    }
    fnn_ftz_leave(ftz);
    return ok;
}

int DFN(dwconv2d_backward)(const fnn_dw_geom *g, const FT *x, const FT *kernel, const FT *dz,
                           FT *dkernel, FT *dbias, FT *dx)
{
    const ptrdiff_t C2 = g->c * g->dm, KK = g->kh * g->kw * C2;
    const double work = (double)g->n * g->oh * g->ow * C2 * g->kh * g->kw;
    const unsigned int ftz = fnn_ftz_enter();
    int ok = 1;
    ptrdiff_t r, i, j;
    if (dx) {
        const DFN(dw_dx_t) row = DW_PICK(DFN(dw_dx_of));
        const ptrdiff_t rows = g->n * g->h;
        const int nt = fnn_dw_threads(work, rows);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            const unsigned int tftz = fnn_ftz_enter();
            FT *buf = NULL;
            if (g->dm > 1 && !(buf = (FT *)malloc((size_t)(g->w * C2) * sizeof(FT))))
                FNN_OMP_FAIL(ok);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (r = 0; r < rows; r++) {
                if (g->dm > 1 && !buf) continue;
                row(g, dz + (r / g->h) * g->oh * g->ow * C2, kernel, r % g->h,
                    dx + r * g->w * g->c, buf);
            }
            free(buf);
            fnn_ftz_leave(tftz);
        }
    }
    if (dkernel && ok) {
        const DFN(dw_dk_t) rows_of = DW_PICK(DFN(dw_dk_of));
        const ptrdiff_t rows = g->n * g->oh, nb = fnn_dw_blocks(g), each = KK + C2;
        const int nt = fnn_dw_threads(work, nb);
        FT *part = (FT *)malloc((size_t)(nb * each) * sizeof(FT));
        if (!part) {
            fnn_ftz_leave(ftz);
            return 0;
        }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            const unsigned int tftz = fnn_ftz_enter();
            FT *buf = NULL;
            if (g->dm > 1) {
                if (!(buf = (FT *)malloc(fnn_dw_cache_bytes(g, sizeof(FT)))))
                    FNN_OMP_FAIL(ok);
                else
                    memset(buf, 0, (size_t)fnn_dw_slots(g) * sizeof(const void *));
            }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (i = 0; i < nb; i++) {
                FT *pk = part + i * each;
                if (g->dm > 1 && !buf) continue;
                rows_of(g, x, dz, i * rows / nb, (i + 1) * rows / nb, pk, pk + KK, buf);
            }
            free(buf);
            fnn_ftz_leave(tftz);
        }
        /* the partials in block order */
        for (j = 0; j < KK; j++) {
            FT s = part[j];
            for (i = 1; i < nb; i++) s += part[i * each + j];
            dkernel[j] = s;
        }
        for (j = 0; j < C2; j++) {
            FT s = part[KK + j];
            for (i = 1; i < nb; i++) s += part[i * each + KK + j];
            dbias[j] = s;
        }
        free(part);
    }
    fnn_ftz_leave(ftz);
    return ok;
}

#undef DW_PICK
#undef RFLAV
#undef DFN

#endif /* FNN_DW_DRIVER */
#endif /* FNN_DW_TMPL */
