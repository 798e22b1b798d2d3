/*
 * The convolution driver (see fnn_conv.h), written once and instantiated for float and double by
 * fnn_conv.c. Required macros: FT (the element type), CFN(name) (name with the type's suffix),
 * GEMM (fnn_sgemm / fnn_dgemm), EPI_T (fnn_epilogue_f32 / _f64).
 */

/* Rows of patches in [row0, row0 + rows) into buf (rows x K, row-major): tap (ky, kx) of row r
 * is buf[r*K + (ky*kw + kx)*c : + c], zero where the tap falls in the padding. */
static void CFN(gather)(const fnn_conv_geom *g, const FT *x, ptrdiff_t row0, ptrdiff_t rows,
                        FT *buf)
{
    const ptrdiff_t c = g->c, kw = g->kw, K = g->kh * kw * c, P = g->oh * g->ow;
    const ptrdiff_t run = kw * c; /* one kernel row's values */
    ptrdiff_t r, ky, kx;
    for (r = 0; r < rows; r++) {
        const ptrdiff_t row = row0 + r, img = row / P, pos = row % P;
        const ptrdiff_t oy = pos / g->ow, ox = pos % g->ow;
        const ptrdiff_t ix0 = ox * g->sw - g->pl;
        const int inside_x = (ix0 >= 0 && ix0 + (kw - 1) * g->dw < g->w);
        FT *dst = buf + r * K;
        for (ky = 0; ky < g->kh; ky++) {
            const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
            FT *seg = dst + ky * run;
            const FT *src;
            if (iy < 0 || iy >= g->h) {
                memset(seg, 0, (size_t)run * sizeof(FT));
                continue;
            }
            src = x + ((img * g->h + iy) * g->w) * c;
            if (inside_x && g->dw == 1) {
                memcpy(seg, src + ix0 * c, (size_t)run * sizeof(FT));
                continue;
            }
            for (kx = 0; kx < kw; kx++) {
                const ptrdiff_t ix = ix0 + kx * g->dw;
                if (ix < 0 || ix >= g->w)
                    memset(seg + kx * c, 0, (size_t)c * sizeof(FT));
                else
                    memcpy(seg + kx * c, src + ix * c, (size_t)c * sizeof(FT));
            }
        }
    }
}

/* The transposed gather: dx[position of tap (ky, kx) of row r] += buf[r*K + (ky*kw + kx)*c + :]
 * for rows in [row0, row0 + rows), rows then taps in order, padding taps dropped. */
static void CFN(scatter)(const fnn_conv_geom *g, const FT *buf, ptrdiff_t row0, ptrdiff_t rows,
                         FT *dx)
{
    const ptrdiff_t c = g->c, kw = g->kw, K = g->kh * kw * c, P = g->oh * g->ow;
    const ptrdiff_t run = kw * c;
    ptrdiff_t r, ky, kx, i;
    for (r = 0; r < rows; r++) {
        const ptrdiff_t row = row0 + r, img = row / P, pos = row % P;
        const ptrdiff_t oy = pos / g->ow, ox = pos % g->ow;
        const ptrdiff_t ix0 = ox * g->sw - g->pl;
        const int inside_x = (ix0 >= 0 && ix0 + (kw - 1) * g->dw < g->w);
        const FT *srcrow = buf + r * K;
        for (ky = 0; ky < g->kh; ky++) {
            const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
            const FT *seg = srcrow + ky * run;
            FT *dst;
            if (iy < 0 || iy >= g->h) continue;
            dst = dx + ((img * g->h + iy) * g->w) * c;
            if (inside_x && g->dw == 1) {
                FT *d = dst + ix0 * c;
                for (i = 0; i < run; i++) d[i] += seg[i];
                continue;
            }
            for (kx = 0; kx < kw; kx++) {
                const ptrdiff_t ix = ix0 + kx * g->dw;
                FT *d;
                const FT *s = seg + kx * c;
                if (ix < 0 || ix >= g->w) continue;
                d = dst + ix * c;
                for (i = 0; i < c; i++) d[i] += s[i];
            }
        }
    }
}

/* The product of a chunk of rows: P_chunk (rows x K) @ kernel (K x f) -> y rows, epilogue. */
static void CFN(forward_rows)(const fnn_conv_geom *g, const FT *patches, ptrdiff_t rows,
                              const FT *kernel, const FT *bias, int act, FT param, FT *y,
                              double par_min)
{
    const ptrdiff_t K = g->kh * g->kw * g->c;
    EPI_T ep;
    memset(&ep, 0, sizeof ep);
    ep.bias = bias;
    ep.act = act;
    ep.param = param;
    ep.min_parallel_work = par_min;
    GEMM(0, 0, rows, g->f, K, (FT)1, patches, K, kernel, g->f, (FT)0, y, g->f, &ep);
}

/* bias and activation on `rows` rows of y (a GEMM with no product: only its epilogue) */
static void CFN(epilogue_rows)(const fnn_conv_geom *g, FT *y, ptrdiff_t rows, const FT *bias,
                               int act, FT param, double par_min)
{
    EPI_T ep;
    memset(&ep, 0, sizeof ep);
    ep.bias = bias;
    ep.act = act;
    ep.param = param;
    ep.min_parallel_work = par_min;
    GEMM(0, 0, rows, g->f, 0, (FT)1, NULL, 1, NULL, g->f, (FT)1, y, g->f, &ep);
}

static void *CFN(alloc)(size_t elems)
{
    const size_t bytes = (elems * sizeof(FT) + FNN_ALIGN_CONV - 1) / FNN_ALIGN_CONV *
                         FNN_ALIGN_CONV;
    void *p = NULL;
    if (bytes == 0 || posix_memalign(&p, FNN_ALIGN_CONV, bytes) != 0) return NULL;
    return p;
}

/* dbias partial: acc[j] += sum of the chunk's rows of dz. Blocks of m = 256 / f rows are added
 * into m*f partial sums (one flat run of values, so the loop is a plain vector add even when f is
 * a few filters), folded into acc in order, then the rows past the last block: an order set by
 * f and rows alone. */
static void CFN(colsum)(const FT *dz, ptrdiff_t rows, ptrdiff_t f, double *acc)
{
    double part[256];
    const ptrdiff_t m = 256 / f, B = m * f, nb = m > 1 ? rows / m : 0;
    ptrdiff_t r, j, i;
    if (nb > 0) {
        memset(part, 0, (size_t)B * sizeof(double));
        for (i = 0; i < nb; i++) {
            const FT *d = dz + i * B;
            for (j = 0; j < B; j++) part[j] += (double)d[j];
        }
        for (j = 0; j < B; j++) acc[j % f] += part[j];
    }
    for (r = nb * m; r < rows; r++) {
        const FT *d = dz + r * f;
        for (j = 0; j < f; j++) acc[j] += (double)d[j];
    }
}

/* ---------------------------------------------------------------- direct path (few channels) */

#ifndef FNN_DIRECT_STACK
#define FNN_DIRECT_STACK 2048 /* values of forward_direct's stack buffer (8 or 16 KiB) */
#endif

/* Rows of output (image, row) per task of the direct path: about 256 positions. */
static ptrdiff_t CFN(direct_rows_per_task)(const fnn_conv_geom *g)
{
    const ptrdiff_t r = 256 / g->ow;
    return r < 1 ? 1 : r;
}

/* The kernel packed by filter groups: for each group (fnn_direct_fgn's widths, as forward_rows
 * takes them), [tap][fgn] with the filters past F zero; wk holds K * (F + 16) values. */
static void CFN(direct_pack_fill)(const fnn_conv_geom *g, int maxfg, const FT *kernel, FT *wk)
{
    const ptrdiff_t K = g->kh * g->kw * g->c, F = g->f;
    ptrdiff_t f0, t, j;
    for (f0 = 0; f0 < F;) {
        const ptrdiff_t left = F - f0;
        const int fgn = fnn_direct_fgn(left, maxfg);
        const ptrdiff_t fg = left < fgn ? left : fgn;
        for (t = 0; t < K; t++)
            for (j = 0; j < fgn; j++) wk[t * fgn + j] = j < fg ? kernel[t * F + f0 + j] : (FT)0;
        wk += K * fgn;
        f0 += fg;
    }
}

static int CFN(forward_direct)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const FT *x,
                               const FT *kernel, const FT *bias, int act, FT param, FT *y)
{
    const DIRECT_T d = DIRECT_FLAVOUR();
    const ptrdiff_t owp = (g->ow + d.vw - 1) / d.vw * d.vw;
    const ptrdiff_t pw = owp + (g->kw - 1) * g->dw + d.vw;
    const ptrdiff_t rows = g->n * g->oh, per = CFN(direct_rows_per_task)(g);
    const ptrdiff_t tasks = (rows + per - 1) / per;
    const size_t plane_elems = (size_t)(g->kh * g->c * pw);
    const size_t wk_elems = (size_t)(pl->K * (g->f + 16));
    int ok = 1, nt = fnn_conv_threads_for(pl->work * FNN_CONV_DIRECT_COST, tasks);
    /* the packed kernel and a serial call's planes on the stack when they are small (a first
     * layer's are: 2.2 KiB and 1 KiB for 6 filters of 5x5), else allocated */
    FT small[FNN_DIRECT_STACK] __attribute__((aligned(64)));
    const int on_stack = wk_elems + (nt <= 1 ? plane_elems : 0) + 16 <= FNN_DIRECT_STACK;
    FT *wk = on_stack ? small : (FT *)CFN(alloc)(wk_elems);
    /* bias and the cheap activations as the rows are stored; the others after, by the GEMM's
     * epilogue (a product of no terms) */
    const int late = FNN_ACT_LATE(act) || act == FNN_ACT_SOFTMAX;
    const int inline_act = late ? FNN_ACT_LINEAR : act;
    if (!wk) return 0;
    CFN(direct_pack_fill)(g, d.maxfg, kernel, wk);
    if (nt <= 1) {
        /* (planes 64-byte aligned past wk, as CFN(alloc) gives them) */
        FT *planes = on_stack ? small + (wk_elems + 15) / 16 * 16
                              : (FT *)CFN(alloc)(plane_elems);
        ptrdiff_t t;
        if (!planes) { free(wk); return 0; }
        for (t = 0; t < tasks; t++) {
            const ptrdiff_t r0 = t * per, r1 = (r0 + per < rows) ? r0 + per : rows;
            d.DFWD(g, x, wk, r0, r1, pw, d.maxfg, planes, y, bias, inline_act, param);
            if (late)
                CFN(epilogue_rows)(g, y + r0 * g->ow * g->f, (r1 - r0) * g->ow, NULL, act,
                                   param, 0.0);
        }
        if (!on_stack) free(planes);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            const unsigned int csr = fnn_ftz_enter();
            FT *planes = (FT *)CFN(alloc)(plane_elems);
            ptrdiff_t t;
            if (!planes) {
                FNN_OMP_FAIL(ok);
            }
#pragma omp for schedule(dynamic, 1)
            for (t = 0; t < tasks; t++) {
                const ptrdiff_t r0 = t * per, r1 = (r0 + per < rows) ? r0 + per : rows;
                if (!planes) continue;
                d.DFWD(g, x, wk, r0, r1, pw, d.maxfg, planes, y, bias, inline_act, param);
                if (late)
                    CFN(epilogue_rows)(g, y + r0 * g->ow * g->f, (r1 - r0) * g->ow, NULL, act,
                                       param, FNN_CONV_SERIAL);
            }
            free(planes);
            fnn_ftz_leave(csr);
        }
#endif
    }
    if (!on_stack) free(wk);
    return ok;
}

/* The kernel and bias gradients on the direct path: the output rows in pl->groups fixed ranges,
 * each into its own vector partial sums, added in group then lane order. */
static int CFN(grad_direct)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const FT *x,
                            const FT *dz, FT *dkernel, FT *dbias)
{
    const DIRECT_T d = DIRECT_FLAVOUR();
    const ptrdiff_t owp = (g->ow + d.vw - 1) / d.vw * d.vw;
    const ptrdiff_t pw = owp + (g->kw - 1) * g->dw + d.vw;
    const ptrdiff_t rows = g->n * g->oh, F = g->f, KF = pl->K * F, Fp = (F + 7) / 8 * 8;
    const ptrdiff_t groups = rows < FNN_CONV_GROUPS ? rows : FNN_CONV_GROUPS;
    const size_t plane_elems = (size_t)(g->kh * g->c * pw);
    const size_t acc_elems = (size_t)(pl->K * Fp * d.vw);
    const size_t rows_elems = (size_t)FNN_CONV_GRAD_RB * (plane_elems + (size_t)(Fp * owp));
    const size_t c1_elems = fnn_conv_dgrad1_elems(g, d.vw); /* grad_rows_c1's, when it runs */
    const size_t buf_elems = c1_elems > rows_elems ? c1_elems : rows_elems;
    FT *accs = (FT *)CFN(alloc)(acc_elems * (size_t)groups);
    double *bs = (double *)calloc((size_t)(groups * F), sizeof(double));
    int ok = 1, nt = fnn_conv_threads_for(pl->work * FNN_CONV_DIRECT_COST, groups);
    ptrdiff_t q, j, l;
    if (!accs || !bs) { free(accs); free(bs); return 0; }
    memset(accs, 0, acc_elems * (size_t)groups * sizeof(FT));
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *planes = (FT *)CFN(alloc)(buf_elems);
        ptrdiff_t qq;
        if (!planes) {
            FNN_OMP_FAIL(ok);
        }
        FNN_OMP_FOR_DYNAMIC
        for (qq = 0; qq < groups; qq++) {
            const ptrdiff_t r0 = qq * rows / groups, r1 = (qq + 1) * rows / groups;
            if (!planes) continue;
            d.DGRAD(g, x, dz, r0, r1, pw, planes, accs + qq * acc_elems);
            CFN(colsum)(dz + r0 * g->ow * F, (r1 - r0) * g->ow, F, bs + qq * F);
        }
        free(planes);
        fnn_ftz_leave(csr);
    }
    if (ok) {
        for (j = 0; j < KF; j++) {
            const ptrdiff_t at = ((j / F) * Fp + j % F) * d.vw;
            FT s = (FT)0;
            for (q = 0; q < groups; q++) {
                const FT *a = accs + q * acc_elems + at;
                for (l = 0; l < d.vw; l++) s += a[l];
            }
            dkernel[j] = s;
        }
        for (j = 0; j < F; j++) {
            double s = 0.0;
            for (q = 0; q < groups; q++) s += bs[q * F + j];
            dbias[j] = (FT)s;
        }
    }
    free(accs);
    free(bs);
    return ok;
}

#include "fnn_conv_wino_drv_tmpl.h"

int CFN(fnn_conv2d_forward)(const fnn_conv_geom *g, const FT *x, const FT *kernel,
                            const FT *bias, int act, FT param, FT *y)
{
    fnn_conv_plan pl;
    int ok = 1, nt;
    const unsigned int saved_csr = fnn_ftz_enter();
    fnn_conv_make_plan(g, &pl);
    if (pl.M == 0) goto done;
    if (pl.direct) { /* 1x1, unit strides: x is P */
        CFN(forward_rows)(g, x, pl.M, kernel, bias, act, param, y, 0.0);
        goto done;
    }
    if (fnn_conv_use_direct(g)) {
        ok = CFN(forward_direct)(g, &pl, x, kernel, bias, act, param, y);
        goto done;
    }
    if (fnn_conv_wino_use(g)) { /* 3x3, stride 1, many channels: fnn_conv_wino.h */
        ok = CFN(wino_forward)(g, x, kernel, bias, act, param, y);
        goto done;
    }
#if FNN_X86
    if (fnn_conv_strided_use(g)) { /* stride 1, many channels: fnn_conv_strided.h */
        ok = CFN(fnn_conv_strided_forward)(g, x, kernel, bias, act, param, y);
        goto done;
    }
#endif
    nt = fnn_conv_threads(&pl, pl.nchunks);
    if (nt <= 1) {
        FT *buf = (FT *)CFN(alloc)((size_t)pl.chunk_rows * (size_t)pl.K);
        ptrdiff_t j;
        if (!buf) { ok = 0; goto done; }
        for (j = 0; j < pl.nchunks; j++) {
            ptrdiff_t row0, rows;
            fnn_conv_chunk(&pl, j, &row0, &rows);
            CFN(gather)(g, x, row0, rows, buf);
            CFN(forward_rows)(g, buf, rows, kernel, bias, act, param, y + row0 * g->f, 0.0);
        }
        free(buf);
        goto done;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *buf = (FT *)CFN(alloc)((size_t)pl.chunk_rows * (size_t)pl.K);
        ptrdiff_t j;
        if (!buf) {
            FNN_OMP_FAIL(ok);
        }
#pragma omp for schedule(dynamic, 1)
        for (j = 0; j < pl.nchunks; j++) {
            ptrdiff_t row0, rows;
            if (!buf) continue;
            fnn_conv_chunk(&pl, j, &row0, &rows);
            CFN(gather)(g, x, row0, rows, buf);
            CFN(forward_rows)(g, buf, rows, kernel, bias, act, param, y + row0 * g->f,
                              FNN_CONV_SERIAL);
        }
        free(buf);
        fnn_ftz_leave(csr);
    }
#endif
done:
    fnn_ftz_leave(saved_csr);
    return ok;
}

#include "fnn_conv_wgrad_drv_tmpl.h"

/* Group gi's partial kernel gradient (into part, K x f, written) and bias sums (into acc). */
static void CFN(grad_group)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const FT *x,
                            const FT *dz, ptrdiff_t gi, FT *buf, FT *part, double *acc,
                            double par_min)
{
    const ptrdiff_t j0 = gi * pl->nchunks / pl->groups, j1 = (gi + 1) * pl->nchunks / pl->groups;
    ptrdiff_t j;
    EPI_T ep;
    memset(&ep, 0, sizeof ep);
    ep.min_parallel_work = par_min;
    memset(acc, 0, (size_t)g->f * sizeof(double));
    for (j = j0; j < j1; j++) {
        ptrdiff_t row0, rows;
        fnn_conv_chunk(pl, j, &row0, &rows);
        CFN(gather)(g, x, row0, rows, buf);
        /* part (+)= P_chunk^T @ dz_chunk: k = the chunk's rows, summed in order */
        GEMM(1, 0, pl->K, g->f, rows, (FT)1, buf, pl->K, dz + row0 * g->f, g->f,
             j == j0 ? (FT)0 : (FT)1, part, g->f, &ep);
        CFN(colsum)(dz + row0 * g->f, rows, g->f, acc);
    }
}

/* dx of task t (an image, or a chunk's run of images): zeroed, then each chunk's
 * dP = dz_chunk @ kernel^T scattered back, chunks in order. */
static void CFN(input_task)(const fnn_conv_geom *g, const fnn_conv_plan *pl, const FT *kernel,
                            const FT *dz, ptrdiff_t t, FT *buf, FT *dx, double par_min)
{
    const ptrdiff_t img_elems = g->h * g->w * g->c;
    ptrdiff_t j0, j1, j, img0, nimg;
    EPI_T ep;
    memset(&ep, 0, sizeof ep);
    ep.min_parallel_work = par_min;
    if (pl->per_image) {
        j0 = t * pl->cpi;
        j1 = j0 + pl->cpi;
        img0 = t;
        nimg = 1;
    } else {
        j0 = t;
        j1 = t + 1;
        img0 = t * pl->ipc;
        nimg = (g->n - img0 < pl->ipc) ? g->n - img0 : pl->ipc;
    }
    memset(dx + img0 * img_elems, 0, (size_t)(nimg * img_elems) * sizeof(FT));
    for (j = j0; j < j1; j++) {
        ptrdiff_t row0, rows;
        fnn_conv_chunk(pl, j, &row0, &rows);
        GEMM(0, 1, rows, pl->K, g->f, (FT)1, dz + row0 * g->f, g->f, kernel, g->f, (FT)0, buf,
             pl->K, &ep);
        CFN(scatter)(g, buf, row0, rows, dx);
    }
}

int CFN(fnn_conv3d_backward_kernel)(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                    const FT *x, const FT *dz, FT *dkernel, FT *dbias)
{
    const CFN(fnn_wgrad) w = CFN(fnn_wgrad_flavour)();
    fnn_conv_geom gc = *g;
    fnn_conv_plan pl;
    int ok;
    unsigned int saved_csr;
    gc.c = ds->c;
    if (!CFN(wgrad_use)(&gc, w.vw)) return -1;
    fnn_conv_make_plan(g, &pl);
    if (pl.M == 0) {
        memset(dkernel, 0, (size_t)(pl.K * g->f) * sizeof(FT));
        memset(dbias, 0, (size_t)g->f * sizeof(FT));
        return 1;
    }
    saved_csr = fnn_ftz_enter();
    ok = CFN(grad_wvec)(g, ds, &pl, &w, x, dz, dkernel, dbias);
    fnn_ftz_leave(saved_csr);
    return ok;
}

int CFN(fnn_conv2d_backward)(const fnn_conv_geom *g, const FT *x, const FT *kernel,
                             const FT *dz, FT *dkernel, FT *dbias, FT *dx)
{
    fnn_conv_plan pl, pw;
    int ok = 1, nt;
    ptrdiff_t gi, j, KF;
    FT *parts = NULL;
    double *accs = NULL;
    const unsigned int saved_csr = fnn_ftz_enter();
    fnn_conv_make_plan(g, &pl);
    KF = pl.K * g->f;
    if (pl.M == 0) {
        if (dkernel) {
            memset(dkernel, 0, (size_t)KF * sizeof(FT));
            memset(dbias, 0, (size_t)g->f * sizeof(FT));
        }
        goto done;
    }
    if (pl.direct) { /* 1x1, unit strides: P is x */
        if (dkernel) {
            double *acc = (double *)calloc((size_t)g->f, sizeof(double));
            if (!acc) { ok = 0; goto done; }
            GEMM(1, 0, pl.K, g->f, pl.M, (FT)1, x, pl.K, dz, g->f, (FT)0, dkernel, g->f, NULL);
            CFN(colsum)(dz, pl.M, g->f, acc);
            for (j = 0; j < g->f; j++) dbias[j] = (FT)acc[j];
            free(acc);
        }
        if (dx) GEMM(0, 1, pl.M, pl.K, g->f, (FT)1, dz, g->f, kernel, g->f, (FT)0, dx, pl.K, NULL);
        goto done;
    }
    if (!dkernel) goto input; /* dx alone (a transposed convolution's forward): x is not read */
    {
        const CFN(fnn_wgrad) w = CFN(fnn_wgrad_flavour)();
        /* the direct path stays with the first layers unless the filters fill the vectors:
         * LeNet-5's 6 filters ran 1.25x slower here (AVX-512), 16 filters 2.5x faster */
        if (CFN(wgrad_use)(g, w.vw) && (!fnn_conv_use_direct(g) || g->f % w.vw == 0)) {
            if (!CFN(grad_wvec)(g, NULL, &pl, &w, x, dz, dkernel, dbias)) { ok = 0; goto done; }
            goto input;
        }
    }
    if (fnn_conv_use_direct(g)) {
        if (!CFN(grad_direct)(g, &pl, x, dz, dkernel, dbias)) { ok = 0; goto done; }
        goto input;
    }
    /* the kernel gradient: groups of chunks, each into its partial (group 0 into dkernel);
     * for a partial beyond a core's L2, chunks deeper than the forward's (fnn_conv.c) */
    if (KF < FNN_CONV_WGRAD_DEEP_FROM)
        pw = pl;
    else
        fnn_conv_make_plan_sized(g, &pw, FNN_CONV_WGRAD_ELEMS, FNN_CONV_WGRAD_MAX_ROWS);
    accs = (double *)calloc((size_t)(pw.groups * g->f), sizeof(double));
    if (pw.groups > 1) parts = (FT *)CFN(alloc)((size_t)((pw.groups - 1) * KF));
    if (!accs || (pw.groups > 1 && !parts)) { ok = 0; goto done; }
    nt = fnn_conv_threads(&pw, pw.groups);
    if (nt <= 1) {
        FT *buf = (FT *)CFN(alloc)((size_t)pw.chunk_rows * (size_t)pw.K);
        if (!buf) { ok = 0; goto done; }
        for (gi = 0; gi < pw.groups; gi++)
            CFN(grad_group)(g, &pw, x, dz, gi, buf, gi ? parts + (gi - 1) * KF : dkernel,
                            accs + gi * g->f, 0.0);
        free(buf);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            const unsigned int csr = fnn_ftz_enter();
            FT *buf = (FT *)CFN(alloc)((size_t)pw.chunk_rows * (size_t)pw.K);
            ptrdiff_t q;
            if (!buf) {
                FNN_OMP_FAIL(ok);
            }
#pragma omp for schedule(dynamic, 1)
            for (q = 0; q < pw.groups; q++) {
                if (!buf) continue;
                CFN(grad_group)(g, &pw, x, dz, q, buf, q ? parts + (q - 1) * KF : dkernel,
                                accs + q * g->f, FNN_CONV_SERIAL);
            }
            free(buf);
            fnn_ftz_leave(csr);
        }
#endif
        if (!ok) goto done;
    }
    for (gi = 1; gi < pw.groups; gi++) { /* partials added in group order */
        const FT *p = parts + (gi - 1) * KF;
        for (j = 0; j < KF; j++) dkernel[j] += p[j];
        for (j = 0; j < g->f; j++) accs[j] += accs[gi * g->f + j];
    }
    for (j = 0; j < g->f; j++) dbias[j] = (FT)accs[j];
input:
    if (!dx) goto done;
    if (fnn_conv_wino_dx_use(g)) { /* 3x3, stride 1, many channels: fnn_conv_wino.h */
        ok = CFN(wino_dx)(g, kernel, dz, dx);
        goto done;
    }
#if FNN_X86
    if (fnn_conv_strided_dx_use(g)) { /* stride 1, many channels: dx as a forward of that path */
        ok = CFN(fnn_conv_strided_dx)(g, kernel, dz, dx);
        goto done;
    }
#endif

    /* the input gradient: tasks of whole images */
    nt = fnn_conv_threads(&pl, pl.tasks);
    if (nt <= 1) {
        FT *buf = (FT *)CFN(alloc)((size_t)pl.chunk_rows * (size_t)pl.K);
        if (!buf) { ok = 0; goto done; }
        for (j = 0; j < pl.tasks; j++) CFN(input_task)(g, &pl, kernel, dz, j, buf, dx, 0.0);
        free(buf);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            const unsigned int csr = fnn_ftz_enter();
            FT *buf = (FT *)CFN(alloc)((size_t)pl.chunk_rows * (size_t)pl.K);
            ptrdiff_t t;
            if (!buf) {
                FNN_OMP_FAIL(ok);
            }
#pragma omp for schedule(dynamic, 1)
            for (t = 0; t < pl.tasks; t++) {
                if (!buf) continue;
                CFN(input_task)(g, &pl, kernel, dz, t, buf, dx, FNN_CONV_SERIAL);
            }
            free(buf);
            fnn_ftz_leave(csr);
        }
#endif
    }
done:
    free(parts);
    free(accs);
    fnn_ftz_leave(saved_csr);
    return ok;
}

/* The kernel and bias gradients from a max pooling's output (fnn_conv.h): the images in
 * FNN_CONV_GROUPS fixed ranges, each range summing its images in order into its own partial
 * sums, which are added in range order (the sums depend on the shapes only). */
int CFN(fnn_conv2d_backward_pooled)(const fnn_conv_geom *g, const FT *x, const FT *dy,
                                    const int64_t *argmax, const FT *yp, ptrdiff_t pn,
                                    FT *dkernel, FT *dbias)
{
    const DIRECT_T d = DIRECT_FLAVOUR();
    const ptrdiff_t c = g->c, F = g->f, kh = g->kh, kw = g->kw, vw = d.vw;
    const ptrdiff_t R = ((kw - 1) * g->dw + 1) * c, nv = (R + vw - 1) / vw;
    const ptrdiff_t HP = (g->oh - 1) * g->sh + (kh - 1) * g->dh + 1;
    const ptrdiff_t WP = (g->ow - 1) * g->sw + (kw - 1) * g->dw + 1, rs = WP * c + vw;
    const ptrdiff_t na = g->oh * g->ow, groups = g->n < FNN_CONV_GROUPS ? g->n : FNN_CONV_GROUPS;
    const size_t acc_elems = (size_t)(F * kh * nv * vw), xp_elems = (size_t)(HP * rs);
    const unsigned int saved_csr = fnn_ftz_enter();
    ptrdiff_t *off = (ptrdiff_t *)malloc((size_t)na * sizeof(ptrdiff_t));
    FT *accs = (FT *)CFN(alloc)(acc_elems * (size_t)groups);
    double *bs = (double *)calloc((size_t)(groups * F), sizeof(double));
    fnn_pooled_args pa;
    int ok = 1, nt;
    ptrdiff_t a, q, j;
    if (!off || !accs || !bs) {
        ok = 0;
        goto done;
    }
    for (a = 0; a < na; a++) off[a] = (a / g->ow) * g->sh * rs + (a % g->ow) * g->sw * c;
    memset(accs, 0, acc_elems * (size_t)groups * sizeof(FT));
    pa.F = F; pa.pn = pn; pa.na = na; pa.kh = kh; pa.nv = nv; pa.rowstep = g->dh * rs;
    pa.off = off;
    nt = fnn_conv_threads_for((double)(g->n * pn * F * kh * nv * vw) * FNN_CONV_DIRECT_COST,
                              groups);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *xp = (FT *)CFN(alloc)(xp_elems);
        ptrdiff_t qq, b, r;
        if (!xp) {
            FNN_OMP_FAIL(ok);
        }
        FNN_OMP_FOR_DYNAMIC
        for (qq = 0; qq < groups; qq++) {
            if (!xp) continue;
            for (b = qq * g->n / groups; b < (qq + 1) * g->n / groups; b++) {
                /* xp row r: input row r - pt; position p of a row: input column p - pl */
                const ptrdiff_t lo = g->pl < WP ? g->pl : WP;
                const ptrdiff_t hi = g->pl + g->w < WP ? g->pl + g->w : WP;
                for (r = 0; r < HP; r++) {
                    const ptrdiff_t iy = r - g->pt;
                    FT *row = xp + r * rs;
                    if (iy < 0 || iy >= g->h || hi <= lo) {
                        memset(row, 0, (size_t)rs * sizeof(FT));
                        continue;
                    }
                    memset(row, 0, (size_t)(lo * c) * sizeof(FT));
                    memcpy(row + lo * c, x + ((b * g->h + iy) * g->w) * c,
                           (size_t)((hi - lo) * c) * sizeof(FT));
                    memset(row + hi * c, 0, (size_t)(rs - hi * c) * sizeof(FT));
                }
                d.DPOOLED(&pa, argmax + b * pn * F, dy + b * pn * F, yp + b * pn * F, xp,
                          accs + qq * acc_elems, bs + qq * F);
            }
        }
        free(xp);
        fnn_ftz_leave(csr);
    }
    if (ok) { /* dkernel[ky, kx, ci, f]: value kx*dw*c + ci of row ky of filter f's sums */
        ptrdiff_t ky, kx, ci;
        for (ky = 0; ky < kh; ky++)
            for (kx = 0; kx < kw; kx++)
                for (ci = 0; ci < c; ci++)
                    for (j = 0; j < F; j++) {
                        const ptrdiff_t at = (j * kh + ky) * nv * vw + kx * g->dw * c + ci;
                        FT s = (FT)0;
                        for (q = 0; q < groups; q++) s += accs[q * acc_elems + at];
                        dkernel[((ky * kw + kx) * c + ci) * F + j] = s;
                    }
        for (j = 0; j < F; j++) {
            double s = 0.0;
            for (q = 0; q < groups; q++) s += bs[q * F + j];
            dbias[j] = (FT)s;
        }
    }
done:
    free(off);
    free(accs);
    free(bs);
    fnn_ftz_leave(saved_csr);
    return ok;
}
