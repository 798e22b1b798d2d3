/*
 * Direct convolution for inputs with few channels (first layers: 1 to 4 channels) and unit
 * horizontal stride, one instruction-set flavour at a time (fnn_conv.c instantiates it for
 * float and double, with AVX-512, AVX2+FMA and portable vectors of one lane).
 *
 * Why: with c = 1 a 5x5 patch is 25 values, so the GEMM's k is 25 and every C tile is loaded and
 * stored for 25 multiply-adds, after a gather of 5 runs of 5 values per row; with 6 filters the
 * product is also too narrow for the micro-kernel. Here the vector lanes run along the output
 * row instead (VW positions at a time), each filter of a group has its own accumulator register,
 * and each tap costs one load of VW inputs from a padded, planar copy of the input rows.
 *
 * Forward, per output row (image b, row oy): planes[ky][ci][p] = x[b, oy*sh - pt + ky*dh,
 * p - pl, ci] (zero outside the image), p < pw; then for each group of FG filters and each block
 * of VW positions: acc[j] += planes[ky][ci][ox + kx*dw] * kernel[ky, kx, ci, f0 + j] over the
 * taps in (ky, kx, ci) order, stored to y (bias and activation are applied after, by the
 * caller). Kernel gradient, per output row: the same planes, dz's row transposed (dzt[f][ox]),
 * and vector partial sums acc[tap][f][lane] += planes[...][ox + kx*dw] * dzt[f][ox] kept in a
 * buffer of the caller's (its lanes and groups added in a fixed order at the end).
 *
 * Required macros: FT, VT, VW, VZERO(), VLOAD(p), VSET1(x), VFMA(a, b, c) (a*b + c), VSTORE(p, v),
 * VADD(a, b), VMAX(a, b) (b where a is NaN, as x86's max),
 * DFN(name), DTARGET (a function attribute or nothing). Optional: DIRECT_TSTORE(FGN, acc, yo, F,
 * f0, fg, lanes, room), which stores a block's finished FGN vectors (acc[j]: filter f0 + j at
 * positions ob..ob+lanes) to y (yo = y[ob, f0], room values to the end of its row) transposed
 * in registers and returns 1, or returns 0 to leave them to the portable transposing loop.
 */

#ifndef DIRECT_TSTORE
#define DIRECT_TSTORE(FGN, acc, yo, F, f0, fg, lanes, room) 0
#define DIRECT_TSTORE_DEFAULT
#endif

/* planes for output row oy of image b (see above); ky rows outside the image are zero planes */
static DTARGET void DFN(planes)(const fnn_conv_geom *g, const FT *x, ptrdiff_t b, ptrdiff_t oy,
                                ptrdiff_t pw, FT *planes)
{
    const ptrdiff_t c = g->c, w = g->w;
    ptrdiff_t ky, ci, ix;
    for (ky = 0; ky < g->kh; ky++) {
        const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
        FT *pl = planes + ky * c * pw;
        if (iy < 0 || iy >= g->h) {
            memset(pl, 0, (size_t)(c * pw) * sizeof(FT));
            continue;
        }
        {
            const FT *row = x + ((b * g->h + iy) * w) * c;
            const ptrdiff_t lo = g->pl, hi = g->pl + w < pw ? g->pl + w : pw;
            for (ci = 0; ci < c; ci++) {
                FT *p = pl + ci * pw;
                for (ix = 0; ix < lo && ix < pw; ix++) p[ix] = (FT)0;
                if (c == 1)
                    memcpy(p + lo, row, (size_t)(hi - lo) * sizeof(FT));
                else
                    for (ix = lo; ix < hi; ix++) p[ix] = row[(ix - lo) * c + ci];
                for (ix = hi; ix < pw; ix++) p[ix] = (FT)0;
            }
        }
    }
}

/* Blocks of VW positions a row kernel of FGN filters computes at once: 2 when their 2 FGN
 * accumulators leave registers free (AVX-512: 32; AVX2: 16), else 1. Two blocks load each
 * kernel value once for both: the loads (one per multiply-add with one block) were the limit. */
#define DIRECT_NB(FGN) (VW > 1 && 2 * (FGN) + 4 <= (sizeof(VT) == 64 ? 32 : 16) ? 2 : 1)

/* One tap of 2 blocks of positions: their VW inputs each at xp, the FGN filters' weights at wp. */
#define DIRECT_TAP2(FGN, xp, wp)                                                                 \
    do {                                                                                         \
        const VT x0 = VLOAD(xp), x1 = VLOAD((xp) + VW);                                          \
        for (j = 0; j < (FGN); j++) {                                                            \
            const VT wv = VSET1((wp)[j]);                                                        \
            acc[0][j] = VFMA(x0, wv, acc[0][j]);                                                 \
            acc[1][j] = VFMA(x1, wv, acc[1][j]);                                                 \
        }                                                                                        \
    } while (0)

/* One output row, filters f0..f0+FG of the packed kernel wk ([tap][FG], zero-padded filters):
 * DIRECT_NB(FGN) blocks of positions at a time, one where a single block is left. */
#define DIRECT_ROW(FGN)                                                                          \
    static DTARGET void DFN(row_fg##FGN)(const fnn_conv_geom *g, const FT *planes, ptrdiff_t pw,  \
                                         const FT *wk, ptrdiff_t f0, ptrdiff_t fg, FT *yrow,     \
                                         const FT *bias, int act, FT param)                      \
    {                                                                                            \
        const ptrdiff_t c = g->c, F = g->f;                                                      \
        FT tmp[FGN * VW];                                                                        \
        ptrdiff_t ox0, ky, kx, ci, l, j, b, nb;                                                  \
        for (ox0 = 0; ox0 < g->ow; ox0 += nb * VW) {                                             \
            VT acc[2][FGN];                                                                      \
            nb = (DIRECT_NB(FGN) == 2 && g->ow - ox0 > VW) ? 2 : 1;                              \
            for (j = 0; j < FGN; j++) acc[0][j] = acc[1][j] = VZERO();                           \
            if (nb == 2 && c == 1) { /* one plane per kernel row: a plain loop over its taps */  \
                const FT *wp = wk;                                                               \
                for (ky = 0; ky < g->kh; ky++) {                                                 \
                    const FT *xp = planes + ky * pw + ox0;                                       \
                    for (kx = 0; kx < g->kw; kx++, xp += g->dw, wp += FGN)                       \
                        DIRECT_TAP2(FGN, xp, wp);                                                \
                }                                                                                \
            } else if (nb == 2) {                                                                \
                for (ky = 0; ky < g->kh; ky++)                                                   \
                    for (kx = 0; kx < g->kw; kx++)                                               \
                        for (ci = 0; ci < c; ci++) {                                             \
                            const FT *xp = planes + (ky * c + ci) * pw + ox0 + kx * g->dw;       \
                            const FT *wp = wk + ((ky * g->kw + kx) * c + ci) * FGN;              \
                            DIRECT_TAP2(FGN, xp, wp);                                            \
                        }                                                                        \
            } else {                                                                             \
                for (ky = 0; ky < g->kh; ky++)                                                   \
                    for (kx = 0; kx < g->kw; kx++)                                               \
                        for (ci = 0; ci < c; ci++) {                                             \
                            const FT *xp = planes + (ky * c + ci) * pw + ox0 + kx * g->dw;       \
                            const FT *wp = wk + ((ky * g->kw + kx) * c + ci) * FGN;              \
                            const VT xv = VLOAD(xp);                                             \
                            for (j = 0; j < FGN; j++)                                            \
                                acc[0][j] = VFMA(xv, VSET1(wp[j]), acc[0][j]);                   \
                        }                                                                        \
            }                                                                                    \
            for (b = 0; b < nb; b++) {                                                           \
                const ptrdiff_t ob = ox0 + b * VW;                                               \
                const ptrdiff_t lanes = (g->ow - ob < VW) ? g->ow - ob : VW;                     \
                if (act == FNN_ACT_LINEAR || act == FNN_ACT_RELU) { /* epilogue in registers */  \
                    for (j = 0; j < FGN; j++) {                                                  \
                        VT a = VADD(acc[b][j], VSET1(j < fg ? bias[f0 + j] : (FT)0));            \
                        if (act == FNN_ACT_RELU) a = VMAX(a, VZERO());                           \
                        acc[b][j] = a;                                                           \
                    }                                                                            \
                    if (DIRECT_TSTORE(FGN, acc[b], yrow + ob * F + f0, F, f0, fg, lanes,          \
                                      (g->ow - ob) * F - f0))                                    \
                        continue;                                                                \
                    for (j = 0; j < FGN; j++) VSTORE(tmp + j * VW, acc[b][j]);                   \
                    for (l = 0; l < lanes; l++) {                                                \
                        FT *yo = yrow + (ob + l) * F + f0;                                       \
                        for (j = 0; j < fg; j++) yo[j] = tmp[j * VW + l];                        \
                    }                                                                            \
                    continue;                                                                    \
                }                                                                                \
                for (j = 0; j < FGN; j++) VSTORE(tmp + j * VW, acc[b][j]);                       \
                for (l = 0; l < lanes; l++) {                                                    \
                    FT *yo = yrow + (ob + l) * F + f0;                                           \
                    for (j = 0; j < fg; j++) {                                                   \
                        FT z = tmp[j * VW + l] + bias[f0 + j];                                   \
                        if (act == FNN_ACT_RELU) z = z > (FT)0 ? z : (FT)0;                      \
                        else if (act == FNN_ACT_LEAKY_RELU) z = z > (FT)0 ? z : param * z;       \
                        else if (act == FNN_ACT_STEP) z = z >= param ? (FT)1 : (FT)0;            \
                        yo[j] = z;                                                               \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }
DIRECT_ROW(4)
DIRECT_ROW(6)
DIRECT_ROW(8)
DIRECT_ROW(16)
#undef DIRECT_ROW
#undef DIRECT_NB
#undef DIRECT_TAP2
#ifdef DIRECT_TSTORE_DEFAULT
#undef DIRECT_TSTORE
#undef DIRECT_TSTORE_DEFAULT
#endif

/* y rows of output rows [r0, r1) (r = b*oh + oy), plus the bias, then act when it is LINEAR,
 * RELU, LEAKY_RELU or STEP (the caller passes LINEAR for the others and applies them after):
 * the group widths are fnn_direct_fgn's. */
static DTARGET void DFN(forward_rows)(const fnn_conv_geom *g, const FT *x, const FT *wk,
                                     ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t pw, int maxfg,
                                     FT *planes, FT *y, const FT *bias, int act, FT param)
{
    const ptrdiff_t K = g->kh * g->kw * g->c;
    ptrdiff_t r, f0;
    for (r = r0; r < r1; r++) {
        const ptrdiff_t b = r / g->oh, oy = r % g->oh;
        FT *yrow = y + r * g->ow * g->f;
        const FT *w = wk;
        DFN(planes)(g, x, b, oy, pw, planes);
        for (f0 = 0; f0 < g->f;) {
            const ptrdiff_t left = g->f - f0;
            const int fgn = fnn_direct_fgn(left, maxfg);
            const ptrdiff_t fg = left < fgn ? left : fgn;
            if (fgn == 4)
                DFN(row_fg4)(g, planes, pw, w, f0, fg, yrow, bias, act, param);
            else if (fgn == 6)
                DFN(row_fg6)(g, planes, pw, w, f0, fg, yrow, bias, act, param);
            else if (fgn == 8)
                DFN(row_fg8)(g, planes, pw, w, f0, fg, yrow, bias, act, param);
            else
                DFN(row_fg16)(g, planes, pw, w, f0, fg, yrow, bias, act, param);
            w += K * fgn;
            f0 += fg;
        }
    }
}

#include "fnn_conv_dgrad1_tmpl.h" /* single-channel inputs: grad_rows_c1 */
#include "fnn_conv_pooled_tmpl.h" /* a relu convolution read by a max pooling: pooled_image */

/* Rows of the kernel gradient's row batches (see grad_rows). */
#ifndef FNN_CONV_GRAD_RB
#define FNN_CONV_GRAD_RB 32
#endif

/* The kernel gradient's vector partial sums of output rows [r0, r1), FNN_CONV_GRAD_RB rows at a
 * time: their planes and dz rows transposed (dzt[f][ox], filters padded with zeros to Fp, a
 * multiple of 8) go to buf, then for each tap and group of 8 filters the 8 accumulators stay in
 * registers over the batch: acc[(tap*Fp + f)*VW + l] += planes[tap's plane][ox + kx*dw] *
 * dzt[f][ox] over the blocks of positions (lane l of a block). Rows, blocks and taps always go in
 * the same order: the sums depend on the shapes only. */
static DTARGET void DFN(grad_rows)(const fnn_conv_geom *g, const FT *x, const FT *dz,
                                   ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t pw, FT *buf, FT *acc)
{
    const ptrdiff_t c = g->c, F = g->f, ow = g->ow, Fp = (F + 7) / 8 * 8;
    const ptrdiff_t owp = (ow + VW - 1) / VW * VW;
    const ptrdiff_t plane_sz = g->kh * c * pw, dzt_sz = Fp * owp;
    FT *planes = buf, *dzts = buf + FNN_CONV_GRAD_RB * plane_sz;
    const ptrdiff_t K = g->kh * g->kw * c;
    ptrdiff_t rb0, i, t, u, f, f0, ox, ox0, j;
    if (fnn_conv_dgrad1_elems(g, VW)) {
        DFN(grad_rows_c1)(g, x, dz, r0, r1, buf, acc);
        return;
    }
    for (rb0 = r0; rb0 < r1; rb0 += FNN_CONV_GRAD_RB) {
        const ptrdiff_t nr = (r1 - rb0 < FNN_CONV_GRAD_RB) ? r1 - rb0 : FNN_CONV_GRAD_RB;
        for (i = 0; i < nr; i++) {
            const ptrdiff_t r = rb0 + i, b = r / g->oh, oy = r % g->oh;
            const FT *drow = dz + r * ow * F;
            FT *dzt = dzts + i * dzt_sz;
            DFN(planes)(g, x, b, oy, pw, planes + i * plane_sz);
            for (f = 0; f < Fp; f++) {
                FT *d = dzt + f * owp;
                const ptrdiff_t filled = f < F ? ow : 0;
                for (ox = 0; ox < filled; ox++) d[ox] = drow[ox * F + f];
                for (ox = filled; ox < owp; ox++) d[ox] = (FT)0;
            }
        }
        /* DTB taps at a time: the 8 dz vectors of a block are loaded once for them */
        for (t = 0; t < K; t += DTB) {
            const ptrdiff_t tb = (K - t < DTB) ? K - t : DTB;
            ptrdiff_t off[DTB];
            for (u = 0; u < DTB; u++) { /* tap (ky, kx, ci) = t + u: its plane and shift */
                const ptrdiff_t tap = t + (u < tb ? u : 0), ci_ = tap % c, kk = tap / c;
                off[u] = ((kk / g->kw) * c + ci_) * pw + (kk % g->kw) * g->dw;
            }
            for (f0 = 0; f0 < Fp; f0 += 8) {
                VT s[DTB][8];
                for (u = 0; u < DTB; u++)
                    for (j = 0; j < 8; j++)
                        s[u][j] = u < tb ? VLOAD(acc + ((t + u) * Fp + f0 + j) * VW) : VZERO();
                for (i = 0; i < nr; i++) {
                    const FT *base = planes + i * plane_sz;
                    const FT *d = dzts + i * dzt_sz + f0 * owp;
                    for (ox0 = 0; ox0 < owp; ox0 += VW) {
                        VT dv[8];
                        for (j = 0; j < 8; j++) dv[j] = VLOAD(d + j * owp + ox0);
                        for (u = 0; u < DTB; u++) {
                            const VT xv = VLOAD(base + off[u] + ox0);
                            for (j = 0; j < 8; j++) s[u][j] = VFMA(xv, dv[j], s[u][j]);
                        }
                    }
                }
                for (u = 0; u < tb; u++)
                    for (j = 0; j < 8; j++) VSTORE(acc + ((t + u) * Fp + f0 + j) * VW, s[u][j]);
            }
        }
    }
}
