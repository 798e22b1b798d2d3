/*
 * The kernel gradient of the direct path for single-channel inputs (c = 1: the first layer of
 * an image network), included by fnn_conv_direct_tmpl.h with its macros (FT, VT, VW, VZERO,
 * VLOAD, VSTORE, VFMA, DFN, DTARGET) and, where the flavour has one, DG1_EXPAND(dst, src, ip)
 * (dst[l] = src[ip[l]] for the VW lanes, as one permute).
 *
 * Why: dz's rows are (ox, f) interleaved. The general grad_rows transposes them to dzt[f][ox]
 * one scalar at a time and pads the filters to 8, which at c = 1 and 6 filters cost more than
 * its multiply-adds. Here the vector lanes run along dz's own rows, j = ox*F + f, and each input
 * row is expanded once to the same interleaving:
 *     xe[iy][j] = xpad[iy][j / F]          (xpad: the row behind pl zeros)
 * so the operand of tap (ky, kx) for dz[oy][j] is the plain load xe[iy][j + kx*dw*F], iy =
 * oy*sh - pt + ky*dh:
 *     s[tap][j] += xe[iy][j + kx*dw*F] * dz[oy][j]       over the output rows of the call,
 * and at the end dkernel[tap][f] gets sum over ox (in order) of s[tap][ox*F + f], added to lane 0
 * of the caller's acc[(tap*Fp + f)*VW]. Rows go in blocks of one image; for each tap and run of
 * DG1_VB vectors the sums stay in registers over the block's rows. Taps whose input row is
 * padding add nothing and are skipped. The order of every sum depends on the shapes alone.
 * buf holds fnn_conv_dgrad1_elems(g, VW) values (fnn_conv.c, which also decides when this runs).
 */

#ifdef DG1_EXPAND
#define DG1_X(dst, src, ip) DG1_EXPAND(dst, src, ip)
#else
#define DG1_X(dst, src, ip)                                                                      \
    do {                                                                                         \
        ptrdiff_t l_;                                                                            \
        for (l_ = 0; l_ < VW; l_++) (dst)[l_] = (src)[(ip)[l_]];                                 \
    } while (0)
#endif
#ifndef DG1_KYB
#define DG1_KYB 5 /* a register block of DG1_KYB x DG1_KXB taps' sums (one vector each) */
#define DG1_KXB 5
#endif

/* Input row e of the block against its output rows e - (ky0 + a)*dh for the register block's
 * taps; CHECK = 1 leaves out the pairs whose output row is not one of the block's. */
#define DG1_ROW(CHECK)                                                                          \
    do {                                                                                        \
        const FT *xr = ex + e * LX + v * VW + kx0 * dw * F;                                     \
        const ptrdiff_t i0 = e - ky0 * dh; /* the output row of ky0 */                         \
        int ok[DG1_KYB];                                                                        \
        VT dv[DG1_KYB];                                                                         \
        for (a = 0; a < DG1_KYB; a++) {                                                         \
            ok[a] = a < nky && (!(CHECK) || (i0 - a * dh >= 0 && i0 - a * dh < nb));           \
            dv[a] = ok[a] ? VLOAD(dzb + (i0 - a * dh) * LZ + v * VW) : VZERO();                 \
        }                                                                                       \
        for (c = 0; c < DG1_KXB; c++)                                                           \
            if (c < nkx) {                                                                      \
                const VT xv = VLOAD(xr + c * dw * F);                                           \
                for (a = 0; a < DG1_KYB; a++)                                                   \
                    if (ok[a]) sa[a][c] = VFMA(xv, dv[a], sa[a][c]);                            \
            }                                                                                   \
    } while (0)

/* One register block of nky x nkx taps (from (ky0, kx0)) over every vector v of the sums and
 * the input rows [ea, eb) (those in [e1, e2) meet a block row through every tap). Where the
 * flavour defines DG1_SHAPES, the caller passes the shape as constants, one inlined copy per
 * shape: with it known, the tap loops unroll with no test per multiply-add (AVX2 on Zen 2 spent
 * most of LeNet-5's conv1 kernel gradient on those tests and on reloading the shape). */
DTARGET static inline __attribute__((always_inline)) void
DFN(g1_block)(const int nky, const int nkx, ptrdiff_t ky0, ptrdiff_t kx0, ptrdiff_t kw,
              ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t F, ptrdiff_t V, ptrdiff_t LX, ptrdiff_t LZ,
              ptrdiff_t nb, ptrdiff_t ea, ptrdiff_t e1, ptrdiff_t e2, ptrdiff_t eb,
              const FT *ex, const FT *dzb, FT *s)
{
    ptrdiff_t v, e, a, c;
    for (v = 0; v < V; v++) {
        VT sa[DG1_KYB][DG1_KXB];
        for (a = 0; a < DG1_KYB; a++)
            for (c = 0; c < DG1_KXB; c++)
                sa[a][c] = (a < nky && c < nkx)
                               ? VLOAD(s + ((ky0 + a) * kw + kx0 + c) * LZ + v * VW)
                               : VZERO();
        for (e = ea; e < e1; e++) DG1_ROW(1);
        for (; e < e2; e++) DG1_ROW(0);
        for (; e < eb; e++) DG1_ROW(1);
        for (a = 0; a < nky; a++)
            for (c = 0; c < nkx; c++)
                VSTORE(s + ((ky0 + a) * kw + kx0 + c) * LZ + v * VW, sa[a][c]);
    }
}

static DTARGET void DFN(grad_rows_c1)(const fnn_conv_geom *g, const FT *x, const FT *dz,
                                      ptrdiff_t r0, ptrdiff_t r1, FT *buf, FT *acc)
{
    const ptrdiff_t F = g->f, ow = g->ow, oh = g->oh, h = g->h, w = g->w, dh = g->dh;
    const ptrdiff_t kh = g->kh, kw = g->kw, T = kh * kw, Fp = (F + 7) / 8 * 8;
    const ptrdiff_t LZ = FNN_DG1_LZ(ow * F, VW), V = (ow * F + VW - 1) / VW;
    const ptrdiff_t LX = (LZ + (kw - 1) * g->dw * F + VW - 1) / VW * VW, MX = LX / VW;
    const ptrdiff_t NI = FNN_DG1_RB + (kh - 1) * dh;
    const ptrdiff_t PX = LX / F + VW + 1, P = F / fnn_conv_gcd(F, VW), PS = P * VW / F;
    FT *s = buf, *ex = s + T * LZ, *dzb = ex + NI * LX, *xpad = dzb + FNN_DG1_RB * LZ;
    /* expanded vector m = k*P + q, lane l: xpad[k*PS + sq[q] + idx[q*VW + l]] */
    int idx[FNN_DG1_MAX_F * VW];
    ptrdiff_t sq[FNN_DG1_MAX_F];
    ptrdiff_t r, m, l, t, f, i, q, k;
    for (q = 0; q < P; q++) {
        sq[q] = q * VW / F;
        for (l = 0; l < VW; l++) idx[q * VW + l] = (int)((q * VW + l) / F - sq[q]);
    }
    memset(s, 0, (size_t)(T * LZ) * sizeof(FT));
    memset(dzb, 0, (size_t)(FNN_DG1_RB * LZ) * sizeof(FT)); /* the zeros past ow*F */
    for (r = r0; r < r1;) {
        const ptrdiff_t b = r / oh, oy0 = r % oh;
        const ptrdiff_t nb0 = oh - oy0 < FNN_DG1_RB ? oh - oy0 : FNN_DG1_RB;
        const ptrdiff_t nb = r1 - r < nb0 ? r1 - r : nb0;
        const ptrdiff_t iy_lo = oy0 - g->pt; /* input row of rel 0 */
        /* the input rows inside the image: rel in [ea, eb) */
        const ptrdiff_t ea = iy_lo < 0 ? -iy_lo : 0;
        const ptrdiff_t ne = nb + (kh - 1) * dh, eb = iy_lo + ne > h ? h - iy_lo : ne;
        ptrdiff_t e, ky0, kx0;
        for (e = ea; e < eb; e++) { /* expand the rows */
            const FT *row = x + (b * h + iy_lo + e) * w;
            FT *ep = ex + e * LX;
            const ptrdiff_t lo = g->pl < PX ? g->pl : PX;
            const ptrdiff_t hi = g->pl + w < PX ? g->pl + w : PX;
            for (l = 0; l < lo; l++) xpad[l] = (FT)0;
            if (hi > lo) memcpy(xpad + lo, row, (size_t)(hi - lo) * sizeof(FT));
            for (l = hi > lo ? hi : lo; l < PX; l++) xpad[l] = (FT)0;
            for (m = 0, k = 0; m < MX; k++)
                for (q = 0; q < P && m < MX; q++, m++)
                    DG1_X(ep + m * VW, xpad + k * PS + sq[q], idx + q * VW);
        }
        for (i = 0; i < nb; i++) /* the dz rows */
            memcpy(dzb + i * LZ, dz + (r + i) * ow * F, (size_t)(ow * F) * sizeof(FT));
        /* input row rel e meets output row e - ky*dh, when that is one of the block's rows,
         * through tap (ky, kx) (other pairs are left out, not multiplied by zero: an infinite
         * or NaN input stays out of taps that do not read it); per vector v, a block of taps'
         * sums stays in registers over the rows */
        for (ky0 = 0; ky0 < kh; ky0 += DG1_KYB)
            for (kx0 = 0; kx0 < kw; kx0 += DG1_KXB) {
                const ptrdiff_t nky = kh - ky0 < DG1_KYB ? kh - ky0 : DG1_KYB;
                const ptrdiff_t nkx = kw - kx0 < DG1_KXB ? kw - kx0 : DG1_KXB;
                /* the rows [e1, e2) meet a block row through every tap of the register block */
                ptrdiff_t e1 = (ky0 + nky - 1) * dh, e2 = nb + ky0 * dh;
                e1 = e1 < ea ? ea : e1 > eb ? eb : e1;
                e2 = e2 > eb ? eb : e2 < e1 ? e1 : e2;
#define DG1_CALL(NKY, NKX)                                                                      \
    DFN(g1_block)(NKY, NKX, ky0, kx0, kw, dh, g->dw, F, V, LX, LZ, nb, ea, e1, e2, eb, ex, dzb, s)
#ifdef DG1_SHAPES
                switch ((int)(nky * 8 + nkx)) { /* KYB, KXB <= 3 */
                case 011: DG1_CALL(1, 1); break;
                case 012: DG1_CALL(1, 2); break;
                case 013: DG1_CALL(1, 3); break;
                case 021: DG1_CALL(2, 1); break;
                case 022: DG1_CALL(2, 2); break;
                case 023: DG1_CALL(2, 3); break;
                case 031: DG1_CALL(3, 1); break;
                case 032: DG1_CALL(3, 2); break;
                default: DG1_CALL(3, 3); break;
                }
#else
                DG1_CALL((int)nky, (int)nkx);
#endif
#undef DG1_CALL
            }
        r += nb;
    }
    for (t = 0; t < T; t++)
        for (f = 0; f < F; f++) {
            FT sum = (FT)0;
            ptrdiff_t ox;
            for (ox = 0; ox < ow; ox++) sum += s[t * LZ + ox * F + f];
            acc[(t * Fp + f) * VW] += sum;
        }
}

#undef DG1_X
#undef DG1_ROW
#undef DG1_KYB
#undef DG1_KXB
#undef DG1_SHAPES
