"""Thread counts and environment variables never crash the process.

OpenMP takes any count it is given, and libgomp sizes each parallel region's team by it: with
OMP_NUM_THREADS=100000 (or set_num_threads, or threadpoolctl) a region kept ~10 MB of start-up
data on the calling thread's stack (SIGSEGV), with 10**9 it asked for 224 GB (exit). Now every
kernel clamps its count to fastnn.thread_limit(), and set_num_threads refuses counts above it.

- bad arguments to set_num_threads / threads: a table, each with its exception and message;
- hostile environments (OMP_NUM_THREADS, OMP_THREAD_LIMIT, FASTNN_KERNEL, FASTNN_PAR_MIN_WORK)
  and huge counts from threadpoolctl: a table, each run in a subprocess (a crash there fails the
  test instead of killing pytest) that drives every parallel site -- the GEMM and its softmax
  pass, the activation, bias-gradient, loss and optimizer loops, fit and predict -- and checks
  the thread count in use and that the results are bitwise those of one thread.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_available, get_backend

# The subprocesses import this very fastnn (a checkout or a worktree, not an installed copy).
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))
LIMIT = fnn.thread_limit()


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------- set_num_threads, threads

BAD_COUNTS = [
    # (value, exception, text the message must contain)
    (10**9, ValueError, "n=1000000000"),
    (100000, ValueError, "n=100000"),
    (2**31, ValueError, "n=2147483648"),
    (2**64 + 1, ValueError, "n=18446744073709551617"),
    (LIMIT + 1, ValueError, f"n={LIMIT + 1}"),
    (-1, ValueError, "n=-1"),
    (0, ValueError, "n=0"),
    (-(2**63), ValueError, f"n={-(2**63)}"),
    (np.int64(10**9), ValueError, "n=1000000000"),
    (np.uint64(2**63), ValueError, f"n={2**63}"),
    (np.int32(-3), ValueError, "n=-3"),
    (True, TypeError, "n=True"),
    (False, TypeError, "n=False"),
    (np.bool_(True), TypeError, "n="),
    (2.0, TypeError, "n=2.0"),
    (float("nan"), TypeError, "n=nan"),
    (np.float64(2.0), TypeError, "n="),
    ("2", TypeError, "n='2'"),
    (None, TypeError, "n=None"),
    ([2], TypeError, "n=[2]"),
]

GOOD_COUNTS = [1, 2, np.int64(2), np.int32(1), np.uint8(2), np.intp(3), LIMIT]


@pytest.mark.parametrize("value, exc, text", BAD_COUNTS, ids=repr)
@pytest.mark.parametrize("call", ["set_num_threads", "threads"])
def test_bad_thread_count_is_refused(call, value, exc, text):
    previous = fnn.get_num_threads()
    try:
        with pytest.raises(Exception) as info:
            getattr(fnn, call)(value)          # threads(n) checks n when called, not on `with`
        assert fnn.get_num_threads() == previous
    finally:
        fnn.set_num_threads(previous)
    assert info.type is exc, f"expected {exc.__name__}, got {info.type.__name__}: {info.value}"
    assert text in str(info.value)
    if exc is ValueError:
        assert f"[1, {LIMIT}]" in str(info.value)


@pytest.mark.parametrize("value", GOOD_COUNTS, ids=repr)
def test_good_thread_count_is_used(value, thread_count):
    thread_count(value)
    want = int(value) if fast_available() and get_backend("fast").openmp_enabled() else 1
    assert fnn.get_num_threads() == want
    with fnn.threads(value):
        assert fnn.get_num_threads() == want


def test_thread_limit_formula():
    assert LIMIT == min(max(64, 4 * _cpus()), 4096)
    assert get_backend("numpy").thread_limit() == LIMIT        # the twin agrees
    assert 1 <= fnn.get_num_threads() <= LIMIT


def test_compiled_set_num_threads_refuses_above_the_limit():
    fb = pytest.importorskip("fastnn.backends.fast_backend")
    assert fb.thread_limit() == LIMIT
    for value in (LIMIT + 1, 10**9, 0, -5):
        with pytest.raises(ValueError, match=rf"n={value}\b"):
            fb.set_num_threads(value)


# ------------------------------------------------------------------------- hostile environments

# Runs every parallel site of the compiled backend with the environment (and `SETUP`) it is
# given, then again with one thread, and prints the thread count, the limit, the floor and
# whether the two runs gave the same bits.
_PROBE = r"""
import hashlib, json, sys
import numpy as np
import fastnn as fnn
from fastnn.backends import fast_backend as fb
SETUP

def run():
    h = hashlib.sha256()
    r = np.random.default_rng(0)
    a = r.standard_normal((512, 256)).astype(np.float32)
    w = (r.standard_normal((256, 256)) / 16).astype(np.float32)
    b = r.standard_normal(256).astype(np.float32)
    out = np.empty((512, 256), np.float32)
    h.update(fb.matmul(a, w, out).tobytes())                            # GEMM, threaded
    h.update(fb.dense_forward(a, w, b, 6, 0.0, out).tobytes())          # + softmax pass
    h.update(fb.activation_forward(a, 2, 0.0, out).tobytes())           # row blocks
    h.update(fb.activation_backward(out, a, 2, 0.0, np.empty_like(a)).tobytes())
    dz, dw, db, dx = (np.empty_like(out), np.empty_like(w), np.empty_like(b), np.empty_like(a))
    fb.dense_backward(a, w, out, a, 4, 0.0, dz, dw, db, dx)            # column blocks
    for arr in (dz, dw, db, dx):
        h.update(arr.tobytes())
    h.update(repr(fb.loss(0, a, out, dz)).encode() + dz.tobytes())      # loss row blocks
    p, g = a.ravel().copy(), out.ravel().copy()
    v, m = np.zeros_like(p), np.zeros_like(p)
    fb.sgd_update(p, g, v, 0.01, 0.9, False, 1e-4)                      # optimizer chunks
    fb.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-7, 1e-4)
    h.update(p.tobytes())
    X = r.standard_normal((512, 64)).astype(np.float32)
    y = np.arange(512) % 10
    model = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0)
    model.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.9))
    model.fit(X, y, epochs=2, batch_size=512, shuffle=False, verbose=0)    # compiled step
    for weights in model.get_weights():
        h.update(weights.tobytes())
    h.update(model.predict(X).tobytes())
    return h.hexdigest()

threads = fnn.get_num_threads()
first = run()
with fnn.threads(1):
    serial = run()
print(json.dumps({"threads": threads, "limit": fnn.thread_limit(), "same": first == serial,
                  "floor": fb.parallel_min_work(), "kernel": fb.kernel_name()}))
"""

_SET_HUGE = """
for value in (10**9, 100000, 2**31, 2**31 - 1):
    try:
        fnn.set_num_threads(value)
    except ValueError:
        pass
    else:
        raise SystemExit(f"set_num_threads({value}) was accepted")
"""

_THREADPOOLCTL_HUGE = """
import threadpoolctl
threadpoolctl.threadpool_limits(limits=LIMIT_VALUE, user_api="openmp").__enter__()
"""

# Whatever libgomp makes of an invalid OMP_NUM_THREADS, it keeps its default (the CPUs).
DEFAULT = "default"

# (id, environment, SETUP code, the thread count expected: a number, LIMIT or DEFAULT)
ENVIRONMENTS = [
    ("omp_1e5", {"OMP_NUM_THREADS": "100000"}, "", LIMIT),
    ("omp_1e9", {"OMP_NUM_THREADS": "1000000000"}, "", LIMIT),
    ("omp_2p31", {"OMP_NUM_THREADS": "2147483648"}, "", LIMIT),     # an int: negative
    ("omp_2p32", {"OMP_NUM_THREADS": "4294967296"}, "", LIMIT),     # an int: 0
    ("omp_limit_plus_1", {"OMP_NUM_THREADS": str(LIMIT + 1)}, "", LIMIT),
    ("omp_overflow", {"OMP_NUM_THREADS": "9" * 30}, "", DEFAULT),
    ("omp_negative", {"OMP_NUM_THREADS": "-5"}, "", DEFAULT),
    ("omp_zero", {"OMP_NUM_THREADS": "0"}, "", DEFAULT),
    ("omp_text", {"OMP_NUM_THREADS": "abc"}, "", DEFAULT),
    ("omp_empty", {"OMP_NUM_THREADS": ""}, "", DEFAULT),
    ("omp_nested", {"OMP_NUM_THREADS": "4,2"}, "", 4),
    ("omp_nested_huge", {"OMP_NUM_THREADS": "100000,100000"}, "", LIMIT),
    ("omp_nested_bad", {"OMP_NUM_THREADS": "3,abc"}, "", DEFAULT),
    ("omp_blanks", {"OMP_NUM_THREADS": " 3 "}, "", 3),
    ("limit_1", {"OMP_NUM_THREADS": "4", "OMP_THREAD_LIMIT": "1"}, "", 1),
    ("limit_3_of_1e5", {"OMP_NUM_THREADS": "100000", "OMP_THREAD_LIMIT": "3"}, "", 3),
    ("limit_huge", {"OMP_NUM_THREADS": "100000", "OMP_THREAD_LIMIT": "2147483648"}, "", LIMIT),
    ("limit_zero", {"OMP_NUM_THREADS": "2", "OMP_THREAD_LIMIT": "0"}, "", 2),
    ("limit_negative", {"OMP_NUM_THREADS": "2", "OMP_THREAD_LIMIT": "-1"}, "", 2),
    ("limit_text", {"OMP_NUM_THREADS": "2", "OMP_THREAD_LIMIT": "x"}, "", 2),
    ("dynamic", {"OMP_NUM_THREADS": "100000", "OMP_DYNAMIC": "true"}, "", LIMIT),
    ("set_huge", {"OMP_NUM_THREADS": "2"}, _SET_HUGE, 2),
    ("set_limit", {}, f"fnn.set_num_threads({LIMIT})", LIMIT),
    ("threadpoolctl_1e9", {}, _THREADPOOLCTL_HUGE.replace("LIMIT_VALUE", "10**9"), LIMIT),
    ("threadpoolctl_1e5", {}, _THREADPOOLCTL_HUGE.replace("LIMIT_VALUE", "100000"), LIMIT),
    ("kernel_unknown", {"FASTNN_KERNEL": "AVX2", "OMP_NUM_THREADS": "2"}, "", 2),
    ("kernel_long", {"FASTNN_KERNEL": "x" * 100000, "OMP_NUM_THREADS": "2"}, "", 2),
    ("kernel_non_ascii", {"FASTNN_KERNEL": "\u00e4vx2\u2603", "OMP_NUM_THREADS": "2"}, "", 2),
    ("kernel_empty", {"FASTNN_KERNEL": "", "OMP_NUM_THREADS": "2"}, "", 2),
    ("floor_tiny", {"FASTNN_PAR_MIN_WORK": "1", "OMP_NUM_THREADS": "100000"}, "", LIMIT),
    ("floor_bad", {"FASTNN_PAR_MIN_WORK": "1e400", "OMP_NUM_THREADS": "2"}, "", 2),
    ("floor_long", {"FASTNN_PAR_MIN_WORK": "9" * 100000, "OMP_NUM_THREADS": "2"}, "", 2),
    ("floor_non_ascii", {"FASTNN_PAR_MIN_WORK": "\u0663e6", "OMP_NUM_THREADS": "2"}, "", 2),
]

# A FASTNN_PAR_MIN_WORK that is not a positive finite number leaves the CPU's default floor.
BAD_FLOORS = ["", " ", "-1", "0", "1e400", "-1e400", "nan", "inf", "1e-400", "3e6junk", "abc",
              "9" * 100000, "\u00e9", "0x", "--5"]


def _clean_env(extra):
    """This process's environment without OpenMP or fastnn settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "GOMP_", "KMP_", "FASTNN_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [_PACKAGE_PARENT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def _run(code, extra_env, timeout=60):
    done = subprocess.run([sys.executable, "-c", code], env=_clean_env(extra_env),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"exit status {done.returncode}\n"
                                  f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}")
    return done


@pytest.mark.parametrize("env, setup, want", [row[1:] for row in ENVIRONMENTS],
                         ids=[row[0] for row in ENVIRONMENTS])
def test_hostile_environment(env, setup, want):
    fb = pytest.importorskip("fastnn.backends.fast_backend")
    if "threadpoolctl" in setup:
        pytest.importorskip("threadpoolctl")
    done = _run(_PROBE.replace("SETUP", setup), env)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["limit"] == LIMIT
    if want == DEFAULT:
        want = min(_cpus(), LIMIT)
    if not fb.openmp_enabled():
        want = 1                                        # a serial build: one thread, always
    assert report["threads"] == want
    assert report["same"], "results differ from one thread's"
    if "FASTNN_KERNEL" in env:
        assert report["kernel"] == fb.kernel_name()     # ignored: the best for this CPU
        if env["FASTNN_KERNEL"]:
            assert "RuntimeWarning: FASTNN_KERNEL must be one of" in done.stderr
        else:
            assert "FASTNN_KERNEL" not in done.stderr
    if env.get("FASTNN_PAR_MIN_WORK") == "1":
        assert report["floor"] == 1.0


def test_bad_floor_values_fall_back_to_the_default():
    pytest.importorskip("fastnn.backends.fast_backend")
    # one subprocess per value (the floor is read once per process), run side by side
    code = "from fastnn.backends import fast_backend as fb; print(fb.parallel_min_work())"
    default = float(_run(code, {}).stdout)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=_clean_env({"FASTNN_PAR_MIN_WORK": value}))
             for value in BAD_FLOORS]
    for value, proc in zip(BAD_FLOORS, procs):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (value[:20], err[-2000:])
        assert float(out) == default, value[:20]
