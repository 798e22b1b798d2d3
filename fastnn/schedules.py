"""Learning-rate schedules: callables ``schedule(epoch) -> lr`` (epoch counts from 0).

Use one with ``fastnn.callbacks.LearningRateScheduler``.

Examples
--------
>>> import fastnn as fnn
>>> from fastnn.schedules import CosineDecay
>>> callback = fnn.LearningRateScheduler(CosineDecay(0.1, epochs=20))
"""

from __future__ import annotations

import math

from fastnn import _validation as V


class StepDecay:
    """lr = initial_lr * drop ** floor(epoch / every)

    Parameters
    ----------
    initial_lr : float
        The rate of epochs 0 .. every - 1, > 0.
    drop : float, default 0.5
        The factor applied every ``every`` epochs, in (0, 1].
    every : int, default 10
        Epochs between drops, >= 1.

    Raises
    ------
    TypeError
        If an argument is not a number of the right kind.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.schedules import StepDecay
    >>> schedule = StepDecay(0.1, drop=0.5, every=10)
    >>> schedule(0), schedule(10), schedule(25)
    (0.1, 0.05, 0.025)
    """

    def __init__(self, initial_lr: float, drop: float = 0.5, every: int = 10) -> None:
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.drop = V.check_float("drop", drop, low=0.0, high=1.0, low_open=True)
        self.every = V.check_positive_int("every", every)

    def __call__(self, epoch: int) -> float:
        return self.initial_lr * self.drop ** (epoch // self.every)


class ExponentialDecay:
    """lr = initial_lr * rate ** epoch

    Parameters
    ----------
    initial_lr : float
        The rate of epoch 0, > 0.
    rate : float, default 0.95
        The factor applied every epoch, in (0, 1].

    Raises
    ------
    TypeError
        If an argument is not a real number.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.schedules import ExponentialDecay
    >>> ExponentialDecay(0.1, rate=0.5)(3)
    0.0125
    """

    def __init__(self, initial_lr: float, rate: float = 0.95) -> None:
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.rate = V.check_float("rate", rate, low=0.0, high=1.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return self.initial_lr * self.rate ** epoch


class CosineDecay:
    """lr = min_lr + (initial_lr - min_lr) * (1 + cos(pi * min(epoch, epochs) / epochs)) / 2

    Parameters
    ----------
    initial_lr : float
        The rate of epoch 0, > 0.
    epochs : int
        The epoch at which the rate reaches ``min_lr`` (and stays), >= 1.
    min_lr : float, default 0.0
        The final rate, in [0, initial_lr]. With the default 0.0 the rate from epoch ``epochs``
        on is 0, which ``LearningRateScheduler`` refuses (it needs lr > 0): ``fit`` for at most
        ``epochs`` epochs (epochs 0 .. epochs - 1), or give ``min_lr > 0``.

    Raises
    ------
    TypeError
        If an argument is not a number of the right kind.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.schedules import CosineDecay
    >>> schedule = CosineDecay(0.1, epochs=10, min_lr=0.01)
    >>> schedule(0), round(schedule(5), 6), schedule(10)
    (0.1, 0.055, 0.01)
    """

    def __init__(self, initial_lr: float, epochs: int, min_lr: float = 0.0) -> None:
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.epochs = V.check_positive_int("epochs", epochs)
        self.min_lr = V.check_float("min_lr", min_lr, low=0.0, high=self.initial_lr)

    def __call__(self, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
