"""The thread count of the compiled kernels: OpenMP's, read by every kernel at call time.

So ``set_num_threads``, the ``OMP_NUM_THREADS`` environment variable and threadpoolctl all apply.
Whatever OpenMP is told, no kernel uses more than ``thread_limit()`` threads (more never helps,
and OpenMP runtimes crash or exit on huge counts); ``set_num_threads`` refuses counts above it.
Without the compiled extension (or in a serial build) the count is 1.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from fastnn import _validation as V
from fastnn.backends import default_backend


def thread_limit() -> int:
    """The most threads a kernel ever uses: ``min(max(64, 4 * CPUs), 4096)``.

    CPUs counts the processors this process may run on. Counts above it, from
    ``OMP_NUM_THREADS`` or threadpoolctl, are used as this limit.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.thread_limit() >= 64
    True
    """
    return default_backend().thread_limit()


def _check_thread_count(n: Any) -> int:
    n = V.check_int("n", n)
    limit = thread_limit()
    if not 1 <= n <= limit:
        raise ValueError(f"n must be an integer in [1, {limit}] (the thread limit: 4 per CPU, "
                         f"at least 64). Received: n={n}")
    return n


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 <= n <= ``thread_limit()``) in the compiled kernels.

    The setting is OpenMP's for the calling thread, like ``omp_set_num_threads``. Results do not
    depend on it: the kernels never split a reduction across threads.

    Parameters
    ----------
    n : int
        The number of threads, from 1 to ``thread_limit()``. NumPy integers are accepted.

    Raises
    ------
    TypeError
        If ``n`` is not an integer (a bool or a float is not).
    ValueError
        If ``n`` < 1 or ``n`` > ``thread_limit()``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> previous = fnn.get_num_threads()
    >>> fnn.set_num_threads(1)
    >>> fnn.get_num_threads()
    1
    >>> fnn.set_num_threads(previous)
    """
    default_backend().set_num_threads(_check_thread_count(n))


def get_num_threads() -> int:
    """The number of threads the compiled kernels will use (1 without the compiled extension).

    OpenMP's count, at most ``thread_limit()``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> 1 <= fnn.get_num_threads() <= fnn.thread_limit()
    True
    """
    return default_backend().get_num_threads()


def threads(n: int) -> contextlib.AbstractContextManager[None]:
    """``with fastnn.threads(1): ...`` runs the block with ``n`` threads, then restores.

    Parameters
    ----------
    n : int
        The number of threads inside the block, from 1 to ``thread_limit()``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` < 1 or ``n`` > ``thread_limit()`` (raised by the call, before the block).

    Examples
    --------
    >>> import fastnn as fnn
    >>> with fnn.threads(1):
    ...     fnn.get_num_threads()
    1
    """
    return _threads_block(_check_thread_count(n))


@contextlib.contextmanager
def _threads_block(n: int) -> Iterator[None]:
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def set_adaptive_threads(enabled: bool) -> None:
    """Whether the compiled plans may run a call on one thread instead of ``get_num_threads()``.

    With it (the default), a model's compiled training step and forward pass time themselves
    on one thread and on all allowed ones, keep the faster, and check again from time to time:
    when another thread pool or process holds the other cores, a parallel region waits for
    them, and one thread is faster. Results are the same either way (bitwise). Without it, they
    always use ``get_num_threads()`` threads, as the other kernels do. The environment variable
    ``FASTNN_ADAPTIVE_THREADS=0`` turns it off at import.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.set_adaptive_threads(False); fnn.get_adaptive_threads()
    False
    >>> fnn.set_adaptive_threads(True)
    """
    enabled = V.check_bool("enabled", enabled)
    backend = default_backend()
    if hasattr(backend, "set_adaptive_threads"):
        backend.set_adaptive_threads(enabled)


def get_adaptive_threads() -> bool:
    """Whether the compiled plans choose between one thread and all allowed ones by timing
    (``set_adaptive_threads``); False without the compiled backend."""
    backend = default_backend()
    return bool(getattr(backend, "adaptive_threads", lambda: False)())
