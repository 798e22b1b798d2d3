"""scikit-learn estimators on fastnn: ``MLPClassifier`` and ``MLPRegressor``.

They take scikit-learn's own parameter names, so they drop into pipelines and grid searches where
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` would go. Needs scikit-learn
(``pip install fastnn[sklearn]``). Where a parameter shares its name with scikit-learn's MLP it
has its meaning: ``learning_rate`` ("constant", "invscaling", "adaptive" with ``power_t``),
``warm_start``, ``sample_weight`` in ``fit``, ``partial_fit`` and ``score``, the stopping rule
(``tol``, ``n_iter_no_change``, ``early_stopping``), multilabel targets.

Added: ``dtype`` (default float32, fastnn's: ``X`` is converted to it once, so float64 input, as
from ``StandardScaler``, does not make training twice as slow; ``dtype="float64"`` trains in
float64); ``class_weight`` and ``decision_function`` for the classifier. Predictions evaluate
the trained network in float64 (float32 weights upcast): a float32 sum over a sample's row
changes in its last bits with the row's place in the batch, and scikit-learn holds a sample's
prediction alone, in a subset or in another order to 1e-7.

Differences from scikit-learn's MLP, stated plainly:
- ``alpha`` (L2 penalty) becomes the optimizer's weight decay
  ``alpha / (batch_size * mean sample weight)``, applied to biases too; scikit-learn penalises
  only the weights.
- Solvers ``"sgd"`` and ``"adam"`` only (no ``"lbfgs"``).
- ``sample_weight`` is scaled to mean 1 over the samples of a ``fit`` (or ``partial_fit``) call,
  scikit-learn normalises each mini-batch by its own weight sum: the same loss when one batch
  holds all samples (then integer weights train exactly as repeated rows), close otherwise.
  Unequal weights take fastnn's per-batch path, not the compiled whole-epoch loop.
- Adam adds ``epsilon`` to ``sqrt(v_hat)`` (Kingma & Ba's Algorithm 1, as PyTorch and Keras);
  scikit-learn adds it to ``sqrt(v)``, an ``epsilon / sqrt(1 - beta_2**t)`` of its own in the
  first steps: the two differ slightly there. Plain and momentum SGD make scikit-learn's updates
  (under every ``learning_rate`` schedule).
- The regressor minimises mean((y - p)^2), twice scikit-learn's 0.5 * mean((y - p)^2), and with
  multilabel targets the classifier's binary cross-entropy is a mean over the labels where
  scikit-learn sums them: ``loss_curve_`` (and the gradient) are 2x and 1/n_labels of
  scikit-learn's, which ``tol`` compares against.
- The ``early_stopping`` split is a seeded permutation, not stratified.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from fastnn import _validation as V
from fastnn._sklearn_mlp import BaseMLP

__all__ = ["MLPClassifier", "MLPRegressor"]


def _balanced(codes: NDArray[np.intp], weights: Optional[NDArray[np.float64]],
              n_codes: int) -> NDArray[np.float64]:
    """Each sample's "balanced" class weight: ``sum(w) / (n_classes * sum of w in its class)``
    over the classes present (scikit-learn's ``compute_class_weight``, with sample weights as
    ``LogisticRegression`` counts them), so every class carries the same total weight."""
    totals = np.bincount(codes, weights=weights, minlength=n_codes).astype(np.float64)
    present = totals > 0
    factor = np.ones(n_codes)
    factor[present] = totals.sum() / (present.sum() * totals[present])
    return factor[codes]


class MLPClassifier(ClassifierMixin, BaseMLP):
    """A multi-layer perceptron classifier trained by fastnn's compiled kernels.

    Softmax output with cross-entropy for more than two classes; one sigmoid output with binary
    cross-entropy for two classes; one sigmoid per label for multilabel targets (a 2-D 0/1
    indicator ``y``). Parameters are scikit-learn's (see
    ``sklearn.neural_network.MLPClassifier``), plus ``dtype`` and ``class_weight``.
    ``fit`` sets ``classes_``, ``n_features_in_``, ``coefs_``, ``intercepts_``,
    ``loss_curve_`` (every epoch's mean loss, over warm starts and ``partial_fit`` calls too),
    ``n_iter_`` (the epochs of the last call, 1 for ``partial_fit``, as in scikit-learn) and
    ``t_`` (the samples trained on so far). The network is ``model_``, a ``fastnn.Sequential``:
    change it through ``fit`` and ``partial_fit`` only (predictions use a float64 copy that
    each fit refreshes).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Hidden activation (fastnn's linear, sigmoid, tanh, relu).
    solver : {"sgd", "adam"}, default "adam"
        ``fastnn.SGD`` or ``fastnn.Adam``.
    alpha : float, default 0.0001
        L2 penalty; becomes the optimizer's weight decay ``alpha / batch_size`` (over the mean
        sample weight when there are weights).
    batch_size : int or "auto", default "auto"
        Mini-batch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of SGD's rate (Adam ignores it, as in scikit-learn). "constant" keeps
        ``learning_rate_init``; "invscaling" sets it to
        ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch (``t_``: the samples
        trained on so far); "adaptive" keeps it while the loss improves and divides it by 5
        each time the stopping rule would stop training (more than ``n_iter_no_change``
        epochs without a ``tol`` improvement, scikit-learn's rule), stopping only once the rate
        is at most 1e-6.
    learning_rate_init : float, default 0.001
        The initial learning rate.
    power_t : float, default 0.5
        The exponent of "invscaling".
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
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (same classes, layers, activation and dtype)
        instead of starting anew; as in scikit-learn the optimizer starts afresh (learning
        rate, momentum, Adam's moments), while ``t_``, ``loss_curve_`` and the best loss carry
        on.
    momentum : float, default 0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default True
        Use Nesterov momentum with SGD (when ``momentum > 0``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the samples and stop on their score (accuracy,
        weighted by ``sample_weight``); the best weights are kept. Not with ``partial_fit``.
    validation_fraction : float, default 0.1
        The held-out fraction, in (0, 1).
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's ``beta1``, ``beta2``, ``eps``.
    n_iter_no_change : int, default 10
        Training stops (or "adaptive" lowers the rate) once more than this many epochs in a row
        did not improve by ``tol``.
    dtype : {np.float32, np.float64, "float32", "float64"}, default np.float32
        The network's float type; ``X`` is converted to it once.
    class_weight : dict, "balanced" or None, default None
        Weights of the classes, ``{label: weight}`` (unlisted labels weigh 1), multiplying
        ``sample_weight``. "balanced" gives class c the weight
        ``sum(w) / (n_classes * sum of w in class c)`` (``n_samples / (n_classes *
        np.bincount(y))`` without sample weights), computed from each call's ``y``; with
        multilabel ``y`` it balances each label's 0s and 1s and multiplies over the labels
        (only "balanced" there).

    Raises
    ------
    ValueError
        From ``fit``, if a parameter is out of range, ``y`` holds fewer than two classes, or
        ``X`` / ``y`` / ``sample_weight`` are malformed (scikit-learn's input checks).

    Examples
    --------
    >>> from fastnn.datasets import load_digits, train_test_split
    >>> from fastnn.sklearn import MLPClassifier
    >>> X, y = load_digits()
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, seed=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), tol=1e-3, random_state=0)
    >>> clf = clf.fit(X_train, y_train)
    >>> clf.predict_proba(X_test[:2]).shape, clf.decision_function(X_test[:2]).shape
    ((2, 10), (2, 10))
    >>> clf.score(X_test, y_test) > 0.9
    True
    """

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
                 n_iter_no_change: int = 10, dtype: Any = np.float32,
                 class_weight: Optional[Union[Mapping[Any, float], Literal["balanced"]]] = None
                 ) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, dtype=dtype)
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    @property
    def _multilabel(self) -> bool:
        return self._binarizer.y_type_ == "multilabel-indicator"

    def _encode(self, y: NDArray[Any], first: bool, incremental: bool,
                classes: Optional[ArrayLike]) -> NDArray[np.float64]:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise self._error(f"y must be class labels (n_samples,) or a 0/1 multilabel "
                              f"indicator matrix (n_samples, n_labels). Received: y of shape "
                              f"{y.shape} ({kind})")
        multilabel = kind == "multilabel-indicator"
        if first:
            self._binarizer = LabelBinarizer().fit(y if multilabel or classes is None
                                                   else classes)
            self.classes_ = self._binarizer.classes_
            if not multilabel and len(self.classes_) < 2:
                raise self._error(f"needs samples of at least 2 classes; got 1 class "
                                  f"({V.plain(self.classes_[0])!r})")
            self._final_act = "softmax" if self._binarizer.y_type_ == "multiclass" \
                else "sigmoid"
            self._loss = "cross_entropy" if self._final_act == "softmax" \
                else "binary_cross_entropy"
        elif multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
            fitted = (f"{len(self.classes_)} labels (multilabel)" if self._multilabel
                      else "class labels")
            raise self._error(f"y must be like the y the network was fitted with: "
                              f"{fitted}. Received: y of shape {y.shape} ({kind})")
        elif not multilabel and not incremental:
            labels = np.unique(y)
            if set(labels.tolist()) != set(self.classes_.tolist()):
                raise self._error(f"warm_start needs y with the classes of the previous fit: "
                                  f"{self.classes_.tolist()}. Received: y with classes "
                                  f"{labels.tolist()}")
        if not multilabel and incremental:
            unknown = np.setdiff1d(y, self.classes_)
            if unknown.size:
                raise self._error(f"y holds labels {unknown.tolist()} not in classes_ "
                                  f"{self.classes_.tolist()}")
        return self._binarizer.transform(y).astype(np.float64)

    def _class_weights(self, y, sample_weight):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        weight = self.class_weight
        if weight is None:
            return sample_weight
        if self._multilabel:
            if not (isinstance(weight, str) and weight == "balanced"):
                raise self._error(f"with multilabel y, class_weight must be None or "
                                  f"'balanced'. Received: class_weight={V.plain(weight)!r}")
            factor = np.ones(len(y))
            for column in np.asarray(y, dtype=np.intp).T:
                factor *= _balanced(column, sample_weight, 2)
        elif isinstance(weight, str) and weight == "balanced":
            codes = np.searchsorted(self.classes_, y)
            factor = _balanced(codes, sample_weight, len(self.classes_))
        elif isinstance(weight, Mapping):
            factor = self._class_weight_table(weight)[np.searchsorted(self.classes_, y)]
        else:
            raise self._error(f"class_weight must be a dict {{label: weight}}, 'balanced' or "
                              f"None. Received: class_weight={V.plain(weight)!r}")
        return factor if sample_weight is None else sample_weight * factor

    def _class_weight_table(self, weight: Mapping[Any, float]) -> NDArray[np.float64]:
        table = np.ones(len(self.classes_))
        unmatched = []
        for label, value in weight.items():
            value = self._checked(V.check_float, f"class_weight[{V.plain(label)!r}]", value,
                                  0.0)
            where = [i for i, c in enumerate(self.classes_.tolist()) if c == V.plain(label)]
            if where:
                table[where[0]] = value
            else:
                unmatched.append(V.plain(label))
        listed = len(weight) - len(unmatched)
        # scikit-learn's rule: a label that is no class is an error when some class is unlisted
        if unmatched and listed < len(self.classes_):
            raise self._error(f"class_weight has labels {unmatched} that are not classes "
                              f"(classes_ {self.classes_.tolist()})")
        return table

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> MLPClassifier:
        """Train on X (n_samples, n_features) and labels y (n_samples,) or a 0/1 indicator
        matrix (n_samples, n_labels); from scratch unless ``warm_start``.

        ``sample_weight`` (n_samples,), >= 0, weighs each sample's loss (times
        ``class_weight``). Stops once more than ``n_iter_no_change`` epochs in a row did not
        improve by ``tol`` (or, "adaptive", lowers the rate); otherwise warns with
        ``ConvergenceWarning`` at ``max_iter``. Returns ``self``.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                    classes: Optional[ArrayLike] = None) -> MLPClassifier:
        """One epoch over ``(X, y)``, ``sample_weight`` as in ``fit``; the first call needs
        ``classes`` (all labels). The optimizer and the learning rate schedule carry on from
        call to call; ``class_weight="balanced"`` balances each call's ``y``.

        Raises
        ------
        ValueError
            If ``classes`` is missing on the first call, ``y`` holds a label not in it, or
            ``early_stopping`` is set.
        """
        if not hasattr(self, "model_") and classes is None:
            raise self._error("classes must be passed on the first call to partial_fit "
                              "(all labels, e.g. np.unique(y_all))")
        first = None if hasattr(self, "model_") else np.unique(np.asarray(classes))
        return self._fit(X, y, sample_weight, incremental=True, classes=first)

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """The scores before the final softmax or sigmoid (logits).

        Shape (n_samples,) for two classes (the score of ``classes_[1]``, > 0 where it is
        predicted, as scikit-learn's linear classifiers give), (n_samples, n_classes) for more,
        (n_samples, n_labels) for multilabel targets.
        """
        scores = self._outputs(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, (n_samples, n_classes), in the order of ``classes_``; for
        multilabel targets each label's probability, (n_samples, n_labels)."""
        scores = self._outputs(X)
        if self._final_act == "softmax":
            return softmax(scores, axis=1)
        proba = expit(scores)
        return proba if self._multilabel else np.hstack([1 - proba, proba])

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most likely class of each sample, (n_samples,), from ``classes_``; for
        multilabel targets the 0/1 indicator matrix (probability > 0.5)."""
        scores = self._outputs(X)
        if self._multilabel:
            return (scores > 0).astype(int)
        if scores.shape[1] == 1:
            return self.classes_[(scores[:, 0] > 0).astype(np.intp)]
        return self.classes_[np.argmax(scores, axis=1)]

    def _validation_score(self, X, T, w):
        out = self.model_.predict(X).astype(np.float64)
        decode = self._binarizer.inverse_transform
        return float(accuracy_score(decode(T), decode(out), sample_weight=w))


class MLPRegressor(RegressorMixin, BaseMLP):
    """A multi-layer perceptron regressor (identity output, squared error) on fastnn.

    Minimises ``mean((y - p)^2)`` over samples and outputs. The parameters are the same as
    ``MLPClassifier``'s but ``class_weight`` (scikit-learn's ``MLPRegressor`` names and
    defaults, plus ``dtype``); with ``early_stopping`` the validation score is R^2.

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

    def _encode(self, y: NDArray[Any], first: bool, incremental: bool,
                classes: Any) -> NDArray[np.float64]:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = y.ndim == 1
        return y.reshape(len(y), -1)

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> MLPRegressor:
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs);
        from scratch unless ``warm_start``. ``sample_weight`` (n_samples,), >= 0, weighs each
        sample's loss. The stopping rule is ``MLPClassifier.fit``'s. Returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: Optional[ArrayLike] = None) -> MLPRegressor:
        """One epoch over ``(X, y)``; y (n_samples,) or (n_samples, n_outputs). Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predicted targets, (n_samples,) or (n_samples, n_outputs) as ``y`` was in ``fit``."""
        out = self._outputs(X)
        return out[:, 0] if self._y_1d else out

    def _validation_score(self, X, T, w):
        out = self.model_.predict(X).astype(np.float64)
        return float(r2_score(T, out, sample_weight=w))
