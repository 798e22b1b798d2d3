/*
 * The kernel gradient of a relu convolution read only by a max pooling (fnn_conv.h:
 * fnn_conv2d_backward_pooled), one image at a time, in one instruction-set flavour: included
 * by fnn_conv_direct_tmpl.h with its macros (FT, VT, VW, VZERO, VLOAD, VSET1, VFMA, VSTORE, DFN,
 * DTARGET).
 *
 * dz is zero except at each pooling window's argmax, so an entry of the pooling (a window, a
 * filter f) whose gradient is g adds g times its argmax's patch to filter f's kernel gradient.
 * In the image's padded copy xp (rows of rs values) a patch is kh rows of R = ((kw-1)*dw + 1)*c
 * consecutive values, ky*dh*rs apart, read as NV vectors of VW a row: the NACC = kh*NV sums of a
 * filter stay in registers over the image's entries (lane l of vector v of row ky sums value
 * v*VW + l of the row: taps and channels interleaved as in the input; the values between
 * dilated taps and past R are summed too, and the caller drops them).
 */

/* Entry e: its patch's offset in the image's padded copy into *at, its gradient returned (dy
 * where the relu was active, else dy * 0: 0, or NaN for a non-finite dy); an argmax outside
 * the output is dropped (gradient 0 on the first patch). No branches: which windows have an
 * active relu is data, a coin toss for the branch predictor. */
static inline FT DFN(pooled_g)(const ptrdiff_t *off, ptrdiff_t na, const int64_t *am,
                               const FT *dy, const FT *yp, ptrdiff_t e, ptrdiff_t *at)
{
    const int64_t a = am[e];
    const int valid = (uint64_t)a < (uint64_t)na;
    const FT d = dy[e], g = yp[e] > (FT)0 ? d : d * (FT)0;
    *at = off[valid ? a : 0];
    return valid ? g : (FT)0;
}

/* Filters f (and f + 1 when TWO) of one image with KH x NV sums each in registers. */
static inline __attribute__((always_inline)) DTARGET void
DFN(pooled_regs)(const int KH, const int NV, const int TWO, const fnn_pooled_args *pa,
                 const int64_t *am, const FT *dy, const FT *yp, const FT *xp, ptrdiff_t f,
                 FT *acc, double *bsum)
{
    const ptrdiff_t F = pa->F, pn = pa->pn, na = pa->na, step = pa->rowstep;
    const ptrdiff_t NA = (ptrdiff_t)KH * NV, *off = pa->off;
    const int NF = TWO ? 2 : 1; /* filters f + h, h < NF */
    VT s[2][14];
    double bs[2] = {0.0, 0.0};
    ptrdiff_t p, i, ky, v;
    int h;
#pragma GCC unroll 2
    for (h = 0; h < NF; h++)
#pragma GCC unroll 14
        for (i = 0; i < NA; i++) s[h][i] = VLOAD(acc + ((f + h) * NA + i) * VW);
    for (p = 0; p < pn; p++)
#pragma GCC unroll 2
        for (h = 0; h < NF; h++) {
            ptrdiff_t at;
            const FT gv = DFN(pooled_g)(off, na, am, dy, yp, p * F + f + h, &at);
            const VT g = VSET1(gv);
            const FT *q = xp + at;
#pragma GCC unroll 7
            for (ky = 0; ky < KH; ky++, q += step)
#pragma GCC unroll 2
                for (v = 0; v < NV; v++)
                    s[h][ky * NV + v] = VFMA(g, VLOAD(q + v * VW), s[h][ky * NV + v]);
            bs[h] += (double)gv;
        }
#pragma GCC unroll 2
    for (h = 0; h < NF; h++) {
#pragma GCC unroll 14
        for (i = 0; i < NA; i++) VSTORE(acc + ((f + h) * NA + i) * VW, s[h][i]);
        bsum[f + h] += bs[h];
    }
}

/* Any shape: the sums in acc (memory), entry by entry. */
static DTARGET void DFN(pooled_mem)(const fnn_pooled_args *pa, const int64_t *am,
                                    const FT *dy, const FT *yp, const FT *xp, ptrdiff_t f,
                                    FT *acc, double *bsum)
{
    const ptrdiff_t F = pa->F, NV = pa->nv, NA = pa->kh * NV;
    FT *s = acc + f * NA * VW;
    double b = 0.0;
    ptrdiff_t p, ky, v;
    for (p = 0; p < pa->pn; p++) {
        ptrdiff_t at;
        const FT gv = DFN(pooled_g)(pa->off, pa->na, am, dy, yp, p * F + f, &at);
        const VT g = VSET1(gv);
        for (ky = 0; ky < pa->kh; ky++) {
            const FT *q = xp + at + ky * pa->rowstep;
            FT *t = s + ky * NV * VW;
            for (v = 0; v < NV; v++)
                VSTORE(t + v * VW, VFMA(g, VLOAD(q + v * VW), VLOAD(t + v * VW)));
        }
        b += (double)gv;
    }
    bsum[f] += b;
}

/* The shapes with register sums: (kh, NV) for kh <= 7 and NV <= 2, two filters at a time
 * when their 2*kh*NV sums leave registers for the broadcasts (<= 14 of 16 on AVX2). */
#define POOLED_SHAPES(X) X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1)               \
                         X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2)

/* One image's entries (am, dy, yp: pn x F) into acc (F x kh*NV vectors) and bsum (F). */
static DTARGET void DFN(pooled_image)(const fnn_pooled_args *pa, const int64_t *am,
                                      const FT *dy, const FT *yp, const FT *xp, FT *acc,
                                      double *bsum)
{
    const ptrdiff_t F = pa->F;
    ptrdiff_t f = 0;
    if (VW == 1 || pa->kh > 7 || pa->nv > 2) {
        for (; f < F; f++) DFN(pooled_mem)(pa, am, dy, yp, xp, f, acc, bsum);
        return;
    }
    switch (pa->kh * 8 + pa->nv) {
#define POOLED_CASE(KH, NV)                                                                     \
    case KH * 8 + NV:                                                                           \
        if (KH * NV <= 7)                                                                       \
            for (; f + 1 < F; f += 2) DFN(pooled_regs)(KH, NV, KH * NV <= 7, pa, am, dy, yp, xp, f, acc, bsum); \
        for (; f < F; f++) DFN(pooled_regs)(KH, NV, 0, pa, am, dy, yp, xp, f, acc, bsum);                 \
        break;
        POOLED_SHAPES(POOLED_CASE)
#undef POOLED_CASE
    default:
        for (; f < F; f++) DFN(pooled_mem)(pa, am, dy, yp, xp, f, acc, bsum);
    }
}
#undef POOLED_SHAPES
