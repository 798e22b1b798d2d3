# Batch normalization's affine map (BLOCK columns per task), shared by its entry points (_normalization.pyx) and the
# compiled inference plan (_infer.pxi), so both compute the same bits.

from cython cimport floating


cdef inline void _affine(const floating *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t j0,
                         Py_ssize_t j1, const floating *mean, const floating *scale,
                         const floating *gamma, const floating *beta,
                         floating *out) noexcept nogil:
    """out := gamma * (x - mean) * scale + beta, columns j0..j1 (per-column mean and scale)."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(j0, j1):
            out[i * c + j] = <floating>(<double>gamma[j] * ((<double>x[i * c + j] - mean[j])
                                                           * <double>scale[j]) + beta[j])


cdef enum:
    BLOCK = 64      # columns per task: a block's running sums stay in registers and L1
