/*
 * Flush-to-zero for fastnn's compiled kernels.
 *
 * Every kernel runs with subnormal results flushed to zero and subnormal inputs read as zero (x86
 * MXCSR FTZ and DAZ). Late in training, probabilities, gradients and the momentum of units that
 * stopped learning drift into the subnormal range (below 1.2e-38 in float), where each x86
 * arithmetic instruction takes a microcode assist: a digits run got ~10% slower overall, the
 * optimizer update 12x. Deep-learning frameworks make the same choice.
 *
 * The mode is per thread, so it is set at each kernel's entry and restored at its exit, and set
 * by each thread of a parallel region for the region's duration: nothing else in the process
 * (NumPy, the caller) ever runs in it, and every thread computes under the same rules, so results
 * do not depend on the thread count. Elsewhere than x86 these are no-ops (IEEE subnormals).
 */
#ifndef FNN_FTZ_H
#define FNN_FTZ_H

#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE__))
#include <xmmintrin.h>
#define FNN_FTZ_DAZ 0x8040u /* MXCSR bit 15 (flush to zero) | bit 6 (denormals are zero) */
static inline unsigned int fnn_ftz_enter(void)
{
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | FNN_FTZ_DAZ);
    return saved;
}
static inline void fnn_ftz_leave(unsigned int saved) { _mm_setcsr(saved); }
#else
static inline unsigned int fnn_ftz_enter(void) { return 0u; }
static inline void fnn_ftz_leave(unsigned int saved) { (void)saved; }
#endif

#endif /* FNN_FTZ_H */
