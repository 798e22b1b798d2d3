/*
 * A monotonic clock in seconds, cheap enough to read once per training step (clock_gettime on
 * CLOCK_MONOTONIC is a vDSO call on Linux, ~20 ns): the compiled epoch loop (fastnn/_ext/
 * _train.pxi) returns to Python after a few tens of milliseconds of work, whatever the speed of
 * the machine or the build, so that Ctrl-C is seen.
 */
#ifndef FNN_CLOCK_H
#define FNN_CLOCK_H

#if defined(_WIN32)
#include <windows.h>
static inline double fnn_seconds(void)
{
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
}
#else
#include <time.h>
static inline double fnn_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#endif

#endif /* FNN_CLOCK_H */
