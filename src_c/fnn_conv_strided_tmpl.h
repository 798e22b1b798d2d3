/*
 * The micro-kernel of the stride-1 convolution (fnn_conv_strided.c), written once and included
 * per flavour and element type. It reads A where it lies, a strided view of the padded input
 * rows, instead of packed slivers: row i of the tile, step p of segment s is
 * a[off[s] + i*lda + p] (lda = the channels: output positions one apart read input positions
 * one apart), and the segments (one per kernel row, or per tap when dilated) follow each other
 * in the kernel's (ky, kx, ci) order, which is also the order of the packed B sliver's rows.
 *
 *   C[0:MR, 0:NV*VLEN] (+)= sum_{p < len} a[i*lda + p] * b[p*NV*VLEN + 0:NV*VLEN]
 *   then, for the last block of k:  C := act(C + bias)
 *
 * A call is one piece of k (a segment's part in a block of k whose B rows fit L1): the first
 * piece starts from zero, the others from C as the previous one stored it (a float stored and
 * loaded back is exact: the sum is the same as in one pass). One loop of k per call: with the
 * pieces' loop inside too, gcc moved the 24 accumulators between registers at every piece and
 * spilled a B vector (reloaded by every FMA: ~15% slower). Steps accumulate in order: an
 * element's value depends on its data alone, not on the tile or thread that computes it. act is
 * LINEAR, STEP, RELU or LEAKY_RELU (the driver applies the others afterwards); bias may be NULL.
 *
 * Required macros: ST_TARGET (function attribute, may be empty), FT, VT, VLEN, SK_NV (vectors
 * per row), SK_MAXMR (the taller kernel's rows), SK(name) (mangling), V_ZERO(), V_SET1(x),
 * V_LOADU(p), V_FMA(a, b, c) (a*b + c), V_ADD(a, b), V_STOREU(p, v), V_ACT(z, act, vp).
 * All but ST_TARGET are undefined at the end.
 */

ST_TARGET static inline __attribute__((always_inline)) void
SK(body)(const int MR, ptrdiff_t len, const FT *a, ptrdiff_t lda, const FT *b, FT *c,
         ptrdiff_t ldc, int first, int last, const FT *bias, int act, FT param)
{
    VT acc[SK_MAXMR * SK_NV];
    ptrdiff_t p;
    int i, v;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (v = 0; v < SK_NV; v++)
            acc[i * SK_NV + v] = first ? V_ZERO() : V_LOADU(c + i * ldc + v * VLEN);
    for (p = 0; p < len; p++) {
        VT bv[SK_NV];
#pragma GCC unroll 8
        for (v = 0; v < SK_NV; v++) bv[v] = V_LOADU(b + v * VLEN);
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const VT ai = V_SET1(a[i * lda + p]);
#pragma GCC unroll 8
            for (v = 0; v < SK_NV; v++) acc[i * SK_NV + v] = V_FMA(ai, bv[v], acc[i * SK_NV + v]);
        }
        b += SK_NV * VLEN;
    }
    {
        const VT vp = V_SET1(param);
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
#pragma GCC unroll 8
            for (v = 0; v < SK_NV; v++) {
                VT z = acc[i * SK_NV + v];
                if (last) {
                    if (bias) z = V_ADD(z, V_LOADU(bias + v * VLEN));
                    z = V_ACT(z, act, vp);
                }
                V_STOREU(c + i * ldc + v * VLEN, z);
            }
        }
    }
}

/* the two heights: full tiles, and the rest of a row when it fits the shorter one */
ST_TARGET static void SK(tall)(ptrdiff_t len, const FT *a, ptrdiff_t lda, const FT *b, FT *c, ptrdiff_t ldc,
                               int first, int last, const FT *bias, int act, FT param)
{
    SK(body)(SK_MAXMR, len, a, lda, b, c, ldc, first, last, bias, act, param);
}

ST_TARGET static void SK(short)(ptrdiff_t len, const FT *a, ptrdiff_t lda, const FT *b, FT *c, ptrdiff_t ldc,
                                int first, int last, const FT *bias, int act, FT param)
{
    SK(body)(SK_MAXMR * 2 / 3, len, a, lda, b, c, ldc, first, last, bias, act, param);
}

#undef FT
#undef VT
#undef VLEN
#undef SK_NV
#undef SK_MAXMR
#undef SK
#undef V_ZERO
#undef V_SET1
#undef V_LOADU
#undef V_FMA
#undef V_ADD
#undef V_STOREU
#undef V_ACT
