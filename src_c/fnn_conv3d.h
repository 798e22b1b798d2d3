/*
 * fastnn's Conv3D forward without the depth stack (fastnn/layers/convolutional3d.py).
 *
 *   x (n, d, h, w, c), kernel (kh, kw, kd*c, f) (the Conv3D kernel with its depth taps moved
 *   next to the channels), y (n, od, oh, ow, f):
 *   y[b, p, oy, ox, :] = act(bias + sum_{ky, kx, kz, ci} xs[b*od + p, oy*sh - pt + ky*dh,
 *                                      ox*sw - pl + kx*dw, kz*c + ci] * kernel[ky, kx, kz*c + ci, :])
 *   with the depth stack xs[b*od + p, iy, ix, kz*c + ci] = x[b, p*sd + kz*dd - front, iy, ix, ci]
 *   (zero where that depth falls outside x).
 *
 * That is the 2-D convolution g (n*od images of h x w x kd*c) of the stack, which the layer
 * would otherwise build (kd/sd times x) before calling fnn_conv2d_forward. Here the stride-1
 * path (fnn_conv_strided.h) fills its padded input rows straight from x, slice by slice, so
 * the stack is never formed: the same products in the same order, so y is bitwise what
 * fnn_conv2d_forward gives on the stack. Taken only where fnn_conv2d_forward would take that
 * path for g (so the result never depends on which route ran); elsewhere nothing is written
 * and -1 is returned (the caller builds the stack). Else 1, or 0 when a buffer could not be
 * allocated.
 */
#ifndef FNN_CONV3D_H
#define FNN_CONV3D_H

#include <stddef.h>

#include "fnn_conv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    ptrdiff_t d, c;           /* x's depth and channels (g->c == kd * c, g->n == n * od) */
    ptrdiff_t kd, sd, dd;     /* depth taps, stride, dilation (>= 1) */
    ptrdiff_t front, od;      /* padding before the first slice (>= 0), output depth */
} fnn_conv_depth;

int fnn_conv3d_forward_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds, const float *x,
                           const float *kernel, const float *bias, int act, float param,
                           float *y);
int fnn_conv3d_forward_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds, const double *x,
                           const double *kernel, const double *bias, int act, double param,
                           double *y);

/* The kernel and bias gradients of the Conv3D whose forward fnn_conv3d_forward computes (g,
 * ds, x as there; dz (n, od, oh, ow, f)): dkernel (kd, kh, kw, c, f), Keras' layout, and dbias
 * (f,), without the depth stack: the filter-vectorised kernel gradient (fnn_conv_wgrad_tmpl.h)
 * with the kd*kh pairs (kz, ky) as its kernel rows, each reading x's slice for its output
 * depth, the bias sums fused. The output rows fall in fixed groups summed in order, so the
 * result depends on the shapes only, not on the threads. 1, or 0 when a buffer could not be
 * allocated, or -1 (nothing written) where that kernel does not apply (the generic flavour, more
 * than 16 channels a slice, more than two vectors of filters, a column dilation): the caller
 * then takes the 2-D kernels tap by tap. */
int fnn_conv3d_backward_kernel_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                   const float *x, const float *dz, float *dkernel, float *dbias);
int fnn_conv3d_backward_kernel_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                   const double *x, const double *dz, double *dkernel,
                                   double *dbias);

/* 1 when fnn_conv2d_backward computes g's input gradient on the GEMM with the transposed
 * gather (col2im), 0 when on a faster path (Winograd, or the stride-1 path's forward of dz):
 * what a Conv3D weighs when it picks how to run its backward. */
int fnn_conv2d_dx_on_gemm(const fnn_conv_geom *g);

#ifdef __cplusplus
}
#endif

#endif /* FNN_CONV3D_H */
