"""Keep Ctrl-C from splitting an update that must happen whole.

Python runs a KeyboardInterrupt between any two bytecodes of the main thread. An optimizer update
written in Python (the NumPy backend's several array operations, then the step count) could stop
half-way: some weights or moments updated, the count not, and training resumed from there would
differ from a run never interrupted. Inside ``deferred_interrupts()`` a SIGINT is held and raised
once the block is over. (The compiled training plan needs none of this: it updates the weights,
the state and the step count in one call, and Python sees a signal only after it returns.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block with SIGINT held; a signal that arrived meanwhile acts when it ends.

    Only the main thread receives signals, so elsewhere (or when the handler cannot be
    changed, as in a sub-interpreter) the block simply runs.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):     # a handler Python cannot restore
        yield
        return
    held: list[Any] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    except (ValueError, TypeError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            if callable(previous):
                previous(signal.SIGINT, held[0])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
