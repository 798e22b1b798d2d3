/*
 * Adaptive thread count for the compiled plans: run each training step (or predict pass) on one
 * thread or on all the threads the user allows, whichever the machine makes faster right now.
 *
 * Why: a parallel region is as slow as its slowest thread. When another pool spins on the other
 * core (OpenBLAS keeps its threads busy-waiting after each NumPy product) or another process
 * runs there, fastnn's second thread gets the core late and the whole step waits for it: on a
 * 2-core machine a 100 us step became 8 ms. One thread never waits for anyone. Results do not
 * depend on the thread count (no kernel splits a reduction), so switching is invisible except
 * in speed.
 *
 * How: a plan keeps one controller per kind of call. It first alternates N and 1 threads, a
 * warm-up call and FNN_ADAPT_SAMPLES timed calls at each, and keeps the faster by the mean time
 * per row without each count's slowest call (first-use costs do not decide; repeated slowness,
 * which is what interference causes, does: hence means, not medians). One thread wins unless N
 * are 10% faster: it also leaves the other cores to the rest of the machine. Then it keeps the
 * recent times of its choice and probes the other count for FNN_ADAPT_PROBE calls when
 *   - its recent mean has grown past 1.5x what it was when chosen (the machine changed), or
 *   - an interval has passed: 50 ms after a switch, doubling after each probe that loses, up to
 *     2 s, and never less than 150 times a probe's own cost, so probing a slow count costs
 *     under 1% of the run;
 * and switches when the probe's mean without its slowest call (the pool may have had to wake)
 * is under 0.9x the recent mean. Times are per row; a call whose rows differ from the measured
 * ones by more than 2x runs with the current choice unrecorded, and FNN_ADAPT_STRAYS such calls
 * in a row start a new measurement.
 *
 * The thread count is applied by the caller around the call (omp_set_num_threads on the calling
 * thread, restored after), so every kernel of the step sees it. A controller is updated by one
 * thread at a time: a call that finds it busy (another Python thread predicting on the same
 * model) runs with the current choice and records nothing.
 */
#ifndef FNN_ADAPT_H
#define FNN_ADAPT_H

#include <stddef.h>

#define FNN_ADAPT_SAMPLES 4     /* calls at each count while measuring (after one warm-up) */
#define FNN_ADAPT_PROBE 3       /* calls at the other count per probe */
#define FNN_ADAPT_RECENT 8      /* recent times of the choice kept */
#define FNN_ADAPT_FIRST_INTERVAL 0.05
#define FNN_ADAPT_MAX_INTERVAL 2.0
#define FNN_ADAPT_BUDGET 150.0  /* an interval is at least this many times a probe's cost */
#define FNN_ADAPT_STRAYS 4      /* calls in a row of another size before measuring it */

typedef struct {
    int busy;             /* taken by the thread updating it (atomic) */
    int n;                /* the thread count allowed when measured; 0: not yet measured */
    ptrdiff_t rows;       /* the rows the times are for (times are per row) */
    int measuring;        /* calls left in the first measurement (counting down) */
    int choice;           /* threads used when settled */
    int probing;          /* probe calls left */
    int current;          /* the count of the call in progress */
    int n_recent, next_recent;
    double ones[FNN_ADAPT_SAMPLES], alls[FNN_ADAPT_SAMPLES];
    double probe[FNN_ADAPT_PROBE];
    double recent[FNN_ADAPT_RECENT];
    double chosen_at;     /* the choice's mean when chosen (per row) */
    double since;         /* seconds run since the last probe */
    double interval;      /* seconds to run before the next probe */
    int switches;         /* times the choice changed (for tests and `fastnn info`) */
    int strays;           /* calls in a row whose rows are outside 2x of `rows` */
} fnn_adapt;

/* The mean, not the median: the slow calls that interference causes are the cost to avoid. */
static inline double fnn_adapt_mean(const double *v, int n)
{
    double sum = 0;
    int i;
    for (i = 0; i < n; i++) sum += v[i];
    return n > 0 ? sum / n : 0;
}

/* The mean without the largest value: one call's first-use costs (pages, packing buffers,
 * waking the pool) do not decide, repeated slowness does. */
static inline double fnn_adapt_trimmed(const double *v, int n)
{
    double sum = 0, top = v[0];
    int i;
    for (i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] > top) top = v[i];
    }
    return n > 1 ? (sum - top) / (n - 1) : sum;
}

static inline void fnn_adapt_reset(fnn_adapt *a, int n, ptrdiff_t rows)
{
    a->n = n;
    a->rows = rows;
    a->measuring = 2 * FNN_ADAPT_SAMPLES + 2;   /* a warm-up call at each count first */
    a->choice = n;
    a->probing = 0;
    a->n_recent = a->next_recent = 0;
    a->since = 0;
    a->interval = FNN_ADAPT_FIRST_INTERVAL;
}

/* Threads for a call of `rows` rows when the user allows `n`, the call to be recorded with
 * fnn_adapt_end (or released with fnn_adapt_cancel). Returns 0 when the controller is busy (use
 * fnn_adapt_fallback), and minus the count for a call not to be recorded: one whose rows are
 * outside 2x of the measured ones (the last, short batch of an epoch), which only a run of
 * FNN_ADAPT_STRAYS such calls in a row turns into a new measurement. */
static inline int fnn_adapt_begin(fnn_adapt *a, int n, ptrdiff_t rows)
{
    if (n <= 1) return 1;
    if (__atomic_exchange_n(&a->busy, 1, __ATOMIC_ACQUIRE)) return 0;
    if (a->n != n) {
        fnn_adapt_reset(a, n, rows);
    } else if (rows > 2 * a->rows || 2 * rows < a->rows) {
        if (++a->strays < FNN_ADAPT_STRAYS) {
            const int use = (a->measuring > 0) ? n : a->choice;
            __atomic_store_n(&a->busy, 0, __ATOMIC_RELEASE);
            return -use;
        }
        fnn_adapt_reset(a, n, rows);
    }
    a->strays = 0;
    if (a->measuring > 0)
        a->current = (a->measuring % 2 == 0) ? n : 1;   /* N, 1, N, 1, ... */
    else if (a->probing > 0)
        a->current = (a->choice == 1) ? n : 1;
    else
        a->current = a->choice;
    return a->current;
}

/* Release a controller taken by fnn_adapt_begin without recording (the call did not run). */
static inline void fnn_adapt_cancel(fnn_adapt *a)
{
    __atomic_store_n(&a->busy, 0, __ATOMIC_RELEASE);
}

/* The count for a call that found the controller busy. */
static inline int fnn_adapt_fallback(const fnn_adapt *a, int n)
{
    const int choice = __atomic_load_n(&a->choice, __ATOMIC_RELAXED);
    return (n <= 1 || a->n != n || choice < 1) ? (n < 1 ? 1 : n) : choice;
}

static inline void fnn_adapt_push_recent(fnn_adapt *a, double t)
{
    a->recent[a->next_recent] = t;
    a->next_recent = (a->next_recent + 1) % FNN_ADAPT_RECENT;
    if (a->n_recent < FNN_ADAPT_RECENT) a->n_recent++;
}

static inline void fnn_adapt_start_recent(fnn_adapt *a, const double *v, int n, double mean)
{
    int i;
    a->n_recent = a->next_recent = 0;
    for (i = 0; i < n; i++) fnn_adapt_push_recent(a, v[i]);
    a->chosen_at = mean;
}

/* Record the call begun by fnn_adapt_begin (which returned > 0): `seconds` for `rows` rows. */
static inline void fnn_adapt_end(fnn_adapt *a, double seconds, ptrdiff_t rows)
{
    const double t = seconds / (double)(rows > 0 ? rows : 1);
    if (a->measuring > 2 * FNN_ADAPT_SAMPLES) {
        a->measuring--;                       /* a warm-up call: not recorded */
    } else if (a->measuring > 0) {
        const int i = (a->measuring - 1) / 2;
        if (a->current == 1) a->ones[i] = t; else a->alls[i] = t;
        if (--a->measuring == 0) {
            const double m1 = fnn_adapt_trimmed(a->ones, FNN_ADAPT_SAMPLES);
            const double mn = fnn_adapt_trimmed(a->alls, FNN_ADAPT_SAMPLES);
            const int all = mn < 0.9 * m1;
            __atomic_store_n(&a->choice, all ? a->n : 1, __ATOMIC_RELAXED);
            fnn_adapt_start_recent(a, all ? a->alls : a->ones, FNN_ADAPT_SAMPLES, all ? mn : m1);
            a->since = 0;
            a->interval = FNN_ADAPT_FIRST_INTERVAL;
        }
    } else if (a->probing > 0) {
        a->probe[FNN_ADAPT_PROBE - a->probing] = t;
        a->since += seconds;
        if (--a->probing == 0) {
            const double mp = fnn_adapt_trimmed(a->probe, FNN_ADAPT_PROBE);
            const double mr = fnn_adapt_mean(a->recent, a->n_recent);
            double cost = 0;
            int i;
            for (i = 0; i < FNN_ADAPT_PROBE; i++) cost += a->probe[i] * (double)a->rows;
            if (mp < 0.9 * mr) {
                __atomic_store_n(&a->choice, (a->choice == 1) ? a->n : 1, __ATOMIC_RELAXED);
                fnn_adapt_start_recent(a, a->probe, FNN_ADAPT_PROBE, mp);
                a->interval = FNN_ADAPT_FIRST_INTERVAL;
                a->switches++;
            } else {
                a->chosen_at = mr;             /* the machine as it is now */
                a->interval *= 2;
                if (a->interval > FNN_ADAPT_MAX_INTERVAL) a->interval = FNN_ADAPT_MAX_INTERVAL;
                if (a->interval < FNN_ADAPT_BUDGET * cost) a->interval = FNN_ADAPT_BUDGET * cost;
            }
            a->since = 0;
        }
    } else {
        fnn_adapt_push_recent(a, t);
        a->since += seconds;
        if (a->since >= a->interval
            || (a->n_recent == FNN_ADAPT_RECENT
                && fnn_adapt_mean(a->recent, a->n_recent) > 1.5 * a->chosen_at))
            a->probing = FNN_ADAPT_PROBE;
    }
    __atomic_store_n(&a->busy, 0, __ATOMIC_RELEASE);
}

#endif /* FNN_ADAPT_H */
