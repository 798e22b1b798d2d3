# OpenMP access that also compiles without OpenMP (src_c/fnn_threads.h).
#
# Cython's own `cimport openmp` includes <omp.h> unconditionally, so a build without -fopenmp
# would fail to link omp_get_max_threads; the header answers "one thread" in a serial build, where
# a prange is an ordinary loop. The thread count is read at each call, never cached, so
# fastnn.set_num_threads, OMP_NUM_THREADS and threadpoolctl all take effect, and it is clamped to
# fnn_thread_limit(): every prange's num_threads comes from fnn_max_threads() (via threads_for).

cdef extern from "fnn_threads.h":
    const int FNN_HAVE_OPENMP
    int fnn_thread_limit() noexcept nogil
    int fnn_max_threads() noexcept nogil
    void fnn_set_threads(int n) noexcept nogil
    int fnn_raw_threads() noexcept nogil

# Below this many elements a kernel runs on one thread. The element-wise loops are bound by cache
# bandwidth, and the data of a training step sits in the calling core's cache: measured on 2 cores,
# a second thread only pays off from ~10^5 elements (the 235k-parameter update of a 784-256-128-10
# network: yes; the 50k of the digits network: no, it slowed the step).
cdef enum:
    PARALLEL_MIN_WORK = 131072


cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    """Threads for a loop touching `work` elements: 1 when small, else OpenMP's count (clamped)."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return fnn_max_threads()


# Flush-to-zero mode for the kernels (src_c/fnn_ftz.h): set by each kernel entry on the calling
# thread and by each thread of a parallel region, restored at the end.
cdef extern from "fnn_ftz.h" nogil:
    unsigned int fnn_ftz_enter()
    void fnn_ftz_leave(unsigned int saved)


# The plans' choice between one thread and all allowed ones, by timing (src_c/fnn_adapt.h).
cdef extern from "fnn_adapt.h" nogil:
    ctypedef struct fnn_adapt:
        int n
        int choice
        int switches
        int measuring
    int fnn_adapt_begin(fnn_adapt *a, int n, Py_ssize_t rows)
    int fnn_adapt_fallback(const fnn_adapt *a, int n)
    void fnn_adapt_end(fnn_adapt *a, double seconds, Py_ssize_t rows)
    void fnn_adapt_cancel(fnn_adapt *a)
