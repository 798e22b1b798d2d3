# Declarations of layer and group normalization's kernels in src_c/fnn_norm.h (the header is the
# documentation).

cdef extern from "fnn_norm.h" nogil:
    void fnn_ln_row_f32(const float *x, Py_ssize_t c, const float *gamma, const float *beta,
                        double eps, float *out, float *mean, float *invstd)
    void fnn_ln_row_f64(const double *x, Py_ssize_t c, const double *gamma,
                        const double *beta, double eps, double *out, double *mean,
                        double *invstd)
    void fnn_ln_rows_f32(const float *x, Py_ssize_t n, Py_ssize_t c, const float *gamma,
                         const float *beta, double eps, float *out, float *mean, float *invstd)
    void fnn_ln_rows_f64(const double *x, Py_ssize_t n, Py_ssize_t c, const double *gamma,
                         const double *beta, double eps, double *out, double *mean,
                         double *invstd)
    void fnn_ln_bwd_rows_f32(const float *x, const float *dy, Py_ssize_t n, Py_ssize_t c,
                             const float *gamma, const float *mean, const float *invstd,
                             float *dx, double *pg, double *pb)
    void fnn_ln_bwd_rows_f64(const double *x, const double *dy, Py_ssize_t n, Py_ssize_t c,
                             const double *gamma, const double *mean, const double *invstd,
                             double *dx, double *pg, double *pb)
    void fnn_gn_fwd_block_f32(const float *x, Py_ssize_t P, Py_ssize_t C, Py_ssize_t k,
                              Py_ssize_t c0, Py_ssize_t c1, const float *gamma,
                              const float *beta, double eps, float *out, float *mean,
                              float *invstd, double *scratch)
    void fnn_gn_fwd_block_f64(const double *x, Py_ssize_t P, Py_ssize_t C, Py_ssize_t k,
                              Py_ssize_t c0, Py_ssize_t c1, const double *gamma,
                              const double *beta, double eps, double *out, double *mean,
                              double *invstd, double *scratch)
    void fnn_gn_bwd_block_f32(const float *x, const float *dy, Py_ssize_t P, Py_ssize_t C,
                              Py_ssize_t k, Py_ssize_t c0, Py_ssize_t c1, const float *gamma,
                              const float *mean, const float *invstd, float *dx, double *sums,
                              double *scratch)
    void fnn_gn_bwd_block_f64(const double *x, const double *dy, Py_ssize_t P, Py_ssize_t C,
                              Py_ssize_t k, Py_ssize_t c0, Py_ssize_t c1, const double *gamma,
                              const double *mean, const double *invstd, double *dx,
                              double *sums, double *scratch)
    Py_ssize_t FNN_GN_SCRATCH(Py_ssize_t w)
