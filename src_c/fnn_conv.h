/*
 * fastnn convolution: Conv2D (and Conv1D as a one-row Conv2D) on the packed GEMM, channels-last.
 *
 *   x (n, h, w, c), kernel (kh, kw, c, f) as in Keras, y (n, oh, ow, f):
 *   y[b, oy, ox, :] = act(bias + sum_{ky, kx, ci} x[b, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw, ci]
 *                                                 * kernel[ky, kx, ci, :])
 *   (input positions outside the image read as zero: the padding).
 *
 * As a product: the (n*oh*ow, kh*kw*c) matrix of patches P times the kernel read as a
 * (kh*kw*c, f) matrix (its Keras layout, row-major, as it is). P is never built for the batch:
 * its rows are gathered a chunk at a time (at most FNN_CONV_CHUNK_ELEMS values, or one image's
 * rows) into a per-thread buffer, which the GEMM packs, and each chunk's product writes its rows
 * of y with the bias and activation as the GEMM's epilogue. The extra memory of a call is its
 * chunk buffers (and, in backward, FNN_CONV_GROUPS partial kernel gradients), whatever the batch.
 *
 * Backward, from dz = dL/d(pre-activation) (n, oh, ow, f):
 *   dkernel = P^T dz, summed chunk by chunk: chunks fall in FNN_CONV_GROUPS fixed groups, each
 *             group sums its chunks in order into its own partial, and the partials are added
 *             in group order;
 *   dbias   = column sums of dz, in the same groups and order (accumulated in double);
 *   dx      = the transposed gather (col2im) of dz kernel^T: each chunk's dP = dz_chunk kernel^T
 *             is added back into the positions its patches came from, rows and taps in order;
 *             tasks are whole images (or runs of whole images), so no two threads touch the same
 *             part of dx.
 * Which chunks, groups and tasks there are depends on the shapes alone, and threads only decide
 * who computes each: results are bitwise the same at any thread count.
 *
 * A 1x1 convolution with unit strides reads x itself as P (one product, no gather). A stride-1
 * convolution of many channels skips P altogether (fnn_conv_strided.h): its forward, and dx as
 * the forward of dz with the kernel flipped and transposed.
 * Returns 1, or 0 when a buffer could not be allocated (nothing is then guaranteed of the
 * outputs).
 */
#ifndef FNN_CONV_H
#define FNN_CONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    ptrdiff_t n, h, w, c;     /* input */
    ptrdiff_t kh, kw, f;      /* kernel (kh, kw, c, f) */
    ptrdiff_t sh, sw;         /* strides >= 1 */
    ptrdiff_t dh, dw;         /* dilations >= 1 */
    ptrdiff_t pt, pl;         /* padding before the first row / column (>= 0) */
    ptrdiff_t oh, ow;         /* output rows and columns (>= 1) */
} fnn_conv_geom;

/* Values of a chunk of patches (rows x kh*kw*c), and the number of gradient groups. */
#define FNN_CONV_CHUNK_ELEMS 65536
#define FNN_CONV_GROUPS 8

int fnn_conv2d_forward_f32(const fnn_conv_geom *g, const float *x, const float *kernel,
                           const float *bias, int act, float param, float *y);
int fnn_conv2d_forward_f64(const fnn_conv_geom *g, const double *x, const double *kernel,
                           const double *bias, int act, double param, double *y);

/* dkernel, dbias and dx are written (not accumulated); dx may be NULL (not needed). With
 * dkernel and dbias both NULL only dx is computed, and x is not read (its shape is g's): the
 * forward of a transposed convolution (Conv2DTranspose), whose input plays dz. */
int fnn_conv2d_backward_f32(const fnn_conv_geom *g, const float *x, const float *kernel,
                            const float *dz, float *dkernel, float *dbias, float *dx);
int fnn_conv2d_backward_f64(const fnn_conv_geom *g, const double *x, const double *kernel,
                            const double *dz, double *dkernel, double *dbias, double *dx);

/* The kernel and bias gradients of a relu convolution whose output (n, oh, ow, f) is read only
 * by a max pooling, from the pooling's output gradient dy, argmax and output yp (n, pn pooled
 * positions, f): conv2d_backward's for dz = zero but at each window's argmax a (iy*ow + ix),
 * where the window's dy is added when its yp > 0 (the relu's derivative: at the argmax the
 * pooled value is the convolution's output; a non-finite dy adds NaN either way, as dy * 0).
 * dz is never formed: each window adds dy times its argmax's patch, in a quarter of the
 * multiply-adds of the dense product for 2x2 windows. Argmax values outside [0, oh*ow) add
 * nothing (a zero gradient times the first position's patch); windows may overlap (their gradients at a shared argmax add up). Sums go in fixed
 * groups of images, in order: the results depend on the shapes only, not on the threads.
 * dkernel and dbias are written. Returns 1, or 0 when a buffer could not be allocated. */
int fnn_conv2d_backward_pooled_f32(const fnn_conv_geom *g, const float *x, const float *dy,
                                   const int64_t *argmax, const float *yp, ptrdiff_t pn,
                                   float *dkernel, float *dbias);
int fnn_conv2d_backward_pooled_f64(const fnn_conv_geom *g, const double *x, const double *dy,
                                   const int64_t *argmax, const double *yp, ptrdiff_t pn,
                                   double *dkernel, double *dbias);

#ifdef __cplusplus
}
#endif

#endif /* FNN_CONV_H */
