"""The compiled plans' choice between one thread and all allowed ones (src_c/fnn_adapt.h).

The policy is driven with synthetic timings through ThreadChooser.simulate (the same C
controller the plans use, fed chosen times instead of measured ones): it keeps the faster count,
leaves a count that interference has made slow within a few calls, comes back when the
interference stops, and spends a bounded share of the run probing the slower count. Whatever it
picks, results are bitwise those of one thread.
"""

import threading

import numpy as np
import pytest

import fastnn as fnn

FAST = pytest.importorskip("fastnn.backends.fast_backend")
MEASURE = 10         # the first calls alternate N, 1, N, 1, ... (a warm-up and 4 timed each)


def _timing(two, one):
    return lambda threads: two if threads == 2 else one


def _run(chooser, calls, timing, allowed=2, rows=32):
    used = [chooser.simulate(allowed, rows, timing) for _ in range(calls)]
    return used, sum(timing(u) for u in used)


def test_the_first_calls_measure_both_counts_then_keep_the_faster():
    chooser = FAST.ThreadChooser()
    assert chooser.threads == (None, 0)
    used, _ = _run(chooser, 2000, _timing(60e-6, 100e-6))
    assert used[:MEASURE] == [2, 1] * 5
    assert chooser.threads == (2, 0)
    later = used[MEASURE:]
    assert later.count(1) / len(later) < 0.05          # only the periodic probes
    chooser = FAST.ThreadChooser()
    _run(chooser, 200, _timing(92e-6, 100e-6))         # an 8% gain: one thread is kinder
    assert chooser.threads == (1, 0)


def test_a_slow_count_costs_a_bounded_share_of_the_run():
    """OpenBLAS spinning on the other core: 8 ms at 2 threads against 300 us at 1."""
    chooser = FAST.ThreadChooser()
    used, total = _run(chooser, 20000, _timing(8e-3, 300e-6))
    assert chooser.threads[0] == 1
    assert 8e-3 * used.count(2) / total < 0.02
    assert used[MEASURE:].count(2) >= 3               # it does keep checking


def test_it_leaves_two_threads_when_interference_starts_and_returns_when_it_stops():
    chooser = FAST.ThreadChooser()
    quiet, busy = _timing(60e-6, 100e-6), _timing(8e-3, 300e-6)
    _run(chooser, 1000, quiet)
    assert chooser.threads == (2, 0)
    used, _ = _run(chooser, 100, busy)
    assert chooser.threads == (1, 1)
    assert used.index(1) <= 10 and set(used[12:]) == {1}
    used, _ = _run(chooser, 2000, quiet)
    assert chooser.threads == (2, 2)
    assert used.index(2) < 1000


def test_a_new_batch_size_is_measured_again_and_one_thread_is_left_alone():
    chooser = FAST.ThreadChooser()
    _run(chooser, 100, _timing(60e-6, 100e-6), rows=32)
    assert chooser.threads[0] == 2
    assert chooser.simulate(2, 40, _timing(60e-6, 100e-6)) == 2       # within 2x: times per row
    assert chooser.threads[0] == 2
    _run(chooser, 3, _timing(60e-6, 100e-6), rows=5)                  # an epoch's last batch
    assert chooser.threads[0] == 2                                     # ignored
    _run(chooser, 1, _timing(60e-6, 100e-6), rows=32)
    used, _ = _run(chooser, 4, _timing(60e-6, 100e-6), rows=256)       # a new size that stays
    assert used == [2, 2, 2, 2] and chooser.threads == (None, 0)       # measured again
    assert [chooser.simulate(1, 32, _timing(1.0, 1.0)) for _ in range(5)] == [1] * 5


def test_a_chooser_shared_by_python_threads_stays_consistent():
    chooser = FAST.ThreadChooser()
    errors = []

    def work():
        try:
            for _ in range(2000):
                assert chooser.simulate(2, 32, _timing(60e-6, 100e-6)) in (1, 2)
        except Exception as exc:           # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and chooser.threads[0] == 2


def _train(adaptive, threads, X, y):
    FAST.set_adaptive_threads(adaptive)
    try:
        with fnn.threads(threads):
            model = fnn.Sequential([fnn.Dense(256, activation="relu"),
                                    fnn.Dense(10, activation="softmax")],
                                   input_dim=64, seed=3)
            model.compile("cross_entropy", fnn.Adam(learning_rate=1e-3))
            model.fit(X, y, epochs=2, batch_size=512, verbose=0)
            for _ in range(10):
                model.train_on_batch(X[:512], y[:512])
            general = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Reshape((256,)),
                                      fnn.Dense(10, activation="softmax")],
                                     input_dim=64, seed=3)
            general.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9))
            general.fit(X, y, epochs=2, batch_size=512, verbose=0)
            return (model.get_weights() + general.get_weights()
                    + [model.predict(X), general.predict(X)]), model
    finally:
        FAST.set_adaptive_threads(True)


def test_whatever_it_picks_the_results_are_bitwise_those_of_one_thread():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, 64)).astype(np.float32), rng.integers(0, 10, 3000)
    one, _ = _train(True, 1, X, y)
    adaptive, model = _train(True, 2, X, y)
    fixed, _ = _train(False, 2, X, y)
    assert [a.tobytes() for a in one] == [a.tobytes() for a in adaptive] == \
        [a.tobytes() for a in fixed]
    assert model._train_plan.threads[0] in (1, 2)      # measured and chosen
    assert FAST.adaptive_threads()


def test_the_interference_benchmark_makes_its_conditions_and_reports_ratios():
    from fastnn import _bench_interference as BI
    with BI._Condition("busy 100%") as cond:
        assert cond._process.is_alive() and cond.before is None
    assert not cond._process.is_alive()
    with BI._Condition("numpy matmul") as cond:
        assert cond.before() is None
    results = BI.measure("quiet", 2, repeats=4)
    assert list(results) == [name for name, _ in BI.workloads()]
    assert all(t1 > 0 and tn > 0 for t1, tn in results.values())
    table = BI.format_table({"quiet": {"w": (2e-3, 1e-3)}, "busy 50%": {"w": (1e-3, 2e-3)}}, 2)
    assert "2.00x " in table and "0.50x!" in table and "1000us" in table


def test_a_cpu_quota_sets_the_default_thread_count(monkeypatch):
    import fastnn._cpu_quota as Q
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(Q, "default_threads", lambda: (1, "cgroup v2 quota 1.5 CPUs (cpu.max)"))
    previous = fnn.get_num_threads()
    try:
        assert FAST._default_threads() == (1, "cgroup v2 quota 1.5 CPUs (cpu.max)")
        assert fnn.get_num_threads() == 1
    finally:
        fnn.set_num_threads(previous)


def test_fastnn_info_says_where_the_thread_count_came_from():
    import os
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "fastnn", "info"], env=env, text=True,
                         capture_output=True, check=True).stdout
    assert "threads: 1 " in out and "default thread count: 1, from the OMP_NUM_THREADS=1" in out
