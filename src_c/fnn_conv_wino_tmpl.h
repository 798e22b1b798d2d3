/*
 * The Winograd F(2x2, 3x3) input and output transforms (see fnn_conv_wino.h), written once and
 * compiled by fnn_conv.c for each element type and instruction set. Additions and subtractions
 * only, in the same order on every instruction set: the transforms round alike everywhere (only
 * the GEMM between them differs by flavour, as every product does). Required macros: FT, WFN(name)
 * (name with the flavour's and type's suffix), WTARGET (a target attribute, or empty).
 */

/* The input transform of tile rows [tr0, tr0 + rows) (tile row tr: image tr / th, tile row
 * tr % th): for tile t of the block (t = r * tw + tx) and element xi = 4*i + j of B^T d B,
 * V[xi * xs + t * c + ci]. Input positions outside the image read `zero` (c zeros). */
WTARGET static void WFN(wino_in)(const fnn_conv_geom *g, const FT *x, ptrdiff_t tr0,
                                 ptrdiff_t rows, ptrdiff_t th, ptrdiff_t tw, const FT *zero,
                                 ptrdiff_t xs, FT *V)
{
    const ptrdiff_t c = g->c, h = g->h, w = g->w;
    ptrdiff_t r, tx, i, j, ci;
    for (r = 0; r < rows; r++) {
        const ptrdiff_t tr = tr0 + r, img = tr / th, ty = tr % th;
        const FT *xi0 = x + img * h * w * c;
        for (tx = 0; tx < tw; tx++) {
            const FT *p[16];
            FT *v = V + (r * tw + tx) * c;
            for (i = 0; i < 4; i++) {
                const ptrdiff_t iy = 2 * ty - g->pt + i;
                for (j = 0; j < 4; j++) {
                    const ptrdiff_t ix = 2 * tx - g->pl + j;
                    p[4 * i + j] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                       ? xi0 + (iy * w + ix) * c : zero;
                }
            }
            {
                const FT *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
                const FT *p4 = p[4], *p5 = p[5], *p6 = p[6], *p7 = p[7];
                const FT *p8 = p[8], *p9 = p[9], *p10 = p[10], *p11 = p[11];
                const FT *p12 = p[12], *p13 = p[13], *p14 = p[14], *p15 = p[15];
#ifdef _OPENMP
#pragma omp simd
#endif
                for (ci = 0; ci < c; ci++) {
                    /* columns first: t_i = row i of d B (d's row i times B) */
                    const FT a0 = p0[ci] - p2[ci], a1 = p1[ci] + p2[ci];
                    const FT a2 = p2[ci] - p1[ci], a3 = p1[ci] - p3[ci];
                    const FT b0 = p4[ci] - p6[ci], b1 = p5[ci] + p6[ci];
                    const FT b2 = p6[ci] - p5[ci], b3 = p5[ci] - p7[ci];
                    const FT c0 = p8[ci] - p10[ci], c1 = p9[ci] + p10[ci];
                    const FT c2 = p10[ci] - p9[ci], c3 = p9[ci] - p11[ci];
                    const FT e0 = p12[ci] - p14[ci], e1 = p13[ci] + p14[ci];
                    const FT e2 = p14[ci] - p13[ci], e3 = p13[ci] - p15[ci];
                    /* then rows: B^T (d B) */
                    v[0 * xs + ci] = a0 - c0;  v[1 * xs + ci] = a1 - c1;
                    v[2 * xs + ci] = a2 - c2;  v[3 * xs + ci] = a3 - c3;
                    v[4 * xs + ci] = b0 + c0;  v[5 * xs + ci] = b1 + c1;
                    v[6 * xs + ci] = b2 + c2;  v[7 * xs + ci] = b3 + c3;
                    v[8 * xs + ci] = c0 - b0;  v[9 * xs + ci] = c1 - b1;
                    v[10 * xs + ci] = c2 - b2; v[11 * xs + ci] = c3 - b3;
                    v[12 * xs + ci] = b0 - e0; v[13 * xs + ci] = b1 - e1;
                    v[14 * xs + ci] = b2 - e2; v[15 * xs + ci] = b3 - e3;
                }
            }
        }
    }
}

/* The 2x2 outputs of one tile, A^T M A, from m (element xi at m[xi * ms + j], filter j): those
 * inside the output (two_rows, two_cols), into y00 (row 0) and y10 (row 1). Inlined with both
 * flags 1 for the inner tiles, where the loop vectorises. */
WTARGET static inline __attribute__((always_inline)) void
WFN(wino_out_tile)(const FT *m, ptrdiff_t ms, ptrdiff_t f, int two_rows, int two_cols, FT *y00,
                   FT *y10)
{
    ptrdiff_t j;
#ifdef _OPENMP
#pragma omp simd
#endif
    for (j = 0; j < f; j++) {
        /* rows first: A^T M (2 x 4), then columns: (A^T M) A */
        const FT s0 = m[0 * ms + j] + m[4 * ms + j] + m[8 * ms + j];
        const FT s1 = m[1 * ms + j] + m[5 * ms + j] + m[9 * ms + j];
        const FT s2 = m[2 * ms + j] + m[6 * ms + j] + m[10 * ms + j];
        const FT s3 = m[3 * ms + j] + m[7 * ms + j] + m[11 * ms + j];
        const FT d0 = m[4 * ms + j] - m[8 * ms + j] - m[12 * ms + j];
        const FT d1 = m[5 * ms + j] - m[9 * ms + j] - m[13 * ms + j];
        const FT d2 = m[6 * ms + j] - m[10 * ms + j] - m[14 * ms + j];
        const FT d3 = m[7 * ms + j] - m[11 * ms + j] - m[15 * ms + j];
        y00[j] = s0 + s1 + s2;
        if (two_cols) y00[f + j] = s1 - s2 - s3;
        if (two_rows) {
            y10[j] = d0 + d1 + d2;
            if (two_cols) y10[f + j] = d1 - d2 - d3;
        }
    }
}

/* The output transform of the same block: M[xi * ms + t * f + j] -> the 2x2 outputs of tile t,
 * written into y (those inside the output only). */
WTARGET static void WFN(wino_out)(const fnn_conv_geom *g, const FT *M, ptrdiff_t tr0,
                                  ptrdiff_t rows, ptrdiff_t th, ptrdiff_t tw, ptrdiff_t ms,
                                  FT *y)
{
    const ptrdiff_t f = g->f, oh = g->oh, ow = g->ow;
    ptrdiff_t r, tx;
    for (r = 0; r < rows; r++) {
        const ptrdiff_t tr = tr0 + r, img = tr / th, oy = 2 * (tr % th);
        const int two_rows = oy + 1 < oh;
        for (tx = 0; tx < tw; tx++) {
            const FT *m = M + (r * tw + tx) * f;
            const int two_cols = 2 * tx + 1 < ow;
            FT *y00 = y + ((img * oh + oy) * ow + 2 * tx) * f;
            if (two_rows && two_cols)
                WFN(wino_out_tile)(m, ms, f, 1, 1, y00, y00 + ow * f);
            else /* the last row or column of tiles of an odd-sized output */
                WFN(wino_out_tile)(m, ms, f, two_rows, two_cols, y00, y00 + ow * f);
        }
    }
}
