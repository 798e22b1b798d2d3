/*
 * fastnn depthwise convolution (fnn_dwconv.h): the row kernels in three flavours (portable C,
 * AVX2 and AVX-512 through target attributes, no global -m flags) for float and double, and the
 * drivers that split rows over OpenMP threads.
 *
 * This file is its own template: the part after `#else` is included back (#include __FILE__
 * style, with FNN_DW_TMPL set) once per element type and flavour, so the whole family sits in
 * one file that only the _depthwise extension compiles.
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
#define RFN(x) FNN_DW_CAT(x, _generic, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#if FNN_X86
#define RTARGET __attribute__((target("avx2,fma")))
#define RFN(x) FNN_DW_CAT(x, _avx2, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#define RTARGET __attribute__((target("avx512f,avx2,fma")))
#define RFN(x) FNN_DW_CAT(x, _avx512, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
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
#define RFN(x) FNN_DW_CAT(x, _generic, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#if FNN_X86
#define RTARGET __attribute__((target("avx2,fma")))
#define RFN(x) FNN_DW_CAT(x, _avx2, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
#define RTARGET __attribute__((target("avx512f,avx2,fma")))
#define RFN(x) FNN_DW_CAT(x, _avx512, TSUF)
#include "fnn_dwconv.c"
#undef RFN
#undef RTARGET
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
    for (i = 0; i < w * c; i++)
        for (m = 0; m < dm; m++) buf[i * dm + m] = xr[i];
}

/* yr[ox, q] := sum_{ky, kx} x[b, iy, ix, q / dm] * kernel[ky, kx, q] for output row oy of the
 * image x_img (no bias yet); buf: w*c*dm values when dm > 1. */
RTARGET static void RFN(dw_forward_row)(const fnn_dw_geom *g, const FT *x_img, const FT *k,
                                        ptrdiff_t oy, FT *yr, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm;
    ptrdiff_t ky, kx, ox, q, lo, hi;
    memset(yr, 0, (size_t)(g->ow * C2) * sizeof(FT));
    for (ky = 0; ky < g->kh; ky++) {
        const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
        const FT *xr;
        if (iy < 0 || iy >= g->h) continue;
        xr = x_img + iy * g->w * g->c;
        if (g->dm > 1) {
            RFN(dw_widen)(xr, g->w, g->c, g->dm, buf);
            xr = buf;
        }
        for (kx = 0; kx < g->kw; kx++) {
            const ptrdiff_t off = kx * g->dw - g->pl;
            const FT *restrict kv = k + (ky * g->kw + kx) * C2;
            fnn_dw_cols(off, g->sw, g->w, g->ow, &lo, &hi);
            for (ox = lo; ox < hi; ox++) {
                FT *restrict yo = yr + ox * C2;
                const FT *restrict xi = xr + (ox * g->sw + off) * C2;
                for (q = 0; q < C2; q++) yo[q] += xi[q] * kv[q];
            }
        }
    }
}

/* dxr[ix, ci] := sum_{ky, kx, m} dz[b, oy, ox, ci*dm + m] * kernel[ky, kx, ci, m] over the taps
 * that read input row iy (in ky, kx, ox order, then m); buf: w*c*dm values when dm > 1. */
RTARGET static void RFN(dw_dx_row)(const fnn_dw_geom *g, const FT *dz_img, const FT *k,
                                   ptrdiff_t iy, FT *dxr, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm;
    FT *acc = g->dm > 1 ? buf : dxr;
    ptrdiff_t ky, kx, ox, q, lo, hi, i, m;
    memset(acc, 0, (size_t)(g->w * C2) * sizeof(FT));
    for (ky = 0; ky < g->kh; ky++) {
        const ptrdiff_t t = iy + g->pt - ky * g->dh;
        const FT *dzr;
        if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh) continue;
        dzr = dz_img + (t / g->sh) * g->ow * C2;
        for (kx = 0; kx < g->kw; kx++) {
            const ptrdiff_t off = kx * g->dw - g->pl;
            const FT *restrict kv = k + (ky * g->kw + kx) * C2;
            fnn_dw_cols(off, g->sw, g->w, g->ow, &lo, &hi);
            for (ox = lo; ox < hi; ox++) {
                FT *restrict a = acc + (ox * g->sw + off) * C2;
                const FT *restrict d = dzr + ox * C2;
                for (q = 0; q < C2; q++) a[q] += d[q] * kv[q];
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
 * pb[q] := sum of dz, rows in order; buf: w*c*dm values when dm > 1. */
RTARGET static void RFN(dw_dk_rows)(const fnn_dw_geom *g, const FT *x, const FT *dz,
                                    ptrdiff_t r0, ptrdiff_t r1, FT *pk, FT *pb, FT *buf)
{
    const ptrdiff_t C2 = g->c * g->dm;
    ptrdiff_t r, ky, kx, ox, q, lo, hi;
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
            if (g->dm > 1) {
                RFN(dw_widen)(xr, g->w, g->c, g->dm, buf);
                xr = buf;
            }
            for (kx = 0; kx < g->kw; kx++) {
                const ptrdiff_t off = kx * g->dw - g->pl;
                FT *restrict pkv = pk + (ky * g->kw + kx) * C2;
                fnn_dw_cols(off, g->sw, g->w, g->ow, &lo, &hi);
                for (ox = lo; ox < hi; ox++) {
                    const FT *restrict xi = xr + (ox * g->sw + off) * C2;
                    const FT *restrict d = dzr + ox * C2;
                    for (q = 0; q < C2; q++) pkv[q] += xi[q] * d[q];
                }
            }
        }
    }
}

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
        if (g->dm > 1 && !(buf = (FT *)malloc((size_t)(g->w * C2) * sizeof(FT))))
            FNN_OMP_FAIL(ok);
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
            if (g->dm > 1 && !(buf = (FT *)malloc((size_t)(g->w * C2) * sizeof(FT))))
                FNN_OMP_FAIL(ok);
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
