/*
 * Layer normalization's row kernels (fastnn/_ext/_normalization.pyx calls them per row, or per
 * block of columns for the parameter gradients, from its thread loops), for float and double,
 * compiled per SIMD flavour and chosen by the GEMM's flavour (fnn_active_flavour).
 *
 *   ln_row:         mean, invstd := the row's mean and 1 / sqrt(biased var + eps) (each rounded
 *                   to the element type), out := gamma (x - mean) invstd + beta
 *   ln_rows:        ln_row on n rows c apart (mean, invstd: n each), four at a time with the
 *                   same bits as one at a time
 *   ln_bwd_rows:    on n rows (x, dy, dx: rows c apart; mean, invstd: n each), with
 *                   g = dy gamma, xhat = (x - mean) invstd, per row:
 *                   dx := invstd / c (c g - sum(g) - xhat sum(g xhat)) (skipped if dx is NULL);
 *                   and per column j over the rows in order: pg[j] := sum(dy xhat),
 *                   pb[j] := sum(dy) (the block's share of dgamma and dbeta, c doubles each)
 *
 *
 * Group normalization on channels-last data: one sample's P positions of C channels (rows C
 * apart), groups of k neighbouring channels; a call takes the channels c0..c1 (whole groups):
 *
 *   gn_fwd_block:   per group g: mean[g], invstd[g] := the mean and 1 / sqrt(biased var + eps)
 *                   of its P k values (rounded to the element type; g counted from channel 0),
 *                   out := gamma (x - mean) invstd + beta
 *   gn_bwd_block:   xhat = (x - mean) invstd; per channel c: sums[c] := sum_p dy,
 *                   sums[C + c] := sum_p dy xhat; then unless dx is NULL, with g = dy gamma and
 *                   N = P k: dx := invstd / N (N g - sum(g) - xhat sum(g xhat)) over the group
 *
 * scratch: FNN_GN_SCRATCH(c1 - c0) doubles. A channel's sums run in position order, a group's
 * over its channels' sums in channel order (the NumPy twin's order), so the results do not
 * depend on the blocks.
 *
 * Sums are taken in double: a row's in 8 lanes (lane l takes the elements l, l + 8, ...), the
 * lanes then added pairwise ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)) and the last c % 8 elements
 * in order (NumPy's pairwise order for rows of up to 128); a column's in row order (for
 * ln_bwd_rows: over its rows; the caller adds the blocks in order). Element-wise
 * results are computed in double and rounded once. No FP contraction: every flavour gives the
 * same bits, which are those of the Cython loops these replaced.
 */
#ifndef FNN_NORM_H
#define FNN_NORM_H

#include <stddef.h>

void fnn_ln_row_f32(const float *x, ptrdiff_t c, const float *gamma, const float *beta,
                    double eps, float *out, float *mean, float *invstd);
void fnn_ln_row_f64(const double *x, ptrdiff_t c, const double *gamma, const double *beta,
                    double eps, double *out, double *mean, double *invstd);
void fnn_ln_rows_f32(const float *x, ptrdiff_t n, ptrdiff_t c, const float *gamma,
                     const float *beta, double eps, float *out, float *mean, float *invstd);
void fnn_ln_rows_f64(const double *x, ptrdiff_t n, ptrdiff_t c, const double *gamma,
                     const double *beta, double eps, double *out, double *mean, double *invstd);
void fnn_ln_bwd_rows_f32(const float *x, const float *dy, ptrdiff_t n, ptrdiff_t c,
                         const float *gamma, const float *mean, const float *invstd, float *dx,
                         double *pg, double *pb);
void fnn_ln_bwd_rows_f64(const double *x, const double *dy, ptrdiff_t n, ptrdiff_t c,
                         const double *gamma, const double *mean, const double *invstd,
                         double *dx, double *pg, double *pb);

void fnn_gn_fwd_block_f32(const float *x, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k, ptrdiff_t c0,
                          ptrdiff_t c1, const float *gamma, const float *beta, double eps,
                          float *out, float *mean, float *invstd, double *scratch);
void fnn_gn_fwd_block_f64(const double *x, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k, ptrdiff_t c0,
                          ptrdiff_t c1, const double *gamma, const double *beta, double eps,
                          double *out, double *mean, double *invstd, double *scratch);
void fnn_gn_bwd_block_f32(const float *x, const float *dy, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k,
                          ptrdiff_t c0, ptrdiff_t c1, const float *gamma, const float *mean,
                          const float *invstd, float *dx, double *sums, double *scratch);
void fnn_gn_bwd_block_f64(const double *x, const double *dy, ptrdiff_t P, ptrdiff_t C,
                          ptrdiff_t k, ptrdiff_t c0, ptrdiff_t c1, const double *gamma,
                          const double *mean, const double *invstd, double *dx, double *sums,
                          double *scratch);

/* doubles of scratch the group normalization kernels take for a block of w channels */
#define FNN_GN_SCRATCH(w) (8 * (w))

#endif /* FNN_NORM_H */
