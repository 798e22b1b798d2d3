/*
 * Direct-tile template for small products (see fnn_gemm_internal.h for the contract), included
 * by the SIMD kernel files once per element type with the vector operations below defined.
 *
 *   C[0:mb, 0:nb] := act(alpha * sum_p op(A)[0:mb, p]^T B[p, 0:nb] + beta * C + bias[0:nb])
 *
 * Up to DT_MAXMB rows x 2 vectors of C stay in registers (8 x 2 with AVX-512's 32 registers:
 * 16 accumulators, so 2 B loads and 8 broadcasts feed 16 FMAs; 4 x 2 with AVX2's 16); column
 * tails use masked loads/stores, so
 * there is no scratch tile and no scalar clean-up loop.  With few accumulators (e.g. one row of
 * one vector) the FMA latency chain over k would dominate a tiny product, so the k loop is
 * split into U interleaved partial sums (added in a fixed order at the end: still deterministic).
 * The bias and the cheap activations are applied in registers before the single store: reading
 * back a just-stored (masked) vector would stall on store forwarding, which at this size costs
 * as much as the arithmetic.  The same operations in the same order as fnn_epilogue_block_*, so
 * results match the packed path's epilogue bit for bit.
 *
 * Required macros: FT, VT (vector), MT (lane mask), VLEN (lanes), DT_MAXMB (4 or 8, the flavour's
 * direct-tile height, its fnn_kern dmr), DT_TARGET (function
 * attribute), DT(name) (mangling), V_ZERO(), V_SET1(x), V_FMA(a, b, c) (a*b + c), V_MUL(a, b),
 * V_ADD(a, b), V_MASK(rem) (first rem lanes; rem may be <= 0 or >= VLEN),
 * V_LOADM(mask, ptr) (masked-off lanes read as 0, never fault), V_STOREP(ptr, rem, mask, v)
 * (the first rem lanes, 0 < rem < VLEN, which mask selects; nothing else written),
 * V_LOADU(ptr), V_STOREU(ptr, v) (whole vectors), V_AMAX_ALL(am, z) (V_AMAX of all lanes),
 * V_RELU(z) (z < 0 ? 0 : z, NaN kept), V_LEAKY(z, vp) (z > 0 ? z : vp*z),
 * V_STEP(z, vp) (z >= vp ? 1 : 0); UT (the unsigned integer of FT's size), AT (a vector of UT),
 * V_AMAX_ZERO(), V_AMAX(am, z, mask) (lane-wise max of am and |z|'s bits, masked-off lanes
 * kept), V_AMAX_REDUCE(am) (the largest lane, a UT), V_HSUM(v) (the sum of v's lanes, an FT, in
 * one fixed order). All but DT_TARGET are undefined at the end of
 * this file.
 */

/* act(z) for the activations done in registers (the driver passes no others). */
DT_TARGET static inline __attribute__((always_inline)) VT DT(dt_act)(VT z, int act, VT vp)
{
    switch (act) {
    case FNN_ACT_RELU: return V_RELU(z);
    case FNN_ACT_LEAKY_RELU: return V_LEAKY(z, vp);
    case FNN_ACT_STEP: return V_STEP(z, vp);
    default: return z;
    }
}

DT_TARGET static inline __attribute__((always_inline)) void
DT(dtile_body)(const int MB, const int NV, const int U, const int FULL, ptrdiff_t nb, ptrdiff_t k,
               FT alpha,
               const FT *A, ptrdiff_t rsa, ptrdiff_t csa, const FT *B, ptrdiff_t rsb, FT beta,
               FT *C, ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax)
{
    /* partial sum u, row i, vector v at ACC(u, i, v); U*MB*NV <= 2 * DT_MAXMB in every
     * instantiation, and a small flat array with fully unrolled loops is what gcc reliably keeps
     * in registers */
    VT acc[2 * DT_MAXMB];
#define ACC(u, i, v) acc[((u) * MB + (i)) * NV + (v)]
    /* vector v is whole (every lane a column of C) when it is not the last one, or FULL is set:
     * plain loads and stores then (masked stores are slow on AMD Zen: several cycles each) */
#define DT_WHOLE(v) ((v) < NV - 1 || FULL)
#define DT_LOAD(v, m, p) (DT_WHOLE(v) ? V_LOADU(p) : V_LOADM(m, p))
    const MT m0 = V_MASK(nb), m1 = V_MASK(nb - VLEN);
    VT b0, b1 = V_ZERO();
    ptrdiff_t p;
    int u, i, v;

#pragma GCC unroll 16
    for (u = 0; u < 2 * DT_MAXMB; u++) acc[u] = V_ZERO();

    for (p = 0; p + U <= k; p += U) {
#pragma GCC unroll 4
        for (u = 0; u < U; u++) {
            const FT *b = B + (p + u) * rsb;
            const FT *a = A + (p + u) * csa;
            b0 = DT_LOAD(0, m0, b);
            if (NV == 2) b1 = DT_LOAD(1, m1, b + VLEN);
#pragma GCC unroll 8
            for (i = 0; i < MB; i++) {
                const VT ai = V_SET1(a[i * rsa]);
                ACC(u, i, 0) = V_FMA(ai, b0, ACC(u, i, 0));
                if (NV == 2) ACC(u, i, 1) = V_FMA(ai, b1, ACC(u, i, 1));
            }
        }
    }
    for (; p < k; p++) {
        const FT *b = B + p * rsb;
        const FT *a = A + p * csa;
        b0 = DT_LOAD(0, m0, b);
        if (NV == 2) b1 = DT_LOAD(1, m1, b + VLEN);
#pragma GCC unroll 8
        for (i = 0; i < MB; i++) {
            const VT ai = V_SET1(a[i * rsa]);
            ACC(0, i, 0) = V_FMA(ai, b0, ACC(0, i, 0));
            if (NV == 2) ACC(0, i, 1) = V_FMA(ai, b1, ACC(0, i, 1));
        }
    }

    {
        const VT va = V_SET1(alpha), vb = V_SET1(beta), vp = V_SET1(param);
        const VT bias0 = bias ? DT_LOAD(0, m0, bias) : V_ZERO();
        const VT bias1 = (bias && NV == 2) ? DT_LOAD(1, m1, bias + VLEN) : V_ZERO();
        AT am = V_AMAX_ZERO();
#pragma GCC unroll 8
        for (i = 0; i < MB; i++) {
            FT *c = C + i * ldc;
#pragma GCC unroll 2
            for (v = 0; v < NV; v++) {
                const MT mv = v ? m1 : m0;
                VT z = ACC(0, i, v);
                if (U == 4) z = V_ADD(V_ADD(z, ACC(1, i, v)), V_ADD(ACC(2, i, v), ACC(3, i, v)));
                else if (U == 2) z = V_ADD(z, ACC(1, i, v));
                z = V_MUL(va, z);
                if (beta != (FT)0) z = V_FMA(vb, DT_LOAD(v, mv, c + v * VLEN), z);
                if (bias) z = V_ADD(z, v ? bias1 : bias0);
                z = DT(dt_act)(z, act, vp);
                if (amax) am = DT_WHOLE(v) ? V_AMAX_ALL(am, z) : V_AMAX(am, z, mv);
                if (DT_WHOLE(v))
                    V_STOREU(c + v * VLEN, z);
                else
                    V_STOREP(c + v * VLEN, nb - v * VLEN, mv, z);
            }
        }
        if (amax) {
            const UT u = V_AMAX_REDUCE(am);
            if (u > *amax) *amax = u;
        }
    }
#undef ACC
#undef DT_WHOLE
#undef DT_LOAD
}

/* Instantiate the body with compile-time shape so the accumulators live in registers. */
DT_TARGET static void DT(dtile)(ptrdiff_t mb, ptrdiff_t nb, ptrdiff_t k, FT alpha, const FT *A,
                                ptrdiff_t rsa, ptrdiff_t csa, const FT *B, ptrdiff_t rsb, FT beta,
                                FT *C, ptrdiff_t ldc, const FT *bias, int act, FT param,
                                UT *amax)
{
    const int rows_alike = (act & FNN_DT_ROWS_ALIKE) != 0;
    act &= ~FNN_DT_ROWS_ALIKE;
    /* U of the full-height tiles (DT_MAXMB rows), one and two vectors wide */
#if DT_MAXMB > 6
#define DT_UFULL1 1
#else
#define DT_UFULL1 2
#endif
#define DT_UFULL2 1
#define DT_CASE(MB, NV, U) \
    do { \
        if (rows_alike) \
            DT_CASE_U(MB, NV, DT_UFULL##NV); \
        else \
            DT_CASE_U(MB, NV, U); \
    } while (0)
#define DT_CASE_U(MB, NV, U) \
    do { \
        if (nb == (NV) * VLEN) \
            DT(dtile_body)(MB, NV, U, 1, nb, k, alpha, A, rsa, csa, B, rsb, beta, C, ldc, bias, \
                           act, param, amax); \
        else \
            DT(dtile_body)(MB, NV, U, 0, nb, k, alpha, A, rsa, csa, B, rsb, beta, C, ldc, bias, \
                           act, param, amax); \
    } while (0)
    if (nb > VLEN) {
        switch (mb) {
        case 1: DT_CASE(1, 2, 4); break;
        case 2: DT_CASE(2, 2, 2); break;
        case 3: DT_CASE(3, 2, 1); break;
#if DT_MAXMB == 6
        case 4: DT_CASE(4, 2, 1); break;
        case 5: DT_CASE(5, 2, 1); break;
        default: DT_CASE(6, 2, 1); break;
#elif DT_MAXMB > 4
        case 4: DT_CASE(4, 2, 1); break;
        case 5: DT_CASE(5, 2, 1); break;
        case 6: DT_CASE(6, 2, 1); break;
        case 7: DT_CASE(7, 2, 1); break;
        default: DT_CASE(8, 2, 1); break;
#else
        default: DT_CASE(4, 2, 1); break;
#endif
        }
    } else {
        switch (mb) {
        case 1: DT_CASE(1, 1, 4); break;
        case 2: DT_CASE(2, 1, 4); break;
        case 3: DT_CASE(3, 1, 2); break;
#if DT_MAXMB == 6
        case 4: DT_CASE(4, 1, 2); break;
        case 5: DT_CASE(5, 1, 2); break;
        default: DT_CASE(6, 1, 2); break;
#elif DT_MAXMB > 4
        case 4: DT_CASE(4, 1, 2); break;
        case 5: DT_CASE(5, 1, 1); break;
        case 6: DT_CASE(6, 1, 1); break;
        case 7: DT_CASE(7, 1, 1); break;
        default: DT_CASE(8, 1, 1); break;
#else
        default: DT_CASE(4, 1, 2); break;
#endif
        }
    }
#undef DT_CASE
#undef DT_CASE_U
#undef DT_UFULL1
#undef DT_UFULL2
}

/* One row of C (a one-row product: a single input through Dense, a generation step), NV
 * vectors of columns in registers over all of k: each step broadcasts A's value once and
 * streams one row of B's block front to back, where direct tiles of 2 vectors each walked all
 * of B's rows at its stride (a 400 x 120 layer read 8 times as many B rows, half of them
 * straddling two lines). U interleaved partial sums over k where NV is small, so that 8 chains
 * of FMAs hide their latency; added in dtile's order. Unless FULL, the last vector's lanes past
 * nb read on into B's next row (a row of more than a vector, the driver's condition) and are
 * never stored; only the last row's load is masked: no mask register in the loop, so AVX2 keeps
 * 15 vectors (120 floats: a Dense of 120 units in one pass over B) in its 16 registers. */
DT_TARGET static inline __attribute__((always_inline)) void
DT(gemv_body)(const int NV, const int U, const int FULL, ptrdiff_t nb, ptrdiff_t k, FT alpha,
              const FT *A, ptrdiff_t csa, const FT *B, ptrdiff_t rsb, FT beta, FT *C,
              const FT *bias, int act, FT param, UT *amax)
{
    VT acc[16];
    const MT ml = V_MASK(nb - (NV - 1) * VLEN);
    const ptrdiff_t kin = FULL ? k : k - 1; /* the rows read with whole vectors */
    ptrdiff_t p;
    int u, v;
#define GV_LOADL(v, ptr) ((FULL || (v) < NV - 1) ? V_LOADU(ptr) : V_LOADM(ml, ptr))
#pragma GCC unroll 16
    for (u = 0; u < 16; u++) acc[u] = V_ZERO();
    for (p = 0; p + U <= kin; p += U) {
#pragma GCC unroll 4
        for (u = 0; u < U; u++) {
            const VT a = V_SET1(A[(p + u) * csa]);
            const FT *b = B + (p + u) * rsb;
#pragma GCC unroll 16
            for (v = 0; v < NV; v++)
                acc[u * NV + v] = V_FMA(a, V_LOADU(b + v * VLEN), acc[u * NV + v]);
        }
    }
    for (; p < kin; p++) {
        const VT a = V_SET1(A[p * csa]);
        const FT *b = B + p * rsb;
#pragma GCC unroll 16
        for (v = 0; v < NV; v++) acc[v] = V_FMA(a, V_LOADU(b + v * VLEN), acc[v]);
    }
    if (!FULL && k > 0) { /* the last row, its last vector masked, into the first partial sum */
        const VT a = V_SET1(A[(k - 1) * csa]);
        const FT *b = B + (k - 1) * rsb;
#pragma GCC unroll 16
        for (v = 0; v < NV; v++) acc[v] = V_FMA(a, GV_LOADL(v, b + v * VLEN), acc[v]);
    }
    {
        const VT va = V_SET1(alpha), vb = V_SET1(beta), vp = V_SET1(param);
        AT am = V_AMAX_ZERO();
#pragma GCC unroll 16
        for (v = 0; v < NV; v++) {
            const int whole = FULL || v < NV - 1;
            VT z = acc[v];
            if (U == 4) z = V_ADD(V_ADD(z, acc[NV + v]), V_ADD(acc[2 * NV + v], acc[3 * NV + v]));
            else if (U == 2) z = V_ADD(z, acc[NV + v]);
            z = V_MUL(va, z);
            if (beta != (FT)0) z = V_FMA(vb, GV_LOADL(v, C + v * VLEN), z);
            if (bias) z = V_ADD(z, GV_LOADL(v, bias + v * VLEN));
            z = DT(dt_act)(z, act, vp);
            if (amax) am = whole ? V_AMAX_ALL(am, z) : V_AMAX(am, z, ml);
            if (whole)
                V_STOREU(C + v * VLEN, z);
            else
                V_STOREP(C + v * VLEN, nb - v * VLEN, ml, z);
        }
        if (amax) {
            const UT mx = V_AMAX_REDUCE(am);
            if (mx > *amax) *amax = mx;
        }
    }
#undef GV_LOADL
}

/* C[0, 0:n] := act(alpha * op(A)[0, :] B + beta * C + bias) for B's rows rsb apart (its columns
 * contiguous, n > VLEN), act as for dtile (the cheap ones; the driver applies the others after):
 * blocks of GV_MAXNV vectors (the flavour's gemv block, fnn_kern's gemv_cols columns), then the
 * rest as one block (its last vector partial, or whole). Each column's sum depends on n alone,
 * so splitting n at multiples of the block (threads) keeps it. */
DT_TARGET static void DT(gemv)(ptrdiff_t n, ptrdiff_t k, FT alpha, const FT *A, ptrdiff_t csa,
                               const FT *B, ptrdiff_t rsb, FT beta, FT *C, const FT *bias,
                               int act, FT param, UT *amax)
{
    ptrdiff_t j0 = 0, rem;
    int nv;
    for (; n - j0 >= GV_MAXNV * VLEN; j0 += GV_MAXNV * VLEN)
        DT(gemv_body)(GV_MAXNV, 1, 1, GV_MAXNV * VLEN, k, alpha, A, csa, B + j0, rsb, beta,
                      C + j0, bias ? bias + j0 : NULL, act, param, amax);
    rem = n - j0;
    if (rem <= 0) return;
    nv = (int)((rem + VLEN - 1) / VLEN);
    B += j0;
    C += j0;
    if (bias) bias += j0;
#define GV_CASE(NV, U)                                                                           \
    do {                                                                                         \
        if (rem == (NV) * VLEN)                                                                  \
            DT(gemv_body)(NV, U, 1, rem, k, alpha, A, csa, B, rsb, beta, C, bias, act, param,    \
                          amax);                                                                 \
        else                                                                                     \
            DT(gemv_body)(NV, U, 0, rem, k, alpha, A, csa, B, rsb, beta, C, bias, act, param,    \
                          amax);                                                                 \
    } while (0)
    switch (nv) {
    case 1: GV_CASE(1, 4); break;
    case 2: GV_CASE(2, 4); break;
    case 3: GV_CASE(3, 2); break;
    case 4: GV_CASE(4, 2); break;
    case 5: GV_CASE(5, 1); break;
    case 6: GV_CASE(6, 1); break;
    case 7: GV_CASE(7, 1); break;
#if GV_MAXNV > 8
    case 8: GV_CASE(8, 1); break;
    case 9: GV_CASE(9, 1); break;
    case 10: GV_CASE(10, 1); break;
    case 11: GV_CASE(11, 1); break;
    case 12: GV_CASE(12, 1); break;
    case 13: GV_CASE(13, 1); break;
    case 14: GV_CASE(14, 1); break;
    default: GV_CASE(15, 1); break;
#else
    default: GV_CASE(8, 1); break;
#endif
    }
#undef GV_CASE
}

/* A narrow C as dot products of rows in place (Dense(1) on a batch: a regression head, a GAN's
 * discriminator), C[i, j] := alpha * sum_p A[i*rsa + p] Bt[j*ldbt + p], i < m, j < n <= 4.
 * Direct tiles would spread C's one column over a vector (one lane of eight in use) and the
 * narrow path transposes A on the way; here A's rows are read as they lie, R rows x N columns
 * of vector sums in registers (8 x 1, 6 x 2, 3 x 3, 2 x 4: at least 8 FMA chains, at most
 * 12 accumulators), the k tail through a masked load, each sum reduced last by the flavour's
 * fixed tree (V_HSUM). Every row takes the same operations whatever block it falls in (a short
 * last block repeats its last row and stores only its own): the same bits at any m, any split. */
DT_TARGET static inline __attribute__((always_inline)) void
DT(dots_body)(const int R, const int N, ptrdiff_t mr, ptrdiff_t k, FT alpha, const FT *A,
              ptrdiff_t rsa, const FT *Bt, ptrdiff_t ldbt, FT *C, ptrdiff_t ldc)
{
    VT acc[12];
    const FT *a[8];
    const ptrdiff_t kv = k - k % VLEN;
    ptrdiff_t p;
    int i, j;
#pragma GCC unroll 8
    for (i = 0; i < R; i++) a[i] = A + (i < mr ? i : mr - 1) * rsa;
#pragma GCC unroll 12
    for (i = 0; i < R * N; i++) acc[i] = V_ZERO();
    for (p = 0; p < kv; p += VLEN) {
        VT b[4];
#pragma GCC unroll 4
        for (j = 0; j < N; j++) b[j] = V_LOADU(Bt + j * ldbt + p);
#pragma GCC unroll 8
        for (i = 0; i < R; i++) {
            const VT x = V_LOADU(a[i] + p);
#pragma GCC unroll 4
            for (j = 0; j < N; j++) acc[i * N + j] = V_FMA(x, b[j], acc[i * N + j]);
        }
    }
    if (kv < k) {
        const MT mt = V_MASK(k - kv);
        VT b[4];
#pragma GCC unroll 4
        for (j = 0; j < N; j++) b[j] = V_LOADM(mt, Bt + j * ldbt + kv);
#pragma GCC unroll 8
        for (i = 0; i < R; i++) {
            const VT x = V_LOADM(mt, a[i] + kv);
#pragma GCC unroll 4
            for (j = 0; j < N; j++) acc[i * N + j] = V_FMA(x, b[j], acc[i * N + j]);
        }
    }
#pragma GCC unroll 8
    for (i = 0; i < R; i++)
        if (i < mr)
#pragma GCC unroll 4
            for (j = 0; j < N; j++) C[i * ldc + j] = alpha * V_HSUM(acc[i * N + j]);
}

DT_TARGET static void DT(dots)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha, const FT *A,
                               ptrdiff_t rsa, const FT *Bt, ptrdiff_t ldbt, FT *C, ptrdiff_t ldc)
{
    ptrdiff_t i;
#define DOTS_CASE(R, N)                                                                          \
    for (i = 0; i < m; i += (R))                                                                 \
        DT(dots_body)(R, N, (m - i < (R)) ? m - i : (R), k, alpha, A + i * rsa, rsa, Bt, ldbt,   \
                      C + i * ldc, ldc);                                                         \
    break
    switch (n) {
    case 1: DOTS_CASE(8, 1);
    case 2: DOTS_CASE(6, 2);
    case 3: DOTS_CASE(3, 3);
    default: DOTS_CASE(2, 4);
    }
#undef DOTS_CASE
}

/* The per-type parameters end here (DT_TARGET and DT_MAXMB stay for the next type). */
#undef V_ZERO
#undef V_SET1
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_MASK
#undef V_LOADM
#undef V_LOADU
#undef V_STOREU
#undef V_AMAX_ALL
#undef V_STOREP
#undef V_RELU
#undef V_LEAKY
#undef V_STEP
#undef V_AMAX_ZERO
#undef V_AMAX
#undef V_AMAX_REDUCE
#undef V_HSUM
#undef FT
#undef UT
#undef VT
#undef AT
#undef MT
#undef VLEN
#undef DT
