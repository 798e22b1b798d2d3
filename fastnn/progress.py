"""Training output: a tqdm progress bar per epoch (verbose=1) or one line per epoch (verbose=2)."""

import sys


def _format(logs):
    return "  ".join(f"{key}={value:.4f}" for key, value in logs.items())


class EpochProgress:
    """Reports one epoch of ``n`` samples; silent when ``verbose`` is 0."""

    def __init__(self, epoch, epochs, n, verbose):
        self.verbose, self.n, self.seen = verbose, n, 0
        self.title = f"Epoch {epoch + 1}/{epochs}"
        self.bar = None
        if verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=n, desc=self.title, unit="sample", leave=True,
                            file=sys.stdout, dynamic_ncols=True)

    def update(self, rows, sums):
        self.seen += rows
        if self.bar is not None:
            self.bar.update(rows)
            if self.seen == self.n or self.bar.n % (rows * 16) < rows:
                self.bar.set_postfix({k: f"{v / self.seen:.4f}" for k, v in sums.items()},
                                     refresh=False)

    def close(self, logs, seconds):
        if self.bar is not None:
            self.bar.set_postfix_str(_format(logs), refresh=True)
            self.bar.close()
            self.bar = None
        elif self.verbose >= 2:
            print(f"{self.title}  {_format(logs)}  ({seconds:.2f}s)", flush=True)

    def close_quietly(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
