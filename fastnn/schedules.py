"""Learning-rate schedules, with Keras' names and signatures: ``schedule(step) -> lr``.

A schedule is used in one of two ways:

- as an optimizer's learning rate, ``fnn.SGD(learning_rate=CosineDecay(0.1, 1000))``: the
  rate of each update is ``schedule(optimizer.iterations)``, the step counted from 0 (as in
  Keras), on every training path (``fit``, ``train_on_batch``, ``optimizer.step(model)``);
  it is saved with the model (``get_config``: ``{"class_name", "config"}``);
- with ``fastnn.callbacks.LearningRateScheduler``, where the step is the epoch.

A rate may be 0 (a cosine decay's end): the update then leaves the weights as they are. Past
its length a schedule keeps its last rate, as Keras' do.

Examples
--------
>>> import fastnn as fnn
>>> from fastnn.schedules import CosineDecay, ExponentialDecay, PiecewiseConstantDecay
>>> opt = fnn.SGD(learning_rate=CosineDecay(0.1, decay_steps=1000))
>>> callback = fnn.LearningRateScheduler(ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5))
>>> PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001])(150)
0.01
"""

from __future__ import annotations

import bisect
import math
import numbers
from typing import Any, Optional

from fastnn import _validation as V


class _Unset:
    def __repr__(self) -> str:
        return "<default>"


_UNSET: Any = _Unset()


def _either(name: str, value: Any, old: str, old_value: Any) -> Any:
    """``name`` or its earlier fastnn spelling ``old`` (TypeError if both)."""
    if value is not _UNSET and old_value is not _UNSET:
        raise TypeError(f"give {name} or {old} (its earlier name), not both")
    return value if value is not _UNSET else old_value


def _name(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"name must be a string. Received: name={V._describe(value)}")
    return value


def _steps(name: str, value: Any) -> Any:
    """A number of steps > 0: an integer stays one (Keras also takes a float)."""
    checked = V.check_float(name, value, low=0.0, low_open=True)
    return int(value) if isinstance(value, numbers.Integral) else checked


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float`` and ``get_config()``, as Keras'.

    Subclass it for a schedule of your own (``__call__`` alone is enough to train with it; a
    model file stores only fastnn's own schedules).
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(self, step)")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild the schedule."""
        raise NotImplementedError(f"{type(self).__name__} must define get_config() to be "
                                  f"saved")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        """The schedule ``get_config`` describes."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_learning_rate * decay_rate ** (step / decay_steps)

    With ``staircase`` the exponent is ``floor(step / decay_steps)``: the rate drops every
    ``decay_steps`` steps.

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, finite and >= 0.
    decay_steps : int or float
        Steps per factor of ``decay_rate``, > 0.
    decay_rate : float
        Finite and >= 0 (above 1 the rate grows).
    staircase : bool, default False
        Decay in whole steps of ``decay_steps``.
    name : str, default "ExponentialDecay"
        Kept for Keras' signature.
    initial_lr, rate : float, keyword only
        fastnn's earlier names: ``ExponentialDecay(initial_lr, rate=r)`` is ``decay_steps=1,
        decay_rate=r``.

    Raises
    ------
    TypeError
        If an argument has the wrong type, or ``decay_steps`` and ``decay_rate`` are missing.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    >>> schedule(0), schedule(2), round(schedule(3), 6)
    (0.1, 0.05, 0.035355)
    >>> ExponentialDecay(0.1, 2, 0.5, staircase=True)(3)
    0.05
    """

    def __init__(self, initial_learning_rate: float = _UNSET, decay_steps: float = _UNSET,
                 decay_rate: float = _UNSET, staircase: bool = False,
                 name: Optional[str] = "ExponentialDecay", *, initial_lr: float = _UNSET,
                 rate: float = _UNSET) -> None:
        initial = _either("initial_learning_rate", initial_learning_rate, "initial_lr",
                          initial_lr)
        decay_rate = _either("decay_rate", decay_rate, "rate", rate)
        if rate is not _UNSET and decay_steps is _UNSET:
            decay_steps = 1
        if initial is _UNSET or decay_steps is _UNSET or decay_rate is _UNSET:
            raise TypeError("ExponentialDecay needs initial_learning_rate, decay_steps and "
                            "decay_rate: ExponentialDecay(initial_learning_rate, decay_steps, "
                            "decay_rate, staircase=False)")
        self.initial_learning_rate = V.check_float("initial_learning_rate", initial, low=0.0)
        self.decay_steps = _steps("decay_steps", decay_steps)
        self.decay_rate = V.check_float("decay_rate", decay_rate, low=0.0)
        self.staircase = V.check_bool("staircase", staircase)
        self.name = _name(name, "ExponentialDecay")

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        try:
            return self.initial_learning_rate * self.decay_rate ** p
        except OverflowError:            # a growing rate past float64: the optimizer refuses it
            return math.inf

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from the initial rate to ``alpha`` times it over ``decay_steps`` steps,
    after an optional linear warmup (Keras 3's ``CosineDecay``).

    Without warmup: ``s = min(step, decay_steps)``,
    ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``.
    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly,
    ``initial + (warmup_target - initial) * step / warmup_steps``; then the decay above runs
    from ``warmup_target`` on ``step - warmup_steps``.

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, finite and >= 0.
    decay_steps : int or float
        Steps to decay over, > 0; from then on the rate stays at its floor.
    alpha : float, default 0.0
        The floor as a fraction of the rate decayed from, in [0, 1].
    name : str, default "CosineDecay"
        Kept for Keras' signature.
    warmup_target : float, optional
        The rate the warmup reaches, finite and >= 0; None: no warmup.
    warmup_steps : int, default 0
        Steps of warmup, >= 0.
    initial_lr, epochs, min_lr : keyword only
        fastnn's earlier names: ``initial_lr`` for ``initial_learning_rate``, ``epochs`` for
        ``decay_steps``, and ``min_lr``, the floor as a rate (``alpha = min_lr / initial``).

    Raises
    ------
    TypeError
        If an argument has the wrong type or is missing.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.schedules import CosineDecay
    >>> schedule = CosineDecay(0.1, decay_steps=10, alpha=0.1)
    >>> schedule(0), round(schedule(5), 6), round(schedule(10), 6), round(schedule(99), 6)
    (0.1, 0.055, 0.01, 0.01)
    >>> warm = CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=5)
    >>> warm(0), round(warm(1), 6), warm(5)
    (0.0, 0.02, 0.1)
    """

    def __init__(self, initial_learning_rate: float = _UNSET, decay_steps: float = _UNSET,
                 alpha: float = _UNSET, name: Optional[str] = "CosineDecay",
                 warmup_target: Optional[float] = None, warmup_steps: int = 0, *,
                 initial_lr: float = _UNSET, epochs: int = _UNSET,
                 min_lr: float = _UNSET) -> None:
        initial = _either("initial_learning_rate", initial_learning_rate, "initial_lr",
                          initial_lr)
        decay_steps = _either("decay_steps", decay_steps, "epochs", epochs)
        if initial is _UNSET or decay_steps is _UNSET:
            raise TypeError("CosineDecay needs initial_learning_rate and decay_steps: "
                            "CosineDecay(initial_learning_rate, decay_steps, alpha=0.0)")
        self.initial_learning_rate = V.check_float("initial_learning_rate", initial, low=0.0)
        self.decay_steps = _steps("decay_steps", decay_steps)
        if warmup_target is not None:
            warmup_target = V.check_float("warmup_target", warmup_target, low=0.0)
        self.warmup_target = warmup_target
        self.warmup_steps = V.check_int("warmup_steps", warmup_steps, low=0)
        if min_lr is not _UNSET:
            if alpha is not _UNSET:
                raise TypeError("give alpha or min_lr (the floor as a rate), not both")
            start = self.initial_learning_rate if warmup_target is None else warmup_target
            floor = V.check_float("min_lr", min_lr, low=0.0, high=start)
            alpha = floor / start if start > 0 else 0.0
        self.alpha = V.check_float("alpha", 0.0 if alpha is _UNSET else alpha, 0.0, 1.0)
        self.name = _name(name, "CosineDecay")

    def _decayed(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decayed(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decayed(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i - 1] < step <= boundaries[i]``, and ``values[-1]`` after the last boundary.

    Parameters
    ----------
    boundaries : list of int or float
        Strictly increasing steps.
    values : list of float
        One more than ``boundaries``, each finite and >= 0.
    name : str, default "PiecewiseConstant"
        Kept for Keras' signature.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``len(values) != len(boundaries) + 1``, the boundaries do not increase, or a
        value is out of range.

    Examples
    --------
    >>> from fastnn.schedules import PiecewiseConstantDecay
    >>> schedule = PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01])
    >>> [schedule(step) for step in range(6)]
    [0.1, 0.1, 0.1, 0.05, 0.05, 0.01]
    """

    def __init__(self, boundaries: list[float], values: list[float],
                 name: Optional[str] = "PiecewiseConstant") -> None:
        for arg, given in (("boundaries", boundaries), ("values", values)):
            if not isinstance(given, (list, tuple)):
                raise TypeError(f"{arg} must be a list of numbers. "
                                f"Received: {arg}={V._describe(given)}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"the length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={V._describe(list(boundaries))} of "
                             f"length {len(boundaries)}, and values="
                             f"{V._describe(list(values))} of length {len(values)}")
        bounds = [V.check_float(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"boundaries must increase strictly. "
                             f"Received: boundaries={V._describe(list(boundaries))}")
        self.boundaries = [V.plain(b) for b in boundaries]
        self.values = [V.check_float(f"values[{i}]", v, low=0.0) for i, v in enumerate(values)]
        self._bounds = bounds
        self.name = _name(name, "PiecewiseConstant")

    def __call__(self, step: int) -> float:
        return self.values[bisect.bisect_left(self._bounds, step)]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


class StepDecay(LearningRateSchedule):
    """lr = initial_lr * drop ** floor(step / every)  (``ExponentialDecay(initial_lr, every,
    drop, staircase=True)`` in Keras' terms)

    Parameters
    ----------
    initial_lr : float
        The rate of steps 0 .. every - 1, > 0.
    drop : float, default 0.5
        The factor applied every ``every`` steps, in (0, 1].
    every : int, default 10
        Steps (epochs, with ``LearningRateScheduler``) between drops, >= 1.

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

    def __call__(self, step: int) -> float:
        return self.initial_lr * self.drop ** (step // self.every)

    def get_config(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "drop": self.drop, "every": self.every}


SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls for cls in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay,
                                  StepDecay)}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, as Keras nests a schedule in an optimizer's
    config.

    Examples
    --------
    >>> from fastnn.schedules import CosineDecay, deserialize, serialize
    >>> config = serialize(CosineDecay(0.1, 100))
    >>> config["class_name"], deserialize(config)(100)
    ('CosineDecay', 0.0)
    """
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: Any) -> LearningRateSchedule:
    """The schedule a ``serialize`` dict describes (fastnn's own schedules only: a model file
    never names a class to import).

    Raises
    ------
    ValueError
        If ``config`` is not such a dict or names an unknown schedule.
    TypeError
        If its ``config`` holds an unknown argument or one of the wrong type.
    """
    if (not isinstance(config, dict) or set(config) - {"class_name", "config", "module",
                                                         "registered_name"}
            or not isinstance(config.get("config"), dict)):
        raise ValueError(f"a learning-rate schedule's config must be a dict "
                         f"{{'class_name': ..., 'config': {{...}}}}. "
                         f"Received: {V._describe(config)}")
    kind = config.get("class_name")
    if kind not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {V._describe(kind)}: fastnn has "
                         f"{sorted(SCHEDULES)}")
    return SCHEDULES[kind].from_config(config["config"])
