/*
 * The bodies of fnn_norm.h's kernels for one element type FT in one flavour: NFN(name) gives
 * the function's name, NTARGET its target attribute (may be empty), NLOAD8(p) the 8 values at p
 * as an fnn_v8d. Included by fnn_norm.c. The 8 lanes of a row's sums are one vector of doubles
 * (GCC's vector extensions; written as an array of 8 with a loop over the lanes, GCC left the
 * backward's two sums scalar, ~3 ns a value).
 */
#define NLANES 8

static NTARGET void NFN(ln_row)(const FT *x, ptrdiff_t c, const FT *gamma, const FT *beta,
                                double eps, FT *out, FT *mean, FT *invstd)
{
    fnn_v8d r, mv;
    double s, d, m, inv;
    const ptrdiff_t c8 = c - c % NLANES;
    ptrdiff_t j;
    r = (fnn_v8d){0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (j = 0; j < c8; j += NLANES) r += NLOAD8(x + j);
    s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (j = c8; j < c; j++) s += (double)x[j];
    *mean = (FT)(s / (double)c);
    m = (double)*mean;
    mv = (fnn_v8d){m, m, m, m, m, m, m, m};
    r = (fnn_v8d){0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (j = 0; j < c8; j += NLANES) {
        const fnn_v8d dv = NLOAD8(x + j) - mv;
        r += dv * dv;
    }
    s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (j = c8; j < c; j++) {
        d = (double)x[j] - m;
        s += d * d;
    }
    *invstd = (FT)(1.0 / sqrt(s / (double)c + eps));
    inv = (double)*invstd;
    for (j = 0; j < c; j++)
        out[j] = (FT)((double)gamma[j] * (((double)x[j] - m) * inv) + (double)beta[j]);
}

static NTARGET void NFN(ln_dx_row)(const FT *x, const FT *dy, ptrdiff_t c, const FT *gamma,
                                   double m, double inv, FT *dx)
{
    fnn_v8d rg, rgx;
    const fnn_v8d mv = {m, m, m, m, m, m, m, m}, iv = {inv, inv, inv, inv, inv, inv, inv, inv};
    double sg, sgx, g, xhat;
    const ptrdiff_t c8 = c - c % NLANES;
    const double cd = (double)c, scale = inv / cd;
    ptrdiff_t j;
    rg = (fnn_v8d){0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    rgx = rg;
    for (j = 0; j < c8; j += NLANES) {
        const fnn_v8d gv = NLOAD8(dy + j) * NLOAD8(gamma + j);
        rg += gv;
        rgx += gv * ((NLOAD8(x + j) - mv) * iv);
    }
    sg = ((rg[0] + rg[1]) + (rg[2] + rg[3])) + ((rg[4] + rg[5]) + (rg[6] + rg[7]));
    sgx = ((rgx[0] + rgx[1]) + (rgx[2] + rgx[3])) + ((rgx[4] + rgx[5]) + (rgx[6] + rgx[7]));
    for (j = c8; j < c; j++) {
        g = (double)dy[j] * (double)gamma[j];
        xhat = ((double)x[j] - m) * inv;
        sg += g;
        sgx += g * xhat;
    }
    for (j = 0; j < c; j++) {
        g = (double)dy[j] * (double)gamma[j];
        xhat = ((double)x[j] - m) * inv;
        dx[j] = (FT)(scale * (cd * g - sg - xhat * sgx));
    }
}

static NTARGET void NFN(ln_param_block)(const FT *x, const FT *dy, ptrdiff_t n, ptrdiff_t c,
                                        ptrdiff_t j0, ptrdiff_t j1, const FT *mean,
                                        const FT *invstd, FT *dgamma, FT *dbeta)
{
    double sdy[FNN_LN_BLOCK], sdyx[FNN_LN_BLOCK];
    ptrdiff_t i, j, b0;
    for (b0 = j0; b0 < j1; b0 += FNN_LN_BLOCK) { /* each column's sums in row order */
        const ptrdiff_t w = j1 - b0 < FNN_LN_BLOCK ? j1 - b0 : FNN_LN_BLOCK;
        for (j = 0; j < w; j++) {
            sdy[j] = 0.0;
            sdyx[j] = 0.0;
        }
        for (i = 0; i < n; i++) {
            const FT *xi = x + i * c + b0, *gi = dy + i * c + b0;
            const double m = (double)mean[i], inv = (double)invstd[i];
            for (j = 0; j < w; j++) {
                sdy[j] += (double)gi[j];
                sdyx[j] += (double)gi[j] * (((double)xi[j] - m) * inv);
            }
        }
        for (j = 0; j < w; j++) {
            dgamma[b0 + j] = (FT)((double)dgamma[b0 + j] + sdyx[j]);
            dbeta[b0 + j] = (FT)((double)dbeta[b0 + j] + sdy[j]);
        }
    }
}

#undef NLANES
