# Declarations of the depthwise convolution kernels in src_c/fnn_dwconv.h (the header is the
# documentation): the layer kernels (_depthwise.pyx) and InferPlan's depthwise step
# (fastnn/_ext/_infer.pxi).

cdef extern from "fnn_dwconv.h" nogil:
    ctypedef struct fnn_dw_geom:
        Py_ssize_t n, h, w, c
        Py_ssize_t kh, kw, dm
        Py_ssize_t sh, sw
        Py_ssize_t dh, dw
        Py_ssize_t pt, pl
        Py_ssize_t oh, ow
    int fnn_dwconv2d_forward_f32(const fnn_dw_geom *g, const float *x, const float *kernel,
                                 const float *bias, int act, float param, float *y)
    int fnn_dwconv2d_forward_f64(const fnn_dw_geom *g, const double *x, const double *kernel,
                                 const double *bias, int act, double param, double *y)
    int fnn_dwconv2d_backward_f32(const fnn_dw_geom *g, const float *x, const float *kernel,
                                  const float *dz, float *dkernel, float *dbias, float *dx)
    int fnn_dwconv2d_backward_f64(const fnn_dw_geom *g, const double *x, const double *kernel,
                                  const double *dz, double *dkernel, double *dbias, double *dx)
