# Declarations of the C GEMM in src_c/fnn_gemm.h (the header is the documentation).
#   C := alpha op(A) @ op(B) + beta C;  with an epilogue then C[i, j] := act(C[i, j] + bias[j]),
#   and, when ep.amax is set, *ep.amax := max |C| (NaN if any C is not finite)

cdef extern from "fnn_gemm.h" nogil:
    double fnn_par_min_work()

    enum:
        FNN_ACT_LINEAR
        FNN_ACT_STEP
        FNN_ACT_SIGMOID
        FNN_ACT_TANH
        FNN_ACT_RELU
        FNN_ACT_LEAKY_RELU
        FNN_ACT_SOFTMAX
        FNN_ACT_GELU
        FNN_ACT_GELU_TANH
        FNN_ACT_DERIV_GIVEN
        FNN_ACT_ELU
        FNN_ACT_SELU
        FNN_ACT_SOFTPLUS
        FNN_ACT_SILU
        FNN_ACT_END

    ctypedef struct fnn_epilogue_f32:
        const float *bias
        int act
        float param
        double *amax
        double min_parallel_work

    ctypedef struct fnn_epilogue_f64:
        const double *bias
        int act
        double param
        double *amax
        double min_parallel_work

    void fnn_sgemm(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   float alpha, const float *A, Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                   float beta, float *C, Py_ssize_t ldc, const fnn_epilogue_f32 *ep)

    void fnn_dgemm(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   double alpha, const double *A, Py_ssize_t lda, const double *B, Py_ssize_t ldb,
                   double beta, double *C, Py_ssize_t ldc, const fnn_epilogue_f64 *ep)

    # op(B) packed once for many products (the recurrent steps); fnn_sgemm_bp gives fnn_sgemm's bits
    size_t fnn_gemm_packed_b_size(int dbl, Py_ssize_t k, Py_ssize_t n)
    void fnn_sgemm_pack_b(int trans_b, Py_ssize_t k, Py_ssize_t n, const float *B, Py_ssize_t ldb,
                          float *Bp)
    void fnn_dgemm_pack_b(int trans_b, Py_ssize_t k, Py_ssize_t n, const double *B,
                          Py_ssize_t ldb, double *Bp)
    void fnn_sgemm_bp(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      float alpha, const float *A, Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                      const float *Bp, float beta, float *C, Py_ssize_t ldc,
                      const fnn_epilogue_f32 *ep)
    void fnn_dgemm_bp(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      double alpha, const double *A, Py_ssize_t lda, const double *B,
                      Py_ssize_t ldb, const double *Bp, double beta, double *C, Py_ssize_t ldc,
                      const fnn_epilogue_f64 *ep)

    const char *fnn_kernel_name()
    int fnn_openmp_enabled()
