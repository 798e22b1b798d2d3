"""Shared fixtures: backend, dtype and thread-count parameters, and the bundled digits split."""

import os

# scikit-learn's array-API estimator checks (run on the sklearn wrappers by check_estimator)
# skip unless SciPy was imported with its array-API support on; conftest is imported before any
# test module imports SciPy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastnn as fnn  # noqa: E402
from fastnn.datasets import load_digits, train_test_split

BACKENDS = ["numpy", "fast"]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend by name; the fast one must be built (a missing build is a failure)."""
    return request.param


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


def _set_adaptive(enabled):
    """Switch the compiled plans' choice of 1 or N threads by timing; returns the previous
    setting (None without the compiled backend)."""
    from fastnn.backends import fast_available, get_backend
    if not fast_available():
        return None
    fast = get_backend("fast")
    previous = fast.adaptive_threads()
    fast.set_adaptive_threads(enabled)
    return previous


@pytest.fixture
def fixed_threads():
    """The compiled plans use exactly the thread count set (not the faster of 1 and N), so
    that a test at 2 threads runs its parallel code."""
    previous = _set_adaptive(False)
    yield
    if previous is not None:
        _set_adaptive(previous)


@pytest.fixture(params=THREADS, ids=lambda n: f"threads{n}")
def threads(request, fixed_threads):
    """Run the test with ``fnn.set_num_threads(n)`` (exactly n: ``fixed_threads``), restoring
    the previous count after."""
    previous = fnn.get_num_threads()
    fnn.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fnn.set_num_threads(previous)


@pytest.fixture
def thread_count():
    """Call ``set(n)`` to change the thread count inside a test; restored afterwards."""
    previous = fnn.get_num_threads()
    yield fnn.set_num_threads
    fnn.set_num_threads(previous)


@pytest.fixture(scope="session")
def digits_split():
    """The digits scaled to [0, 1], split 75/25, stratified, seed 0: X_tr, X_te, y_tr, y_te."""
    X, y = load_digits()
    return train_test_split(X / 16.0, y, test_size=0.25, seed=0, stratify=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def keras():
    """Keras 3 as an oracle (CI installs it), on its NumPy backend unless one was chosen;
    skipped where it is not installed."""
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    try:
        import keras
    except ImportError:
        pytest.skip("needs Keras 3 (with the numpy or jax backend)")
    return keras


@pytest.fixture(scope="module")
def keras64(keras):
    """``keras`` computing in float64 (its floatx and its global dtype policy) for the
    requesting module's tests. Keras caches its global policy from floatx when it first makes
    a layer, so after any float32 Keras layer, floatx alone no longer makes float64 layers."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield keras
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)
