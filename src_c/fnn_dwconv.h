/*
 * fastnn depthwise convolution: DepthwiseConv2D (and the depthwise half of SeparableConv2D, the
 * 1-D forms as one-row images), channels-last, each input channel convolved with its own
 * depth_multiplier (dm) filters.
 *
 *   x (n, h, w, c), kernel (kh, kw, c, dm) as in Keras, y (n, oh, ow, c*dm), output channel
 *   q = ci*dm + m (Keras' and PyTorch's groups=c order):
 *   y[b, oy, ox, q] = act(bias[q] + sum_{ky, kx} x[b, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw, ci]
 *                                                * kernel[ky, kx, ci, m])
 *   (input positions outside the image read as zero: the padding; no padded copy is made).
 *
 * There is no reduction over channels, so this is no product for the GEMM: each output row
 * (b, oy) is summed tap by tap, every tap a multiply-add over whole rows of c*dm channels, the
 * channels innermost and contiguous (vectorised by the compiler in each SIMD flavour; the input
 * row is first widened to c*dm channels when dm > 1). Rows are independent: threads take whole
 * output rows (forward) or input rows (dx), so the thread count never changes a result.
 *
 * Backward, from dz = dL/d(pre-activation) (n, oh, ow, c*dm):
 *   dx      = per input row, the taps that read it, in (ky, kx) order, then summed over m;
 *   dkernel = sum over (b, oy, ox) of x * dz and dbias = sum of dz: the n*oh output rows fall
 *             in fixed blocks (a count set by the shapes alone), each block sums its rows in
 *             order into its own partial, and the partials are added in block order: bitwise
 *             the same at any thread count.
 * The sources are C99 without FP contraction: every flavour does the same operations in the
 * same order, so the flavours agree bitwise too.
 * Returns 1, or 0 when a buffer could not be allocated (nothing is then guaranteed of the
 * outputs).
 */
#ifndef FNN_DWCONV_H
#define FNN_DWCONV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    ptrdiff_t n, h, w, c;     /* input */
    ptrdiff_t kh, kw, dm;     /* kernel (kh, kw, c, dm) */
    ptrdiff_t sh, sw;         /* strides >= 1 */
    ptrdiff_t dh, dw;         /* dilations >= 1 */
    ptrdiff_t pt, pl;         /* padding before the first row / column (>= 0) */
    ptrdiff_t oh, ow;         /* output rows and columns (>= 1) */
} fnn_dw_geom;

/* The most row blocks of the kernel gradient, and the most values their partials may hold. */
#define FNN_DW_BLOCKS 64
#define FNN_DW_PARTIAL_ELEMS ((ptrdiff_t)1 << 22)

/* y := act(depthwise(x, kernel) + bias); act is a fastnn activation code other than softmax
 * and DERIV_GIVEN (the caller applies softmax). */
int fnn_dwconv2d_forward_f32(const fnn_dw_geom *g, const float *x, const float *kernel,
                             const float *bias, int act, float param, float *y);
int fnn_dwconv2d_forward_f64(const fnn_dw_geom *g, const double *x, const double *kernel,
                             const double *bias, int act, double param, double *y);

/* dkernel := sum x * dz per tap;  dbias := column sums of dz;  dx := the taps' transpose of
 * dz * kernel (dx NULL: skipped; dkernel and dbias NULL: only dx). */
int fnn_dwconv2d_backward_f32(const fnn_dw_geom *g, const float *x, const float *kernel,
                              const float *dz, float *dkernel, float *dbias, float *dx);
int fnn_dwconv2d_backward_f64(const fnn_dw_geom *g, const double *x, const double *kernel,
                              const double *dz, double *dkernel, double *dbias, double *dx);

#ifdef __cplusplus
}
#endif

#endif /* FNN_DWCONV_H */
