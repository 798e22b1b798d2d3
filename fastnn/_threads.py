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
