"""The scikit-learn wrappers' parameters (#20): dtype, sample_weight, class_weight, warm_start,
the learning_rate schedules, decision_function, multilabel targets and the messages; held to
scikit-learn's own MLP where the names share a meaning, and to check_estimator at the default
and at other settings."""

import re
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from scipy.special import expit, softmax  # noqa: E402
from sklearn.base import is_classifier  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fnn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(n=60, seed=0):
    """Five features, three unbalanced classes, and a regression target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y, X[:, 0] - X[:, 1] ** 2


def interleaved(estimator):
    return [w for pair in zip(estimator.coefs_, estimator.intercepts_) for w in pair]


def twins(ours_cls, theirs_cls, X, y, ours=None, **params):
    """A fastnn estimator and scikit-learn's starting from the same weights: one epoch each,
    then scikit-learn's weights copied into fastnn's network (warm_start keeps them for the
    next fit). Full batches in order, no L2 penalty (fastnn's decays biases too), float64."""
    common = dict(solver="sgd", alpha=0.0, shuffle=False, batch_size=len(X), warm_start=True,
                  max_iter=1, random_state=0)
    common.update(params)
    mine = ours_cls(dtype="float64", **{**common, **(ours or {})}).fit(X, y)
    theirs = theirs_cls(**common).fit(X, y)
    mine.model_.set_weights(interleaved(theirs))
    for est in (mine, theirs):          # the warm-up epochs began from different weights
        est.best_loss_ = np.inf
        est._no_improvement_count = 0
    return mine, theirs


def assert_same_training(mine, theirs, loss_scale=1.0):
    assert mine.n_iter_ == theirs.n_iter_ and mine.t_ == theirs.t_
    np.testing.assert_allclose(mine.loss_curve_[1:], loss_scale * np.array(theirs.loss_curve_[1:]),
                               rtol=1e-10)
    for a, b in zip(interleaved(mine), interleaved(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# -- check_estimator at the default and at other settings

FLOAT32_WEIGHTS = ("float32 training: integer weights and repeated rows sum in different orders, "
                   "so the two fits agree to ~1e-6, not the check's 1e-7 "
                   "(dtype='float64' passes it; test_integer_weights_train_as_repeated_rows)")
REFIT = ("the check fits one instance twice and expects the second fit to start anew; "
         "warm_start continues (scikit-learn's own MLP with warm_start=True fails it too)")


def expected_failures(estimator):
    failed = {}
    if np.dtype(estimator.dtype) == np.float32:
        failed["check_sample_weight_equivalence_on_dense_data"] = FLOAT32_WEIGHTS
    if estimator.warm_start:
        failed["check_supervised_y_2d"] = REFIT
        if is_classifier(estimator):
            failed["check_classifiers_multilabel_representation_invariance"] = REFIT
    return failed


SMALL = dict(hidden_layer_sizes=(20,), max_iter=100, dtype="float64")


@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor(),
     MLPClassifier(solver="sgd", learning_rate="adaptive", class_weight="balanced", **SMALL),
     MLPRegressor(solver="sgd", learning_rate="adaptive", **SMALL),
     MLPClassifier(warm_start=True, **SMALL), MLPRegressor(warm_start=True, **SMALL)],
    expected_failed_checks=expected_failures, xfail_strict=False)
def test_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("name", sorted(expected_failures(MLPClassifier(warm_start=True,
                                                                        dtype="float64"))))
def test_scikit_learns_own_mlp_fails_the_refit_checks_with_warm_start_too(name):
    from sklearn.utils import estimator_checks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError):
            getattr(estimator_checks, name)("MLPClassifier",
                                            SkMLPClassifier(warm_start=True, max_iter=100))


# -- learning_rate, power_t and the stopping rule, against scikit-learn's MLP

@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_learning_rate_schedules_train_as_scikit_learns(schedule, momentum):
    X, y, _ = data()
    mine, theirs = twins(MLPClassifier, SkMLPClassifier, X, y, hidden_layer_sizes=(7,),
                         learning_rate=schedule, learning_rate_init=0.3, momentum=momentum,
                         batch_size=20, tol=1e-2, n_iter_no_change=2, power_t=0.3)
    for est in (mine, theirs):
        est.set_params(max_iter=60).fit(X, y)
    assert_same_training(mine, theirs)
    assert mine.model_.optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    if schedule == "adaptive":
        assert mine.model_.optimizer.lr < 0.3 / 5          # it was divided along the way
    if schedule == "constant":
        assert mine.n_iter_ < 60                           # the stopping rule ended it


def test_invscaling_follows_its_formula_per_epoch():
    X, y, _ = data()
    n, init, power = len(X), 0.2, 0.4
    clf = MLPClassifier(solver="sgd", learning_rate="invscaling", learning_rate_init=init,
                        power_t=power, random_state=0)
    for calls in range(1, 5):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        assert clf.model_.optimizer.lr == init / (calls * n + 1) ** power
        assert clf.t_ == calls * n and clf.n_iter_ == 1
    clf = MLPClassifier(solver="sgd", learning_rate="invscaling", learning_rate_init=init,
                        power_t=power, max_iter=7, tol=0.0, n_iter_no_change=50,
                        random_state=0).fit(X, y)
    assert clf.n_iter_ == 7 and clf.model_.optimizer.lr == init / (7 * n + 1) ** power
    adam = MLPClassifier(learning_rate="invscaling", learning_rate_init=init, max_iter=3,
                         random_state=0).fit(X, y)
    assert adam.model_.optimizer.lr == init        # Adam ignores the schedule, as in sklearn


def test_adaptive_divides_by_five_until_1e_6_then_stops():
    X, y, _ = data()
    clf = MLPClassifier(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1,
                        tol=10.0, n_iter_no_change=1, max_iter=100, random_state=0).fit(X, y)
    # by hand: epoch 1 improves on inf; then every second epoch is the second without a tol
    # improvement (> n_iter_no_change): the rate is divided, or training stops at <= 1e-6
    lr, epochs = 0.1, 1
    while True:
        epochs += 2
        if lr <= 1e-6:
            break
        lr /= 5
    assert clf.n_iter_ == epochs == 19
    assert clf.model_.optimizer.lr == pytest.approx(lr, rel=1e-12)


# -- sample_weight

@pytest.mark.parametrize("schedule", ["constant", "adaptive"])
def test_sample_weight_trains_as_scikit_learns(schedule):
    X, y, target = data()
    weight = np.random.default_rng(1).integers(0, 4, len(X)).astype(float)
    mine, theirs = twins(MLPClassifier, SkMLPClassifier, X, y, hidden_layer_sizes=(6,),
                         learning_rate=schedule, learning_rate_init=0.3, tol=1e-2,
                         n_iter_no_change=2)
    for est in (mine, theirs):
        est.set_params(max_iter=40).fit(X, y, sample_weight=weight)
    assert_same_training(mine, theirs)
    # fastnn's regressor loss is twice scikit-learn's: half the rate and twice the tol match
    mine, theirs = twins(MLPRegressor, SkMLPRegressor, X, target, hidden_layer_sizes=(6,),
                         ours=dict(learning_rate_init=0.05, tol=2e-3), learning_rate_init=0.1,
                         tol=1e-3, learning_rate=schedule, n_iter_no_change=2)
    for est in (mine, theirs):
        est.set_params(max_iter=30).fit(X, target, sample_weight=weight)
    assert_same_training(mine, theirs, loss_scale=2.0)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_integer_weights_train_as_repeated_rows(dtype, rtol):
    X, y, target = data()
    weight = np.random.default_rng(2).integers(0, 4, len(X))
    params = dict(hidden_layer_sizes=(8,), batch_size=500, alpha=0.01, max_iter=30,
                  random_state=0, dtype=dtype)
    for cls, t, method in ((MLPClassifier, y, "predict_proba"), (MLPRegressor, target, "predict")):
        weighted = cls(**params).fit(X, t, sample_weight=weight)
        repeated = cls(**params).fit(np.repeat(X, weight, axis=0), np.repeat(t, weight))
        np.testing.assert_allclose(getattr(weighted, method)(X), getattr(repeated, method)(X),
                                   rtol=rtol, atol=rtol * 1e-2)
        # partial_fit: one call, one full batch
        weighted = cls(**params)
        repeated = cls(**params)
        extra = {"classes": [0, 1, 2]} if cls is MLPClassifier else {}
        weighted.partial_fit(X, t, sample_weight=weight, **extra)
        repeated.partial_fit(np.repeat(X, weight, axis=0), np.repeat(t, weight), **extra)
        np.testing.assert_allclose(getattr(weighted, method)(X), getattr(repeated, method)(X),
                                   rtol=rtol, atol=rtol * 1e-2)


def test_score_with_sample_weight_is_scikit_learns_metric():
    X, y, target = data()
    weight = np.random.default_rng(3).uniform(0, 3, len(X))
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    expected = accuracy_score(y, clf.predict(X), sample_weight=weight)
    assert clf.score(X, y, sample_weight=weight) == expected != clf.score(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, target)
    expected = r2_score(target, reg.predict(X), sample_weight=weight)
    assert reg.score(X, target, sample_weight=weight) == expected != reg.score(X, target)


def test_early_stopping_scores_the_held_out_samples_with_their_weights():
    X, y, target = data(n=100)
    weight = np.random.default_rng(7).uniform(0, 3, len(X))
    held_out = np.random.RandomState(0).permutation(len(X))[:20]     # validation_fraction 0.2
    for cls, t, metric in ((MLPClassifier, y, accuracy_score), (MLPRegressor, target, r2_score)):
        est = cls(hidden_layer_sizes=(4,), early_stopping=True, validation_fraction=0.2,
                  max_iter=1, random_state=0, dtype="float64").fit(X, t, sample_weight=weight)
        expected = metric(t[held_out], est.predict(X[held_out]), sample_weight=weight[held_out])
        assert est.validation_scores_ == [pytest.approx(expected, rel=1e-12)]
        assert expected != pytest.approx(metric(t[held_out], est.predict(X[held_out])))


@pytest.mark.parametrize("weight, fragment", [
    (np.ones(5), "sample_weight"),
    (-np.ones(60), "Negative"),
    (np.zeros(60), "non-zero"),
])
def test_bad_sample_weights_are_refused(weight, fragment):
    X, y, _ = data()
    with pytest.raises(ValueError, match=f"^MLPClassifier: .*{fragment}"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=weight)


# -- class_weight

def test_balanced_is_the_sample_weight_it_stands_for():
    X, y, _ = data()
    counts = np.bincount(y)
    assert len(set(counts)) == 3                         # unbalanced
    by_hand = len(y) / (3 * counts)
    np.testing.assert_array_equal(by_hand, compute_class_weight("balanced", classes=np.arange(3),
                                                                y=y))
    params = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X, y)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=by_hand[y])
    plain = MLPClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(balanced.predict_proba(X), weighted.predict_proba(X))
    assert not np.array_equal(balanced.predict_proba(X), plain.predict_proba(X))
    # with sample weights: multiplied, the classes counted by weight (LogisticRegression's way)
    sw = np.random.default_rng(4).uniform(0.5, 2.0, len(y))
    both = MLPClassifier(class_weight="balanced", dtype="float64", **params).fit(
        X, y, sample_weight=sw)
    factor = compute_class_weight("balanced", classes=np.arange(3), y=y, sample_weight=sw)
    same = MLPClassifier(dtype="float64", **params).fit(X, y, sample_weight=sw * factor[y])
    np.testing.assert_allclose(both.predict_proba(X), same.predict_proba(X), rtol=1e-10)


def test_class_weight_dict_of_labels_multiplies_sample_weight():
    X, y, _ = data()
    labels = np.array(["cat", "dog", "emu"])[y]
    sw = np.random.default_rng(5).uniform(0.5, 2.0, len(y))
    params = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0, dtype="float64")
    by_dict = MLPClassifier(class_weight={"cat": 3.0, "emu": 0.5}, **params).fit(
        X, labels, sample_weight=sw)
    table = {"cat": 3.0, "dog": 1.0, "emu": 0.5}
    by_weight = MLPClassifier(**params).fit(
        X, labels, sample_weight=sw * np.array([table[label] for label in labels]))
    np.testing.assert_allclose(by_dict.predict_proba(X), by_weight.predict_proba(X), rtol=1e-12)
    assert list(by_dict.classes_) == ["cat", "dog", "emu"]
    assert set(by_dict.predict(X)) <= {"cat", "dog", "emu"}


def test_balanced_in_partial_fit_balances_each_call():
    X, y, _ = data()
    params = dict(hidden_layer_sizes=(8,), random_state=0)
    a = MLPClassifier(class_weight="balanced", **params)
    b = MLPClassifier(**params)
    for part in (slice(0, 30), slice(30, 60)):
        counts = np.bincount(y[part], minlength=3)
        present = counts > 0
        factor = np.ones(3)
        factor[present] = len(y[part]) / (present.sum() * counts[present])
        a.partial_fit(X[part], y[part], classes=[0, 1, 2])
        b.partial_fit(X[part], y[part], classes=[0, 1, 2], sample_weight=factor[y[part]])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_balanced_with_multilabel_targets_balances_each_label():
    X, _, _ = data()
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 1, X[:, 2] > -0.5], axis=1).astype(int)
    params = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0, dtype="float64")
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X, Y)
    weighted = MLPClassifier(**params).fit(X, Y, sample_weight=compute_sample_weight("balanced",
                                                                                    Y))
    np.testing.assert_allclose(balanced.predict_proba(X), weighted.predict_proba(X), rtol=1e-12)


# -- warm_start

def test_warm_start_continues_from_the_fitted_weights():
    X, y, _ = data()
    params = dict(solver="sgd", momentum=0.0, learning_rate_init=0.2, batch_size=len(X),
                  shuffle=False, tol=0.0, n_iter_no_change=100, random_state=0,
                  hidden_layer_sizes=(8,))
    warm = MLPClassifier(max_iter=3, warm_start=True, **params).fit(X, y)
    after_first = interleaved(warm)
    warm.set_params(max_iter=2).fit(X, y)
    straight = MLPClassifier(max_iter=5, **params).fit(X, y)
    for a, b in zip(interleaved(warm), interleaved(straight)):
        np.testing.assert_array_equal(a, b)
    assert warm.loss_curve_ == straight.loss_curve_ and warm.t_ == straight.t_
    assert warm.n_iter_ == 2                                  # the epochs of the last fit
    assert warm.model_.optimizer.iterations == 2              # a fresh optimizer, as in sklearn
    # without warm_start the second fit starts anew from the seed's weights
    cold = MLPClassifier(max_iter=3, **params).fit(X, y)
    cold.set_params(max_iter=2).fit(X, y)
    fresh = MLPClassifier(max_iter=2, **params).fit(X, y)
    for a, b, first in zip(interleaved(cold), interleaved(fresh), after_first):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, first)


def test_warm_start_refuses_another_network_or_other_classes():
    X, y, target = data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match=r"^MLPClassifier: warm_start needs y with the classes "
                                         r"of the previous fit: \[0, 1, 2\]"):
        clf.fit(X, np.minimum(y, 1))
    with pytest.raises(ValueError, match=r"^MLPClassifier: hidden_layer_sizes changed from "
                                         r"\(8,\) to \(9,\)"):
        clf.set_params(hidden_layer_sizes=(np.int64(9),)).fit(X, y)
    clf.set_params(hidden_layer_sizes=(8,), dtype="float64")
    with pytest.raises(ValueError, match="dtype changed from 'float32' to 'float64'"):
        clf.fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, warm_start=True).fit(X, target)
    with pytest.raises(ValueError, match="^MLPRegressor: y has 2 outputs, but the fitted network "
                                         "has 1"):
        reg.fit(X, np.stack([target, target], axis=1))


# -- decision_function

def hidden_logits(clf, X):
    h = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ W.astype(np.float64) + b, 0.0)          # relu
    return h @ clf.coefs_[-1].astype(np.float64) + clf.intercepts_[-1]


def test_decision_function_gives_the_scores_before_softmax_or_sigmoid():
    X, y, _ = data()
    binary = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(
        X, np.where(y > 0, "yes", "no"))
    scores = binary.decision_function(X)
    assert scores.shape == (60,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, hidden_logits(binary, X)[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(expit(scores), binary.predict_proba(X)[:, 1], rtol=1e-12)
    np.testing.assert_array_equal(binary.predict(X), np.where(scores > 0, "yes", "no"))
    multi = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    scores = multi.decision_function(X)
    assert scores.shape == (60, 3)
    np.testing.assert_allclose(scores, hidden_logits(multi, X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(softmax(scores, axis=1), multi.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(multi.predict(X), np.argmax(scores, axis=1))
    with pytest.raises(NotFittedError):
        MLPClassifier().decision_function(X)


def test_a_samples_prediction_does_not_depend_on_its_batch():
    # float32 training, float64 evaluation: alone, in a batch, in another order, the same
    X, y, target = data()
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=20, random_state=0).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(100,), max_iter=20, random_state=0).fit(X, target)
    assert clf.model_.dtype == np.float32
    order = np.random.default_rng(6).permutation(len(X))
    for method in (clf.decision_function, clf.predict_proba, reg.predict):
        whole = method(X)
        alone = np.array([method(X[i:i + 1])[0] for i in range(len(X))])
        np.testing.assert_allclose(alone, whole, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(method(X[order]), whole[order], rtol=1e-13, atol=1e-13)


# -- multilabel targets

def test_multilabel_trains_as_scikit_learns():
    X, _, _ = data()
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 1], axis=1).astype(int)
    # scikit-learn sums the labels' binary cross-entropies, fastnn averages them: 3x the rate
    mine, theirs = twins(MLPClassifier, SkMLPClassifier, X, Y, hidden_layer_sizes=(6,),
                         ours=dict(learning_rate_init=0.9), learning_rate_init=0.3)
    for est in (mine, theirs):
        est.set_params(max_iter=30).fit(X, Y)
    assert mine.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(3 * np.array(mine.loss_curve_[1:]), theirs.loss_curve_[1:],
                               rtol=1e-10)
    np.testing.assert_allclose(mine.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(mine.predict(X), theirs.predict(X))


def test_multilabel_targets_learn_and_predict_an_indicator_matrix(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    labels = lambda y: np.stack([y % 2, y > 4, y == 3], axis=1).astype(int)  # noqa: E731
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(
        X_train, labels(y_train))
    assert list(clf.classes_) == [0, 1, 2] and clf.out_activation_ == "logistic"
    predicted, proba = clf.predict(X_test), clf.predict_proba(X_test)
    assert predicted.shape == proba.shape == (len(X_test), 3)
    assert predicted.dtype.kind == "i" and set(np.unique(predicted)) <= {0, 1}
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(predicted, clf.decision_function(X_test) > 0)
    assert clf.score(X_test, labels(y_test)) == accuracy_score(labels(y_test), predicted) > 0.85
    online = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    online.partial_fit(X_train[:100], labels(y_train[:100]), classes=[0, 1, 2])
    online.partial_fit(X_train[100:200], labels(y_train[100:200]))
    assert online.predict(X_test[:3]).shape == (3, 3)
    with pytest.raises(ValueError, match=r"^MLPClassifier: y must be like the y the network was "
                                         r"fitted with: 3 labels \(multilabel\)"):
        online.partial_fit(X_train[:10], labels(y_train[:10])[:, :2])
    with pytest.raises(ValueError, match=r"^MLPClassifier: y must be class labels .* multilabel "
                                         r"indicator matrix"):
        MLPClassifier().fit(X_train[:20], np.stack([y_train[:20], y_train[:20]], axis=1))


# -- dtype

def test_dtype_float32_by_default_with_x_converted_once(monkeypatch):
    X, y, _ = data()
    seen = []
    fit = fnn.Sequential.fit

    def recording(model, X, *args, **kwargs):
        seen.append(X)
        return fit(model, X, *args, **kwargs)

    monkeypatch.setattr(fnn.Sequential, "fit", recording)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, tol=0.0, random_state=0)
    clf.fit(X.astype(np.float64), y)
    assert clf.model_.dtype == np.float32 and clf.coefs_[0].dtype == np.float32
    assert len(seen) == 4 and all(x is seen[0] for x in seen)     # one conversion, every epoch
    assert seen[0].dtype == np.float32 and seen[0].flags.c_contiguous
    assert clf.predict_proba(X).dtype == np.float64
    for dtype in ("float64", np.float64, np.dtype("float64")):
        assert MLPClassifier(max_iter=1, dtype=dtype).fit(X, y).model_.dtype == np.float64
    assert MLPRegressor(max_iter=1, dtype="float32").fit(X, y).model_.dtype == np.float32


# -- messages name the public class and print values plainly

@pytest.mark.parametrize("params, exc, text", [
    (dict(dtype=np.str_("float16")), ValueError,
     "dtype must be float32 or float64 (np.float32, 'float64', ...). Received: dtype='float16'"),
    (dict(dtype="banana"), ValueError, "Received: dtype='banana'"),
    (dict(dtype=None), ValueError, "Received: dtype=None"),
    (dict(dtype=np.int32), ValueError, "Received: dtype=<class 'numpy.int32'>"),
    (dict(learning_rate="sometimes"), ValueError,
     "learning_rate must be one of ['constant', 'invscaling', 'adaptive']. "
     "Received: learning_rate='sometimes'"),
    (dict(learning_rate_init=np.float64(-1.0)), ValueError, "Received: learning_rate_init=-1.0"),
    (dict(learning_rate_init=1e-50), ValueError, "learning_rate_init must be a float32 normal"),
    (dict(power_t=-0.5), ValueError, "Received: power_t=-0.5"),
    (dict(max_iter=np.int64(0)), ValueError, "Received: max_iter=0"),
    (dict(n_iter_no_change=1.5), TypeError, "n_iter_no_change must be an integer"),
    (dict(hidden_layer_sizes=(np.int64(10), 0)), ValueError,
     "Received: hidden_layer_sizes=(10, 0)"),
    (dict(momentum=1.0), ValueError, "Received: momentum=1.0"),
    (dict(solver="sgd", momentum=0.999999999), ValueError,
     "momentum must round to a number below 1 in float32"),
    (dict(beta_2=0.999999999), ValueError, "beta_2 must round to a number below 1 in float32"),
    (dict(epsilon=1e-30), ValueError, "epsilon must be > 5.4263e-26 with learning_rate_init"),
    (dict(hidden_layer_sizes=10.0), ValueError, "Received: hidden_layer_sizes=10.0"),
    (dict(batch_size=np.int64(0)), ValueError, "Received: batch_size=0"),
    (dict(class_weight="balance"), ValueError, "Received: class_weight='balance'"),
    (dict(class_weight={np.int64(7): 2.0}), ValueError,
     "class_weight has labels [7] that are not classes (classes_ [0, 1, 2])"),
    (dict(class_weight={0: np.float32(-1.0)}), ValueError, "Received: class_weight[0]=-1.0"),
])
def test_parameter_errors_name_the_public_class(params, exc, text):
    X, y, target = data()
    with pytest.raises(exc) as info:
        MLPClassifier(**{"max_iter": 2, **params}).fit(X, y)
    message = str(info.value)
    assert message.startswith("MLPClassifier: ") and text in message
    for internal in ("BaseMLP", "Sequential", "SGD", "Adam", "beta2", "eps ", "lr", "array("):
        assert internal not in message
    assert not re.search(r"np\.\w+\(", message)             # np.int64(10) and the like
    if "class_weight" not in params:
        with pytest.raises(exc) as info:
            MLPRegressor(**{"max_iter": 2, **params}).fit(X, target)
        assert str(info.value).startswith("MLPRegressor: ") and text in str(info.value)


def test_fitting_errors_print_labels_plainly():
    X, y, _ = data()
    clf = MLPClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match=r"^MLPClassifier: y holds labels \[10\] not in classes_ "
                                         r"\[0, 1, 2\]$"):
        clf.partial_fit(X[:2], np.array([10, 1], dtype=np.int64))
    with pytest.raises(ValueError, match=r"^MLPClassifier: needs samples of at least 2 classes; "
                                         r"got 1 class \(10\)$"):
        MLPClassifier().fit(X, np.full(len(X), 10, dtype=np.int64))
    with pytest.raises(ValueError, match="^MLPClassifier: classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="^MLPClassifier: partial_fit does not support "
                                         "early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"^MLPClassifier: with multilabel y, class_weight must "
                                         r"be None or 'balanced'"):
        MLPClassifier(class_weight={0: 2.0}).fit(X, np.stack([y > 0, y > 1], axis=1))
    with pytest.raises(FloatingPointError, match=r"^MLPRegressor: epoch \d+, batch 1: .* "
                                                 r"learning_rate_init"):
        MLPRegressor(solver="sgd", learning_rate_init=1e10, random_state=0).fit(
            X * 1e3, X[:, 0] * 1e8)
