/*
 * The filter-vectorised kernel gradient's driver (kernels: fnn_conv_wgrad_tmpl.h), included by
 * fnn_conv_tmpl.h for float and double (CFN, FT). Taken by convolutions with unit horizontal
 * dilation, at most FNN_CONV_WGRAD_MAX_C input channels and at most two vectors of filters, in
 * the AVX2 and AVX-512 flavours.
 *
 * The output rows (image, row) fall in pl->groups fixed ranges as on the direct path; each range
 * sums into its own partial acc[tap][filter] (filters padded to fv = NV*VW), batch after batch
 * of FNN_CONV_WGRAD_RB rows: the batch's input rows are copied with their padding (zeros) and
 * slack, its dz rows padded to fv filters when f < fv, then for each kernel row ky and block of
 * taps the block kernel runs over the batch. The partials and the bias sums (in double) are added
 * in group order: results depend on the shapes only, not on the threads.
 *
 * With a depth (fnn_conv_depth, a Conv3D: g is the 2-D convolution of its depth stack, images
 * n*od of kd*c channels) the kernel rows are the kd*kh pairs (kz, ky), each output row's input
 * row for the pair read from x's slice p*sd + kz*dd - front (skipped outside x, as padding rows
 * are): the kernel gradient (kd, kh, kw, c, f) without the stack, and the bias' fused.
 */
#define FNN_CONV_WGRAD_RB 8
#define FNN_CONV_WGRAD_MAX_C 16
#define FNN_CONV_WGRAD_SLACK 12 /* the widest block's taps: reads past a row's last tap */

static int CFN(wgrad_use)(const fnn_conv_geom *g, int vw)
{
    return vw > 0 && g->dw == 1 && g->c <= FNN_CONV_WGRAD_MAX_C && g->f <= 2 * vw;
}

/* input channels of one row (a slice's with a depth) and kernel rows */
static ptrdiff_t CFN(wgrad_c)(const fnn_conv_geom *g, const fnn_conv_depth *ds)
{
    return ds ? ds->c : g->c;
}

static ptrdiff_t CFN(wgrad_krows)(const fnn_conv_geom *g, const fnn_conv_depth *ds)
{
    return ds ? ds->kd * g->kh : g->kh;
}

/* values of a padded input row and of a batch's buffer */
static ptrdiff_t CFN(wgrad_xlen)(const fnn_conv_geom *g, const fnn_conv_depth *ds)
{
    return ((g->ow - 1) * g->sw + g->kw) * CFN(wgrad_c)(g, ds) + FNN_CONV_WGRAD_SLACK;
}

/* x's row for output row r of g and kernel row kr ((kz, ky) with a depth), or NULL where it
 * falls outside x (padding) */
static const FT *CFN(wgrad_src)(const fnn_conv_geom *g, const fnn_conv_depth *ds, const FT *x,
                                ptrdiff_t r, ptrdiff_t kr)
{
    const ptrdiff_t b = r / g->oh, oy = r % g->oh, ky = kr % g->kh;
    const ptrdiff_t iy = oy * g->sh - g->pt + ky * g->dh;
    if (iy < 0 || iy >= g->h) return NULL;
    if (ds) {
        const ptrdiff_t smp = b / ds->od, p = b % ds->od;
        const ptrdiff_t iz = p * ds->sd + (kr / g->kh) * ds->dd - ds->front;
        if (iz < 0 || iz >= ds->d) return NULL;
        return x + (((smp * ds->d + iz) * g->h + iy) * g->w) * ds->c;
    }
    return x + ((b * g->h + iy) * g->w) * g->c;
}

static void CFN(wgrad_rows)(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                            const CFN(fnn_wgrad) *w, ptrdiff_t r0, ptrdiff_t r1, const FT *x,
                            const FT *dz, FT *buf, unsigned char *skip, FT *acc)
{
    const ptrdiff_t c = CFN(wgrad_c)(g, ds), F = g->f, ow = g->ow, RB = FNN_CONV_WGRAD_RB;
    const ptrdiff_t kh = CFN(wgrad_krows)(g, ds);
    const int nv = F <= w->vw ? 1 : 2;
    const ptrdiff_t fv = nv * w->vw, run = g->kw * c;
    const ptrdiff_t tbmax = nv == 1 ? 12 : 6, nb = (run + tbmax - 1) / tbmax;
    const ptrdiff_t tb = (run + nb - 1) / nb, xlen = CFN(wgrad_xlen)(g, ds);
    const ptrdiff_t ncols = (ow - 1) * g->sw + g->kw;
    const ptrdiff_t lo = g->pl < ncols ? g->pl : ncols;
    const ptrdiff_t hi = g->pl + g->w < ncols ? g->pl + g->w : ncols;
    FT *xrows = buf, *dzp = buf + kh * RB * xlen; /* [ky][i][xlen], [i][ox][fv] */
    ptrdiff_t rb0, i, ky, t0, ox, f;
    for (rb0 = r0; rb0 < r1; rb0 += RB) {
        const ptrdiff_t nr = (r1 - rb0 < RB) ? r1 - rb0 : RB;
        const FT *dzs = dz + rb0 * ow * F;
        ptrdiff_t dzrs = ow * F;
        for (i = 0; i < nr; i++) {
            const ptrdiff_t r = rb0 + i;
            for (ky = 0; ky < kh; ky++) { /* kernel row: (kz, ky) with a depth */
                const FT *src = CFN(wgrad_src)(g, ds, x, r, ky);
                FT *p = xrows + (ky * RB + i) * xlen;
                skip[ky * RB + i] = (unsigned char)(src == NULL);
                if (!src) continue;
                memset(p, 0, (size_t)(lo * c) * sizeof(FT));
                memcpy(p + lo * c, src, (size_t)((hi - lo) * c) * sizeof(FT));
                memset(p + hi * c, 0, (size_t)(xlen - hi * c) * sizeof(FT));
            }
            if (F < fv) { /* filters past F read as zero */
                FT *d = dzp + i * ow * fv;
                const FT *s = dz + r * ow * F;
                for (ox = 0; ox < ow; ox++)
                    for (f = 0; f < fv; f++) d[ox * fv + f] = f < F ? s[ox * F + f] : (FT)0;
            }
        }
        if (F < fv) {
            dzs = dzp;
            dzrs = ow * fv;
        }
        for (ky = 0; ky < kh; ky++)
            for (t0 = 0; t0 < run; t0 += tb)
                w->block(nv, nr, skip + ky * RB, ow, g->sw * c, xrows + ky * RB * xlen + t0, xlen,
                         dzs, dzrs, fv, (run - t0 < tb) ? run - t0 : tb,
                         acc + (ky * run + t0) * fv);
    }
}

static int CFN(grad_wvec)(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                          const fnn_conv_plan *pl, const CFN(fnn_wgrad) *w, const FT *x,
                          const FT *dz, FT *dkernel, FT *dbias)
{
    const ptrdiff_t rows = g->n * g->oh, F = g->f, K = pl->K;
    const ptrdiff_t fv = (F <= w->vw ? 1 : 2) * w->vw, RB = FNN_CONV_WGRAD_RB;
    const ptrdiff_t groups = rows < FNN_CONV_GROUPS ? rows : FNN_CONV_GROUPS;
    const size_t acc_elems = (size_t)(K * fv);
    const size_t buf_elems = (size_t)(CFN(wgrad_krows)(g, ds) * RB * CFN(wgrad_xlen)(g, ds) +
                                      RB * g->ow * fv);
    FT *accs = (FT *)CFN(alloc)(acc_elems * (size_t)groups);
    double *bs = (double *)calloc((size_t)(groups * F), sizeof(double));
    int ok = 1, nt = fnn_conv_threads(pl, groups);
    ptrdiff_t q, j;
    if (!accs || !bs) { free(accs); free(bs); return 0; }
    memset(accs, 0, acc_elems * (size_t)groups * sizeof(FT));
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *buf = (FT *)CFN(alloc)(buf_elems);
        unsigned char *skip = (unsigned char *)malloc((size_t)(CFN(wgrad_krows)(g, ds) * RB));
        ptrdiff_t qq;
        if (!buf || !skip) {
            FNN_OMP_FAIL(ok);
        }
        FNN_OMP_FOR_DYNAMIC
        for (qq = 0; qq < groups; qq++) {
            const ptrdiff_t r0 = qq * rows / groups, r1 = (qq + 1) * rows / groups;
            if (!buf || !skip) continue;
            CFN(wgrad_rows)(g, ds, w, r0, r1, x, dz, buf, skip, accs + qq * acc_elems);
            CFN(colsum)(dz + r0 * g->ow * F, (r1 - r0) * g->ow, F, bs + qq * F);
        }
        free(buf);
        free(skip);
        fnn_ftz_leave(csr);
    }
    if (ok) {
        for (j = 0; j < K * F; j++) {
            const ptrdiff_t at = (j / F) * fv + j % F;
            FT s = (FT)0;
            for (q = 0; q < groups; q++) s += accs[q * acc_elems + at];
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
