# Declarations of the recurrent kernels in src_c/fnn_rnn.h (the header is the documentation).

cdef extern from "fnn_rnn.h" nogil:
    ctypedef struct fnn_rnn_geom:
        int cell
        Py_ssize_t n, T, d, u
        int act, rec
        int reverse
        int seq
        const unsigned char *mask
        int zero_masked
        const void *in_mask
        const void *rec_mask
    void fnn_rnn_sizes(int cell, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u, Py_ssize_t *fwd,
                       Py_ssize_t *bwd)
    int fnn_rnn_forward_f32(const fnn_rnn_geom *g, const float *x, const float *W,
                            const float *U, const float *b, const float *h0, const float *c0,
                            float *ws, float *y, float *h_last, float *c_last)
    int fnn_rnn_forward_f64(const fnn_rnn_geom *g, const double *x, const double *W,
                            const double *U, const double *b, const double *h0,
                            const double *c0, double *ws, double *y, double *h_last,
                            double *c_last)
    int fnn_rnn_backward_f32(const fnn_rnn_geom *g, const float *W, const float *U,
                             float *ws, const float *dy, const float *dh_last,
                             const float *dc_last, float *bws, float *ut, float *dW, float *dU,
                             float *db, float *dx, float *dh0, float *dc0)
    int fnn_rnn_backward_f64(const fnn_rnn_geom *g, const double *W, const double *U,
                             double *ws, const double *dy, const double *dh_last,
                             const double *dc_last, double *bws, double *ut, double *dW,
                             double *dU, double *db, double *dx, double *dh0, double *dc0)
