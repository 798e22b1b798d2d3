/*
 * Element-wise kernels, written once; fnn_vec.c instantiates them per element type and
 * instruction set. Required macros: FT (float or double), VFN(name) (mangling), VEC_TARGET
 * (function attribute, may be empty), UT/ST (unsigned/signed integer of FT's size), ABS_MASK and
 * INF_BITS (FT's sign mask complement and +inf bit pattern).
 */

/* dz := act'(y) * dy and acc[j] += sum_i dz[i, j] (rows in order) for an n x w block (row
 * stride ld). Columns go 16 at a time down all the rows, their 16 sums held in registers: with
 * the sums in memory, each row's add waits for the previous row's store to be forwarded (a
 * latency chain per row). Each column is still summed row by row from 0 and then added to
 * acc[j] once, the same order as the row-by-row loop for the zeroed acc the callers pass. The
 * relu and leaky relu masks multiply dy (not select), so NaN and inf in dy propagate as in
 * dy * (y > 0). */
#define FNN_DERIV_COLSUM(D)                                                             \
    for (j0 = 0; j0 + 16 <= w; j0 += 16) {                                              \
        double sum[16] = {0};                                                           \
        for (i = 0; i < n; i++) {                                                       \
            const FT *yi = y + i * ld + j0, *gi = dy + i * ld + j0;                     \
            FT *zi = dz + i * ld + j0;                                                  \
            (void)yi; /* unread by the linear case */                                   \
            for (j = 0; j < 16; j++) {                                                  \
                const FT d = (D);                                                       \
                zi[j] = d;                                                              \
                sum[j] += d;                                                            \
            }                                                                           \
        }                                                                               \
        for (j = 0; j < 16; j++) acc[j0 + j] += sum[j];                                 \
    }                                                                                   \
    for (i = 0; i < n; i++) {                                                           \
        const FT *yi = y + i * ld, *gi = dy + i * ld;                                   \
        FT *zi = dz + i * ld;                                                           \
        (void)yi;                                                                       \
        for (j = j0; j < w; j++) {                                                      \
            const FT d = (D);                                                           \
            zi[j] = d;                                                                  \
            acc[j] += d;                                                                \
        }                                                                               \
    }

VEC_TARGET static void VFN(deriv_colsum)(const FT *y, const FT *dy, FT *dz, double *restrict acc,
                                         ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, int act,
                                         FT param)
{
    ptrdiff_t i, j, j0;
    /* one loop nest per activation, no branch inside: each vectorises */
    switch (act) {
    case FNN_ACT_RELU: FNN_DERIV_COLSUM(gi[j] * (yi[j] > (FT)0 ? (FT)1 : (FT)0)) break;
    case FNN_ACT_LEAKY_RELU: FNN_DERIV_COLSUM(gi[j] * (yi[j] > (FT)0 ? (FT)1 : param)) break;
    case FNN_ACT_SIGMOID: FNN_DERIV_COLSUM(gi[j] * (yi[j] * ((FT)1 - yi[j]))) break;
    case FNN_ACT_TANH: FNN_DERIV_COLSUM(gi[j] * ((FT)1 - yi[j] * yi[j])) break;
    default: /* linear; step passes the gradient straight through */
        FNN_DERIV_COLSUM(gi[j]) break;
    }
}
#undef FNN_DERIV_COLSUM

VEC_TARGET static void VFN(sgd)(FT *restrict p, const FT *restrict grad, FT *restrict v,
                                ptrdiff_t n, FT lr, FT mu, int nesterov, FT wd)
{
    ptrdiff_t i;
    if (mu == (FT)0) {
        for (i = 0; i < n; i++) {
            const FT g = grad[i] + wd * p[i];
            p[i] = p[i] - lr * g;
        }
    } else if (nesterov) {
        for (i = 0; i < n; i++) {
            const FT g = grad[i] + wd * p[i];
            const FT vi = mu * v[i] + g;
            v[i] = vi;
            p[i] = p[i] - lr * (g + mu * vi);
        }
    } else {
        for (i = 0; i < n; i++) {
            const FT g = grad[i] + wd * p[i];
            const FT vi = mu * v[i] + g;
            v[i] = vi;
            p[i] = p[i] - lr * vi;
        }
    }
}

VEC_TARGET static void VFN(adam)(FT *restrict p, const FT *restrict grad, FT *restrict m,
                                 FT *restrict v, ptrdiff_t n, FT lr, FT b1, FT b2, FT one_b1,
                                 FT one_b2, FT bc1, FT bc2, FT eps, FT wd)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT g = grad[i] + wd * p[i];
        const FT mi = b1 * m[i] + one_b1 * g;
        const FT vi = b2 * v[i] + one_b2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - lr * (mi / bc1) / (FT_SQRT(vi / bc2) + eps);
    }
}

/* On the bit patterns: with the sign bit cleared, finite values order like their magnitudes and
 * NaN and inf have the largest patterns; an integer max has no NaN rules, so it vectorises. */
VEC_TARGET static double VFN(max_abs)(const FT *x, ptrdiff_t n)
{
    ptrdiff_t i;
    ST mx = 0;
    FT r;
    for (i = 0; i < n; i++) {
        UT u;
        memcpy(&u, x + i, sizeof u);
        u &= ABS_MASK;
        mx = ((ST)u > mx) ? (ST)u : mx;
    }
    if (mx >= (ST)INF_BITS) return NAN;
    memcpy(&r, &mx, sizeof r);
    return (double)r;
}
