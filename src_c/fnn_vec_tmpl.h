/*
 * Element-wise kernels, written once; fnn_vec.c instantiates them per element type and
 * instruction set. Required macros: FT (float or double), VFN(name) (mangling), VEC_TARGET
 * (function attribute, may be empty), UT/ST (unsigned/signed integer of FT's size), ABS_MASK and
 * INF_BITS (FT's sign mask complement and +inf bit pattern).
 */

VEC_TARGET static void VFN(deriv_colsum)(const FT *y, const FT *dy, FT *dz, double *restrict acc,
                                         ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, int act,
                                         FT param)
{
    ptrdiff_t i, j;
    for (i = 0; i < n; i++) {
        const FT *yi = y + i * ld, *gi = dy + i * ld;
        FT *zi = dz + i * ld;
        /* one loop per activation, no branch inside: each vectorises. The relu and leaky relu
         * masks multiply dy (not select), so NaN and inf in dy propagate as in dy * (y > 0). */
        switch (act) {
        case FNN_ACT_RELU:
            for (j = 0; j < w; j++) {
                const FT d = gi[j] * (yi[j] > (FT)0 ? (FT)1 : (FT)0);
                zi[j] = d;
                acc[j] += d;
            }
            break;
        case FNN_ACT_LEAKY_RELU:
            for (j = 0; j < w; j++) {
                const FT d = gi[j] * (yi[j] > (FT)0 ? (FT)1 : param);
                zi[j] = d;
                acc[j] += d;
            }
            break;
        case FNN_ACT_SIGMOID:
            for (j = 0; j < w; j++) {
                const FT d = gi[j] * (yi[j] * ((FT)1 - yi[j]));
                zi[j] = d;
                acc[j] += d;
            }
            break;
        case FNN_ACT_TANH:
            for (j = 0; j < w; j++) {
                const FT d = gi[j] * ((FT)1 - yi[j] * yi[j]);
                zi[j] = d;
                acc[j] += d;
            }
            break;
        default: /* linear; step passes the gradient straight through */
            for (j = 0; j < w; j++) {
                const FT d = gi[j];
                zi[j] = d;
                acc[j] += d;
            }
            break;
        }
    }
}

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

/* RMSprop as Keras writes it (eps inside the square root; the momentum buffer holds lr * ...):
 * v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, d = max(v - a^2, 0) + eps, else
 * d = v + eps;  inc = lr g / sqrt(d);  mu > 0: b = mu b + inc, p -= b;  else p -= inc.
 * One loop per case, no branch inside (a and b are not touched when unused and may be NULL). */
VEC_TARGET static void VFN(rmsprop)(FT *restrict p, const FT *restrict grad, FT *restrict v,
                                    FT *restrict a, FT *restrict b, ptrdiff_t n, FT lr, FT rho,
                                    FT one_rho, FT mu, FT eps, int centered)
{
    ptrdiff_t i;
    if (!centered && mu == (FT)0) {
        for (i = 0; i < n; i++) {
            const FT g = grad[i];
            const FT vi = rho * v[i] + one_rho * (g * g);
            v[i] = vi;
            p[i] = p[i] - lr * g / FT_SQRT(vi + eps);
        }
    } else if (!centered) {
        for (i = 0; i < n; i++) {
            const FT g = grad[i];
            const FT vi = rho * v[i] + one_rho * (g * g);
            const FT bi = mu * b[i] + lr * g / FT_SQRT(vi + eps);
            v[i] = vi;
            b[i] = bi;
            p[i] = p[i] - bi;
        }
    } else if (mu == (FT)0) {
        for (i = 0; i < n; i++) {
            const FT g = grad[i];
            const FT vi = rho * v[i] + one_rho * (g * g);
            const FT ai = rho * a[i] + one_rho * g;
            const FT var = vi - ai * ai; /* >= 0 but for rounding: clamped (NaN passes) */
            v[i] = vi;
            a[i] = ai;
            p[i] = p[i] - lr * g / FT_SQRT((var < (FT)0 ? (FT)0 : var) + eps);
        }
    } else {
        for (i = 0; i < n; i++) {
            const FT g = grad[i];
            const FT vi = rho * v[i] + one_rho * (g * g);
            const FT ai = rho * a[i] + one_rho * g;
            const FT var = vi - ai * ai;
            const FT bi = mu * b[i] + lr * g / FT_SQRT((var < (FT)0 ? (FT)0 : var) + eps);
            v[i] = vi;
            a[i] = ai;
            b[i] = bi;
            p[i] = p[i] - bi;
        }
    }
}

/* AdamW: the decoupled decay p -= lr_wd p (lr_wd = lr * weight decay), then Adam's update of the
 * decayed p with the plain gradient, as adam() with wd = 0. */
VEC_TARGET static void VFN(adamw)(FT *restrict p, const FT *restrict grad, FT *restrict m,
                                  FT *restrict v, ptrdiff_t n, FT lr, FT b1, FT b2, FT one_b1,
                                  FT one_b2, FT bc1, FT bc2, FT eps, FT lr_wd)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT pi = p[i] - lr_wd * p[i];
        const FT g = grad[i];
        const FT mi = b1 * m[i] + one_b1 * g;
        const FT vi = b2 * v[i] + one_b2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - lr * (mi / bc1) / (FT_SQRT(vi / bc2) + eps);
    }
}

/* Adagrad (Keras): a = min(a + g^2, a_max);  p -= lr g / sqrt(a + eps). a_max (the dtype's
 * largest finite value) keeps the sum finite where Keras' would reach inf: the step is then 0
 * either way, and a saved state stays loadable. */
VEC_TARGET static void VFN(adagrad)(FT *restrict p, const FT *restrict grad, FT *restrict a,
                                    ptrdiff_t n, FT lr, FT eps, FT a_max)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT g = grad[i];
        const FT s = a[i] + g * g;
        const FT ai = s > a_max ? a_max : s;
        a[i] = ai;
        p[i] = p[i] - lr * g / FT_SQRT(ai + eps);
    }
}

/* Adamax (Keras): m = m + (g - m)(1 - b1);  u = max(b2 u, |g|);  p -= lr m / (bc1 (u + eps)),
 * bc1 = 1 - b1^t. */
VEC_TARGET static void VFN(adamax)(FT *restrict p, const FT *restrict grad, FT *restrict m,
                                   FT *restrict u, ptrdiff_t n, FT lr, FT one_b1, FT b2, FT bc1,
                                   FT eps)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT g = grad[i];
        const FT mi = m[i] + (g - m[i]) * one_b1;
        const FT su = b2 * u[i], ag = g < (FT)0 ? -g : g;
        const FT ui = su > ag ? su : ag;
        m[i] = mi;
        u[i] = ui;
        p[i] = p[i] - lr * mi / (bc1 * (ui + eps));
    }
}

/* Nadam (Keras): m = m + (g - m)(1 - b1);  v = v + (g^2 - v)(1 - b2);
 * m_hat = mu1 m / d1 + one_mu g / d2;  p -= m_hat lr / (sqrt(v / bc2) + eps), the step's
 * momentum coefficients (mu1 = mu_{t+1}, d1 = 1 - prod mu_1..t+1, one_mu = 1 - mu_t,
 * d2 = 1 - prod mu_1..t) and bc2 = 1 - b2^t from the caller. */
VEC_TARGET static void VFN(nadam)(FT *restrict p, const FT *restrict grad, FT *restrict m,
                                  FT *restrict v, ptrdiff_t n, FT lr, FT one_b1, FT one_b2,
                                  FT mu1, FT d1, FT one_mu, FT d2, FT bc2, FT eps)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT g = grad[i];
        const FT mi = m[i] + (g - m[i]) * one_b1;
        const FT vi = v[i] + (g * g - v[i]) * one_b2;
        const FT m_hat = mu1 * mi / d1 + one_mu * g / d2;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - m_hat * lr / (FT_SQRT(vi / bc2) + eps);
    }
}

/* sum x_i^2 in double over 16 lanes (lane l takes i = l mod 16, in index order), the lanes then
 * added as a pairwise tree: one fixed order for every flavour and thread count (the gradient
 * norms of clipnorm and global_clipnorm). Without FP contraction each lane's x^2 is rounded to
 * double before it is added, the same in every flavour. */
VEC_TARGET static double VFN(sum_squares)(const FT *x, ptrdiff_t n)
{
    double acc[16] = {0};
    ptrdiff_t i, l;
    for (i = 0; i + 16 <= n; i += 16)
        for (l = 0; l < 16; l++) {
            const double v = (double)x[i + l];
            acc[l] += v * v;
        }
    for (l = 0; i + l < n; l++) {
        const double v = (double)x[i + l];
        acc[l] += v * v;
    }
    for (l = 0; l < 8; l++) acc[l] += acc[l + 8];
    for (l = 0; l < 4; l++) acc[l] += acc[l + 4];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

/* out_i := x_i * s (a clipnorm scale, already rounded to FT). */
VEC_TARGET static void VFN(scale_copy)(const FT *restrict x, FT *restrict out, ptrdiff_t n, FT s)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) out[i] = x[i] * s;
}

/* out_i := min(max(x_i, -c), c) (clipvalue; x is finite, the caller screened it). */
VEC_TARGET static void VFN(clamp_copy)(const FT *restrict x, FT *restrict out, ptrdiff_t n, FT c)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        const FT v = x[i] > c ? c : x[i];
        out[i] = v < -c ? -c : v;
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
