/*
 * The Winograd F(2x2, 3x3) input and output transforms (see fnn_conv_wino.h), written once and
 * compiled by fnn_conv.c for each element type and instruction set. Additions and subtractions
 * only, in the same order on every instruction set: the transforms round alike everywhere (only
 * the GEMM between them differs by flavour, as every product does). Required macros: FT, WFN(name)
 * (name with the flavour's and type's suffix), WTARGET (a target attribute, or empty).
 */

/* The input transform of tile rows [tr0, tr0 + rows) (tile row tr: image tr / th, tile row
 * tr % th): for tile t of the block (t = r * tw + tx) and element xi = 4*i + j of B^T d B,
 * V[xi * xs + t * c + ci]. Input positions outside the image read `zero` (c zeros). In two
 * passes through `tmp` (16 * c values, in L1): each input row times B, then B^T times those
 * rows; each pass keeps 8 pointers live, where one pass over all 16 inputs and 16 outputs
 * spilled its pointers at every vector (17% of a 64-channel convolution on Zen 2). The same
 * additions in the same order either way. */
WTARGET static void WFN(wino_in)(const fnn_conv_geom *g, const FT *x, ptrdiff_t tr0,
                                 ptrdiff_t rows, ptrdiff_t th, ptrdiff_t tw, const FT *zero,
                                 ptrdiff_t xs, FT *V, FT *tmp)
{
    const ptrdiff_t c = g->c, h = g->h, w = g->w;
    ptrdiff_t r, tx, i, j, ci;
    for (r = 0; r < rows; r++) {
        const ptrdiff_t tr = tr0 + r, img = tr / th, ty = tr % th;
        const FT *xi0 = x + img * h * w * c;
        for (tx = 0; tx < tw; tx++) {
            FT *v = V + (r * tw + tx) * c;
            for (i = 0; i < 4; i++) { /* t_i = (row i of d) B, into tmp rows 4i .. 4i+3 */
                const ptrdiff_t iy = 2 * ty - g->pt + i;
                const FT *p[4];
                for (j = 0; j < 4; j++) {
                    const ptrdiff_t ix = 2 * tx - g->pl + j;
                    p[j] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? xi0 + (iy * w + ix) * c
                                                                     : zero;
                }
                {
                    const FT *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
                    FT *t0 = tmp + 4 * i * c, *t1 = t0 + c, *t2 = t1 + c, *t3 = t2 + c;
#ifdef _OPENMP
#pragma omp simd
#endif
                    for (ci = 0; ci < c; ci++) {
                        t0[ci] = p0[ci] - p2[ci];
                        t1[ci] = p1[ci] + p2[ci];
                        t2[ci] = p2[ci] - p1[ci];
                        t3[ci] = p1[ci] - p3[ci];
                    }
                }
            }
            for (j = 0; j < 4; j++) { /* column j of B^T (d B) */
                const FT *a = tmp + j * c, *b = a + 4 * c, *cc = b + 4 * c, *e = cc + 4 * c;
                FT *v0 = v + j * xs, *v1 = v0 + 4 * xs, *v2 = v1 + 4 * xs, *v3 = v2 + 4 * xs;
#ifdef _OPENMP
#pragma omp simd
#endif
                for (ci = 0; ci < c; ci++) {
                    v0[ci] = a[ci] - cc[ci];
                    v1[ci] = b[ci] + cc[ci];
                    v2[ci] = cc[ci] - b[ci];
                    v3[ci] = b[ci] - e[ci];
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
