"""``History``: the record of one ``fit`` call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from fastnn.io import PathLike


class History:
    """The record of one ``fit`` call: the loss and metrics of each epoch.

    Attributes
    ----------
    history : dict of str to list of float
        ``"loss"``, each compiled metric and, with validation data, their ``"val_"`` forms,
        mapped to one value per epoch (a mean over the epoch's samples). ``LearningRateScheduler``
        and ``ReduceLROnPlateau`` add ``"lr"``.
    epoch : list of int
        The epochs run, counted from 0; shorter than ``epochs`` if training stopped early.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(4, activation="tanh"),
    ...                         fnn.Dense(1, activation="sigmoid")],
    ...                        input_dim=2, seed=0, backend="numpy")
    >>> model = model.compile(loss="binary_cross_entropy", metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=3, batch_size=2, validation_data=(X, y), verbose=0)
    >>> history
    History(epochs=3, keys=['loss', 'accuracy', 'val_loss', 'val_accuracy'])
    >>> history.epoch, len(history.history["val_loss"])
    ([0, 1, 2], 3)
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Record the ``logs`` of ``epoch`` (called by ``fit`` at the end of each epoch)."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path: Optional[PathLike] = None, keys: Optional[Sequence[str]] = None
             ) -> Optional[PathLike]:
        """Draw the training curves against the epoch, one panel per quantity: saved as a PNG
        to ``path``, or shown (``matplotlib.pyplot.show``: inline in a notebook) without one.

        A panel shows a quantity's training curve and its ``val_`` form: both when the
        training key is asked for (or no keys are given), the ``val_`` curve alone when only
        it is asked for. ``"lr"`` (logged by ``LearningRateScheduler`` and
        ``ReduceLROnPlateau``) has a panel of its own. Needs matplotlib
        (``pip install fastnn[plot]``).

        Parameters
        ----------
        path : str or os.PathLike, optional
            The file to write (PNG). Without it the figure is shown.
        keys : sequence of str, optional
            The keys of ``history`` to draw, any of them, e.g. ``["loss"]``, ``["lr"]`` or
            ``["val_accuracy"]``. Default: every key.

        Returns
        -------
        str or os.PathLike or None
            ``path``, or None when the figure was shown.

        Raises
        ------
        ValueError
            If the history is empty (``fit`` ran no epoch), or a key is not in it (the
            message lists the keys there are).
        TypeError
            If ``keys`` is not a list of strings.
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        >>> import os, tempfile
        >>> from fastnn import History
        >>> history = History()
        >>> for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        ...     history.append(epoch, {"loss": loss, "val_loss": loss + 0.1, "lr": 0.1})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = history.plot(os.path.join(tmp, "curves.png"), keys=["val_loss", "lr"])
        ...     os.path.getsize(path) > 0
        True
        """
        panels = self._panels(keys)
        try:
            if path is None:
                import matplotlib.pyplot as plt
                fig = plt.figure(figsize=(5 * len(panels), 3.6))
            else:
                from matplotlib.backends.backend_agg import FigureCanvasAgg
                from matplotlib.figure import Figure
                fig = Figure(figsize=(5 * len(panels), 3.6))
                FigureCanvasAgg(fig)          # no pyplot: the global backend stays as it is
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, curves) in zip(axes, panels.items()):
            for key, label in curves:
                values = self.history[key]
                epochs = [e + 1 for e in self.epoch[len(self.epoch) - len(values):]]
                ax.plot(epochs, values, label=label, marker="." if len(values) < 30 else None)
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        if path is None:
            plt.show()
            return None
        fig.savefig(path, dpi=100)
        return path

    def _panels(self, keys: Optional[Sequence[str]]) -> dict[str, list[tuple[str, str]]]:
        """{panel title: [(history key, curve label), ...]} for ``keys``, checked."""
        if not self.history:
            raise ValueError("History.plot: the history is empty (no epoch was recorded): "
                             "fit the model for at least one epoch first")
        if keys is None:
            wanted = list(self.history)
        else:
            if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or not all(
                    isinstance(k, str) for k in keys):
                raise TypeError(f"keys must be a list of strings, e.g. ['loss']. "
                                f"Received: keys={keys!r}")
            unknown = [k for k in keys if k not in self.history]
            if unknown or not keys:
                raise ValueError(f"History.plot: {unknown or 'no keys'} not in this history; "
                                 f"it has {list(self.history)}")
            wanted = list(keys)
        panels: dict[str, list[tuple[str, str]]] = {}
        for key in wanted:
            base = key[4:] if key.startswith("val_") else key
            curves = panels.setdefault(base, [])
            chosen = [base, "val_" + base] if key == base else [key]
            for name in chosen:
                entry = (name, "validation" if name.startswith("val_") else
                         "training" if name != "lr" else "learning rate")
                if name in self.history and entry not in curves:
                    curves.append(entry)
        for curves in panels.values():
            curves.sort(key=lambda entry: entry[0].startswith("val_"))    # training first
        return panels

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
