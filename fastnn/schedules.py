"""Learning-rate schedules: callables ``schedule(epoch) -> lr`` (epoch counts from 0).

Use one with ``fastnn.callbacks.LearningRateScheduler``.
"""

import math

from fastnn import _validation as V


class StepDecay:
    """lr = initial_lr * drop ** floor(epoch / every)"""

    def __init__(self, initial_lr, drop=0.5, every=10):
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.drop = V.check_float("drop", drop, low=0.0, high=1.0, low_open=True)
        self.every = V.check_positive_int("every", every)

    def __call__(self, epoch):
        return self.initial_lr * self.drop ** (epoch // self.every)


class ExponentialDecay:
    """lr = initial_lr * rate ** epoch"""

    def __init__(self, initial_lr, rate=0.95):
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.rate = V.check_float("rate", rate, low=0.0, high=1.0, low_open=True)

    def __call__(self, epoch):
        return self.initial_lr * self.rate ** epoch


class CosineDecay:
    """lr = min_lr + (initial_lr - min_lr) * (1 + cos(pi * min(epoch, epochs) / epochs)) / 2"""

    def __init__(self, initial_lr, epochs, min_lr=0.0):
        self.initial_lr = V.check_float("initial_lr", initial_lr, low=0.0, low_open=True)
        self.epochs = V.check_positive_int("epochs", epochs)
        self.min_lr = V.check_float("min_lr", min_lr, low=0.0, high=self.initial_lr)

    def __call__(self, epoch):
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
