/*
 * The stride-1 convolution's driver (see fnn_conv_strided.h), written once and instantiated for
 * float and double by fnn_conv_strided.c. Required macros: FT, SFN(name) (name with the type's
 * suffix), SK_FLAV (the flavour's kernels: a struct of mr, mr2, nr, tall, shrt), SK_FLAVOUR(f)
 * (the active one), GEMM (fnn_sgemm / fnn_dgemm, for the epilogue of the late activations),
 * EPI_T (its epilogue struct).
 */

static void *SFN(alloc)(size_t elems)
{
    const size_t bytes = (elems * sizeof(FT) + 63) / 64 * 64;
    void *p = NULL;
    if (bytes == 0 || posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

/* The kernel (K x F, Keras' layout read as a matrix) in nr-wide slivers, K x nr each with the
 * filters past F zero, then the bias padded alike (zero when there is none). */
static void SFN(pack)(const fnn_conv_geom *g, ptrdiff_t nr, const FT *kernel, const FT *bias,
                      FT *wk)
{
    const ptrdiff_t K = g->kh * g->kw * g->c, F = g->f, ns = (F + nr - 1) / nr;
    ptrdiff_t s, k, j;
    for (s = 0; s < ns; s++)
        for (k = 0; k < K; k++)
            for (j = 0; j < nr; j++) {
                const ptrdiff_t f = s * nr + j;
                wk[(s * K + k) * nr + j] = f < F ? kernel[k * F + f] : (FT)0;
            }
    wk += ns * K * nr;
    for (j = 0; j < ns * nr; j++) wk[j] = (bias && j < F) ? bias[j] : (FT)0;
}

/* fill's rows (below) for the depth stack of a Conv3D (fnn_conv3d.h): image img of g is
 * output depth p = img % od of sample img / od, and position q's channels kz*c .. kz*c + c - 1
 * are x's slice p*sd + kz*dd - front there (zero outside x): the stack's row, built in place. */
static void SFN(fill_depth)(const fnn_conv_geom *g, const fnn_conv_depth *ds, const FT *x,
                            ptrdiff_t img, ptrdiff_t oy0, ptrdiff_t brows, ptrdiff_t rs, FT *buf)
{
    const ptrdiff_t C = g->c, c = ds->c, w = g->w;
    const ptrdiff_t left = g->pl < rs ? g->pl : rs;
    const ptrdiff_t cnt = (rs - left < w) ? rs - left : w;
    const ptrdiff_t b = img / ds->od, p = img % ds->od;
    ptrdiff_t r, kz, q;
    for (r = 0; r < brows; r++) {
        const ptrdiff_t iy = oy0 - g->pt + r;
        FT *row = buf + r * rs * C;
        if (iy < 0 || iy >= g->h) {
            memset(row, 0, (size_t)(rs * C) * sizeof(FT));
            continue;
        }
        memset(row, 0, (size_t)(left * C) * sizeof(FT));
        for (kz = 0; kz < ds->kd; kz++) {
            const ptrdiff_t iz = p * ds->sd + kz * ds->dd - ds->front;
            FT *dst = row + left * C + kz * c;
            if (iz < 0 || iz >= ds->d) {
                for (q = 0; q < cnt; q++) memset(dst + q * C, 0, (size_t)c * sizeof(FT));
                continue;
            }
            {
                /* c values a position: copies of a constant size for the common channel
                 * counts, which GCC inlines (a call to memmove for each position's 8 values
                 * took 8% of a 16^3x8->16 forward) */
                const FT *src = x + (((b * ds->d + iz) * g->h + iy) * w) * c;
                const size_t bytes = (size_t)c * sizeof(FT);
#define FNN_FILL_COPY(B)                                                                 \
    for (q = 0; q < cnt; q++) memcpy(dst + q * C, src + q * c, B)
                if (bytes == 16) FNN_FILL_COPY(16);
                else if (bytes == 32) FNN_FILL_COPY(32);
                else if (bytes == 64) FNN_FILL_COPY(64);
                else if (bytes == 128) FNN_FILL_COPY(128);
                else FNN_FILL_COPY(bytes);
#undef FNN_FILL_COPY
            }
        }
        memset(row + (left + cnt) * C, 0, (size_t)((rs - left - cnt) * C) * sizeof(FT));
    }
}

/* The input rows output rows [oy0, oy1) of image img read, padded: buffer row r is input row
 * oy0 - pt + r, position q of it input column q - pl (zero outside the image, and in the rs - pw
 * positions of slack past the padded width that the last tile of a row may read). */
static void SFN(fill)(const fnn_conv_geom *g, const fnn_conv_depth *ds, const FT *x,
                      ptrdiff_t img, ptrdiff_t oy0, ptrdiff_t brows, ptrdiff_t rs, FT *buf)
{
    const ptrdiff_t C = g->c;
    const ptrdiff_t left = g->pl < rs ? g->pl : rs;
    const ptrdiff_t cnt = (rs - left < g->w) ? rs - left : g->w;
    ptrdiff_t r;
    if (ds) {
        SFN(fill_depth)(g, ds, x, img, oy0, brows, rs, buf);
        return;
    }
    for (r = 0; r < brows; r++) {
        const ptrdiff_t iy = oy0 - g->pt + r;
        FT *row = buf + r * rs * C;
        if (iy < 0 || iy >= g->h) {
            memset(row, 0, (size_t)(rs * C) * sizeof(FT));
            continue;
        }
        memset(row, 0, (size_t)(left * C) * sizeof(FT));
        memcpy(row + left * C, x + ((img * g->h + iy) * g->w) * C, (size_t)(cnt * C) * sizeof(FT));
        memset(row + (left + cnt) * C, 0, (size_t)((rs - left - cnt) * C) * sizeof(FT));
    }
}

/* The pieces [*qf, *ql] output row oy sums: all of them, or with sh->skip_pad those whose
 * kernel row reads an input row inside the image (none when *qf > *ql). */
static void SFN(row_pieces)(const fnn_conv_geom *g, const sk_shape *sh, ptrdiff_t oy,
                            ptrdiff_t *qf, ptrdiff_t *ql)
{
    const ptrdiff_t np = sh->pb[sh->nblk];
    ptrdiff_t lo = 0, hi = g->kh;
    *qf = 0;
    *ql = np - 1;
    if (!sh->skip_pad) return;
    while (lo < g->kh && oy - g->pt + lo * g->dh < 0) lo++;
    while (hi > lo && oy - g->pt + (hi - 1) * g->dh >= g->h) hi--;
    while (*qf < np && sh->ky[*qf] < lo) (*qf)++;
    while (*ql >= 0 && sh->ky[*ql] >= hi) (*ql)--;
}

/* Task t: output rows [oy0, oy1) of one image, every sliver of filters; for each sliver the
 * blocks of k in order, each over every tile of the task (its B rows stay in L1). Tiles that do
 * not fit y (rows or filters past its edge) are computed whole in the scratch, then copied. A
 * row with no pieces to sum stores act(bias) (a call of no steps). */
static void SFN(task)(const fnn_conv_geom *g, const fnn_conv_depth *ds, const SK_FLAV *fl,
                      const sk_shape *sh, ptrdiff_t t, const FT *x, const FT *wk, int has_bias, int act, FT param, FT *buf,
                      FT *scratch, FT *y, double par_min)
{
    const ptrdiff_t C = g->c, F = g->f, K = g->kh * g->kw * C, nr = fl->nr, ow = g->ow;
    const ptrdiff_t img = t / sh->cpi, oy0 = (t % sh->cpi) * sh->per;
    const ptrdiff_t oy1 = (oy0 + sh->per < g->oh) ? oy0 + sh->per : g->oh;
    const ptrdiff_t tile = fl->mr * nr;
    const int late = FNN_ACT_LATE(act) || act == FNN_ACT_SOFTMAX;
    const int iact = late ? FNN_ACT_LINEAR : act;
    const FT *bias = wk + sh->ns * K * nr;
    ptrdiff_t s, j, q, oy, ox0, ti, i, c, m;
    SFN(fill)(g, ds, x, img, oy0, oy1 - oy0 + (g->kh - 1) * g->dh, sh->rs, buf);
    for (s = 0; s < sh->ns; s++) {
        const FT *bz = has_bias ? bias + s * nr : NULL;
        const ptrdiff_t cols = (F - s * nr < nr) ? F - s * nr : nr;
        for (j = 0; j < sh->nblk; j++) {
            for (oy = oy0; oy < oy1; oy++) {
                const FT *arow = buf + (oy - oy0) * sh->rs * C;
                FT *yrow = y + ((img * g->oh + oy) * ow) * F + s * nr;
                ptrdiff_t qf, ql;
                SFN(row_pieces)(g, sh, oy, &qf, &ql);
                for (ox0 = 0, ti = 0; ox0 < ow; ti++) {
                    const int tall = ti < sh->ntall;
                    const ptrdiff_t m = tall ? fl->mr : fl->mr2;
                    const int whole = ox0 + m <= ow && cols == nr;
                    FT *dst = whole ? yrow + ox0 * F : scratch + ((oy - oy0) * sh->ntl + ti) * tile;
                    const FT *b = wk + (s * K + sh->kb[j]) * nr;
                    const __typeof__(fl->tall) kern = tall ? fl->tall : fl->shrt;
                    if (qf > ql && j == 0)
                        kern(0, arow, C, b, dst, whole ? F : nr, 1, 1, bz, iact, param);
                    for (q = sh->pb[j]; q < sh->pb[j + 1]; q++) {
                        if (q >= qf && q <= ql)
                            kern(sh->len[q], arow + ox0 * C + sh->off[q], C, b, dst,
                                 whole ? F : nr, q == qf, q == ql, bz, iact, param);
                        b += sh->len[q] * nr;
                    }
                    ox0 += m;
                }
            }
        }
        for (oy = oy0; oy < oy1; oy++) { /* the partial tiles' valid parts */
            FT *yrow = y + ((img * g->oh + oy) * ow) * F + s * nr;
            for (ox0 = 0, ti = 0; ox0 < ow; ox0 += m, ti++) {
                const FT *src = scratch + ((oy - oy0) * sh->ntl + ti) * tile;
                const ptrdiff_t here = (ow - ox0 < (m = ti < sh->ntall ? fl->mr : fl->mr2))
                                           ? ow - ox0 : m;
                if (here == m && cols == nr) continue;
                for (i = 0; i < here; i++)
                    for (c = 0; c < cols; c++) yrow[(ox0 + i) * F + c] = src[i * nr + c];
            }
        }
    }
    if (late) { /* the activation on the task's rows: a product of no terms, only its epilogue */
        EPI_T ep;
        memset(&ep, 0, sizeof ep);
        ep.act = act;
        ep.param = param;
        ep.min_parallel_work = par_min;
        GEMM(0, 0, (oy1 - oy0) * ow, F, 0, (FT)1, NULL, 1, NULL, F, (FT)1,
             y + ((img * g->oh + oy0) * ow) * F, F, &ep);
    }
}

/* The forward, or with skip_pad the forward whose padding rows are left out of the sums (dx's:
 * there they stand for dz positions outside dz, which no term reads). */
static int SFN(run)(const fnn_conv_geom *g, const fnn_conv_depth *ds, const FT *x,
                    const FT *kernel, const FT *bias, int act, FT param, FT *y, int skip_pad)
{
    const SK_FLAV fl = SK_FLAVOUR(g->f);
    const ptrdiff_t K = g->kh * g->kw * g->c;
    sk_shape sh;
    FT *wk;
    int ok = 1, nt, on_stack;
    size_t wk_elems;
    /* a serial call's packed kernel and buffers on the stack when they are small (LeNet-5's
     * second layer: 24 KiB): malloc after another library churned the heap (PyTorch's calls
     * in between, as the benchmark alternates them) cost a one-image predict ~10 us */
    FT small[SK_STACK_BYTES / sizeof(FT)] __attribute__((aligned(64)));
    const unsigned int saved_csr = fnn_ftz_enter();
    if (!sk_make_shape(g, fl.mr, fl.mr2, fl.nr, &sh)) { fnn_ftz_leave(saved_csr); return 0; }
    sh.skip_pad = skip_pad;
    nt = sk_threads(g, sh.tasks);
    wk_elems = (size_t)(sh.ns * fl.nr * (K + 1) + 15) / 16 * 16;
    on_stack = nt <= 1 && wk_elems + sh.buf_elems + sh.tile_elems <= sizeof small / sizeof(FT);
    wk = on_stack ? small : (FT *)SFN(alloc)(wk_elems);
    if (!wk) { sk_free_shape(&sh); fnn_ftz_leave(saved_csr); return 0; }
    SFN(pack)(g, fl.nr, kernel, bias, wk);
    if (nt <= 1) { /* no parallel region: entering one costs a small call (one image) ~1 us */
        FT *buf = on_stack ? small + wk_elems : (FT *)SFN(alloc)(sh.buf_elems + sh.tile_elems);
        ptrdiff_t t;
        ok = buf != NULL;
        for (t = 0; ok && t < sh.tasks; t++)
            SFN(task)(g, ds, &fl, &sh, t, x, wk, bias != NULL, act, param, buf, buf + sh.buf_elems,
                      y, 0.0);
        if (!on_stack) free(buf);
    } else
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *buf = on_stack ? small + wk_elems : (FT *)SFN(alloc)(sh.buf_elems + sh.tile_elems);
        ptrdiff_t t;
        if (!buf) {
            FNN_OMP_FAIL(ok);
        }
        FNN_OMP_FOR_DYNAMIC
        for (t = 0; t < sh.tasks; t++) {
            if (!buf) continue;
            SFN(task)(g, ds, &fl, &sh, t, x, wk, bias != NULL, act, param, buf, buf + sh.buf_elems,
                      y, nt > 1 ? 1e300 : 0.0);
        }
        if (!on_stack) free(buf);
        fnn_ftz_leave(csr);
    }
    if (!on_stack) free(wk);
    sk_free_shape(&sh);
    fnn_ftz_leave(saved_csr);
    return ok;
}

int SFN(fnn_conv_strided_forward)(const fnn_conv_geom *g, const FT *x, const FT *kernel,
                                  const FT *bias, int act, FT param, FT *y)
{
    return SFN(run)(g, NULL, x, kernel, bias, act, param, y, 0);
}

/* The forward of g on the depth stack of x (fnn_conv3d.h), its rows filled from x itself. */
int SFN(fnn_conv_strided_forward_depth)(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                        const FT *x, const FT *kernel, const FT *bias, int act,
                                        FT param, FT *y)
{
    return SFN(run)(g, ds, x, kernel, bias, act, param, y, 0);
}

/* dx of a stride-1 convolution as the forward of one: dz (n, oh, ow, f) convolved with the
 * kernel flipped in both taps and read (ci, f) -> (f, ci), padded (kh-1)*dh - pt on top and
 * (kw-1)*dw - pl on the left: dx[b, iy, ix, ci] = sum dz[b, iy + pt - ky*dh, ix + pl - kx*dw, :]
 * . kernel[ky, kx, ci, :] over the taps whose dz position lies inside. The kernel rows that
 * read padding rows are skipped (LeNet-5's second layer: 20 of 70 row pairs per image), so a
 * non-finite kernel value reaches only the dx positions that a dz position reaches through it,
 * as in the scatter of the GEMM path; the padding columns are multiplied (their zeros times a
 * NaN or infinite kernel value give NaN there). */
int SFN(fnn_conv_strided_dx)(const fnn_conv_geom *g, const FT *kernel, const FT *dz, FT *dx)
{
    const ptrdiff_t kh = g->kh, kw = g->kw, c = g->c, f = g->f;
    fnn_conv_geom t;
    ptrdiff_t ky, kx, ci, j;
    FT *kt = (FT *)SFN(alloc)((size_t)(kh * kw * c * f));
    int ok;
    if (!kt) return 0;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            const FT *src = kernel + ((kh - 1 - ky) * kw + (kw - 1 - kx)) * c * f;
            FT *dst = kt + (ky * kw + kx) * f * c;
            for (ci = 0; ci < c; ci++)
                for (j = 0; j < f; j++) dst[j * c + ci] = src[ci * f + j];
        }
    sk_dx_geom(g, &t);
    ok = SFN(run)(&t, NULL, dz, kt, NULL, FNN_ACT_LINEAR, (FT)0, dx, 1);
    free(kt);
    return ok;
}
