"""The training loop behind ``fastnn.sklearn``: parameter checks, sample weights, the learning
rate schedules, warm starts and the stopping rule, all as scikit-learn's MLP does them
(``sklearn/neural_network/_multilayer_perceptron.py`` and ``_stochastic_optimizers.py``).

The public classes and their documentation are in ``fastnn/sklearn.py``; every message raised
here names the public class (``MLPClassifier: ...``), never this module's.
"""

from __future__ import annotations

import numbers
import re
import warnings
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

import fastnn as fnn
from fastnn import _validation as V
from fastnn.backends import fast_available

_ACTIVATIONS: dict[str, Any] = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh",
                                "relu": "relu"}
_SCHEDULES = ("constant", "invscaling", "adaptive")
# fastnn's optimizer settings under the names the estimator's user gave them
_OUR_NAMES = {"lr": "learning_rate_init", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon",
              "weight_decay": "alpha / (batch_size * mean sample weight)"}


class BaseMLP(BaseEstimator):
    """Shared fitting loop; subclasses say how targets become outputs (``_encode``), which
    class weights apply (``_class_weights``) and how the validation score is taken."""

    _final_act: Any          # a fastnn activation name
    _loss: str

    def __init__(self, hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: Literal["identity", "logistic", "tanh", "relu"] = "relu", *,
                 solver: Literal["sgd", "adam"] = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, Literal["auto"]] = "auto",
                 learning_rate: Literal["constant", "invscaling", "adaptive"] = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True,
                 random_state: Optional[Union[int, np.random.RandomState]] = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, dtype: Any = np.float32) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype

    # -- checks: every message starts with the public class's name

    def _error(self, message: str, kind: type = ValueError) -> Exception:
        return kind(f"{type(self).__name__}: {message}")

    def _checked(self, check, *args, **kwargs):
        """``check(*args)`` (a fastnn._validation check, or a fastnn call that checks), its
        message prefixed with the class name and speaking of the estimator's parameters: an
        optimizer's ``Adam: beta2`` is ``beta_2`` here."""
        try:
            return check(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            text = re.sub(r"^(SGD|Adam): ", "", str(exc))
            text = re.sub(r"\b(" + "|".join(_OUR_NAMES) + r")\b",
                          lambda match: _OUR_NAMES[match.group(1)], text)
            raise type(exc)(f"{type(self).__name__}: {text}") from None

    def _model_dtype(self) -> np.dtype[Any]:
        try:
            # None (which NumPy reads as float64) is refused: the choice is explicit
            dtype = None if self.dtype is None else np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.name not in ("float32", "float64"):
            raise self._error(f"dtype must be float32 or float64 (np.float32, 'float64', ...). "
                              f"Received: dtype={V.plain(self.dtype)!r}")
        return dtype

    def _check_params(self) -> list[int]:
        sizes: Any = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        elif isinstance(sizes, (list, tuple, np.ndarray)):
            sizes = list(sizes)
        else:
            sizes = [None]                      # refused below
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
                raise self._error(f"hidden_layer_sizes must be positive integers. Received: "
                                  f"hidden_layer_sizes={V.plain(self.hidden_layer_sizes)!r}")
        for name, allowed in (("activation", tuple(_ACTIVATIONS)), ("solver", ("sgd", "adam")),
                              ("learning_rate", _SCHEDULES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise self._error(f"{name} must be one of {list(allowed)}. "
                                  f"Received: {name}={V.plain(value)!r}")
        dtype = self._model_dtype()
        check = self._checked
        check(V.check_int, "max_iter", self.max_iter, 1)
        check(V.check_int, "n_iter_no_change", self.n_iter_no_change, 1)
        for name, low, high, low_open, high_open in (
                ("learning_rate_init", 0.0, None, True, False),
                ("power_t", 0.0, None, False, False),
                ("alpha", 0.0, None, False, False), ("tol", 0.0, None, False, False),
                ("momentum", 0.0, 1.0, False, True), ("beta_1", 0.0, 1.0, False, True),
                ("beta_2", 0.0, 1.0, False, True), ("epsilon", 0.0, None, True, False),
                ("validation_fraction", 0.0, 1.0, True, True)):
            check(V.check_float, name, getattr(self, name), low, high, low_open, high_open)
        check(V.check_in_dtype, "learning_rate_init", float(self.learning_rate_init), dtype)
        check(V.check_in_dtype, "epsilon", float(self.epsilon), dtype)
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool)
                                              and self.batch_size >= 1)):
            raise self._error(f"batch_size must be 'auto' or a positive integer. "
                              f"Received: batch_size={V.plain(self.batch_size)!r}")
        return [int(size) for size in sizes]

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    # -- the network and its optimizer

    def _new_optimizer(self):
        """A fresh optimizer at ``learning_rate_init`` (scikit-learn makes one per ``fit``; its
        weight decay is set per call, from the batch size and the sample weights)."""
        if self.solver == "sgd":
            opt = self._checked(fnn.SGD, lr=self.learning_rate_init, momentum=self.momentum,
                                nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        else:
            opt = self._checked(fnn.Adam, lr=self.learning_rate_init, beta1=self.beta_1,
                                beta2=self.beta_2, eps=self.epsilon)
        self._checked(self.model_.compile, loss=self._loss, optimizer=opt)

    def _build(self, n_features: int, n_outputs: int, sizes: list[int],
               dtype: np.dtype[Any]) -> None:
        act = _ACTIVATIONS[self.activation]
        layers = [fnn.Dense(units, activation=act) for units in sizes]
        layers.append(fnn.Dense(n_outputs, activation=self._final_act))
        # an int seeds fastnn directly; None or a RandomState instance (scikit-learn's accepted
        # forms) draws the seed from that generator
        seed = int(self.random_state) if isinstance(self.random_state, numbers.Integral) \
            else int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        self.model_ = fnn.Sequential(layers, input_dim=n_features, seed=seed, dtype=dtype,
                                     backend="fast" if fast_available() else "numpy")
        self._new_optimizer()
        self._architecture = (tuple(sizes), self.activation, dtype.name)
        self._inference = _InferenceNet()
        self.n_layers_ = len(sizes) + 2
        self.n_outputs_ = n_outputs
        self.out_activation_ = {"linear": "identity", "sigmoid": "logistic"}.get(
            self._final_act, self._final_act)
        self.loss_curve_: list[float] = []
        self.t_ = 0
        self._no_improvement_count = 0
        self._best_weights = self.model_.get_weights()
        if self.early_stopping:
            self.validation_scores_: Optional[list[float]] = []
            self.best_validation_score_: Optional[float] = -np.inf
            self.best_loss_: Optional[float] = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _check_same_network(self, sizes, dtype, n_outputs):
        now = (tuple(sizes), self.activation, dtype.name)
        for name, before, after in zip(("hidden_layer_sizes", "activation", "dtype"),
                                       self._architecture, now):
            if before != after:
                raise self._error(f"{name} changed from {V.plain(before)!r} to "
                                  f"{V.plain(after)!r} since the network was fitted; a warm "
                                  f"start or partial_fit continues that network (set "
                                  f"warm_start=False, or refit, to start anew)")
        if n_outputs != self.n_outputs_:
            raise self._error(f"y has {n_outputs} outputs, but the fitted network has "
                              f"{self.n_outputs_}; a warm start or partial_fit continues it")

    # -- fitting

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        sizes = self._check_params()
        dtype = self._model_dtype()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise self._error("partial_fit does not support early_stopping=True (as in "
                              "scikit-learn): use fit, or set early_stopping=False")
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, multi_output=True,
                             y_numeric=is_regressor(self))
        targets = self._encode(y, first, incremental, classes)
        if sample_weight is not None:
            sample_weight = self._checked(_check_sample_weight, sample_weight, X,
                                          dtype=np.float64, ensure_non_negative=True)
        weights = self._class_weights(y, sample_weight)
        if first:
            self._build(X.shape[1], targets.shape[1], sizes, dtype)
        else:
            self._check_same_network(sizes, dtype, targets.shape[1])
            if not incremental:
                self._new_optimizer()
            self._continue_stopping_state()
        self._inference.stale = True
        X_val = T_val = W_val = None
        if self.early_stopping:
            X, targets, weights, X_val, T_val, W_val = self._holdout(X, targets, weights)
        n = X.shape[0]
        batch = self._batch(n)
        weights = self._normalized(weights, batch)
        self.n_iter_ = 0
        for _ in range(1 if incremental else self.max_iter):
            try:
                history = self.model_.fit(X, targets, epochs=1, batch_size=batch,
                                          shuffle=bool(self.shuffle), verbose=0,
                                          sample_weight=weights)
            except FloatingPointError as exc:
                # each call is one epoch: say which epoch of this fit it was
                message = str(exc).replace("epoch 1, ", f"epoch {self.n_iter_ + 1}, ", 1)
                raise FloatingPointError(
                    f"{type(self).__name__}: {message} (the rate is learning_rate_init; "
                    f"sklearn.preprocessing.StandardScaler scales X)") from None
            loss = float(history.history["loss"][0])
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            self._update_no_improvement_count(loss, X_val, T_val, W_val)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._set_lr(float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t)
            if self._no_improvement_count > self.n_iter_no_change:
                if self._stops():
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"{type(self).__name__}: reached max_iter={self.max_iter} before "
                              f"the loss stopped improving by tol={self.tol}",
                              ConvergenceWarning)
        if self.early_stopping:
            self.model_.set_weights(self._best_weights)
        return self

    def _continue_stopping_state(self):
        """A warm start after early_stopping was switched on or off: the state of the rule in
        force, started where the previous fit left none."""
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf

    def _normalized(self, weights, batch):
        """Sample weights scaled to mean 1 over the training rows, and the optimizer's L2 decay
        ``alpha / (batch * mean weight)``: with one batch of all rows, the loss
        ``sum(w_i l_i) / sum(w_i) + alpha ||W||^2 / (2 sum(w_i))`` is scikit-learn's, and
        integer weights train exactly as repeated rows. Equal weights become None (the
        compiled, unweighted path)."""
        mean = 1.0 if weights is None else float(np.mean(weights))
        if weights is not None and mean == 0.0:
            raise self._error("the sample weights (times the class weights) of the training "
                              "samples are all 0: nothing to learn from")
        decay = self.alpha / (batch * mean)
        if decay < np.finfo(self.model_.dtype).tiny:
            decay = 0.0                         # below what the dtype holds: no decay
        self._checked(setattr, self.model_.optimizer, "weight_decay", decay)
        if weights is None or np.all(weights == weights[0]):
            return None
        return weights / mean

    def _set_lr(self, lr):
        """The schedule's next rate. fastnn's SGD velocity holds gradients and scikit-learn's
        holds steps (``lr * gradients``): rescaling the velocity by ``old / new`` keeps the
        steps gathered so far as they were, so momentum updates stay scikit-learn's."""
        opt = self.model_.optimizer
        # a rate below the dtype's smallest normal number would be flushed to 0 in the kernels
        lr = max(lr, float(np.finfo(self.model_.dtype).tiny))
        velocity = opt.state().get("velocity") if isinstance(opt, fnn.SGD) else None
        if velocity is not None and opt.momentum > 0 and lr != opt.lr:
            velocity *= opt.lr / lr
            opt.verify_next_step()       # the state changed outside a step: prove the next one
        opt.lr = lr

    def _stops(self) -> bool:
        """scikit-learn's trigger_stopping: "adaptive" SGD divides the rate by 5 instead of
        stopping, until the rate is at most 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            return True
        lr = self.model_.optimizer.lr
        if lr <= 1e-6:
            return True
        self._set_lr(lr / 5.0)
        if self.verbose:
            print(f"No improvement by tol={self.tol} for {self.n_iter_no_change + 1} epochs: "
                  f"learning rate set to {self.model_.optimizer.lr:g}")
        return False

    def _update_no_improvement_count(self, loss, X_val, T_val, W_val):
        """scikit-learn's rule: with early_stopping the validation score must rise by tol,
        otherwise the training loss must fall by tol below its best."""
        if X_val is not None:
            score = self._validation_score(X_val, T_val, W_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = self.model_.get_weights()
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)

    def _holdout(self, X, targets, weights):
        rng = check_random_state(self.random_state if isinstance(self.random_state,
                                                                 numbers.Integral) else None)
        order = rng.permutation(len(X))
        n_val = max(1, int(round(self.validation_fraction * len(X))))
        if n_val >= len(X):
            raise self._error(f"validation_fraction={V.plain(self.validation_fraction)} leaves "
                              f"no training samples out of {len(X)}")
        val, train = order[:n_val], order[n_val:]
        pick = (lambda rows: None) if weights is None else (lambda rows: weights[rows])
        return X[train], targets[train], pick(train), X[val], targets[val], pick(val)

    def _class_weights(self, y, sample_weight):
        return sample_weight

    # -- prediction

    def _outputs(self, X: ArrayLike) -> NDArray[np.float64]:
        """The network's outputs before its final activation, in float64 (``_InferenceNet``)."""
        check_is_fitted(self, "model_")
        valid: Any = validate_data(self, X, reset=False, dtype=np.float64)
        return self._inference.outputs(self, valid)

    @property
    def coefs_(self) -> list[NDArray[np.floating[Any]]]:
        """Weight matrices, one per layer: (n_features, units), ..., (units, n_outputs)."""
        check_is_fitted(self, "model_")
        return self.model_.get_weights()[0::2]

    @property
    def intercepts_(self) -> list[NDArray[np.floating[Any]]]:
        """Bias vectors, one per layer: (units,), ..., (n_outputs,)."""
        check_is_fitted(self, "model_")
        return self.model_.get_weights()[1::2]


class _InferenceNet:
    """The fitted network in float64 without its final activation, for ``predict``,
    ``predict_proba`` and ``decision_function``: training runs in ``dtype``, but a float32 sum
    of a sample's row depends, in its last bits, on where the row sits in the batch (the GEMM's
    tiling), and scikit-learn holds predictions of a sample alone, in a subset or in another
    order to 1e-7. Evaluated in float64, the float32 weights give each sample one answer.

    Built on first use, refreshed after each fit (``stale``), never pickled.
    """

    model: Any = None
    stale = True

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        pass

    def outputs(self, estimator: BaseMLP, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The pre-activation outputs (n_samples, n_outputs) of ``estimator.model_`` on
        validated float64 ``X``."""
        source: Any = estimator.model_
        if self.model is None:
            sizes, activation, _ = estimator._architecture
            layers = [fnn.Dense(units, activation=_ACTIVATIONS[activation]) for units in sizes]
            layers.append(fnn.Dense(estimator.n_outputs_, activation="linear"))
            self.model = fnn.Sequential(layers, input_dim=estimator.n_features_in_, seed=0,
                                        dtype="float64", backend=source.backend)
            self.stale = True
        if self.stale:
            self.model.set_weights([w.astype(np.float64) for w in source.get_weights()])
            self.stale = False
        return self.model.predict(X)
