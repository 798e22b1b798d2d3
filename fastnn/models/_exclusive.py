"""The model lock: one thread trains or changes a model at a time."""

from __future__ import annotations

import functools
from typing import Any, Callable


def exclusive(method: Callable[..., Any]) -> Any:
    """Run ``method`` holding the model's lock: what trains or changes a model refuses to run
    while another thread does (its buffers and plans are shared); re-entrant, so callbacks
    inside ``fit`` may still call these methods. ``predict`` needs no lock."""
    @functools.wraps(method)
    def run_exclusively(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = self._busy
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"{method.__name__}: the model is being trained or changed in "
                               f"another thread; a model trains in one thread at a time")
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()
    return run_exclusively
