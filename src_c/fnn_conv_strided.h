/*
 * fastnn's stride-1 convolution for inputs of many channels (called by fnn_conv.c's forward):
 * no patch matrix and no packed A. For the output positions of one output row, the operand of
 * kernel tap (ky, kx) is a strided view of the (padded) input: position ox + i reads the c
 * channels at (ox + i + kx*dw)*c of input row oy + ky*dh, and with dw = 1 a kernel row's taps are
 * even one contiguous run of kw*c values. The micro-kernel (fnn_conv_strided_tmpl.h) broadcasts
 * A straight from those rows against the kernel packed once per call into nr-wide slivers, all
 * taps accumulating in registers, with the bias and the cheap activations applied before the one
 * store to y. Each task (a run of output rows of one image) first copies the input rows it reads
 * into a padded buffer (zeros for the padding): per thread (rows + kh - 1) input rows, whatever
 * the batch. Tasks and tiles depend on the shapes alone, and each output element sums its taps
 * in the kernel's order whoever computes it: results are bitwise the same at any thread count.
 * Returns 1, or 0 when a buffer could not be allocated. Taken for stride 1 (any dilation, any
 * padding) with at least 8 channels in and 32 filters out, when an output row's tiles compute
 * at most 4/3 of its rows, on the AVX2 and AVX-512 flavours (fnn_conv_strided_use).
 */
#ifndef FNN_CONV_STRIDED_H
#define FNN_CONV_STRIDED_H

#include "fnn_conv.h"
#include "fnn_conv3d.h"
#include "fnn_gemm_internal.h"

/* x86 only (AVX2 and AVX-512 kernels; the generic flavour keeps the GEMM path). */
#if FNN_X86
/* 1 when g is a convolution the stride-1 path takes (and computes faster), else 0. */
int fnn_conv_strided_use(const fnn_conv_geom *g);

int fnn_conv_strided_forward_f32(const fnn_conv_geom *g, const float *x, const float *kernel,
                                 const float *bias, int act, float param, float *y);
int fnn_conv_strided_forward_f64(const fnn_conv_geom *g, const double *x, const double *kernel,
                                 const double *bias, int act, double param, double *y);

/* The input gradient dx (n, h, w, c, written) of the stride-1 convolution g from dz, as the
 * forward of the same path (kernel flipped and transposed, padding (k-1)*d - p), when
 * fnn_conv_strided_dx_use(g); returns 1, or 0 when a buffer could not be allocated. */
int fnn_conv_strided_dx_use(const fnn_conv_geom *g);

/* The forward on the depth stack of a Conv3D's x (fnn_conv3d.h), for a g that
 * fnn_conv_strided_use takes: fill builds the stack's rows from x itself. */
int fnn_conv_strided_forward_depth_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                       const float *x, const float *kernel, const float *bias,
                                       int act, float param, float *y);
int fnn_conv_strided_forward_depth_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                       const double *x, const double *kernel,
                                       const double *bias, int act, double param, double *y);
int fnn_conv_strided_dx_f32(const fnn_conv_geom *g, const float *kernel, const float *dz,
                            float *dx);
int fnn_conv_strided_dx_f64(const fnn_conv_geom *g, const double *kernel, const double *dz,
                            double *dx);
#endif

#endif /* FNN_CONV_STRIDED_H */
