/*
 * fastnn's thread counts: every parallel region of the library (the C GEMM's and the Cython
 * prange loops) asks for at most fnn_max_threads() threads.
 *
 *   fnn_thread_limit() = min(max(64, 4 * CPUs), 4096)     CPUs: omp_get_num_procs(), first use
 *   fnn_max_threads()  = OpenMP's count for the next region (omp_get_max_threads(), at most
 *                        omp_get_thread_limit()), clamped to [1, fnn_thread_limit()]
 *
 * Why a limit: OpenMP takes whatever count it is given (OMP_NUM_THREADS, omp_set_num_threads,
 * threadpoolctl), and libgomp sizes each region's team by it: a team of T threads allocates
 * ~224 * T bytes (T = 10^9: "Out of memory allocating 224000001344 bytes", then exit), keeps
 * ~100 * T bytes of start-up data on the calling thread's stack (T = 100000: ~10 MB against the
 * 8 MiB stack, SIGSEGV inside GOMP_parallel), and creates T - 1 threads, exiting the process
 * when one cannot be created. No CPU runs more than a few hardware threads per core, and these
 * kernels are compute- or bandwidth-bound, so more than 4 threads per CPU never helps; the floor
 * of 64 lets a script that names a moderate count run unchanged on a small machine, and the
 * ceiling keeps a team's bookkeeping under ~0.5 MiB of stack even on the largest hosts.
 * A count OpenMP reports below 1 can only come from a request that overflowed an int (libgomp
 * keeps OMP_NUM_THREADS=2147483648 as an unsigned long and omp_get_max_threads() returns it
 * truncated, negative), so it is read as "as many as allowed".
 * Without OpenMP everything runs on one thread, and the limit is the floor.
 */
#ifndef FNN_THREADS_H
#define FNN_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#define FNN_HAVE_OPENMP 1
#else
#define FNN_HAVE_OPENMP 0
#endif

#define FNN_THREADS_PER_CPU 4
#define FNN_THREAD_LIMIT_MIN 64
#define FNN_THREAD_LIMIT_MAX 4096

/* The CPU count is read once per module (an affinity query is a system call, and kernels ask at
 * every call); a race between first calls stores the same value twice. */
static int fnn_thread_limit_cached; /* accessed atomically; 0 until first use */

static inline int fnn_thread_limit(void)
{
    int limit = __atomic_load_n(&fnn_thread_limit_cached, __ATOMIC_RELAXED);
    if (__builtin_expect(limit == 0, 0)) {
        int cpus = 1;
#ifdef _OPENMP
        cpus = omp_get_num_procs();
        if (cpus < 1) cpus = 1;
        if (cpus > FNN_THREAD_LIMIT_MAX) cpus = FNN_THREAD_LIMIT_MAX;
#endif
        limit = FNN_THREADS_PER_CPU * cpus;
        if (limit < FNN_THREAD_LIMIT_MIN) limit = FNN_THREAD_LIMIT_MIN;
        if (limit > FNN_THREAD_LIMIT_MAX) limit = FNN_THREAD_LIMIT_MAX;
        __atomic_store_n(&fnn_thread_limit_cached, limit, __ATOMIC_RELAXED);
    }
    return limit;
}

/* Inside a parallel region: ok := 0 atomically (a thread's buffer could not be allocated), and
 * the worksharing loop over a call's fixed pieces, one at a time to whichever thread is free.
 * Without OpenMP, the plain assignment and nothing. */
#ifdef _OPENMP
#define FNN_OMP_FAIL(ok) _Pragma("omp atomic write") ok = 0
#define FNN_OMP_FOR_DYNAMIC _Pragma("omp for schedule(dynamic, 1)")
#else
#define FNN_OMP_FAIL(ok) ok = 0
#define FNN_OMP_FOR_DYNAMIC
#endif

/* Threads the next parallel region may use: OpenMP's count, clamped (see above). */
static inline int fnn_max_threads(void)
{
#ifdef _OPENMP
    const int limit = fnn_thread_limit();
    int n = omp_get_max_threads();
    if (omp_in_parallel() && omp_get_active_level() >= omp_get_max_active_levels())
        return 1; /* a region opened here would run on one thread (no nesting) */
    const int cap = omp_get_thread_limit();
    if (n < 1 || n > limit) n = limit;
    if (cap >= 1 && n > cap) n = cap;
    return n;
#else
    return 1;
#endif
}

/* OpenMP's own count for the next region, unclamped (to restore it after fnn_set_threads). */
static inline int fnn_raw_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* omp_set_num_threads for later regions started by the calling thread (callers check the range). */
static inline void fnn_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

#endif /* FNN_THREADS_H */
