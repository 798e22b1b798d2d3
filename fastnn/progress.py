"""Training output: a tqdm progress bar per epoch (verbose=1) or one line per epoch (verbose=2)."""

from __future__ import annotations

import sys
from typing import Any, Mapping


def _format(logs: Mapping[str, float]) -> str:
    return "  ".join(f"{key}={value:.4f}" for key, value in logs.items())


class EpochProgress:
    """Reports one epoch of ``n`` samples; silent when ``verbose`` is 0.

    Parameters
    ----------
    epoch, epochs : int
        This epoch (from 0) and the number of epochs, for the title "Epoch 3/10".
    n : int
        Samples in the epoch.
    verbose : int
        0 silent, 1 a tqdm progress bar, 2 (or more) one line when the epoch closes.
    """

    def __init__(self, epoch: int, epochs: int, n: int, verbose: int) -> None:
        self.verbose, self.n, self.seen = verbose, n, 0
        self.title = f"Epoch {epoch + 1}/{epochs}"
        self.bar: Any = None
        if verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=n, desc=self.title, unit="sample", leave=True,
                            file=sys.stdout, dynamic_ncols=True)

    def update(self, rows: int, sums: Mapping[str, float]) -> None:
        """Advance by ``rows`` samples; ``sums`` are the running sums of loss and metrics."""
        self.seen += rows
        if self.bar is not None:
            self.bar.update(rows)
            if self.seen == self.n or self.bar.n % (rows * 16) < rows:
                self.bar.set_postfix({k: f"{v / self.seen:.4f}" for k, v in sums.items()},
                                     refresh=False)

    def close(self, logs: Mapping[str, float], seconds: float) -> None:
        """End the epoch, showing its ``logs`` (and, with verbose 2, its time)."""
        if self.bar is not None:
            self.bar.set_postfix_str(_format(logs), refresh=True)
            self.bar.close()
            self.bar = None
        elif self.verbose >= 2:
            print(f"{self.title}  {_format(logs)}  ({seconds:.2f}s)", flush=True)

    def close_quietly(self) -> None:
        """Close the bar without a final report (when the epoch fails)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
