/*
 * Direct (unpacked) GEMM for small or skinny products -- a template, included once per element
 * type by each kernel file so that the same C is compiled for each instruction set (the compiler
 * auto-vectorizes the fixed-width inner loops under the function's target attribute).
 *
 * No packing, no malloc, no threads: for products like 1x16 @ 16x32 the whole call must cost tens
 * of nanoseconds, so the point is simply to touch each operand once from L1.
 *
 * Two loop shapes, picked by the layout of op(B):
 *   - op(B) rows contiguous (B not transposed, csb == 1):  "axpy" form.  A block of up to DM rows
 *     of C is accumulated as  acc[i, :] += op(A)[i, p] * op(B)[p, :]  for p = 0..k-1, over column
 *     chunks of DN, so each op(B) row chunk is loaded once per DM rows.
 *   - op(B) columns contiguous (B transposed, rsb == 1): "dot" form.  C[i, j] is the dot product
 *     of op(A) row i and B row j, accumulated in DV independent lanes then summed in a fixed order.
 *
 * Required macros: FT (element type), DFN(name) (name mangling), DTARGET (function attribute or
 * empty), DFMA(a, b, c) (a*b + c, fused where the target has FMA), DEPI (epilogue function).
 */

#define DM 4
#define DN 64
#define DV 16

/* C[0:mb, 0:nb] := alpha * acc + beta * C, never reading C when beta == 0. */
DTARGET static inline void DFN(direct_store)(ptrdiff_t mb, ptrdiff_t nb, const FT *acc,
                                             ptrdiff_t lda_acc, FT alpha, FT beta, FT *C,
                                             ptrdiff_t ldc)
{
    ptrdiff_t i, j;
    for (i = 0; i < mb; i++) {
        const FT *r = acc + i * lda_acc;
        FT *c = C + i * ldc;
        if (beta == (FT)0) {
            if (alpha == (FT)1)
                for (j = 0; j < nb; j++) c[j] = r[j];
            else
                for (j = 0; j < nb; j++) c[j] = alpha * r[j];
        } else if (beta == (FT)1) {
            for (j = 0; j < nb; j++) c[j] = DFMA(alpha, r[j], c[j]);
        } else {
            for (j = 0; j < nb; j++) c[j] = DFMA(beta, c[j], alpha * r[j]);
        }
    }
}

DTARGET static void DFN(direct)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                                const FT *A, ptrdiff_t rsa, ptrdiff_t csa,
                                const FT *B, ptrdiff_t rsb, ptrdiff_t csb,
                                FT beta, FT *C, ptrdiff_t ldc,
                                const FT *bias, int act, FT param)
{
    const int do_epi = (bias != NULL || act != FNN_ACT_LINEAR);
    ptrdiff_t i0, j0, p, i, j;

    if (csb == 1) {
        /* axpy form: op(B)[p, j] = B[p*rsb + j] */
        FT acc[DM * DN] __attribute__((aligned(64)));
        for (i0 = 0; i0 < m; i0 += DM) {
            const ptrdiff_t mb = (m - i0 < DM) ? m - i0 : DM;
            for (j0 = 0; j0 < n; j0 += DN) {
                const ptrdiff_t nb = (n - j0 < DN) ? n - j0 : DN;
                for (i = 0; i < mb * DN; i++) acc[i] = (FT)0;
                for (p = 0; p < k; p++) {
                    const FT *b = B + p * rsb + j0;
                    for (i = 0; i < mb; i++) {
                        const FT a = A[(i0 + i) * rsa + p * csa];
                        FT *r = acc + i * DN;
                        if (nb == DN) {
                            for (j = 0; j < DN; j++) r[j] = DFMA(a, b[j], r[j]);
                        } else {
                            for (j = 0; j < nb; j++) r[j] = DFMA(a, b[j], r[j]);
                        }
                    }
                }
                DFN(direct_store)(mb, nb, acc, DN, alpha, beta, C + i0 * ldc + j0, ldc);
                if (do_epi)
                    DEPI(C + i0 * ldc + j0, ldc, mb, nb, bias ? bias + j0 : NULL, act, param);
            }
        }
    } else {
        /* dot form: op(B)[p, j] = B[p + j*csb] (rsb == 1) */
        const ptrdiff_t kv = k - k % DV;
        (void)rsb;
        for (i0 = 0; i0 < m; i0 += DM) {
            const ptrdiff_t mb = (m - i0 < DM) ? m - i0 : DM;
            for (j = 0; j < n; j++) {
                const FT *b = B + j * csb;
                FT lane[DM][DV] __attribute__((aligned(64)));
                FT dots[DM];
                for (i = 0; i < mb; i++) {
                    ptrdiff_t v;
                    for (v = 0; v < DV; v++) lane[i][v] = (FT)0;
                }
                for (p = 0; p < kv; p += DV) {
                    for (i = 0; i < mb; i++) {
                        const FT *a = A + (i0 + i) * rsa + p * csa;
                        ptrdiff_t v;
                        if (csa == 1)
                            for (v = 0; v < DV; v++) lane[i][v] = DFMA(a[v], b[p + v], lane[i][v]);
                        else
                            for (v = 0; v < DV; v++)
                                lane[i][v] = DFMA(a[v * csa], b[p + v], lane[i][v]);
                    }
                }
                for (i = 0; i < mb; i++) {
                    /* fixed pairwise order so the result does not depend on anything but data */
                    ptrdiff_t v, w;
                    FT t[DV];
                    for (v = 0; v < DV; v++) t[v] = lane[i][v];
                    for (w = DV / 2; w >= 1; w /= 2)
                        for (v = 0; v < w; v++) t[v] = t[v] + t[v + w];
                    dots[i] = t[0];
                    for (p = kv; p < k; p++)
                        dots[i] = DFMA(A[(i0 + i) * rsa + p * csa], b[p], dots[i]);
                }
                DFN(direct_store)(mb, 1, dots, 1, alpha, beta, C + i0 * ldc + j, ldc);
            }
            if (do_epi) DEPI(C + i0 * ldc, ldc, mb, n, bias, act, param);
        }
    }
}

#undef DM
#undef DN
#undef DV
