/*
 * The bodies of fnn_norm.h's kernels for one element type FT in one flavour: NFN(name) gives
 * the function's name, NTARGET its target attribute (may be empty). Included by fnn_norm.c. A
 * row's sums run in 8 lanes of doubles held in vectors (GCC's vector extensions; written as an
 * array of 8 with a loop over the lanes, GCC left the backward's two sums scalar, ~3 ns a
 * value).
 */
#define NLANES 8

/* A row's 8 lanes of sums as two vectors of 4 doubles, lanes 0-3 and 4-7 (one AVX2 register
 * each). One vector of 8 doubles, split by GCC for AVX2, went through general registers and the
 * stack: ln_row was 14% of a Transformer's one-sample forward on Zen 2. The lanes' sums are
 * combined in the same order either way: ((0+1) + (2+3)) + ((4+5) + (6+7)). */
typedef FT NFN(v4) __attribute__((vector_size(4 * sizeof(FT))));

static NTARGET inline __attribute__((always_inline)) fnn_v4d NFN(load4)(const FT *p)
{
#if NAVX
    /* one conversion of 4 floats (GCC lowered __builtin_convertvector to two conversions of 2
     * and a merge through the stack: half of the forward's time on Zen 4) */
    if (sizeof(FT) == sizeof(float))
        return (fnn_v4d)_mm256_cvtps_pd(_mm_loadu_ps((const float *)p));
    return (fnn_v4d)_mm256_loadu_pd((const double *)p);
#else
    NFN(v4) v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, fnn_v4d);
#endif
}

static NTARGET inline __attribute__((always_inline)) double NFN(sum8)(fnn_v4d lo, fnn_v4d hi)
{
    return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

static NTARGET void NFN(ln_row)(const FT *x, ptrdiff_t c, const FT *gamma, const FT *beta,
                                double eps, FT *out, FT *mean, FT *invstd)
{
    const fnn_v4d zero = {0.0, 0.0, 0.0, 0.0};
    fnn_v4d lo = zero, hi = zero, mv;
    double s, d, m, inv;
    const ptrdiff_t c8 = c - c % NLANES;
    ptrdiff_t j;
    for (j = 0; j < c8; j += NLANES) {
        lo += NFN(load4)(x + j);
        hi += NFN(load4)(x + j + 4);
    }
    s = NFN(sum8)(lo, hi);
    for (j = c8; j < c; j++) s += (double)x[j];
    *mean = (FT)(s / (double)c);
    m = (double)*mean;
    mv = (fnn_v4d){m, m, m, m};
    lo = hi = zero;
    for (j = 0; j < c8; j += NLANES) {
        const fnn_v4d dl = NFN(load4)(x + j) - mv, dh = NFN(load4)(x + j + 4) - mv;
        lo += dl * dl;
        hi += dh * dh;
    }
    s = NFN(sum8)(lo, hi);
    for (j = c8; j < c; j++) {
        d = (double)x[j] - m;
        s += d * d;
    }
    *invstd = (FT)(1.0 / sqrt(s / (double)c + eps));
    inv = (double)*invstd;
    for (j = 0; j < c; j++)
        out[j] = (FT)((double)gamma[j] * (((double)x[j] - m) * inv) + (double)beta[j]);
}

/* ln_row on NR4 rows (x, out: rows c apart) at once: the same operations for each row in the
 * same order (the same bits), their dependency chains interleaved. One row at a time was bound
 * by its chains (the adds' latency, the lane sums, the division and square root): ~90 ns a
 * 64-value row on Zen 2. */
#define NR4 4
static NTARGET void NFN(ln_row4)(const FT *x, ptrdiff_t c, const FT *gamma, const FT *beta,
                                 double eps, FT *out, FT *mean, FT *invstd)
{
    const fnn_v4d zero = {0.0, 0.0, 0.0, 0.0};
    fnn_v4d lo[NR4], hi[NR4];
    double s[NR4], m[NR4], inv[NR4];
    const ptrdiff_t c8 = c - c % NLANES;
    ptrdiff_t j;
    int r;
    for (r = 0; r < NR4; r++) lo[r] = hi[r] = zero;
    for (j = 0; j < c8; j += NLANES)
        for (r = 0; r < NR4; r++) {
            lo[r] += NFN(load4)(x + r * c + j);
            hi[r] += NFN(load4)(x + r * c + j + 4);
        }
    for (r = 0; r < NR4; r++) {
        s[r] = NFN(sum8)(lo[r], hi[r]);
        for (j = c8; j < c; j++) s[r] += (double)x[r * c + j];
        mean[r] = (FT)(s[r] / (double)c);
        m[r] = (double)mean[r];
        lo[r] = hi[r] = zero;
    }
    for (j = 0; j < c8; j += NLANES)
        for (r = 0; r < NR4; r++) {
            const fnn_v4d mv = {m[r], m[r], m[r], m[r]};
            const fnn_v4d dl = NFN(load4)(x + r * c + j) - mv;
            const fnn_v4d dh = NFN(load4)(x + r * c + j + 4) - mv;
            lo[r] += dl * dl;
            hi[r] += dh * dh;
        }
    for (r = 0; r < NR4; r++) {
        double d;
        s[r] = NFN(sum8)(lo[r], hi[r]);
        for (j = c8; j < c; j++) {
            d = (double)x[r * c + j] - m[r];
            s[r] += d * d;
        }
        invstd[r] = (FT)(1.0 / sqrt(s[r] / (double)c + eps));
        inv[r] = (double)invstd[r];
    }
    for (r = 0; r < NR4; r++) {
        const FT *xr = x + r * c;
        FT *o = out + r * c;
        const double mr = m[r], ir = inv[r];
        for (j = 0; j < c; j++)
            o[j] = (FT)((double)gamma[j] * (((double)xr[j] - mr) * ir) + (double)beta[j]);
    }
}

/* n rows (x, out: rows c apart): ln_row on each, NR4 at a time */
static NTARGET void NFN(ln_rows)(const FT *x, ptrdiff_t n, ptrdiff_t c, const FT *gamma,
                                 const FT *beta, double eps, FT *out, FT *mean, FT *invstd)
{
    ptrdiff_t i = 0;
    /* rows of 256 values or more one at a time: their chains are long enough alone, and four
     * interleaved streams from memory were slower (4096 x 512 float32 on Zen 4: 1.78 -> 1.38 ms;
     * 8% slower in cache) */
    for (; c < 256 && i + NR4 <= n; i += NR4)
        NFN(ln_row4)(x + i * c, c, gamma, beta, eps, out + i * c, mean + i, invstd + i);
    for (; i < n; i++)
        NFN(ln_row)(x + i * c, c, gamma, beta, eps, out + i * c, mean + i, invstd + i);
}
#undef NR4

static NTARGET inline __attribute__((always_inline)) void NFN(acc4)(double *p, fnn_v4d v)
{
    fnn_v4d a;
    memcpy(&a, p, sizeof a);
    a += v;
    memcpy(p, &a, sizeof a);
}

/* Rows [0, n) (rows c apart), each while it is in cache: dx (fnn_norm.h's formula; when dx is
 * not NULL), and the row's share of the parameter gradients added to pg[j] (dy xhat) and pb[j]
 * (dy), which start at zero: the block's column sums in row order. */
static NTARGET void NFN(ln_bwd_rows)(const FT *x, const FT *dy, ptrdiff_t n, ptrdiff_t c,
                                     const FT *gamma, const FT *mean, const FT *invstd, FT *dx,
                                     double *pg, double *pb)
{
    const fnn_v4d zero = {0.0, 0.0, 0.0, 0.0};
    const ptrdiff_t c8 = c - c % NLANES;
    const double cd = (double)c;
    ptrdiff_t i, j;
    memset(pg, 0, (size_t)c * sizeof *pg);
    memset(pb, 0, (size_t)c * sizeof *pb);
    for (i = 0; i < n; i++) {
        const FT *xr = x + i * c, *dr = dy + i * c;
        const double m = (double)mean[i], inv = (double)invstd[i], scale = inv / cd;
        const fnn_v4d mv = {m, m, m, m}, iv = {inv, inv, inv, inv};
        fnn_v4d gl = zero, gh = zero, xl = zero, xh = zero;
        double sg, sgx, g, xhat, e;
        for (j = 0; j < c8; j += NLANES) {
            const fnn_v4d el = NFN(load4)(dr + j), eh = NFN(load4)(dr + j + 4);
            const fnn_v4d hl = (NFN(load4)(xr + j) - mv) * iv;
            const fnn_v4d hh = (NFN(load4)(xr + j + 4) - mv) * iv;
            const fnn_v4d vl = el * NFN(load4)(gamma + j), vh = eh * NFN(load4)(gamma + j + 4);
            gl += vl;
            gh += vh;
            xl += vl * hl;
            xh += vh * hh;
            NFN(acc4)(pg + j, el * hl);
            NFN(acc4)(pg + j + 4, eh * hh);
            NFN(acc4)(pb + j, el);
            NFN(acc4)(pb + j + 4, eh);
        }
        sg = NFN(sum8)(gl, gh);
        sgx = NFN(sum8)(xl, xh);
        for (j = c8; j < c; j++) {
            e = (double)dr[j];
            g = e * (double)gamma[j];
            xhat = ((double)xr[j] - m) * inv;
            sg += g;
            sgx += g * xhat;
            pg[j] += e * xhat;
            pb[j] += e;
        }
        if (dx == NULL)
            continue;
        FT *o = dx + i * c;
        for (j = 0; j < c; j++) {
            g = (double)dr[j] * (double)gamma[j];
            xhat = ((double)xr[j] - m) * inv;
            o[j] = (FT)(scale * (cd * g - sg - xhat * sgx));
        }
    }
}

#undef NLANES
