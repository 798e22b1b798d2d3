# Declarations of the convolution kernels in src_c/fnn_conv.h (the header is the documentation).

from libc.stdint cimport int64_t

cdef extern from "fnn_conv.h" nogil:
    ctypedef struct fnn_conv_geom:
        Py_ssize_t n, h, w, c
        Py_ssize_t kh, kw, f
        Py_ssize_t sh, sw
        Py_ssize_t dh, dw
        Py_ssize_t pt, pl
        Py_ssize_t oh, ow
    int fnn_conv2d_forward_f32(const fnn_conv_geom *g, const float *x, const float *kernel,
                               const float *bias, int act, float param, float *y)
    int fnn_conv2d_forward_f64(const fnn_conv_geom *g, const double *x, const double *kernel,
                               const double *bias, int act, double param, double *y)
    int fnn_conv2d_backward_f32(const fnn_conv_geom *g, const float *x, const float *kernel,
                                const float *dz, float *dkernel, float *dbias, float *dx)
    int fnn_conv2d_backward_f64(const fnn_conv_geom *g, const double *x, const double *kernel,
                                const double *dz, double *dkernel, double *dbias, double *dx)
    int fnn_conv2d_backward_pooled_f32(const fnn_conv_geom *g, const float *x, const float *dy,
                                       const int64_t *argmax, const float *yp, Py_ssize_t pn,
                                       float *dkernel, float *dbias)
    int fnn_conv2d_backward_pooled_f64(const fnn_conv_geom *g, const double *x,
                                       const double *dy, const int64_t *argmax,
                                       const double *yp, Py_ssize_t pn, double *dkernel,
                                       double *dbias)


cdef extern from "fnn_conv3d.h" nogil:
    ctypedef struct fnn_conv_depth:
        Py_ssize_t d, c
        Py_ssize_t kd, sd, dd
        Py_ssize_t front, od
    int fnn_conv2d_dx_on_gemm(const fnn_conv_geom *g)
    int fnn_conv3d_backward_kernel_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                       const float *x, const float *dz, float *dkernel,
                                       float *dbias)
    int fnn_conv3d_backward_kernel_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                                       const double *x, const double *dz, double *dkernel,
                                       double *dbias)
    int fnn_conv3d_forward_f32(const fnn_conv_geom *g, const fnn_conv_depth *ds, const float *x,
                               const float *kernel, const float *bias, int act, float param,
                               float *y)
    int fnn_conv3d_forward_f64(const fnn_conv_geom *g, const fnn_conv_depth *ds,
                               const double *x, const double *kernel, const double *bias,
                               int act, double param, double *y)
