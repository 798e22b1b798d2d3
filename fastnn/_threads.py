"""The thread count of the compiled kernels: OpenMP's, read by every kernel at call time.

So ``set_num_threads``, the ``OMP_NUM_THREADS`` environment variable and threadpoolctl all apply.
Without the compiled extension (or in a serial build) the count is 1.
"""

import contextlib

from fastnn import _validation as V
from fastnn.backends import default_backend


def set_num_threads(n):
    """Use ``n`` threads (>= 1) in the compiled kernels."""
    n = V.check_positive_int("n", n)
    default_backend().set_num_threads(n)


def get_num_threads():
    """The number of threads the compiled kernels will use."""
    return default_backend().get_num_threads()


@contextlib.contextmanager
def threads(n):
    """``with fastnn.threads(1): ...`` runs the block with ``n`` threads, then restores."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
