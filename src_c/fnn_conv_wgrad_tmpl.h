/*
 * The kernel gradient of a convolution with few filters, vectorised along the filters, one
 * instruction-set flavour at a time (fnn_conv_wgrad.h instantiates it for float and double, with
 * AVX-512 and AVX2+FMA vectors).
 *
 * Why: dkernel = P^T dz has only f columns (16 in LeNet-5's second layer), so the GEMM's tiles
 * are narrow, and P must first be gathered. Here a position's dz row is NV vectors (the filters,
 * zero-padded to NV*VW), and each tap of the position's patch is one broadcast x value:
 *   acc[t][:] += x[patch tap t] * dz[position][:]
 * over a block of TB taps that are contiguous in a padded copy of one input row (the taps
 * (kx, ci) of one kernel row ky with unit dilation), so the block's TB*NV accumulators stay in
 * registers over all the positions of a batch of rows, and every lane of a multiply-add is a
 * real filter when f is a multiple of VW.
 *
 * Required macros: FT, VT, VW, VZERO(), VLOAD(p), VSET1(x), VFMA(a, b, c) (a*b + c),
 * VSTORE(p, v), WFN(name), WTARGET (a function attribute).
 */

/* acc[t][:] (t < tb, rows of NV*VW values) += sum over rows i < nr, positions ox < ow, of
 * xs[i*xrs + ox*xstep + t] * dzs[i*dzrs + ox*fv : + NV*VW]; rows whose xs row is flagged
 * skip[i] add nothing. Reads TB taps (tb <= TB) past xs: the caller's rows have the slack. */
#define WGRAD_BLOCK(TB, NV)                                                                      \
    static WTARGET void WFN(blk_##TB##_##NV)(ptrdiff_t nr, const unsigned char *skip,            \
                                            ptrdiff_t ow, ptrdiff_t xstep, const FT *xs,         \
                                            ptrdiff_t xrs, const FT *dzs, ptrdiff_t dzrs,        \
                                            ptrdiff_t fv, ptrdiff_t tb, FT *acc)                 \
    {                                                                                            \
        VT s[TB][NV];                                                                            \
        ptrdiff_t i, ox;                                                                         \
        int u, v;                                                                                \
        for (u = 0; u < TB; u++)                                                                 \
            for (v = 0; v < NV; v++)                                                             \
                s[u][v] = u < tb ? VLOAD(acc + u * fv + v * VW) : VZERO();                       \
        for (i = 0; i < nr; i++) {                                                               \
            const FT *xb = xs + i * xrs, *d = dzs + i * dzrs;                                    \
            if (skip[i]) continue;                                                               \
            for (ox = 0; ox < ow; ox++) {                                                        \
                const FT *xo = xb + ox * xstep;                                                  \
                VT dv[NV];                                                                       \
                for (v = 0; v < NV; v++) dv[v] = VLOAD(d + ox * fv + v * VW);                    \
                for (u = 0; u < TB; u++) {                                                       \
                    const VT xv = VSET1(xo[u]);                                                  \
                    for (v = 0; v < NV; v++) s[u][v] = VFMA(xv, dv[v], s[u][v]);                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        for (u = 0; u < TB && u < tb; u++)                                                       \
            for (v = 0; v < NV; v++) VSTORE(acc + u * fv + v * VW, s[u][v]);                     \
    }
WGRAD_BLOCK(2, 1)
WGRAD_BLOCK(4, 1)
WGRAD_BLOCK(6, 1)
WGRAD_BLOCK(8, 1)
WGRAD_BLOCK(10, 1)
WGRAD_BLOCK(12, 1)
WGRAD_BLOCK(2, 2)
WGRAD_BLOCK(4, 2)
WGRAD_BLOCK(6, 2)
#undef WGRAD_BLOCK

/* One block of tb <= 12 (NV = 1) or <= 6 (NV = 2) taps: the smallest variant that holds them. */
static WTARGET void WFN(block)(int nv, ptrdiff_t nr, const unsigned char *skip, ptrdiff_t ow,
                               ptrdiff_t xstep, const FT *xs, ptrdiff_t xrs, const FT *dzs,
                               ptrdiff_t dzrs, ptrdiff_t fv, ptrdiff_t tb, FT *acc)
{
    if (nv == 1) {
        if (tb <= 2) WFN(blk_2_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else if (tb <= 4) WFN(blk_4_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else if (tb <= 6) WFN(blk_6_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else if (tb <= 8) WFN(blk_8_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else if (tb <= 10) WFN(blk_10_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else WFN(blk_12_1)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
    } else {
        if (tb <= 2) WFN(blk_2_2)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else if (tb <= 4) WFN(blk_4_2)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
        else WFN(blk_6_2)(nr, skip, ow, xstep, xs, xrs, dzs, dzrs, fv, tb, acc);
    }
}
