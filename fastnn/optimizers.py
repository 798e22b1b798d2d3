"""Optimizers: gradient descent with a learning rate, as one fused pass over all parameters.

The model keeps every parameter in one flat buffer (each layer's W and b are views into it) and
every gradient in another of the same layout, so an update is a single kernel call over the flat
arrays, whatever the number of layers. State buffers (velocity, moments) share that layout.

In the update rules below ``w`` is the flat parameter array, ``g`` its gradient (the mean over
the batch), ``lr`` the learning rate; every operation is element-wise.

Hyper-parameters are properties that validate every assignment, against the model's dtype once
``build`` has given it: an update must never turn a setting silently into inf or 0 (see
``Optimizer``). Their values live in the instance dict as ``_lr``, ``_momentum``, ... (Python
floats, ``_nesterov`` a bool) and the step count in ``_iterations`` (a 1-element int64 array),
where the compiled training plan reads and writes them.

Every optimizer also takes Keras' gradient clipping, ``clipnorm``, ``clipvalue`` or
``global_clipnorm`` (keyword only, at most one; see ``Optimizer``).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastnn import _validation as V
from fastnn import schedules
from fastnn._memory import aligned_zeros

if TYPE_CHECKING:
    FloatArray = NDArray[np.floating[Any]]

_ROUNDING = 1 + 2 ** -10     # slack over the exact-arithmetic bounds for the dtype's rounding
_MAX_ITERATIONS = 2 ** 53    # a step count every float64 holds exactly (beta ** t in double)


_NORMAL_RANGES: dict[Any, tuple[float, float]] = {}


def _normal_range(dtype: np.dtype[Any]) -> tuple[float, float]:
    """(finfo.tiny, finfo.max) of ``dtype`` as Python floats (cached)."""
    found = _NORMAL_RANGES.get(dtype)
    if found is None:
        info = np.finfo(dtype)
        found = _NORMAL_RANGES[dtype] = (float(info.tiny), float(info.max))
    return found


_max_abs = V.max_abs      # NaN or inf when a value is not finite


def _diverged() -> FloatingPointError:
    return FloatingPointError("a gradient or its update is NaN or inf: training diverged "
                              "(weights left unchanged). Lower the learning rate or scale the "
                              "inputs.")


def overflow_screen(dtype: DTypeLike) -> float:
    """S = sqrt(finfo(dtype).max) / 1000: a step whose max |g|, ``lr * max |g|`` and weight
    decay are all below S skips the exact overflow bound (``check_update``; the compiled
    training plan uses the same S). The hyper-parameter rules and ``check_state`` make sure that
    such a step cannot overflow."""
    return math.sqrt(float(np.finfo(dtype).max)) * 1e-3


def check_update(optimizer: Optimizer, params: FloatArray, grads: FloatArray,
                 G: Optional[float] = None) -> None:
    """Raise FloatingPointError before any parameter or state is touched when a gradient is NaN
    or inf, or when the update could overflow the dtype (the loss is summed in double, so it can
    stay finite while float32 gradients or ``lr * gradient`` overflow).

    The common case costs two reductions over the gradients (max |g|); the exact bound over the
    parameters and state (``optimizer._bound``) runs only when max |g|, the learning rate times
    max |g| or the weight decay reach ``overflow_screen(dtype)``. ``G``, when given, is a finite
    upper bound on max |g| known already (a clipped gradient's), and no reduction is taken.
    """
    if G is None:
        G = _max_abs(grads)
    if not math.isfinite(G):
        raise _diverged()
    screen = overflow_screen(params.dtype)
    if (G < screen and optimizer._lr * G < screen and optimizer._weight_decay < screen
            and not optimizer.__dict__["_verify_next"]):
        return
    if not optimizer._bound(params, G) * _ROUNDING < float(np.finfo(params.dtype).max):
        raise _diverged()
    optimizer.__dict__["_verify_next"] = False      # proved for this step's starting point


def _hyper_parameter(name: str, doc: str) -> property:
    """A public hyper-parameter: read from the instance's ``_<name>`` (where the compiled
    training plan reads it too), assigned through ``Optimizer._set``, which validates it."""
    slot = "_" + name

    def get(self: Optimizer) -> Any:
        try:
            return self.__dict__[slot]
        except KeyError:                      # not set yet (inside a constructor)
            raise AttributeError(name) from None

    def set_(self: Optimizer, value: Any) -> None:
        self._set(name, value)

    return property(get, set_, doc=doc)


class _Unset:
    def __repr__(self) -> str:
        return "<default>"


_UNSET: Any = _Unset()     # an argument not given (None is a value, refused as such)


def _alias(name: str, value: Any, alias: str, alias_value: Any, default: Any) -> Any:
    """The argument given as ``name`` or as its other name ``alias`` (TypeError if both), else
    ``default``."""
    if value is not _UNSET and alias_value is not _UNSET:
        raise TypeError(f"give {name} or {alias} (another name for it), not both. Received: "
                        f"{name}={value!r}, {alias}={alias_value!r}")
    return value if value is not _UNSET else alias_value if alias_value is not _UNSET else default


def _alias_property(name: str) -> property:
    """Keras' spelling of the hyper-parameter ``name`` (reads and assigns it)."""
    return property(lambda self: getattr(self, name), lambda self, v: setattr(self, name, v),
                    doc=f"Keras' name for ``{name}``.")


_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


class Optimizer:
    """Base class. ``build(n, dtype)`` allocates state; ``step(backend, params, grads)`` updates.

    Every hyper-parameter is checked when it is given (type, range, finite), and against the
    model's dtype once that is known (at ``build``, which ``Sequential.compile`` calls, and on
    every later assignment such as ``optimizer.lr = 0.01``): it must be a normal number of the
    dtype (``finfo.tiny <= |x| <= finfo.max``; exactly 0 where 0 is allowed), since anything else
    would silently become inf or 0 in the kernels, and the quantities the update derives from it
    must stay valid (see each optimizer). Before ``build`` the check uses float64, so a value no
    dtype holds is refused at once. A refused value leaves the optimizer unchanged.

    Gradient clipping follows Keras (``keras.optimizers.Optimizer``): at most one of the three
    settings, each None (off) or a number > 0, keyword-only arguments of every optimizer and
    assignable later. In one step, in this order:

    1. the gradient ``g`` is the mean over the batch of the loss's gradient plus the
       regularizers' (``kernel_regularizer`` ...): the gradient of the loss ``fit`` reports;
    2. fastnn's screen: a NaN or inf in ``g`` raises FloatingPointError, nothing changed (as
       without clipping; Keras would clip an inf);
    3. clipping, on ``g`` alone: ``clipvalue`` c: ``g = clip(g, -c, c)`` element-wise;
       ``clipnorm`` c: each weight tensor's gradient (a Dense layer's kernel, its bias, ...)
       ``g_k = g_k * c / max(||g_k||_2, c)``; ``global_clipnorm`` c: all of them
       ``g = g * c / max(sqrt(sum_k ||g_k||^2), c)``. Norms are sums of squares in double, in a
       fixed order (the same bits at any thread count); the scale is computed in double and
       rounded once to the model's dtype. ``opt.step(backend, params, grads)`` on bare flat
       arrays takes them as one tensor;
    4. the update rule with the clipped ``g``: the L2 ``weight_decay`` of SGD and Adam is then
       added to it (``g + weight_decay * w``, as PyTorch's ``weight_decay`` after
       ``clip_grad_norm_``), and AdamW's decoupled decay scales the weights (as Keras): the
       decay terms are never clipped.

    Parameters
    ----------
    lr : float or LearningRateSchedule
        The learning rate, finite and > 0; ``learning_rate`` is another name for it. It may be
        changed between steps (as ``LearningRateScheduler`` does, which may also set 0). Or a
        schedule (``fastnn.schedules``, Keras' signatures): the rate of each update is then
        ``schedule(iterations)``, the step counted from 0, on every path (``fit``,
        ``train_on_batch``, ``opt.step(model)``); it may be 0, and must be finite and 0 or a
        normal number of the dtype. ``lr`` then reads the rate of the next update, and a float
        cannot be assigned over the schedule (Keras' rule; assign another schedule).
    clipnorm : float or None, default None
        Clip each weight tensor's gradient to an L2 norm of at most ``clipnorm``.
    clipvalue : float or None, default None
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float or None, default None
        Clip the gradients of all weights together to a global L2 norm of at most
        ``global_clipnorm``. Each of the three must be a normal number of the model's dtype.

    Attributes
    ----------
    iterations : int
        The number of updates made since ``build`` (0 <= iterations < 2**53).

    Raises
    ------
    TypeError
        If ``lr`` or a clipping setting is not a real number (None turns clipping off).
    ValueError
        If ``lr`` or a clipping setting is not finite and > 0, or not a normal number of the
        dtype; or more than one clipping setting is given (Keras' rule).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([0.0, 0.0]), np.array([3.0, 4.0])       # ||g|| = 5
    >>> opt = fnn.SGD(lr=1.0, clipnorm=1.0)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)                     # g scaled to norm 1
    >>> w
    array([-0.6, -0.8])
    >>> fnn.SGD(clipnorm=1.0, clipvalue=0.5)
    Traceback (most recent call last):
    ...
    ValueError: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. ...
    """

    name = ""
    # Subclasses set these: the constructor arguments (for get_config and repr), and an upper
    # bound on every intermediate of the next update and |parameter| after it (for check_update).
    _hyper: tuple[str, ...]
    _bound: Callable[[FloatArray, float], float]
    # name -> (low, high, low_open, high_open) of each numeric hyper-parameter; one whose
    # interval includes 0 may be exactly 0, any other value must be normal in the dtype
    _ranges: dict[str, tuple[Optional[float], Optional[float], bool, bool]] = {
        "lr": (0.0, None, True, False), "weight_decay": (0.0, None, False, False)}
    _dtype: Optional[np.dtype[Any]] = None       # the model's, from build
    _schedule: Any = None          # a LearningRateSchedule giving each step's rate, or None
    _derived_uses_lr = False       # whether _check_derived has a rule involving lr
    _schedule_step = -1            # the step whose rate _lr holds (with a schedule)
    # the validated values behind the properties (set through _set, read by the plan)
    _lr: float
    _weight_decay: float
    _clipnorm: Optional[float]
    _clipvalue: Optional[float]
    _global_clipnorm: Optional[float]
    _clip_out: Optional[FloatArray] = None    # the clipped gradient (allocated while clipping)
    _size = 0                                 # the parameter count given to build

    @property
    def lr(self) -> float:
        """The learning rate, > 0 (validated on assignment; a callback may set 0); with a
        schedule, the rate of the next update, ``schedule(iterations)``."""
        if self._schedule is not None:
            return self._scheduled_rate()
        try:
            return self.__dict__["_lr"]
        except KeyError:                      # not set yet (inside a constructor)
            raise AttributeError("lr") from None

    @lr.setter
    def lr(self, value: Any) -> None:
        if isinstance(value, dict):
            value = schedules.deserialize(value)
        if isinstance(value, schedules.LearningRateSchedule):
            saved = self._schedule, self._schedule_step, self.__dict__.get("_lr")
            self._schedule, self._schedule_step = value, -1
            try:
                self._scheduled_rate()            # the first rate is checked at once
            except (TypeError, ValueError):
                self._schedule, self._schedule_step = saved[:2]
                if saved[2] is not None:
                    self.__dict__["_lr"] = saved[2]
                raise
            return
        if self._schedule is not None:
            raise TypeError(f"this optimizer's learning rate is a schedule "
                            f"({self._schedule!r}), so a rate cannot be assigned: assign "
                            f"another schedule, or create the optimizer with a float "
                            f"learning rate. Received: lr={V._describe(value)}")
        self._set("lr", value)

    def _scheduled_rate(self) -> float:
        """The schedule's rate for the next update, ``schedule(iterations)``, checked and kept
        in ``_lr`` (where the kernels and the compiled plan read it); computed once a step."""
        step = int(self._iterations[0])
        if step != self._schedule_step:
            try:
                rate = self._checked_rate(self._schedule(step))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"the learning-rate schedule {self._schedule!r} at step "
                                f"{step}: {exc}") from None
            self.__dict__["_lr"] = rate
            self._schedule_step = step
        return self.__dict__["_lr"]

    def _checked_rate(self, value: Any) -> float:
        """``value`` as a rate a schedule or callback may set: finite, >= 0, and 0 or a normal
        number of the dtype (within the optimizer's other rules); nothing is changed."""
        dtype = np.dtype(np.float64) if self._dtype is None else self._dtype
        tiny, huge = _normal_range(dtype)
        if (isinstance(value, float) and (value == 0.0 or tiny <= value <= huge)
                and not self._derived_uses_lr):
            return float(value)           # the common case, cheaply (a schedule's every step)
        value = V.check_float("lr", value, low=0.0)
        V.check_in_dtype("lr", value, dtype, zero_ok=True, owner=type(self).__name__)
        self._check_derived({**self._settings(), "lr": value}, dtype, "lr")
        return value

    def _set_rate(self, value: Any) -> None:
        """Set the rate as ``LearningRateScheduler`` and ``ReduceLROnPlateau`` do: as the ``lr``
        setter, but 0 is allowed (the weights then stay as they are)."""
        if self._schedule is not None:
            self.lr = value                       # the setter's TypeError (Keras' rule)
            return
        self.__dict__["_lr"] = self._checked_rate(value)
    weight_decay = _hyper_parameter("weight_decay", "The L2 weight decay, >= 0.")
    clipnorm = _hyper_parameter("clipnorm", "Each weight tensor's gradient norm bound, or None.")
    clipvalue = _hyper_parameter("clipvalue", "The bound on each gradient element, or None.")
    global_clipnorm = _hyper_parameter("global_clipnorm",
                                       "The bound on all gradients' global norm, or None.")

    def __init__(self, lr: float, *, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        # one array for the whole life of the optimizer: the compiled training plan writes it
        self._iterations = np.zeros(1, dtype=np.int64)
        self._verify_next = False        # see verify_next_step (the compiled plan reads it)
        given = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                 "global_clipnorm": global_clipnorm}
        for key in _CLIPPING:
            self.__dict__["_" + key] = None
        _check_one_clipping(given)
        for key, value in given.items():
            setattr(self, key, value)
        self.lr = lr

    @property
    def learning_rate(self) -> float:
        """Keras' name for ``lr``."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr = value

    @property
    def iterations(self) -> int:
        """The number of updates made since ``build``."""
        return int(self._iterations[0])

    @iterations.setter
    def iterations(self, value: int) -> None:
        value = V.check_int("iterations", value, low=0)
        if value >= _MAX_ITERATIONS:
            raise ValueError(f"iterations must be < 2**53. Received: iterations={value}")
        self._iterations[0] = value

    def _set(self, name: str, value: Any) -> None:
        """Validate ``value`` for hyper-parameter ``name`` with the others as they are, then
        store it (as the compiled plan reads it: a Python float, or bool)."""
        if name in _CLIPPING:
            self._set_clipping(name, value)
            return
        if name in self._ranges:
            low, high, low_open, high_open = self._ranges[name]
            value = V.check_float(name, value, low, high, low_open, high_open)
        else:
            value = V.check_bool(name, value)
        dtype = np.dtype(np.float64 if self._dtype is None else self._dtype)   # float64: widest
        self._check_settings({**self._settings(), name: value}, dtype, name)
        self.__dict__["_" + name] = value

    def _set_clipping(self, name: str, value: Any) -> None:
        """A clipping setting: None, or a number > 0 normal in the dtype; at most one set."""
        if value is not None:
            value = V.check_float(name, value, 0.0, None, True, False)
            _check_one_clipping({**{k: self.__dict__["_" + k] for k in _CLIPPING}, name: value})
            dtype = np.dtype(np.float64 if self._dtype is None else self._dtype)
            V.check_in_dtype(name, value, dtype, owner=type(self).__name__)
            if self._dtype is not None and self._clip_out is None:
                self._clip_out = aligned_zeros(self._size, self._dtype)
        self.__dict__["_" + name] = value

    def _clipping(self) -> bool:
        return not (self._clipnorm is None and self._clipvalue is None
                    and self._global_clipnorm is None)

    def _clip_settings(self) -> tuple[float, float, float]:
        """(clipnorm, clipvalue, global_clipnorm) as the kernels take them: 0.0 for off."""
        return (self._clipnorm or 0.0, self._clipvalue or 0.0, self._global_clipnorm or 0.0)

    def _settings(self) -> dict[str, Any]:
        # during __init__ only the hyper-parameters set so far
        return {k: self.__dict__["_" + k] for k in self._hyper if "_" + k in self.__dict__}

    def _check_settings(self, settings: dict[str, Any], dtype: np.dtype[Any],
                        name: Optional[str]) -> None:
        """ValueError unless ``settings`` suit ``dtype``; ``name``, if given, is the one being
        assigned (the others passed already)."""
        for key in self._ranges if name is None else (name,):
            if key in settings and key in self._ranges:
                low, _, low_open, _ = self._ranges[key]
                zero_ok = low == 0.0 and not low_open or key == "lr" and (
                    self._schedule is not None or settings[key] == 0.0)   # set by a schedule
                V.check_in_dtype(key, settings[key], dtype, zero_ok=zero_ok,
                                 owner=type(self).__name__)
        if name is None:
            for key in _CLIPPING:
                if self.__dict__.get("_" + key) is not None:
                    V.check_in_dtype(key, self.__dict__["_" + key], dtype,
                                     owner=type(self).__name__)
        self._check_derived(settings, dtype, name)

    def _check_derived(self, settings: dict[str, Any], dtype: np.dtype[Any],
                       name: Optional[str]) -> None:
        """Subclasses: ValueError when a quantity the update derives from ``settings`` is not
        valid in ``dtype`` (naming ``name`` when it is involved)."""

    def check_dtype(self, dtype: DTypeLike) -> None:
        """Raise ValueError if a hyper-parameter does not suit ``dtype`` (``build`` runs this
        first). Nothing is changed."""
        self._check_settings(self._settings(), np.dtype(V.check_dtype(dtype)), None)

    def build(self, size: int, dtype: DTypeLike) -> None:
        """Check the hyper-parameters against ``dtype`` (``check_dtype``), then allocate the
        state for ``size`` parameters (zeroed) and set ``iterations`` to 0. When the check
        fails nothing is changed."""
        dt = np.dtype(V.check_dtype(dtype))
        self._check_settings(self._settings(), dt, None)
        size = V.check_int("size", size, low=0)
        self._make_state(size, dt)
        self._clip_out = aligned_zeros(size, dt) if self._clipping() else None
        self._size = size
        self._dtype = dt
        self._iterations[0] = 0
        self._schedule_step = -1              # the next rate is checked against the dtype

    def _make_state(self, size: int, dtype: np.dtype[Any]) -> None:
        """Subclasses: allocate the zeroed state arrays."""

    def step(self, backend: Any, params: Optional[FloatArray] = None,
             grads: Optional[FloatArray] = None) -> None:
        """One update: ``opt.step(model)`` from the gradients ``model.backward`` accumulated
        (the low-level loop; the optimizer is built for the model on first use), or
        ``opt.step(backend, params, grads)`` on flat arrays of the size given to ``build``.
        Counts the step in ``iterations``.

        With clipping on, ``opt.step(model)`` clips each weight tensor (``clipnorm``) and
        ``opt.step(backend, params, grads)`` the flat ``grads`` as one tensor; ``grads`` itself
        is never changed (the clipped gradient goes to a buffer of the optimizer's).

        Raises
        ------
        FloatingPointError
            If a gradient is NaN or inf or the update could overflow; nothing is changed then.
        ValueError
            If the optimizer was built for parameters of another size or dtype than the
            model's.
        """
        if params is None and grads is None:
            backend._step_optimizer(self)     # the model: it calls back with its arrays
            return
        self._apply(backend, params, grads, None)          # type: ignore[arg-type]

    def _apply(self, backend: ModuleType, params: FloatArray, grads: FloatArray,
               bounds: Optional[NDArray[np.int64]]) -> None:
        """The step on flat arrays whose weight tensors are ``[bounds[k], bounds[k + 1])``
        (None: one tensor): screen, clip (see the class docstring), check, update."""
        if self._schedule is not None:
            self._scheduled_rate()            # this step's rate, into _lr
        G = None
        if self._clipping():
            G = _max_abs(grads)               # the screen on the raw gradients
            if not math.isfinite(G):
                raise _diverged()
            grads = self._clip(backend, grads, bounds)
            # every clipped |g_i| is within the setting (|g_i| <= ||g_k|| <= clipnorm, ...),
            # so the overflow check needs no second reduction
            G = min(G, max(self._clip_settings()))
        check_update(self, params, grads, G)
        self._update(backend, params, grads)

    def _clip(self, backend: ModuleType, grads: FloatArray,
              bounds: Optional[NDArray[np.int64]]) -> FloatArray:
        """The clipped gradient (in ``_clip_out``), or ``grads`` when clipping changes nothing
        (``grads`` is finite: ``_apply`` screened it)."""
        out = self._clip_out
        if out is None or out.shape != grads.shape or out.dtype != grads.dtype:
            raise ValueError(f"{type(self).__name__} was built for {self._size} parameters of "
                             f"{self._dtype}, not {grads.dtype}{list(grads.shape)}: call build")
        if bounds is None:
            bounds = np.array([0, grads.size], dtype=np.int64)
        if backend.clip_gradients(grads, out, bounds, *self._clip_settings()):
            return out
        return grads

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        """Subclasses: the fused update kernel (which advances the count); ``_apply`` has run
        ``check_update`` on ``grads``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- fused into a compiled step
    #: update rules a compiled training plan can run inside its step (fastnn/_ext/_train.pxi)
    FUSED_SGD, FUSED_ADAM = 0, 1

    def fused_rule(self) -> Optional[tuple[int, tuple[FloatArray, ...], NDArray[np.int64]]]:
        """``(rule, state buffers, step counter)`` when a compiled training plan may run this
        optimizer's update inside its step (``FUSED_SGD``: velocity; ``FUSED_ADAM``: m, v; the
        counter is the 1-element array behind ``iterations``, which the plan advances with each
        update), else None (the plan is not used: the update runs here). Only the rules as
        shipped fuse: a subclass that overrides the update gets None."""
        return None

    def fused_hyperparameters(self) -> tuple[Any, ...]:
        """What a fused update reads at each step: ``(state buffers, lr, h1, h2, h3,
        weight_decay, verify, clip buffer, clipnorm, clipvalue, global_clipnorm)`` (SGD: h1
        momentum, h2 nesterov as 1.0/0.0; Adam: beta1, beta2, eps; ``verify``:
        ``verify_next_step`` was asked; the clip settings 0.0 when off, the buffer None while
        none was on since ``build``). The plan compares the buffers with the ones it was built
        on: after ``build`` they are new, and it is built again."""
        raise NotImplementedError(f"{type(self).__name__} has no fused update")

    def _fused_clipping(self) -> tuple[Any, ...]:
        return (self._clip_out, *self._clip_settings())

    def get_config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``: what ``get_optimizer`` rebuilds it from. The
        clipping settings appear when set (Keras lists them as None otherwise; both load)."""
        config = self._settings_with_clipping()
        if self._schedule is not None:
            config["lr"] = schedules.serialize(self._schedule)
        return {"name": self.name, **config}

    def _settings_with_clipping(self) -> dict[str, Any]:
        """The hyper-parameters (``lr``: the schedule itself, if any) and the clipping set."""
        return {**{k: self.__dict__["_" + k] for k in self._hyper},
                **({"lr": self._schedule} if self._schedule is not None else {}),
                **{k: self.__dict__["_" + k] for k in _CLIPPING
                   if self.__dict__["_" + k] is not None}}

    def state(self) -> dict[str, FloatArray | None]:
        """Named state arrays (views, for saving and loading in place)."""
        return {}

    def check_state(self, params: FloatArray) -> None:
        """Refuse a state that no training run produces (a damaged or forged model file) before
        a step uses it: the state arrays match ``params``, every value is finite, ``iterations``
        is in [0, 2**53), and the optimizer's own rules hold (Adam: ``v >= 0``; ``m`` and ``v``
        zero at ``iterations == 0``). Whether one step from this state could overflow depends on
        the gradient, so it is left to that step: the next one takes the exact bound
        (``verify_next_step``).

        Raises
        ------
        ValueError
            Naming the state array and the problem. Nothing is changed.
        """
        if self._dtype is None:
            raise ValueError(f"{type(self).__name__}.check_state needs a built optimizer: call "
                             f"build(size, dtype) first")
        t = int(self._iterations[0])
        if not 0 <= t < _MAX_ITERATIONS:
            raise ValueError(f"optimizer state 'iterations' must be in [0, 2**53). "
                             f"Received: iterations={t}")
        for key, arr in self.state().items():
            if arr is None:
                continue
            if arr.shape != params.shape or arr.dtype != params.dtype:
                raise ValueError(f"optimizer state {key!r} must be {params.dtype}"
                                 f"{list(params.shape)} like the parameters. Received: "
                                 f"{arr.dtype}{list(arr.shape)}")
            _check_state_array(key, arr, ~np.isfinite(arr), "be finite")
        self._check_state_rules(t)
        self.verify_next_step()

    def verify_next_step(self) -> None:
        """Make the next update check the exact overflow bound over the parameters and the
        state, not only the screen on the gradients (``check_update``).

        The screen alone is safe for parameters and state that earlier screened steps produced;
        after they come from elsewhere (a model file, ``set_weights``) the next step proves
        it, and raises FloatingPointError, changing nothing, if the update could overflow.
        """
        self.__dict__["_verify_next"] = True

    def _check_state_rules(self, iterations: int) -> None:
        """Subclasses: ValueError when the state breaks a rule of their update."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings_with_clipping().items())
        return f"{type(self).__name__}({args})"


def _check_one_clipping(settings: dict[str, Any]) -> None:
    """Keras' rule: ValueError when more than one of the clipping settings is not None."""
    if sum(settings[k] is not None for k in _CLIPPING) > 1:
        raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                         + "Received: " + ", ".join(f"{k}={settings[k]!r}" for k in _CLIPPING))


def _check_state_array(key: str, arr: FloatArray, bad: NDArray[np.bool_], rule: str) -> None:
    """ValueError naming the first element of ``arr`` where ``bad`` holds."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"optimizer state {key!r} must {rule}. Received: {key}[{i}]="
                         f"{arr.flat[i]!r}")


def _below_one(name: str, value: float, dtype: np.dtype[Any], owner: str, why: str) -> None:
    held = float(dtype.type(value))
    if not held < 1.0:
        raise ValueError(f"{owner}: {name} must round to a number below 1 in {dtype.name} "
                         f"({why}). Received: {name}={value!r}, which {dtype.name} holds as "
                         f"{held!r}")


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * (nesterov ? g + momentum * v : v)
    With momentum 0 this is plain gradient descent, w -= lr * g (PyTorch's convention).

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, > 0 and a normal number of the model's dtype (float32: >= 1.18e-38,
        <= 3.4e38).
    momentum : float, default 0.0
        Momentum factor in [0, 1), 0 or normal in the dtype, and below 1 once rounded to it
        (float32(0.99999999) is 1: the velocity would never decay); 0 keeps no velocity.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        L2 penalty coefficient, >= 0 (0 or normal in the dtype), added to the gradient (biases
        included).

    learning_rate : float, keyword only
        Keras' name for ``lr`` (give one of the two).
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``): clipped before the update
        rule, and before any weight decay term is added.

    Every one may be assigned later (``opt.momentum = 0.95``) under the same rules; see
    ``Optimizer``. ``iterations`` counts the updates.

    Raises
    ------
    TypeError
        If a number is not a real number or ``nesterov`` is not a bool, or both ``lr`` and
        ``learning_rate`` are given.
    ValueError
        If a value is out of its range, or ``nesterov=True`` with ``momentum=0``; at ``build``
        (``compile``) or on assignment after it, if a value does not suit the model's dtype.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.SGD(lr=0.05, momentum=0.9)
    SGD(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0)

    One step by hand (``Sequential.train_on_batch`` does this for a model):

    >>> import numpy as np
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.SGD(lr=0.1)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # w -= 0.1 * g
    >>> w, opt.iterations
    (array([0.95, 2.1 ]), 1)
    """

    _momentum: float
    _nesterov: bool
    name = "sgd"
    _hyper = ("lr", "momentum", "nesterov", "weight_decay")
    _ranges = {**Optimizer._ranges, "momentum": (0.0, 1.0, False, True)}

    momentum = _hyper_parameter("momentum", "The momentum factor, in [0, 1).")
    nesterov = _hyper_parameter("nesterov", "Whether the momentum is Nesterov's.")

    def __init__(self, lr: float = _UNSET, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, learning_rate: float = _UNSET,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 0.01),
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self._velocity: FloatArray | None = None

    def _check_derived(self, settings: dict[str, Any], dtype: np.dtype[Any],
                       name: Optional[str]) -> None:
        momentum = settings.get("momentum", 0.0)
        if settings.get("nesterov") and momentum == 0.0:
            if name == "momentum":
                raise ValueError("momentum must be > 0 while nesterov=True. "
                                 "Received: momentum=0.0")
            raise ValueError("nesterov=True needs momentum > 0. Received: momentum=0.0")
        if name in (None, "momentum"):
            _below_one("momentum", momentum, dtype, "SGD", "else the velocity never decays")

    def _make_state(self, size: int, dtype: np.dtype[Any]) -> None:
        self._velocity = aligned_zeros(size, dtype)

    def _bound(self, params: FloatArray, G: float) -> float:
        # |g'| <= G + wd |p|;  |v'| <= mu |v| + |g'|;  |p'| <= |p| + lr (1 + mu) |v'|
        P = _max_abs(params)
        mu = self._momentum
        V_ = _max_abs(self._velocity) if mu else 0.0    # type: ignore[arg-type]
        v_new = mu * V_ + G + self._weight_decay * P
        return max(v_new, P + self._lr * (1 + mu) * v_new)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        # the backend advances the step count with the update, in one uninterruptible call
        backend.sgd_update(params, grads, self._velocity, self._lr, self._momentum,
                           self._nesterov, self._weight_decay, self._iterations)

    def state(self) -> dict[str, FloatArray | None]:
        return {"velocity": self._velocity}

    def fused_rule(self) -> Optional[tuple[int, tuple[FloatArray, ...], NDArray[np.int64]]]:
        if type(self)._update is not SGD._update or self._velocity is None:
            return None
        return self.FUSED_SGD, (self._velocity,), self._iterations

    def fused_hyperparameters(self) -> tuple[Any, ...]:
        lr = self._lr if self._schedule is None else self._scheduled_rate()
        return ((self._velocity,), lr, self._momentum, 1.0 if self._nesterov else 0.0,
                0.0, self._weight_decay, self._verify_next, *self._fused_clipping())


class _Moments(Optimizer):
    """What Adam, Adamax and Nadam share: ``beta1``, ``beta2`` and ``eps`` (Keras' names as
    aliases) and their rules against the dtype: each beta below 1 once rounded, and ``eps``
    large enough that a gradient which passes the overflow screen cannot overflow a weight."""

    _beta1: float
    _beta2: float
    _eps: float
    _derived_uses_lr = True        # lr against eps
    _ranges = {**Optimizer._ranges, "beta1": (0.0, 1.0, False, True),
               "beta2": (0.0, 1.0, False, True), "eps": (0.0, None, True, False)}

    beta1 = _hyper_parameter("beta1", "The first-moment decay, in [0, 1).")
    beta2 = _hyper_parameter("beta2", "The second-moment decay, in [0, 1).")
    eps = _hyper_parameter("eps", "The denominator's stabiliser, > 0.")

    beta_1 = _alias_property("beta1")
    beta_2 = _alias_property("beta2")
    epsilon = _alias_property("eps")

    # the state: a first moment m and a second statistic v, saved under _second_key
    _m: FloatArray | None = None
    _v: FloatArray | None = None
    _second_key = "v"
    _second_rule = "be >= 0 (a decaying mean of squared gradients)"

    @staticmethod
    def _reach(settings: dict[str, Any]) -> float:
        """An upper bound on |step| / (lr |g|_max / eps) over every step of the rule."""
        return 1.0

    def _make_state(self, size: int, dtype: np.dtype[Any]) -> None:
        self._m = aligned_zeros(size, dtype)
        self._v = aligned_zeros(size, dtype)

    def state(self) -> dict[str, FloatArray | None]:
        return {"m": self._m, self._second_key: self._v}

    def _check_state_rules(self, iterations: int) -> None:
        m, v = self._m, self._v
        assert m is not None and v is not None, "built"
        _check_state_array(self._second_key, v, v < 0, self._second_rule)
        if iterations == 0:
            for key, arr in (("m", m), (self._second_key, v)):
                _check_state_array(key, arr, arr != 0,            # type: ignore[arg-type]
                                   "be 0 at iterations=0 (a fresh optimizer)")

    def _check_derived(self, settings: dict[str, Any], dtype: np.dtype[Any],
                       name: Optional[str]) -> None:
        for key in ("beta1", "beta2"):
            if key in settings and name in (None, key):
                _below_one(key, settings[key], dtype, type(self).__name__,
                           "else 1 - beta is lost and the estimate never decays")
        if "eps" not in settings or name not in (None, "lr", "eps", "beta1"):
            return
        # From a fresh state (or wherever v_hat is 0) m_hat = g, so a step moves a weight by up
        # to lr |g| / eps (times _reach); the screen lets through lr |g| < S with |g| < S.
        lr, eps = settings["lr"], settings["eps"]
        screen, limit = overflow_screen(dtype), float(np.finfo(dtype).max)
        factor = self._reach(settings) * _ROUNDING
        reach = min(lr, 1.0) * screen / eps * factor
        if reach < limit:
            return
        why = (f"a gradient that passes the overflow screen (|g| < {screen:.4g} and lr * |g| < "
               f"{screen:.4g}) can move a weight by lr * |g| / eps, up to {reach:.4g}, beyond "
               f"the {dtype.name} maximum {limit:.4g}")
        owner = type(self).__name__
        if name == "lr":
            raise ValueError(f"{owner}: lr must be < {eps * limit / (screen * factor):.6g} with "
                             f"eps={eps!r} in {dtype.name}: {why}. Received: lr={lr!r}")
        raise ValueError(f"{owner}: eps must be > {min(lr, 1.0) * screen * factor / limit:.6g} "
                         f"with lr={lr!r} in {dtype.name}: {why}. Received: eps={eps!r}")


class Adam(_Moments):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay added to the gradient.

    g = grad + weight_decay * w;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    w -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t) and v_hat = v / (1 - b2^t)
    at step t = 1, 2, ... (``iterations`` counts the steps taken).

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0 and a normal number of the model's dtype.
    beta1 : float, default 0.9
        Decay of the first-moment (mean) estimate, in [0, 1), 0 or normal in the dtype, and
        below 1 once rounded to it.
    beta2 : float, default 0.999
        Decay of the second-moment (uncentred variance) estimate, as ``beta1``
        (float32(1 - 1e-9) is 1: the estimate would never decay).
    eps : float, default 1e-8
        Added to ``sqrt(v_hat)`` for stability, > 0 and normal in the dtype, and large enough
        that a gradient below the overflow screen S of ``check_update`` cannot overflow a
        weight: where v_hat is 0 a step moves a weight by up to ``lr * |g| / eps``, so
        ``eps >= min(lr, 1) * S / finfo.max`` (float32: ``5.4e-23 * min(lr, 1)``; float64:
        ``7.5e-158 * min(lr, 1)``).
    weight_decay : float, default 0.0
        L2 penalty coefficient, >= 0 (0 or normal in the dtype), added to the gradient (not
        decoupled as in AdamW).
    learning_rate, beta_1, beta_2, epsilon : float, keyword only
        Keras' names for ``lr``, ``beta1``, ``beta2``, ``eps`` (give one of each pair; the
        Keras names are also attributes). Keras adds its epsilon to ``sqrt(v)`` before the bias
        correction ("epsilon hat"); here ``eps`` is added to ``sqrt(v_hat)``, as in PyTorch.
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``): clipped before the update
        rule, and before any weight decay term is added.

    Every one may be assigned later (``opt.lr = 1e-4``) under the same rules; see
    ``Optimizer``.

    Raises
    ------
    TypeError
        If a value is not a real number, or a value is given under both of its names.
    ValueError
        If a value is out of its range; at ``build`` (``compile``) or on assignment after it, if
        a value does not suit the model's dtype.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Adam(lr=1e-3)
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.0)

    The first step moves every weight by about ``lr`` against the sign of its gradient:

    >>> import numpy as np
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.Adam(lr=0.1)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)
    >>> w.round(6), opt.iterations
    (array([0.9, 2.1]), 1)
    """

    name = "adam"
    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = _UNSET, beta1: float = _UNSET, beta2: float = _UNSET,
                 eps: float = _UNSET, weight_decay: float = 0.0, *, learning_rate: float = _UNSET,
                 beta_1: float = _UNSET, beta_2: float = _UNSET, epsilon: float = _UNSET,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 1e-3),
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.beta1 = _alias("beta1", beta1, "beta_1", beta_1, 0.9)
        self.beta2 = _alias("beta2", beta2, "beta_2", beta_2, 0.999)
        self.eps = _alias("eps", eps, "epsilon", epsilon, 1e-8)
        self.weight_decay = weight_decay
        self._m = None
        self._v = None

    def _bound(self, params: FloatArray, G: float) -> float:
        P = _max_abs(params)
        return self._moments_bound(P, G + self._weight_decay * P)

    def _moments_bound(self, P: float, g: float) -> float:
        # |g'| <= g (= G + wd |p|);  |m'| <= b1 |m| + (1 - b1) |g'|;  v' <= b2 v + (1 - b2) g'^2;
        # |p'| <= |p| + lr |m'| / (1 - b1^t) / eps   (sqrt(v_hat) + eps >= eps); with every
        # intermediate (g'^2, m_hat, v_hat) below the result too
        M, V_ = _max_abs(self._m), _max_abs(self._v)     # type: ignore[arg-type]
        b1, b2 = self._beta1, self._beta2
        t = int(self._iterations[0]) + 1
        m_hat = (b1 * M + (1 - b1) * g) / (1 - b1 ** t)
        v_hat = (b2 * V_ + (1 - b2) * g * g) / (1 - b2 ** t)
        return max(g * g, v_hat, m_hat, P + self._lr * m_hat / self._eps)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        t = int(self._iterations[0]) + 1
        backend.adam_update(params, grads, self._m, self._v, t, self._lr, self._beta1,
                            self._beta2, self._eps, self._weight_decay, self._iterations)

    def fused_rule(self) -> Optional[tuple[int, tuple[FloatArray, ...], NDArray[np.int64]]]:
        # AdamW's decoupled decay is another rule: it overrides _update, so it does not fuse
        if type(self)._update is not Adam._update or self._m is None or self._v is None:
            return None
        return self.FUSED_ADAM, (self._m, self._v), self._iterations

    def fused_hyperparameters(self) -> tuple[Any, ...]:
        lr = self._lr if self._schedule is None else self._scheduled_rate()
        return ((self._m, self._v), lr, self._beta1, self._beta2, self._eps,
                self._weight_decay, self._verify_next, *self._fused_clipping())



class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as Keras and
    PyTorch have it.

    w -= lr * weight_decay * w;  then Adam's update of the decayed w with the plain gradient:
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * m_hat / (sqrt(v_hat) + eps).
    The decay scales every parameter, biases included (Keras and PyTorch do the same unless told
    otherwise). ``eps`` is added to ``sqrt(v_hat)`` as in PyTorch and fastnn's Adam; Keras adds
    it to ``sqrt(v)`` before the bias correction, which differs by ``sqrt(1 - b2^t)`` in eps
    alone.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, as Adam's.
    weight_decay : float, default 0.004
        Decoupled decay, >= 0 (Keras' default; PyTorch's is 0.01), with ``lr * weight_decay``
        at most 1 (more would flip the sign of the weights) and, unless 0, a normal number of
        the dtype.
    beta1, beta2 : float, default 0.9, 0.999
        As Adam's.
    eps : float, default 1e-7
        As Adam's (Keras' default).
    learning_rate, beta_1, beta_2, epsilon : float, keyword only
        Keras' names for ``lr``, ``beta1``, ``beta2``, ``eps``.
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``): clipped before the update
        rule, and before any weight decay term is added.

    The positional order is Keras': ``AdamW(learning_rate, weight_decay, beta_1, beta_2,
    epsilon)``. Raises as Adam.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, -2.0]), np.array([0.0, 0.0])
    >>> opt = fnn.AdamW(learning_rate=0.1, weight_decay=0.5)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # no gradient: the decay alone
    >>> w
    array([ 0.95, -1.9 ])
    """

    name = "adamw"
    _hyper = ("lr", "weight_decay", "beta1", "beta2", "eps")

    def __init__(self, lr: float = _UNSET, weight_decay: float = 0.004, beta1: float = _UNSET,
                 beta2: float = _UNSET, eps: float = _UNSET, *, learning_rate: float = _UNSET,
                 beta_1: float = _UNSET, beta_2: float = _UNSET, epsilon: float = _UNSET,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 1e-3),
                         _alias("beta1", beta1, "beta_1", beta_1, 0.9),
                         _alias("beta2", beta2, "beta_2", beta_2, 0.999),
                         _alias("eps", eps, "epsilon", epsilon, 1e-7), weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)

    def _check_derived(self, settings: dict[str, Any], dtype: np.dtype[Any],
                       name: Optional[str]) -> None:
        super()._check_derived(settings, dtype, name)
        if "weight_decay" not in settings or name not in (None, "lr", "weight_decay"):
            return
        lr, wd = settings["lr"], settings["weight_decay"]
        if wd == 0.0 or lr == 0.0:           # lr 0: a schedule's (no decay in that step)
            return
        if lr * wd > 1.0:
            raise ValueError(f"AdamW: lr * weight_decay must be <= 1 (the decay w -= lr * "
                             f"weight_decay * w would flip the sign of the weights). Received: "
                             f"lr={lr!r}, weight_decay={wd!r}")
        V.check_in_dtype("lr * weight_decay", lr * wd, dtype, owner="AdamW")

    def _bound(self, params: FloatArray, G: float) -> float:
        # the decay leaves |w| <= P (lr wd <= 1); then Adam's bound with the plain gradient
        return self._moments_bound(_max_abs(params), G)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        t = int(self._iterations[0]) + 1
        backend.adamw_update(params, grads, self._m, self._v, t, self._lr, self._beta1,
                             self._beta2, self._eps, self._weight_decay, self._iterations)


def _no_weight_decay(owner: str) -> property:
    return property(lambda self: 0.0, doc=f"{owner} has no weight decay: 0.0.")


class RMSprop(Optimizer):
    """RMSprop as Keras defines it (Tieleman & Hinton, 2012), with optional momentum and the
    centered variant (Graves, 2013).

    v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g and d = max(v - a^2, 0) + eps,
    otherwise d = v + eps;  inc = lr g / sqrt(d);  with momentum: b = momentum b + inc,
    w -= b;  without: w -= inc.

    Two choices follow Keras and differ from PyTorch's ``RMSprop``: ``eps`` is added under the
    square root (PyTorch adds it to ``sqrt(v)``), and the momentum buffer holds the step with
    ``lr`` in it (PyTorch's holds ``g / (sqrt(v) + eps)`` and multiplies by ``lr`` after: the
    same while ``lr`` is constant). With ``eps`` negligible against ``v`` both give the same
    steps. The centered variance is clamped at 0, where Keras and PyTorch would take the square
    root of a value that rounding made negative. There is no weight decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0 and a normal number of the model's dtype.
    rho : float, default 0.9
        Decay of the moving averages, in [0, 1), 0 or normal in the dtype, and below 1 once
        rounded to it (PyTorch calls it ``alpha``).
    momentum : float, default 0.0
        Momentum factor in [0, 1), as ``rho``; 0 keeps no buffer in use.
    eps : float, default 1e-7
        Added to the mean square under the root, > 0 and normal in the dtype. (Any such eps
        keeps a step finite: ``S / sqrt(finfo.tiny) < finfo.max`` for the screen S of
        ``check_update`` in both dtypes.)
    centered : bool, default False
        Divide by the root of the variance estimate instead of the mean square.
    learning_rate, epsilon : float, keyword only
        Keras' names for ``lr`` and ``eps`` (give one of each pair).
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``): clipped before the update
        rule, and before any weight decay term is added.

    Every one may be assigned later under the same rules; see ``Optimizer``. ``state()`` holds
    ``mean_square`` (v), ``mean_gradient`` (a) and ``momentum`` (b); all three are kept, so that
    ``centered`` and ``momentum`` may change between steps (their state then starts at 0).

    Raises
    ------
    TypeError
        If a number is not a real number, ``centered`` is not a bool, or a value is given under
        both of its names.
    ValueError
        If a value is out of its range; at ``build`` (``compile``) or on assignment after it, if
        a value does not suit the model's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.RMSprop(learning_rate=0.01, rho=0.0, epsilon=1e-12)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # rho 0: w -= lr * sign(g)
    >>> w.round(9)
    array([0.99, 2.01])
    """

    _rho: float
    _momentum: float
    _eps: float
    _centered: bool
    name = "rmsprop"
    _hyper = ("lr", "rho", "momentum", "eps", "centered")
    _ranges = {"lr": Optimizer._ranges["lr"], "rho": (0.0, 1.0, False, True),
               "momentum": (0.0, 1.0, False, True), "eps": (0.0, None, True, False)}
    _weight_decay = 0.0      # none (check_update reads it)

    rho = _hyper_parameter("rho", "The decay of the moving averages, in [0, 1).")
    momentum = _hyper_parameter("momentum", "The momentum factor, in [0, 1).")
    eps = _hyper_parameter("eps", "Added to the mean square under the root, > 0.")
    centered = _hyper_parameter("centered", "Whether to divide by the variance estimate.")
    epsilon = _alias_property("eps")

    weight_decay = _no_weight_decay("RMSprop")

    def __init__(self, lr: float = _UNSET, rho: float = 0.9, momentum: float = 0.0,
                 eps: float = _UNSET, centered: bool = False, *, learning_rate: float = _UNSET,
                 epsilon: float = _UNSET, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 1e-3),
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.rho = rho
        self.momentum = momentum
        self.eps = _alias("eps", eps, "epsilon", epsilon, 1e-7)
        self.centered = centered
        self._mean_square: FloatArray | None = None
        self._mean_grad: FloatArray | None = None
        self._buffer: FloatArray | None = None

    def _check_derived(self, settings: dict[str, Any], dtype: np.dtype[Any],
                       name: Optional[str]) -> None:
        for key, why in (("rho", "else 1 - rho is lost and the averages never decay"),
                         ("momentum", "else the buffer never decays")):
            if key in settings and name in (None, key):
                _below_one(key, settings[key], dtype, "RMSprop", why)

    def _make_state(self, size: int, dtype: np.dtype[Any]) -> None:
        self._mean_square = aligned_zeros(size, dtype)
        self._mean_grad = aligned_zeros(size, dtype)
        self._buffer = aligned_zeros(size, dtype)

    def _bound(self, params: FloatArray, G: float) -> float:
        # v' <= rho v + (1 - rho) G^2;  d >= eps, so |inc| <= lr G / sqrt(eps);
        # |a'| <= rho |a| + (1 - rho) G (a'^2 computed);  |b'| <= mu |b| + |inc|;
        # |p'| <= |p| + |b'| (or |inc|)
        P = _max_abs(params)
        rho, mu, lr = self._rho, self._momentum, self._lr
        g2 = G * G
        v_new = rho * _max_abs(self._mean_square) + (1 - rho) * g2    # type: ignore[arg-type]
        inc = lr * G / math.sqrt(self._eps)
        a_new = rho * _max_abs(self._mean_grad) + (1 - rho) * G       # type: ignore[arg-type]
        b_new = mu * _max_abs(self._buffer) + inc if mu else inc      # type: ignore[arg-type]
        return max(g2, v_new + self._eps, a_new * a_new if self._centered else 0.0, lr * G,
                   b_new, P + b_new)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        backend.rmsprop_update(params, grads, self._mean_square, self._mean_grad, self._buffer,
                               self._lr, self._rho, self._momentum, self._eps, self._centered,
                               self._iterations)

    def state(self) -> dict[str, FloatArray | None]:
        return {"mean_square": self._mean_square, "mean_gradient": self._mean_grad,
                "momentum": self._buffer}

    def _check_state_rules(self, iterations: int) -> None:
        v = self._mean_square
        _check_state_array("mean_square", v, v < 0,            # type: ignore[arg-type,operator]
                           "be >= 0 (a decaying mean of squared gradients)")
        if iterations == 0:
            for key, arr in self.state().items():
                _check_state_array(key, arr, arr != 0,              # type: ignore[arg-type]
                                   "be 0 at iterations=0 (a fresh optimizer)")


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011) as Keras defines it.

    a = a + g^2;  w -= lr g / sqrt(a + eps), the accumulator ``a`` starting at
    ``initial_accumulator_value``.

    As in Keras, ``eps`` is added under the square root (PyTorch's ``Adagrad`` adds it to
    ``sqrt(a)`` and starts the accumulator at 0: with ``eps`` negligible against ``a`` and the
    same start, both give the same steps). The accumulator stops at the dtype's largest finite
    value, where Keras' would become inf: the step is then 0 either way. There is no weight decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0 and a normal number of the model's dtype.
    initial_accumulator_value : float, default 0.1
        The accumulator's value at ``build`` (``compile``), >= 0 (0 or normal in the dtype).
    eps : float, default 1e-7
        Added to the accumulator under the root, > 0 and normal in the dtype (any such eps keeps
        a step finite, as in RMSprop).
    learning_rate, epsilon : float, keyword only
        Keras' names for ``lr`` and ``eps`` (give one of each pair).
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``).

    Every one may be assigned later under the same rules (a new ``initial_accumulator_value``
    takes effect at the next ``build``); see ``Optimizer``. ``state()`` holds ``accumulator``.

    Raises
    ------
    TypeError
        If a value is not a real number, or is given under both of its names.
    ValueError
        If a value is out of its range, or does not suit the model's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    >>> opt = fnn.Adagrad(learning_rate=0.5, initial_accumulator_value=0.0, epsilon=1e-12)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # the first step: w -= lr * sign(g)
    >>> w.round(9)
    array([0.5, 2.5])
    """

    _initial_accumulator_value: float
    _eps: float
    name = "adagrad"
    _hyper = ("lr", "initial_accumulator_value", "eps")
    _ranges = {"lr": Optimizer._ranges["lr"],
               "initial_accumulator_value": (0.0, None, False, False),
               "eps": (0.0, None, True, False)}
    _weight_decay = 0.0      # none (check_update reads it)

    initial_accumulator_value = _hyper_parameter(
        "initial_accumulator_value", "The accumulator's value at build, >= 0.")
    eps = _hyper_parameter("eps", "Added to the accumulator under the root, > 0.")
    epsilon = _alias_property("eps")
    weight_decay = _no_weight_decay("Adagrad")

    def __init__(self, lr: float = _UNSET, initial_accumulator_value: float = 0.1,
                 eps: float = _UNSET, *, learning_rate: float = _UNSET,
                 epsilon: float = _UNSET, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 1e-3),
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = _alias("eps", eps, "epsilon", epsilon, 1e-7)
        self._accumulator: FloatArray | None = None

    def _make_state(self, size: int, dtype: np.dtype[Any]) -> None:
        self._accumulator = aligned_zeros(size, dtype)
        self._accumulator[...] = self._initial_accumulator_value

    def _bound(self, params: FloatArray, G: float) -> float:
        # a' = min(a + g^2, max) >= 0, so |inc| <= lr G / sqrt(eps);  |p'| <= |p| + |inc|
        inc = self._lr * G / math.sqrt(self._eps)
        return max(G * G, self._lr * G, _max_abs(params) + inc)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        backend.adagrad_update(params, grads, self._accumulator, self._lr, self._eps,
                               self._iterations)

    def state(self) -> dict[str, FloatArray | None]:
        return {"accumulator": self._accumulator}

    def _check_state_rules(self, iterations: int) -> None:
        a = self._accumulator
        _check_state_array("accumulator", a, a < 0,              # type: ignore[arg-type,operator]
                           "be >= 0 (a sum of squared gradients)")


class _KerasMoments(_Moments):
    """Adamax and Nadam: Keras' arguments and defaults (eps 1e-7), no weight decay."""

    _hyper = ("lr", "beta1", "beta2", "eps")
    _weight_decay = 0.0      # none (check_update reads it)

    def __init__(self, lr: float = _UNSET, beta1: float = _UNSET, beta2: float = _UNSET,
                 eps: float = _UNSET, *, learning_rate: float = _UNSET, beta_1: float = _UNSET,
                 beta_2: float = _UNSET, epsilon: float = _UNSET,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None) -> None:
        super().__init__(_alias("lr", lr, "learning_rate", learning_rate, 1e-3),
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.beta1 = _alias("beta1", beta1, "beta_1", beta_1, 0.9)
        self.beta2 = _alias("beta2", beta2, "beta_2", beta_2, 0.999)
        self.eps = _alias("eps", eps, "epsilon", epsilon, 1e-7)


class Adamax(_KerasMoments):
    """Adamax (Kingma & Ba, 2015, section 7.1), Adam with the infinity norm, as Keras defines it.

    m = m + (g - m)(1 - b1);  u = max(b2 u, |g|);  w -= lr m / ((1 - b1^t)(u + eps)) at step
    t = 1, 2, ...

    PyTorch's ``Adamax`` takes ``u = max(b2 u, |g| + eps)`` and divides by ``u`` alone: with
    ``eps`` negligible against ``|g|`` both give the same steps. There is no weight decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0 and a normal number of the model's dtype.
    beta1, beta2 : float, default 0.9 and 0.999
        Decays of the mean and of the infinity norm, in [0, 1), 0 or normal in the dtype, and
        below 1 once rounded to it.
    eps : float, default 1e-7
        Added to ``u``, > 0 and normal in the dtype, and large enough that a gradient below the
        overflow screen cannot overflow a weight (the rule of ``Adam``'s eps).
    learning_rate, beta_1, beta_2, epsilon : float, keyword only
        Keras' names for ``lr``, ``beta1``, ``beta2`` and ``eps`` (give one of each pair).
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``).

    ``state()`` holds ``m`` and ``u``.

    Raises
    ------
    TypeError
        If a value is not a real number, or is given under both of its names.
    ValueError
        If a value is out of its range, or does not suit the model's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.Adamax(learning_rate=0.1, epsilon=1e-12)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # the first step: w -= lr * sign(g)
    >>> w.round(9)
    array([0.9, 2.1])
    """

    name = "adamax"
    weight_decay = _no_weight_decay("Adamax")
    _second_key = "u"            # the infinity norm, kept in _v
    _second_rule = "be >= 0 (a decaying maximum of |gradient|)"

    def _bound(self, params: FloatArray, G: float) -> float:
        # |m'| <= b1 |m| + (1 - b1) G;  u' <= max(b2 u, G);  |p'| <= |p| + lr |m'| / (bc1 eps)
        b1, t = self._beta1, int(self._iterations[0]) + 1
        m_new = b1 * _max_abs(self._m) + (1 - b1) * G           # type: ignore[arg-type]
        u_new = max(self._beta2 * _max_abs(self._v), G)         # type: ignore[arg-type]
        step = self._lr * m_new / ((1 - b1 ** t) * self._eps)
        return max(G, m_new, u_new, self._lr * m_new, _max_abs(params) + step)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        t = int(self._iterations[0]) + 1
        backend.adamax_update(params, grads, self._m, self._v, t, self._lr, self._beta1,
                              self._beta2, self._eps, self._iterations)



_NADAM_EXACT_STEPS = 2048    # from here on 0.96^t < 2^-53: the momentum schedule is beta1 itself


class Nadam(_KerasMoments):
    """Nadam (Dozat, 2016), Adam with Nesterov momentum, as Keras defines it.

    With the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^t) and its products
    P_t = mu_1 ... mu_t, at step t = 1, 2, ...:
    m = m + (g - m)(1 - b1);  v = v + (g^2 - v)(1 - b2);
    m_hat = mu_{t+1} m / (1 - P_{t+1}) + (1 - mu_t) g / (1 - P_t);  v_hat = v / (1 - b2^t);
    w -= lr m_hat / (sqrt(v_hat) + eps).

    This is PyTorch's ``NAdam`` with ``momentum_decay=1.0`` (its default 0.004 stretches the
    schedule; Keras' has none). The products are computed in double from ``iterations`` and
    the current ``beta1``: the same as Keras' running product while ``beta1`` is constant.
    There is no weight decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0 and a normal number of the model's dtype.
    beta1, beta2 : float, default 0.9 and 0.999
        Decays of the first and second moment estimates, in [0, 1), 0 or normal in the dtype,
        and below 1 once rounded to it.
    eps : float, default 1e-7
        Added to ``sqrt(v_hat)``, > 0 and normal in the dtype, and large enough that a gradient
        below the overflow screen cannot overflow a weight (``Adam``'s rule, with m_hat up to
        (1 + b1) / (1 - 0.52 b1) times |g|).
    learning_rate, beta_1, beta_2, epsilon : float, keyword only
        Keras' names for ``lr``, ``beta1``, ``beta2`` and ``eps`` (give one of each pair).
    clipnorm, clipvalue, global_clipnorm : float or None, keyword only
        Keras' gradient clipping, at most one (see ``Optimizer``).

    ``state()`` holds ``m`` and ``v``.

    Raises
    ------
    TypeError
        If a value is not a real number, or is given under both of its names.
    ValueError
        If a value is out of its range, or does not suit the model's dtype.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Nadam(learning_rate=0.002)
    Nadam(lr=0.002, beta1=0.9, beta2=0.999, eps=1e-07)
    """

    name = "nadam"
    weight_decay = _no_weight_decay("Nadam")
    _products = (-1.0, 0, 1.0)     # (beta1, t, P_t) of the last step

    @staticmethod
    def _reach(settings: dict[str, Any]) -> float:
        # mu_t <= b1 and P_t <= mu_1 = 0.52 b1, so m_hat <= (b1 + 1) / (1 - 0.52 b1) max |g|
        b1 = settings.get("beta1", 0.9)
        return (1 + b1) / (1 - 0.52 * b1)

    def _mu(self, t: int) -> float:
        return self._beta1 * (1.0 - 0.5 * 0.96 ** t)

    def _product(self, t: int) -> float:
        """P_t = mu_1 ... mu_t in double, one factor per step as Keras keeps it (from scratch
        after a jump of iterations: the factors are beta1 itself from _NADAM_EXACT_STEPS on)."""
        b1, t0, p0 = self._products
        if b1 == self._beta1 and t0 == t:
            return p0
        if b1 == self._beta1 and t0 == t - 1:
            p = p0 * self._mu(t)
        else:
            p, exact = 1.0, min(t, _NADAM_EXACT_STEPS)
            for s in range(1, exact + 1):
                p *= self._mu(s)
            if t > exact:
                p *= self._beta1 ** (t - exact)
        self._products = (self._beta1, t, p)
        return p

    def _schedule_at(self, t: int) -> tuple[float, float, float, float]:
        """(mu_t, mu_{t+1}, P_t, P_{t+1}) for step t."""
        prod = self._product(t)
        mu_next = self._mu(t + 1)
        return self._mu(t), mu_next, prod, prod * mu_next

    def _bound(self, params: FloatArray, G: float) -> float:
        # |m'| <= b1 |m| + (1 - b1) G;  v' <= b2 v + (1 - b2) G^2;
        # |m_hat| <= mu' |m'| / (1 - P') + (1 - mu) G / (1 - P);  |p'| <= |p| + lr |m_hat| / eps
        b1, b2, t = self._beta1, self._beta2, int(self._iterations[0]) + 1
        mu, mu_next, prod, prod_next = self._schedule_at(t)
        m_new = b1 * _max_abs(self._m) + (1 - b1) * G           # type: ignore[arg-type]
        v_new = b2 * _max_abs(self._v) + (1 - b2) * G * G       # type: ignore[arg-type]
        m_hat = mu_next * m_new / (1 - prod_next) + (1 - mu) * G / (1 - prod)
        return max(G * G, v_new / (1 - b2 ** t), m_hat, self._lr * m_hat,
                   _max_abs(params) + self._lr * m_hat / self._eps)

    def _update(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        t = int(self._iterations[0]) + 1
        mu, mu_next, prod, prod_next = self._schedule_at(t)
        backend.nadam_update(params, grads, self._m, self._v, t, self._lr, self._beta1,
                             self._beta2, self._eps, mu, mu_next, prod, prod_next,
                             self._iterations)



OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW,
                                                   "rmsprop": RMSprop, "adagrad": Adagrad,
                                                   "adamax": Adamax, "nadam": Nadam}
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam"]


def get_optimizer(optimizer: Union[OptimizerName, Optimizer, dict[str, Any]]) -> Optimizer:
    """An Optimizer from an instance, a name (default settings) or a config dict.

    Parameters
    ----------
    optimizer : {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam"}, Optimizer or dict
        An instance is returned as it is; a name gives one with default settings; a dict such
        as ``{"name": "sgd", "lr": 0.1}`` (the form ``get_config`` returns; Keras' argument
        names work too) gives one with those settings.

    Raises
    ------
    ValueError
        If ``optimizer`` is none of these, or a setting is out of range.
    TypeError
        If a dict holds an unknown setting or one of the wrong type.

    Examples
    --------
    >>> from fastnn.optimizers import get_optimizer
    >>> get_optimizer({"name": "sgd", "lr": 0.1})
    SGD(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    if isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS:
        config = dict(optimizer)
        # a saved config may hold the rate 0 that a callback had set (LearningRateScheduler,
        # ReduceLROnPlateau); a constructor refuses 0
        stopped = [config.pop(key) for key in ("lr", "learning_rate")
                   if isinstance(config.get(key), (int, float)) and config[key] == 0]
        made = OPTIMIZERS[config.pop("name")](**config)
        for rate in stopped:
            made._set_rate(rate)
        return made
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer instance. "
                     f"Received: optimizer={optimizer!r}")
