/*
 * The element-wise half of one recurrent step (fnn_rnn.h): gate nonlinearities and state updates
 * forward, their derivatives backward, on the n rows of one time step. Written once, compiled per
 * element type and per instruction set (fnn_rnn.c includes it with target attributes, as
 * fnn_vec.c does), so the loops run as wide as the GEMM's flavour.
 *
 * Required macros: FT (float or double), GFN(name) (the flavour's function name), GTARGET (a
 * function attribute, may be empty), G_SIGMOID(z), G_TANH(z) (scalar functions of FT that the
 * compiler can vectorise for float: fnn_rnn.c's fnn_rnn_sigmoidf / fnn_rnn_tanhf).
 *
 * Activation codes are fastnn's (fnn_gemm.h): LINEAR, SIGMOID, TANH, RELU. Derivatives are
 * written with the activation's output y (as fnn_vec.h's): sigmoid y (1 - y), tanh 1 - y^2,
 * relu (y > 0), linear 1 -- evaluated as k0 + y (k1 + k2 y) (relu by a select), one loop for all.
 */

/* y := act(y) on len values. */
static GTARGET void GFN(act)(FT *y, ptrdiff_t len, int act)
{
    ptrdiff_t j;
    switch (act) {
    case FNN_ACT_SIGMOID:
        for (j = 0; j < len; j++) y[j] = G_SIGMOID(y[j]);
        break;
    case FNN_ACT_TANH:
        for (j = 0; j < len; j++) y[j] = G_TANH(y[j]);
        break;
    case FNN_ACT_RELU:
        for (j = 0; j < len; j++) y[j] = (y[j] < (FT)0) ? (FT)0 : y[j];
        break;
    default:
        break;
    }
}

/* The rows of a step's buffers never overlap. */
#define G_IVDEP _Pragma("GCC ivdep")

/* act'(y) = k0 + y (k1 + k2 y), or relu's step: the coefficients of each code. */
#define G_DERIV_DECL(P, code)                                                                 \
    const FT P##k0 = ((code) == FNN_ACT_SIGMOID) ? (FT)0 : (FT)1;                             \
    const FT P##k1 = ((code) == FNN_ACT_SIGMOID) ? (FT)1 : (FT)0;                             \
    const FT P##k2 = ((code) == FNN_ACT_SIGMOID || (code) == FNN_ACT_TANH) ? (FT)-1 : (FT)0;  \
    const int P##relu = (code) == FNN_ACT_RELU
#define G_DERIV(P, y) GFN(deriv)(P##k0, P##k1, P##k2, P##relu, (y))

static inline __attribute__((always_inline)) FT GFN(deriv)(FT k0, FT k1, FT k2, int relu, FT y)
{
    const FT poly = k0 + y * (k1 + k2 * y);
    const FT step = (y > (FT)0) ? (FT)1 : (FT)0;
    return relu ? step : poly;
}

/* A product of few rows, C := beta C + A B with A (n, k), B (k, m), C (n, m) (row strides lda,
 * ldb, ldc; beta 0 or 1), as k row updates of C along B's contiguous rows: for one or a few
 * sequences a GEMM call costs more in set-up than this product does. Columns go in blocks of 8
 * or 4 vectors held in registers through the k updates (updating C in memory each time was
 * bound by the stores). Each C[i, j] is summed in the order p = 0, 1, ..., k-1 onto C's start (0
 * when beta is 0). */
#define G_VEC (64 / (ptrdiff_t)sizeof(FT))          /* values in 512 bits */
#define G_BLOCK(W)                                                                            \
    do {                                                                                      \
        FT acc[W];                                                                            \
        ptrdiff_t jj;                                                                         \
        for (jj = 0; jj < (W); jj++) acc[jj] = (beta == (FT)0) ? (FT)0 : c[j0 + jj];          \
        for (p = 0; p < k; p++) {                                                             \
            const FT ap = a[p];                                                               \
            const FT *restrict b = B + p * ldb + j0;                                          \
            for (jj = 0; jj < (W); jj++) acc[jj] += ap * b[jj];                               \
        }                                                                                     \
        for (jj = 0; jj < (W); jj++) c[j0 + jj] = acc[jj];                                    \
        j0 += (W);                                                                            \
    } while (0)

__attribute__((unused)) static GTARGET void GFN(small_gemm)(ptrdiff_t n, ptrdiff_t m,
                                                             ptrdiff_t k, const FT *A,
                                    ptrdiff_t lda, const FT *B, ptrdiff_t ldb, FT beta, FT *C,
                                    ptrdiff_t ldc)
{
    ptrdiff_t i, p, j0;
    for (i = 0; i < n; i++) {
        FT *restrict c = C + i * ldc;
        const FT *a = A + i * lda;
        j0 = 0;
        while (m - j0 >= 8 * G_VEC) G_BLOCK(8 * G_VEC);
        while (m - j0 >= 4 * G_VEC) G_BLOCK(4 * G_VEC);
        while (m - j0 >= G_VEC) G_BLOCK(G_VEC);
        if (j0 < m) {
            ptrdiff_t j;
            if (beta == (FT)0)
                for (j = j0; j < m; j++) c[j] = (FT)0;
            for (p = 0; p < k; p++) {
                const FT ap = a[p];
                const FT *restrict b = B + p * ldb;
                for (j = j0; j < m; j++) c[j] += ap * b[j];
            }
        }
    }
}
#undef G_BLOCK
#undef G_VEC

/* acc[j] += sum over rows i < m of z[i * K + j] (the bias gradient, one step's rows as the
 * backward produces them, while they are in L1), in double, rows in order: G_COLS columns at a
 * time held in registers through all rows, the last few columns in acc itself. */
#define G_COLS 32
static GTARGET void GFN(colsum)(const FT *z, ptrdiff_t m, ptrdiff_t K, double *acc)
{
    ptrdiff_t i, j, j0;
    for (j0 = 0; j0 + G_COLS <= K; j0 += G_COLS) {
        double sum[G_COLS];
        for (j = 0; j < G_COLS; j++) sum[j] = acc[j0 + j];
        for (i = 0; i < m; i++) {
            const FT *row = z + i * K + j0;
            for (j = 0; j < G_COLS; j++) sum[j] += (double)row[j];
        }
        for (j = 0; j < G_COLS; j++) acc[j0 + j] = sum[j];
    }
    for (i = 0; i < m && j0 < K; i++) {
        const FT *row = z + i * K;
        for (j = j0; j < K; j++) acc[j] += (double)row[j];
    }
}
#undef G_COLS

/* SimpleRNN backward of one step: dz := dh * act'(h) (n*u values). */
static GTARGET void GFN(simple_bwd)(const FT *restrict h, const FT *restrict dh,
                                    FT *restrict dz, ptrdiff_t len, int act)
{
    G_DERIV_DECL(d_, act);
    ptrdiff_t j;
    for (j = 0; j < len; j++) dz[j] = dh[j] * G_DERIV(d_, h[j]);
}

/* One row of the LSTM step below for Keras' default activations (tanh, sigmoid), in one pass
 * over the units: the same operations as the general passes (the same bits), without storing
 * and reloading every gate between them. */
static GTARGET void GFN(lstm_fwd_row)(FT *restrict zi, FT *restrict zf, FT *restrict zg,
                                      FT *restrict zo, const FT *restrict cp, FT *restrict cn,
                                      FT *restrict ab, FT *restrict hb, ptrdiff_t u)
{
    ptrdiff_t j;
    for (j = 0; j < u; j++) {
        const FT i = G_SIGMOID(zi[j]), f = G_SIGMOID(zf[j]), g = G_TANH(zg[j]),
                 o = G_SIGMOID(zo[j]);
        const FT c = f * cp[j] + i * g;
        const FT t = G_TANH(c);
        zi[j] = i;
        zf[j] = f;
        zg[j] = g;
        zo[j] = o;
        cn[j] = c;
        ab[j] = t;
        hb[j] = o * t;
    }
}

/* LSTM forward of one step. z (n, 4u) holds the pre-activations [i f c o]; they are replaced by
 * the gates. c_next = f c_prev + i g; a = act(c_next); h_next = o a (rows ldh apart). */
static GTARGET void GFN(lstm_fwd)(FT *z, const FT *c_prev, FT *c_next, FT *a, FT *h_next,
                                  ptrdiff_t ldh, ptrdiff_t n, ptrdiff_t u, int act, int rec)
{
    ptrdiff_t b, j;
    if (act == FNN_ACT_TANH && rec == FNN_ACT_SIGMOID) {
        for (b = 0; b < n; b++) {
            FT *zi = z + b * 4 * u;
            GFN(lstm_fwd_row)(zi, zi + u, zi + 2 * u, zi + 3 * u, c_prev + b * u,
                              c_next + b * u, a + b * u, h_next + b * ldh, u);
        }
        return;
    }
    for (b = 0; b < n; b++) {
        FT *restrict zi = z + b * 4 * u, *restrict zf = zi + u, *restrict zg = zi + 2 * u,
                     *restrict zo = zi + 3 * u;
        const FT *restrict cp = c_prev + b * u;
        FT *restrict cn = c_next + b * u, *restrict ab = a + b * u, *restrict hb = h_next + b * ldh;
        if (act == rec) {
            GFN(act)(zi, 4 * u, rec);
        } else {
            GFN(act)(zi, 2 * u, rec);
            GFN(act)(zg, u, act);
            GFN(act)(zo, u, rec);
        }
        for (j = 0; j < u; j++) {
            const FT c = zf[j] * cp[j] + zi[j] * zg[j];
            cn[j] = c;
            ab[j] = c;
        }
        GFN(act)(ab, u, act);
        for (j = 0; j < u; j++) hb[j] = zo[j] * ab[j];
    }
}

/* LSTM backward of one step, from the gates z (n, 4u), c_prev and a = act(c) (n, u):
 * dh (n, u) is dL/dh of this step (incoming from above and from the next step), dc (n, u) dL/dc
 * from the next step, replaced by dL/dc_prev; z is replaced by dL/d(pre-activations) (each
 * element's four gates are read before its four gradients are written). */
static GTARGET void GFN(lstm_bwd)(FT *z, const FT *c_prev, const FT *a, const FT *dh, FT *dc,
                                  ptrdiff_t n, ptrdiff_t u, int act, int rec)
{
    G_DERIV_DECL(da_, act);
    G_DERIV_DECL(dr_, rec);
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        FT *zi = z + b * 4 * u, *zf = zi + u, *zg = zi + 2 * u, *zo = zi + 3 * u;
        const FT *restrict cp = c_prev + b * u, *restrict ab = a + b * u,
                           *restrict dhb = dh + b * u;
        FT *restrict dcb = dc + b * u;
        G_IVDEP
        for (j = 0; j < u; j++) {
            const FT i = zi[j], f = zf[j], g = zg[j], o = zo[j];
            const FT c = dcb[j] + dhb[j] * o * G_DERIV(da_, ab[j]);
            zi[j] = c * g * G_DERIV(dr_, i);
            zf[j] = c * cp[j] * G_DERIV(dr_, f);
            zg[j] = c * i * G_DERIV(da_, g);
            zo[j] = dhb[j] * ab[j] * G_DERIV(dr_, o);
            dcb[j] = c * f;
        }
    }
}

/* GRU (reset_after) forward of one step. z (n, 3u) holds x W + b_in = [xz xr xh] and is replaced
 * by the gates [z r hh]; s (n, 3u) = h_prev U + b_rec = [rz rr rh]; aux := rh (kept for the
 * backward); z = rec(xz + rz), r = rec(xr + rr), hh = act(xh + r rh), h = z h_prev + (1 - z) hh. */
static GTARGET void GFN(gru_fwd)(FT *z, const FT *s, const FT *h_prev, FT *aux, FT *h_next,
                                 ptrdiff_t n, ptrdiff_t u, int act, int rec)
{
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        FT *restrict zb = z + b * 3 * u, *restrict hh = zb + 2 * u, *restrict rh = aux + b * u,
                     *restrict hn = h_next + b * u;
        const FT *restrict sb = s + b * 3 * u, *restrict hp = h_prev + b * u;
        for (j = 0; j < 2 * u; j++) zb[j] = zb[j] + sb[j];
        GFN(act)(zb, 2 * u, rec);
        for (j = 0; j < u; j++) {
            rh[j] = sb[2 * u + j];
            hh[j] = hh[j] + zb[u + j] * rh[j];
        }
        GFN(act)(hh, u, act);
        for (j = 0; j < u; j++) hn[j] = zb[j] * hp[j] + ((FT)1 - zb[j]) * hh[j];
    }
}

/* GRU backward of one step: from the gates z (n, 3u), h_prev and aux = rh (n, u) and dh = dL/dh
 * (n, u): dzx (n, 3u) := dL/d(x W + b_in), dzr (n, 3u) := dL/d(h_prev U + b_rec) (they differ
 * in the candidate's third: r times), and dh := dh z (the direct path to h_prev; the caller adds
 * dzr U^T). */
static GTARGET void GFN(gru_bwd)(const FT *z, const FT *h_prev, const FT *aux, FT *dh, FT *dzx,
                                 FT *dzr, ptrdiff_t n, ptrdiff_t u, int act, int rec)
{
    G_DERIV_DECL(da_, act);
    G_DERIV_DECL(dr_, rec);
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        const FT *restrict zz = z + b * 3 * u, *restrict zr = zz + u, *restrict hh = zz + 2 * u;
        const FT *restrict hp = h_prev + b * u, *restrict rh = aux + b * u;
        FT *restrict dhb = dh + b * u, *restrict xz = dzx + b * 3 * u,
                     *restrict rz = dzr + b * 3 * u;
        G_IVDEP
        for (j = 0; j < u; j++) {
            const FT g = dhb[j];
            const FT dzp = g * (hp[j] - hh[j]) * G_DERIV(dr_, zz[j]);
            const FT dhp = g * ((FT)1 - zz[j]) * G_DERIV(da_, hh[j]);
            const FT drp = dhp * rh[j] * G_DERIV(dr_, zr[j]);
            xz[j] = dzp;
            rz[j] = dzp;
            xz[u + j] = drp;
            rz[u + j] = drp;
            xz[2 * u + j] = dhp;
            rz[2 * u + j] = dhp * zr[j];
            dhb[j] = g * zz[j];
        }
    }
}

/* GRU with reset_after=False (the reset gate before the product), forward of one step in two
 * halves around the candidate's product (r h_prev) U_h. First: z (n, 3u) holds x W + b = [xz xr
 * xh]; its first two thirds are replaced by z = rec(xz + sz), r = rec(xr + sr) with s (n, 3u)
 * holding h_prev U_zr in its first two thirds; rh := r hr (hr: h_prev as the product reads it,
 * n rows of u; kept for the backward). */
static GTARGET void GFN(gru_rb_fwd1)(FT *z, const FT *s, const FT *hr, FT *rh, ptrdiff_t n,
                                     ptrdiff_t u, int rec)
{
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        FT *restrict zb = z + b * 3 * u, *restrict rb = rh + b * u;
        const FT *restrict sb = s + b * 3 * u, *restrict hb = hr + b * u;
        for (j = 0; j < 2 * u; j++) zb[j] = zb[j] + sb[j];
        GFN(act)(zb, 2 * u, rec);
        for (j = 0; j < u; j++) rb[j] = zb[u + j] * hb[j];
    }
}

/* Second half: s's last third holds (r hr) U_h; z's last third := hh = act(xh + that), and
 * h_next = z h_prev + (1 - z) hh. */
static GTARGET void GFN(gru_rb_fwd2)(FT *z, const FT *s, const FT *h_prev, FT *h_next,
                                     ptrdiff_t n, ptrdiff_t u, int act)
{
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        FT *restrict zb = z + b * 3 * u, *restrict hh = zb + 2 * u, *restrict hn = h_next + b * u;
        const FT *restrict sb = s + b * 3 * u + 2 * u, *restrict hp = h_prev + b * u;
        for (j = 0; j < u; j++) hh[j] = hh[j] + sb[j];
        GFN(act)(hh, u, act);
        for (j = 0; j < u; j++) hn[j] = zb[j] * hp[j] + ((FT)1 - zb[j]) * hh[j];
    }
}

/* Its backward of one step, first half: from the gates z (n, 3u) = [z r hh], h_prev and dh =
 * dL/dh (n, u): dz (n, 3u) gets dL/d(pre-activation) of z (first third) and of hh (last third),
 * and dh := dh z (the direct path to h_prev). */
static GTARGET void GFN(gru_rb_bwd1)(const FT *z, const FT *h_prev, FT *dh, FT *dz, ptrdiff_t n,
                                     ptrdiff_t u, int act, int rec)
{
    G_DERIV_DECL(da_, act);
    G_DERIV_DECL(dr_, rec);
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        const FT *restrict zz = z + b * 3 * u, *restrict hh = zz + 2 * u;
        const FT *restrict hp = h_prev + b * u;
        FT *restrict dhb = dh + b * u, *restrict dzb = dz + b * 3 * u;
        G_IVDEP
        for (j = 0; j < u; j++) {
            const FT g = dhb[j];
            dzb[j] = g * (hp[j] - hh[j]) * G_DERIV(dr_, zz[j]);
            dzb[2 * u + j] = g * ((FT)1 - zz[j]) * G_DERIV(da_, hh[j]);
            dhb[j] = g * zz[j];
        }
    }
}

/* Second half: drh (n, u) holds dL/d(r hr) (the candidate's gradient times U_h^T); dz's middle
 * third := dL/d(pre-activation of r) = drh hr rec'(r), and drh := drh r (its share of dL/dhr). */
static GTARGET void GFN(gru_rb_bwd2)(const FT *z, const FT *hr, FT *drh, FT *dz, ptrdiff_t n,
                                     ptrdiff_t u, int rec)
{
    G_DERIV_DECL(dr_, rec);
    ptrdiff_t b, j;
    for (b = 0; b < n; b++) {
        const FT *restrict zr = z + b * 3 * u + u, *restrict hb = hr + b * u;
        FT *restrict db = drh + b * u, *restrict dzb = dz + b * 3 * u + u;
        G_IVDEP
        for (j = 0; j < u; j++) {
            const FT g = db[j];
            dzb[j] = g * hb[j] * G_DERIV(dr_, zr[j]);
            db[j] = g * zr[j];
        }
    }
}

#undef G_DERIV_DECL
#undef G_DERIV
#undef G_IVDEP
