/*
 * The Winograd F(2x2, 3x3) driver (see fnn_conv_wino.h), included by fnn_conv_tmpl.h for each
 * element type. Besides that file's macros: GEMM_BP, PACK_B (the GEMM on a packed B), DBL (0
 * float, 1 double), WINO_FLAVOUR (the transforms of the active instruction set).
 */

/* U[xi * c * f + ci * f + j] = (G g G^T)[xi] of the 3x3 kernel of input channel ci and filter j,
 * kernel read as (3, 3, c, f) */
static void CFN(wino_kernel)(ptrdiff_t c, ptrdiff_t f, const FT *kernel, FT *U)
{
    const ptrdiff_t cf = c * f;
    const FT half = (FT)0.5;
    ptrdiff_t q, a;
    for (q = 0; q < cf; q++) {
        FT gk[3][3], t[4][3];
        ptrdiff_t i, k;
        for (i = 0; i < 3; i++)
            for (k = 0; k < 3; k++) gk[i][k] = kernel[(i * 3 + k) * cf + q];
        for (k = 0; k < 3; k++) { /* G g */
            t[0][k] = gk[0][k];
            t[1][k] = (gk[0][k] + gk[1][k] + gk[2][k]) * half;
            t[2][k] = (gk[0][k] - gk[1][k] + gk[2][k]) * half;
            t[3][k] = gk[2][k];
        }
        for (a = 0; a < 4; a++) { /* (G g) G^T */
            U[(4 * a + 0) * cf + q] = t[a][0];
            U[(4 * a + 1) * cf + q] = (t[a][0] + t[a][1] + t[a][2]) * half;
            U[(4 * a + 2) * cf + q] = (t[a][0] - t[a][1] + t[a][2]) * half;
            U[(4 * a + 3) * cf + q] = t[a][2];
        }
    }
}

/* One block: tile rows [tr0, tr0 + rows): transform, 16 products, transform back, then the bias
 * and activation over the block's output rows. V holds 16 x (rb * tw) x c values, M 16 x
 * (rb * tw) x f. */
static void CFN(wino_block)(const fnn_conv_geom *g, const WINO_T *wf, const FT *x,
                            const FT *U, const FT *Up, size_t pbs, const FT *bias, int act,
                            FT param, ptrdiff_t tr0, ptrdiff_t rows, ptrdiff_t th,
                            ptrdiff_t tw, ptrdiff_t cap, FT *zero, FT *V, FT *M, FT *y)
{
    const ptrdiff_t c = g->c, f = g->f, tiles = rows * tw;
    const ptrdiff_t xs = cap * c, ms = cap * f;
    EPI_T ep;
    ptrdiff_t xi, r;
    memset(&ep, 0, sizeof ep);
    ep.act = FNN_ACT_LINEAR;
    ep.min_parallel_work = FNN_CONV_SERIAL;
    wf->in(g, x, tr0, rows, th, tw, zero, xs, V, zero + c);
    for (xi = 0; xi < 16; xi++)
        GEMM_BP(0, 0, tiles, f, c, (FT)1, V + xi * xs, c, U + xi * c * f, f, Up + xi * pbs,
                (FT)0, M + xi * ms, f, &ep);
    wf->out(g, M, tr0, rows, th, tw, ms, y);
    if (bias == NULL && act == FNN_ACT_LINEAR) return;
    for (r = 0; r < rows; r++) { /* a tile row's outputs: 1 or 2 whole rows, contiguous */
        const ptrdiff_t tr = tr0 + r, img = tr / th, oy = 2 * (tr % th);
        const ptrdiff_t n_out = (oy + 1 < g->oh ? 2 : 1) * g->ow;
        CFN(epilogue_rows)(g, y + (img * g->oh + oy) * g->ow * f, n_out, bias, act, param,
                           FNN_CONV_SERIAL);
    }
}

static int CFN(wino_forward)(const fnn_conv_geom *g, const FT *x, const FT *kernel,
                             const FT *bias, int act, FT param, FT *y)
{
    const ptrdiff_t c = g->c, f = g->f, th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    const ptrdiff_t trows = g->n * th;
    const ptrdiff_t rb = (FNN_WINO_TILES + tw - 1) / tw < trows ? (FNN_WINO_TILES + tw - 1) / tw
                                                                 : trows;
    const ptrdiff_t nblocks = (trows + rb - 1) / rb, cap = rb * tw;
    const size_t pbs = fnn_gemm_packed_b_size(DBL, c, f);
    const WINO_T wf = WINO_FLAVOUR();
    FT *U = (FT *)CFN(alloc)((size_t)(16 * c * f));
    FT *Up = (FT *)CFN(alloc)(16 * pbs);
    int ok = 1, nt;
    ptrdiff_t xi;
    if (!U || !Up) { ok = 0; goto done; }
    CFN(wino_kernel)(c, f, kernel, U);
    for (xi = 0; xi < 16; xi++) PACK_B(0, c, f, U + xi * c * f, f, Up + xi * pbs);
    nt = fnn_conv_threads_for((double)trows * (double)tw * 16.0 * (double)c * (double)f,
                              nblocks);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *V = (FT *)CFN(alloc)((size_t)(16 * cap * c));
        FT *M = (FT *)CFN(alloc)((size_t)(16 * cap * f));
        FT *zero = (FT *)calloc((size_t)(17 * c), sizeof(FT)); /* c zeros, then wino_in's tmp */
        ptrdiff_t b;
        if (!V || !M || !zero) {
            FNN_OMP_FAIL(ok);
        }
        FNN_OMP_FOR_DYNAMIC
        for (b = 0; b < nblocks; b++) {
            const ptrdiff_t tr0 = b * rb, rows = trows - tr0 < rb ? trows - tr0 : rb;
            if (!V || !M || !zero) continue;
            CFN(wino_block)(g, &wf, x, U, Up, pbs, bias, act, param, tr0, rows, th, tw, cap,
                            zero, V, M, y);
        }
        free(V);
        free(M);
        free(zero);
        fnn_ftz_leave(csr);
    }
done:
    free(U);
    free(Up);
    return ok;
}

/* dx as the Winograd forward of dz (fnn_conv_wino.h): the kernel flipped in both taps and read
 * (ci, f) -> (f, ci), padding 2 - pt on top and 2 - pl on the left. */
static int CFN(wino_dx)(const fnn_conv_geom *g, const FT *kernel, const FT *dz, FT *dx)
{
    const ptrdiff_t c = g->c, f = g->f;
    fnn_conv_geom t;
    ptrdiff_t ky, kx, ci, j;
    FT *kt = (FT *)CFN(alloc)((size_t)(9 * c * f));
    int ok;
    if (!kt) return 0;
    for (ky = 0; ky < 3; ky++)
        for (kx = 0; kx < 3; kx++) {
            const FT *src = kernel + ((2 - ky) * 3 + (2 - kx)) * c * f;
            FT *dst = kt + (ky * 3 + kx) * f * c;
            for (ci = 0; ci < c; ci++)
                for (j = 0; j < f; j++) dst[j * c + ci] = src[ci * f + j];
        }
    fnn_conv_wino_dx_geom(g, &t);
    ok = CFN(wino_forward)(&t, dz, kt, NULL, FNN_ACT_LINEAR, (FT)0, dx);
    free(kt);
    return ok;
}
