# Declarations of the attention kernels in src_c/fnn_attn.h (the header is the documentation).

cdef extern from "fnn_attn.h" nogil:
    ctypedef struct fnn_attn_layout:
        Py_ssize_t bs, hs, rs
    ctypedef struct fnn_attn_geom:
        Py_ssize_t pairs, heads
        Py_ssize_t lq, lk, d, dv
        int causal
        const unsigned char *key_mask
        const unsigned char *qk_mask
        double drop_rate
        unsigned long long drop_key
        fnn_attn_layout q, k, v, out, dout, dq, dk, dv_
    int fnn_attn_keep(const fnn_attn_geom *g, Py_ssize_t p, Py_ssize_t i, Py_ssize_t j)
    void fnn_attn_contiguous(fnn_attn_geom *g)
    void fnn_attn_set_small(int on)
    int fnn_attn_threads(const fnn_attn_geom *g, int backward)
    Py_ssize_t fnn_attn_scratch(const fnn_attn_geom *g, int backward)
    Py_ssize_t fnn_attn_scratch_shared(const fnn_attn_geom *g)
    void fnn_attn_forward_f32(const fnn_attn_geom *g, float scale, const float *q,
                              const float *k, const float *v, float *out, float *lse,
                              float *scratch, int nt)
    void fnn_attn_forward_f64(const fnn_attn_geom *g, double scale, const double *q,
                              const double *k, const double *v, double *out, double *lse,
                              double *scratch, int nt)
    void fnn_attn_backward_f32(const fnn_attn_geom *g, float scale, const float *q,
                               const float *k, const float *v, const float *out,
                               const float *dout, const float *lse, float *dq, float *dk,
                               float *dv, float *scratch, int nt)
    void fnn_attn_backward_f64(const fnn_attn_geom *g, double scale, const double *q,
                               const double *k, const double *v, const double *out,
                               const double *dout, const double *lse, double *dq, double *dk,
                               double *dv, double *scratch, int nt)
