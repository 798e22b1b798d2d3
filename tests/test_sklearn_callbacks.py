"""scikit-learn estimators (their parameters and check_estimator are in test_sklearn_params.py),
callbacks, schedules and thread control."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint
from fastnn.schedules import CosineDecay, ExponentialDecay, StepDecay

sklearn = pytest.importorskip("sklearn")


def test_classifier_learns_digits_and_exposes_fitted_attributes(digits_split):
    from fastnn.sklearn import MLPClassifier
    X_train, X_test, y_train, y_test = digits_split
    clf = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", learning_rate_init=0.05,
                        momentum=0.9, nesterovs_momentum=False, batch_size=32, max_iter=15,
                        alpha=0.0, random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.94
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 64
    assert [w.shape for w in clf.coefs_] == [(64, 64), (64, 10)]
    assert [b.shape for b in clf.intercepts_] == [(64,), (10,)]
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.loss_curve_[-1] < clf.loss_curve_[0]
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(1, activation="sigmoid")],
                           input_dim=5, seed=0, backend="numpy")
    model.compile("binary_cross_entropy", fnn.SGD(lr=0.5))
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(X[:150], y[:150], epochs=200, batch_size=16,
                        validation_data=(X[150:], y[150:]), verbose=0, callbacks=[stopper])
    epochs_run = len(history.history["val_loss"])
    assert epochs_run < 200 and stopper.stopped_epoch == epochs_run - 1
    best = min(history.history["val_loss"])
    assert model.evaluate(X[150:], y[150:])["loss"] == pytest.approx(best, rel=1e-6)


def test_checkpoint_and_scheduler(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=3, seed=0)
    model.compile("binary_cross_entropy", fnn.SGD(lr=1.0))
    schedule = StepDecay(0.4, drop=0.5, every=2)
    history = model.fit(X, y, epochs=4, batch_size=8, verbose=0, callbacks=[
        LearningRateScheduler(schedule), ModelCheckpoint(tmp_path / "m{epoch}.fnn")])
    assert history.history["lr"] == [0.4, 0.4, 0.2, 0.2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m{i}.fnn" for i in (1, 2, 3, 4)]
    np.testing.assert_array_equal(fnn.load(tmp_path / "m4.fnn").predict(X), model.predict(X))


def test_schedules_follow_their_formulas():
    assert ExponentialDecay(1.0, rate=0.5)(3) == 0.125
    cosine = CosineDecay(1.0, epochs=10, min_lr=0.1)
    assert cosine(0) == 1.0 and cosine(10) == pytest.approx(0.1) and cosine(5) == pytest.approx(0.55)


def test_threadpoolctl_sees_and_limits_the_openmp_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastnn.backends import fast_backend
    if not fast_backend.openmp_enabled():
        pytest.skip("serial build: no OpenMP pool")
    fnn.ops.matmul(np.ones((4, 4)), np.ones((4, 4)))
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with fnn.threads(2):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert fnn.get_num_threads() == 1
        assert fnn.get_num_threads() == 2


def test_history_plot_writes_a_png_of_loss_and_metric_curves(tmp_path, digits_split):
    Xtr, Xte, ytr, yte = digits_split
    model = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0)
    model.compile("cross_entropy", fnn.SGD(lr=0.1), metrics=["accuracy"])
    history = model.fit(Xtr[:300], ytr[:300], epochs=3, batch_size=32, verbose=0,
                        validation_data=(Xte[:100], yte[:100]))
    path = history.plot(str(tmp_path / "curves.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    import matplotlib.image as mpimg
    image = mpimg.imread(path)
    assert image.shape[1] > image.shape[0]           # two panels side by side: loss, accuracy
    assert image.std() > 0.01                        # something was drawn


def test_bench_plot_option_writes_a_png(tmp_path):
    from fastnn import _bench_table as T
    from fastnn import benchmarking as B
    workload = B.workloads_of("predict")[0]
    with B.threads(1):
        times = T.measure_row([B.build(workload, "fastnn"), B.build(workload, "numpy")], True)
    rows = [{"workload": workload, "threads": 1, "times": times, "scores": {}, "notes": ""}]
    path = tmp_path / "ratios.png"
    T.plot_ratios(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_targets_flag_two_threads_slower_than_one():
    from fastnn import _bench_table as T
    from fastnn import benchmarking as B
    step, epoch = B.workloads_of("train_step")[0], B.workloads_of("epoch")[0]

    def row(workload, threads, seconds):
        return {"workload": workload, "threads": threads, "times": {"fastnn": seconds},
                "scores": {}, "notes": ""}

    rows = [row(step, 1, 100e-6), row(step, 2, 80e-6),        # faster on 2: met
            row(epoch, 1, 3e-3), row(epoch, 2, 4e-3)]         # slower on 2: missed
    lines = [line for line in T.check_targets(rows) if "not slower" in line]
    assert len(lines) == 2
    assert lines[0].split()[0] == "MISSED" and epoch.key in lines[0] and "0.75x" in lines[0]
    assert lines[1].split()[0] == "MET" and step.key in lines[1] and "1.25x" in lines[1]


def test_random_state_accepts_the_forms_scikit_learn_does():
    from fastnn.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.random((60, 4))
    y = (X[:, 0] > 0.5).astype(int)
    a = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=np.random.RandomState(5))
    b = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=np.random.RandomState(5))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa = a.fit(X, y).predict_proba(X)
        pb = b.fit(X, y).predict_proba(X)
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=None).fit(X, y)
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=np.int64(3),
                      early_stopping=True).fit(X, y)
    assert np.array_equal(pa, pb)              # the same generator state, the same model
