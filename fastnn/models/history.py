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
        adds ``"lr"``.
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

    def plot(self, path: PathLike, keys: Optional[Sequence[str]] = None) -> PathLike:
        """Save the training curves as a PNG, one panel per quantity, against the epoch.

        Each panel shows the training curve and, when recorded, its ``val_`` form. Needs
        matplotlib (``pip install fastnn[plot]``).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.
        keys : sequence of str, optional
            The quantities to draw, e.g. ``["loss"]``. Default: every key of ``history`` but
            the ``val_`` forms and ``"lr"``.

        Returns
        -------
        str or os.PathLike
            ``path``.

        Raises
        ------
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        >>> import os, tempfile
        >>> from fastnn import History
        >>> history = History()
        >>> for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        ...     history.append(epoch, {"loss": loss, "val_loss": loss + 0.1})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = history.plot(os.path.join(tmp, "curves.png"))
        ...     os.path.getsize(path) > 0
        True
        """
        try:
            import matplotlib
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        names = [k for k in (keys or self.history) if not k.startswith("val_") and k != "lr"]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            ax.plot(epochs, self.history[name], label="training")
            if "val_" + name in self.history:
                ax.plot(epochs, self.history["val_" + name], label="validation")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
