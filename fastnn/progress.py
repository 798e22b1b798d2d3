"""Training output that fits where it runs (``fit(verbose=...)``; also predict's and evaluate's).

verbose 1 (also True and "auto", as in Keras): in a terminal, a live tqdm bar per epoch; in a
Jupyter kernel with ipywidgets, a notebook bar per epoch (``tqdm.notebook``); anywhere else --
a pipe, a log file, a notebook without ipywidgets -- one line per epoch, written once, with no
carriage return (a bar's redraws would repeat the line in a log). verbose 2: one line per
epoch everywhere. 0 (or False): silent. Where a bar goes is decided per epoch from the
``sys.stdout`` of that moment (``isatty()``), so a redirected stdout is followed.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
import sys
import warnings
from typing import Any, Mapping, Optional

import numpy as np


def check_verbose(verbose: object) -> int:
    """0, 1 or 2 from Keras' accepted forms: 0/1/2, False/True, "auto" (1).

    Raises
    ------
    ValueError
        If ``verbose`` is another number or string.
    TypeError
        If it is neither a number nor a string.
    """
    if isinstance(verbose, (bool, np.bool_)):
        return int(bool(verbose))
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if isinstance(verbose, numbers.Integral) and int(verbose) in (0, 1, 2):
        return int(verbose)
    if isinstance(verbose, (str, numbers.Real)):
        raise ValueError(f"verbose must be 0 (silent), 1 (a progress bar), 2 (one line per "
                         f"epoch), True, False or 'auto'. Received: verbose={verbose!r}")
    raise TypeError(f"verbose must be 0, 1, 2, True, False or 'auto'. "
                    f"Received: verbose={verbose!r} of type {type(verbose).__name__}")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app), without importing
    IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:                 # a half-initialised or foreign IPython: not a kernel
        return False


def _has_widgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):     # no isatty, or a closed stream
        return False


def _columns(stream: Any) -> int:
    """The terminal's width, or 0 when it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):     # no fileno, closed, not a terminal
        return 0


def output_kind(verbose: int, stream: Any) -> str:
    """"none", "bar" (a terminal), "notebook" (a kernel with ipywidgets) or "line"."""
    if verbose == 0 or stream is None:
        return "none"
    if verbose >= 2:
        return "line"
    if in_notebook():
        return "notebook" if _has_widgets() else "line"
    return "bar" if _isatty(stream) else "line"


def _format(logs: Mapping[str, float]) -> str:
    return "  ".join(f"{key}={value:.4f}" for key, value in logs.items())


class EpochProgress:
    """Reports one epoch of ``n`` samples (None when unknown) as ``output_kind`` decides.

    Parameters
    ----------
    epoch, epochs : int
        This epoch (from 0) and the number of epochs, for the title "Epoch 3/10".
    n : int or None
        Samples in the epoch.
    verbose : int
        0 silent, 1 a progress bar where one can be drawn (else a line), 2 one line when the
        epoch closes.
    title : str, optional
        The title in place of "Epoch 3/10" (predict's and evaluate's passes over the data).
    """

    def __init__(self, epoch: int, epochs: int, n: Optional[int], verbose: int,
                 title: Optional[str] = None) -> None:
        self.n, self.seen = n, 0
        self.title = f"Epoch {epoch + 1}/{epochs}" if title is None else title
        self.stream = sys.stdout
        self.kind = output_kind(verbose, self.stream)
        self.bar: Any = None
        if self.kind == "bar":
            from tqdm.std import tqdm
            # a terminal that reports no width (some containers' and CI's) would get an
            # empty bar: give it 80 columns
            fixed = {} if _columns(self.stream) else {"ncols": 80}
            self.bar = tqdm(total=n, desc=self.title, unit="sample", leave=True,
                            file=self.stream, dynamic_ncols=not fixed, **fixed)
        elif self.kind == "notebook":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")      # tqdm's TqdmWarning about widgets
                    from tqdm.notebook import tqdm as notebook_tqdm
                    self.bar = notebook_tqdm(total=n, desc=self.title, unit="sample",
                                             leave=True)
            except Exception:               # widgets that do not work here: lines instead
                self.kind = "line"

    def update(self, rows: int, sums: Mapping[str, float]) -> None:
        """Advance by ``rows`` samples; ``sums`` are the running sums of loss and metrics."""
        self.seen += rows
        if self.bar is not None:
            self.bar.update(rows)
            if self.seen == self.n or self.bar.n % (rows * 16) < rows:
                self.bar.set_postfix({k: f"{v / self.seen:.4f}" for k, v in sums.items()},
                                     refresh=False)

    def close(self, logs: Mapping[str, float], seconds: float) -> None:
        """End the epoch, showing its ``logs`` (and, on a line, its time)."""
        if self.bar is not None:
            self.bar.set_postfix_str(_format(logs), refresh=True)
            self.bar.close()
            self.bar = None
        elif self.kind == "line":
            shown = _format(logs) if logs else f"{self.seen} samples"
            print(f"{self.title}  {shown}  ({seconds:.2f}s)", file=self.stream, flush=True)

    def close_quietly(self) -> None:
        """Close the bar without a final report (when the epoch fails)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
