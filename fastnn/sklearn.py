"""scikit-learn estimators on fastnn: ``MLPClassifier`` and ``MLPRegressor``.

They take scikit-learn's own parameter names, so they drop into pipelines and grid searches where
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` would go. Needs scikit-learn
(``pip install fastnn[sklearn]``).

Differences from scikit-learn's MLP, stated plainly:
- ``alpha`` (L2 penalty) becomes the optimizer's weight decay ``alpha / batch_size``, applied to
  biases too; scikit-learn penalises only the weights.
- Only ``learning_rate="constant"``; solvers ``"sgd"`` and ``"adam"`` (no ``"lbfgs"``).
- The regressor minimises mean((y - p)^2), twice scikit-learn's 0.5 * mean((y - p)^2), so its
  ``loss_curve_`` values are twice as large at the same fit.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, Optional, Sequence, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

import fastnn as fnn
from fastnn.backends import fast_available

_MLP = TypeVar("_MLP", bound="_BaseMLP")


class _BaseMLP(BaseEstimator):
    """Shared fitting loop; subclasses say how targets become outputs."""

    def __init__(self, hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: Literal["identity", "logistic", "tanh", "relu"] = "relu",
                 solver: Literal["sgd", "adam"] = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, Literal["auto"]] = "auto",
                 learning_rate_init: float = 0.001, max_iter: int = 200, shuffle: bool = True,
                 random_state: Optional[Union[int, np.random.RandomState]] = None,
                 tol: float = 1e-4, verbose: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # -- subclass hooks: _encode(y) -> (targets, n_outputs, final activation, loss)

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
                raise ValueError(f"hidden_layer_sizes must be positive integers. "
                                 f"Received: hidden_layer_sizes={self.hidden_layer_sizes!r}")
        if self.activation not in ("identity", "logistic", "tanh", "relu"):
            raise ValueError(f"activation must be 'identity', 'logistic', 'tanh' or 'relu'. "
                             f"Received: activation={self.activation!r}")
        if self.solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam'. Received: solver={self.solver!r}")
        if self.max_iter is None or self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1. Received: max_iter={self.max_iter!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0. Received: alpha={self.alpha!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1). "
                             f"Received: validation_fraction={self.validation_fraction!r}")
        return sizes

    def _batch(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                or self.batch_size < 1:
            raise ValueError(f"batch_size must be 'auto' or a positive integer. "
                             f"Received: batch_size={self.batch_size!r}")
        return min(int(self.batch_size), n)

    def _optimizer(self, batch):
        decay = self.alpha / batch
        if self.solver == "sgd":
            return fnn.SGD(lr=self.learning_rate_init, momentum=self.momentum,
                           nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                           weight_decay=decay)
        return fnn.Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                        eps=self.epsilon, weight_decay=decay)

    def _build(self, n_features, n_outputs, final_act, loss, dtype, batch):
        sizes = self._check_params()
        act = {"identity": "linear", "logistic": "sigmoid"}.get(self.activation, self.activation)
        layers = [fnn.Dense(int(units), activation=act) for units in sizes]
        layers.append(fnn.Dense(n_outputs, activation=final_act))
        # an int seeds fastnn directly; None or a RandomState instance (scikit-learn's accepted
        # forms) draws the seed from that generator
        seed = int(self.random_state) if isinstance(self.random_state, (int, np.integer)) \
            else int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        self.model_ = fnn.Sequential(layers, input_dim=n_features, seed=seed, dtype=dtype,
                                     backend="fast" if fast_available() else "numpy")
        self.model_.compile(loss=loss, optimizer=self._optimizer(batch))
        self.n_layers_ = len(sizes) + 2
        self.n_outputs_ = n_outputs
        self.out_activation_ = {"linear": "identity", "sigmoid": "logistic"}.get(final_act,
                                                                                 final_act)
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self.best_loss_ = np.inf
        self._no_improvement = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf

    def _dtype(self, X):
        return np.float32 if X.dtype == np.float32 else np.float64

    def _fit(self, X, y, incremental):
        first = not (incremental and hasattr(self, "model_"))
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32],
                             multi_output=isinstance(self, RegressorMixin), y_numeric=False)
        targets = self._encode(y, first)
        n = X.shape[0]
        batch = self._batch(n)
        if first:
            self._build(X.shape[1], targets.shape[1], self._final_act, self._loss,
                        self._dtype(X), batch)
        X = X.astype(self.model_.dtype, copy=False)
        X_val = T_val = None
        if self.early_stopping and not incremental:
            X, targets, X_val, T_val = self._holdout(X, targets)
        epochs = 1 if incremental else self.max_iter
        for _ in range(epochs):
            history = self.model_.fit(X, targets, epochs=1, batch_size=min(batch, len(X)),
                                      shuffle=bool(self.shuffle), verbose=0)
            loss = history.history["loss"][0]
            self.n_iter_ += 1
            self.t_ += len(X)
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if not incremental and self._converged(loss, X_val, T_val):
                break
        else:
            if not incremental:
                warnings.warn(f"fastnn MLP: reached max_iter={self.max_iter} before the loss "
                              f"stopped improving by tol={self.tol}", ConvergenceWarning)
        if self.early_stopping and not incremental and getattr(self, "_best_weights", None):
            self.model_.set_weights(self._best_weights)
        return self

    def _holdout(self, X, targets):
        rng = check_random_state(self.random_state if isinstance(self.random_state,
                                                                 (int, np.integer))
                                 else None)
        order = rng.permutation(len(X))
        n_val = max(1, int(round(self.validation_fraction * len(X))))
        if n_val >= len(X):
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no "
                             f"training samples out of {len(X)}")
        val, train = order[:n_val], order[n_val:]
        return X[train], targets[train], X[val], targets[val]

    def _converged(self, loss, X_val, T_val):
        """scikit-learn's rule: stop after n_iter_no_change epochs without a tol improvement."""
        if self.early_stopping:
            score = self._score_targets(X_val, T_val)
            self.validation_scores_.append(score)
            improved = score > self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = self.model_.get_weights()
        else:
            improved = loss < self.best_loss_ - self.tol
        self.best_loss_ = min(self.best_loss_, loss)
        self._no_improvement = 0 if improved else self._no_improvement + 1
        return self._no_improvement >= self.n_iter_no_change

    def fit(self: _MLP, X: ArrayLike, y: ArrayLike) -> _MLP:
        """Train from scratch for up to ``max_iter`` epochs; returns ``self``.

        Stops early after ``n_iter_no_change`` epochs in which the training loss (or, with
        ``early_stopping``, the validation score) did not improve by ``tol``; otherwise warns
        with ``ConvergenceWarning`` at ``max_iter``.
        """
        return self._fit(X, y, incremental=False)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict(X.astype(self.model_.dtype, copy=False))

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


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by fastnn's compiled kernels.

    Softmax output with cross-entropy for more than two classes; one sigmoid output with binary
    cross-entropy for two. Parameters are scikit-learn's (see
    ``sklearn.neural_network.MLPClassifier``); ``classes_``, ``n_features_in_``,
    ``loss_curve_``, ``coefs_``, ``intercepts_``, ``n_iter_`` are set by ``fit``.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Hidden activation (fastnn's linear, sigmoid, tanh, relu).
    solver : {"sgd", "adam"}, default "adam"
        ``fastnn.SGD`` or ``fastnn.Adam``.
    alpha : float, default 0.0001
        L2 penalty; becomes the optimizer's weight decay ``alpha / batch_size``.
    batch_size : int or "auto", default "auto"
        Mini-batch size; "auto" is ``min(200, n_samples)``.
    learning_rate_init : float, default 0.001
        The constant learning rate.
    max_iter : int, default 200
        Maximum number of epochs.
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, numpy.random.RandomState or None, default None
        Seeds the weights and the shuffling (and the ``early_stopping`` split); None gives a
        fresh random seed on each ``fit``.
    tol : float, default 1e-4
        The improvement of the loss (or validation score) that resets ``n_iter_no_change``.
    verbose : bool, default False
        Print the loss after every epoch.
    momentum : float, default 0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default True
        Use Nesterov momentum with SGD (when ``momentum > 0``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the samples and stop on their score (accuracy).
    validation_fraction : float, default 0.1
        The held-out fraction, in (0, 1).
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's ``beta1``, ``beta2``, ``eps``.
    n_iter_no_change : int, default 10
        Epochs without a ``tol`` improvement before stopping.

    Raises
    ------
    ValueError
        From ``fit``, if a parameter is out of range, ``y`` holds fewer than two classes, or
        ``X`` / ``y`` are malformed (scikit-learn's input checks).

    Examples
    --------
    >>> from fastnn.datasets import load_digits, train_test_split
    >>> from fastnn.sklearn import MLPClassifier
    >>> X, y = load_digits()
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, seed=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), tol=1e-3, random_state=0)
    >>> clf = clf.fit(X_train, y_train)
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 10)
    >>> clf.score(X_test, y_test) > 0.9
    True
    """

    def _encode(self, y: ArrayLike, first: bool) -> NDArray[np.float64]:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            if not hasattr(self, "_partial_classes") or self._partial_classes is None:
                self.classes_ = np.unique(y)
            else:
                self.classes_ = self._partial_classes
            if len(self.classes_) < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes; got 1 "
                                 f"class ({self.classes_[0]!r})")
            self._binarizer = LabelBinarizer().fit(self.classes_)
            binary = len(self.classes_) == 2
            self._final_act = "sigmoid" if binary else "softmax"
            self._loss = "binary_cross_entropy" if binary else "cross_entropy"
        elif np.setdiff1d(y, self.classes_).size:
            raise ValueError(f"y holds labels {np.setdiff1d(y, self.classes_)!r} not in "
                             f"classes_ {self.classes_!r}")
        return self._binarizer.transform(y).astype(np.float64)

    def fit(self, X: ArrayLike, y: ArrayLike) -> MLPClassifier:
        """Train from scratch on X (n_samples, n_features) and labels y (n_samples,).

        Stops early after ``n_iter_no_change`` epochs without a ``tol`` improvement; otherwise
        warns with ``ConvergenceWarning`` at ``max_iter``. Returns ``self``.
        """
        self._partial_classes: Optional[NDArray[Any]] = None
        return super().fit(X, y)

    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    classes: Optional[ArrayLike] = None) -> MLPClassifier:
        """One epoch over ``(X, y)``; the first call needs ``classes`` (all labels).

        Raises
        ------
        ValueError
            If ``classes`` is missing on the first call, or ``y`` holds a label not in it.
        """
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._partial_classes = np.unique(classes)
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, (n_samples, n_classes), in the order of ``classes_``."""
        out = self._forward(X).astype(np.float64)
        if out.shape[1] == 1:
            return np.hstack([1 - out, out])
        return out

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most likely class of each sample, (n_samples,), from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _score_targets(self, X, T):
        out = self.model_.predict(X)
        if out.shape[1] == 1:
            return float(np.mean((out[:, 0] >= 0.5) == (T[:, 0] >= 0.5)))
        return float(np.mean(out.argmax(1) == T.argmax(1)))


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor (identity output, squared error) on fastnn.

    Minimises ``mean((y - p)^2)`` over samples and outputs. The parameters are the same as
    ``MLPClassifier``'s (scikit-learn's ``MLPRegressor`` names and defaults); with
    ``early_stopping`` the validation score is R^2.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.sklearn import MLPRegressor
    >>> X = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, tol=1e-3,
    ...                    random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> reg.score(X, y) > 0.9
    True
    """

    _final_act = "linear"
    _loss = "mse"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode(self, y: ArrayLike, first: bool) -> NDArray[np.float64]:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = y.ndim == 1
        return y.reshape(len(y), -1)

    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> MLPRegressor:
        """One epoch over ``(X, y)``; y (n_samples,) or (n_samples, n_outputs). Returns self."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predicted targets, (n_samples,) or (n_samples, n_outputs) as ``y`` was in ``fit``."""
        out = self._forward(X).astype(np.float64)
        return out[:, 0] if self._y_1d else out

    def _score_targets(self, X, T):
        out = self.model_.predict(X).astype(np.float64)
        ss_res = np.sum((T - out) ** 2)
        ss_tot = np.sum((T - T.mean(axis=0)) ** 2)
        return float(1 - ss_res / ss_tot) if ss_tot > 0 else 0.0
