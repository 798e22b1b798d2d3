"""Keras' label_smoothing of the cross-entropies.

The loss kernels read each target t as t (1 - s) + s / C (binary: s / 2). Checked against
PyTorch's cross_entropy(label_smoothing=) in float64 (values and gradients), the binary form
against the formula through PyTorch's autograd, Keras' own loss objects, the compiled kernels
against the NumPy backend, the compiled training step (labels and one-hot rows) against the
per-kernel path, metrics on the targets as given, files and configs, and bad values.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn import losses as L
from fastnn.backends import fast_available, get_backend

BACKENDS = ["numpy"] + (["fast"] if fast_available() else [])
SMOOTHINGS = [0.0, 0.1, 0.35, 1.0]


def _probs(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("s", SMOOTHINGS)
@pytest.mark.parametrize("kind", [L.CE_LOGITS, L.CE_PROBS, L.CE_SOFTMAX])
def test_categorical_matches_pytorch_in_float64(backend, s, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    n, c = 23, 5
    z = rng.standard_normal((n, c)) * 2
    labels = rng.integers(0, c, n)
    t = np.eye(c)[labels]
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(labels), label_smoothing=s)
    ref.backward()
    dz = zt.grad.numpy()
    p = _probs(z)
    out = z if kind == L.CE_LOGITS else p
    grad = np.empty_like(out)
    value = get_backend(backend).loss(kind, out, t, grad, None, 1.0 - s)
    np.testing.assert_allclose(value, ref.item(), rtol=1e-12)
    if kind == L.CE_PROBS:          # dL/dp: chain it through the softmax for PyTorch's dL/dz
        grad = p * (grad - (grad * p).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(grad, dz, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("s", SMOOTHINGS)
@pytest.mark.parametrize("kind", [L.BCE_LOGITS, L.BCE_PROBS, L.BCE_SIGMOID])
def test_binary_matches_the_smoothed_formula_through_pytorch(backend, s, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z = rng.standard_normal((17, 3)) * 2
    t = rng.integers(0, 2, (17, 3)).astype(float)
    zt = torch.tensor(z, requires_grad=True)
    smoothed = torch.tensor(t * (1 - s) + 0.5 * s)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(zt, smoothed)
    ref.backward()
    p = 1 / (1 + np.exp(-z))
    out = z if kind == L.BCE_LOGITS else p
    grad = np.empty_like(out)
    value = get_backend(backend).loss(kind, out, t, grad, None, 1.0 - s)
    np.testing.assert_allclose(value, ref.item(), rtol=1e-10)
    if kind == L.BCE_PROBS:         # dL/dp -> dL/dz through the sigmoid
        grad = grad * p * (1 - p)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-9, atol=1e-15)


@pytest.mark.skipif(not fast_available(), reason="compiled backend not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", range(L.BCE_LOGITS, L.CE_SOFTMAX + 1))
def test_compiled_kernel_is_its_numpy_twin(dtype, kind):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((301, 7)) * 2
    out = z if kind in (L.BCE_LOGITS, L.CE_LOGITS) else (
        1 / (1 + np.exp(-z)) if kind <= L.BCE_SIGMOID else _probs(z))
    t = (rng.integers(0, 2, z.shape).astype(float) if kind <= L.BCE_SIGMOID
         else np.eye(7)[rng.integers(0, 7, 301)])
    out, t = out.astype(dtype), t.astype(dtype)
    w = rng.uniform(0, 2, 301).astype(dtype)
    for weights in (None, w):
        results = []
        for backend in ("fast", "numpy"):
            grad = np.empty_like(out)
            results.append((get_backend(backend).loss(kind, out, t, grad, weights, 0.8), grad))
        (v0, g0), (v1, g1) = results
        np.testing.assert_allclose(v0, v1, rtol=1e-6 if dtype == np.float32 else 1e-13)
        # float32 gradients near 0 are differences of nearly equal terms: an absolute bound
        np.testing.assert_allclose(g0, g1, rtol=1e-6 if dtype == np.float32 else 1e-13,
                                   atol=1e-9 if dtype == np.float32 else 1e-16)


@pytest.mark.parametrize("s", [0.1, 0.4])
def test_keras_loss_objects_agree(keras, s):
    """Keras' loss objects called on outputs, probabilities and (from_logits=True) logits."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((12, 4)).astype(np.float32)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 12)]
    p = _probs(z).astype(np.float32)
    pairs = [
        (keras.losses.CategoricalCrossentropy(label_smoothing=s), p, t,
         fnn.losses.CategoricalCrossentropy(label_smoothing=s)),
        (keras.losses.BinaryCrossentropy(label_smoothing=s), 1 / (1 + np.exp(-z)),
         (t > 0).astype(np.float32), fnn.losses.BinaryCrossentropy(label_smoothing=s)),
    ]
    pairs += [
        (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=s), z, t,
         fnn.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=s)),
        (keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=s), z,
         (t > 0).astype(np.float32), fnn.losses.BinaryCrossentropy(from_logits=True,
                                                                    label_smoothing=s)),
    ]
    for ref_loss, out, target, ours in pairs:
        out = np.asarray(out, np.float32)
        ref = float(np.asarray(ref_loss(target, out)))
        assert ours(target, out) == pytest.approx(ref, rel=2e-6)


def _digits(n=400):
    X, y = fnn.datasets.load_digits()
    return (X[:n] / 16.0).astype(np.float32), y[:n]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_backends_and_target_forms_agree(dtype):
    """The compiled training step (class labels: one-hot rows built in the step) against one-hot
    targets and the NumPy backend, with smoothing: the same history."""
    X, y = _digits()
    histories = []
    for backend, targets in [(b, y) for b in BACKENDS] + [(BACKENDS[-1], np.eye(10)[y])]:
        model = fnn.Sequential([fnn.Dense(16, activation="relu"),
                                fnn.Dense(10, activation="softmax")],
                               input_dim=64, seed=0, backend=backend, dtype=dtype)
        model.compile(loss=fnn.losses.CategoricalCrossentropy(label_smoothing=0.2),
                      optimizer=fnn.Adam(0.01), metrics=["accuracy"])
        histories.append(model.fit(X, targets, epochs=4, batch_size=32, shuffle=False,
                                   verbose=0).history)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for h in histories[1:]:
        np.testing.assert_allclose(h["loss"], histories[0]["loss"], rtol=tol)
    assert histories[0]["accuracy"][-1] > 0.8


@pytest.mark.parametrize("backend", BACKENDS)
def test_smoothing_changes_the_loss_not_the_metrics(backend):
    """Against a model with the same weights: the loss is the smoothed formula, accuracy is
    computed on the labels as given (also at s = 1, where every smoothed binary target is 0.5)."""
    X, y = _digits(60)
    model = fnn.Sequential([fnn.Dense(10, activation="softmax")], input_dim=64, seed=1,
                           backend=backend, dtype="float64")
    p = model.predict(X)
    for s in (0.0, 0.3):
        model.compile(loss=fnn.losses.CategoricalCrossentropy(label_smoothing=s),
                      metrics=["accuracy"])
        scores = model.evaluate(X, y)
        t = np.eye(10)[y] * (1 - s) + s / 10
        assert scores["loss"] == pytest.approx(-(t * np.log(p)).sum(axis=1).mean(), rel=1e-12)
        assert scores["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y))
    binary = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=64, seed=2,
                            backend=backend, dtype="float64")
    yb = (y % 2).astype(float)
    pb = binary.predict(X)[:, 0]
    binary.compile(loss=fnn.losses.BinaryCrossentropy(label_smoothing=1.0),
                   metrics=["accuracy"])
    scores = binary.evaluate(X, yb)
    assert scores["accuracy"] == pytest.approx(np.mean((pb >= 0.5) == (yb == 1)))
    expected = -(0.5 * np.log(pb) + 0.5 * np.log(1 - pb)).mean()
    assert scores["loss"] == pytest.approx(expected, rel=1e-12)


def test_configs_files_and_names(tmp_path):
    ce = fnn.losses.CategoricalCrossentropy(label_smoothing=0.1)
    assert ce.get_config() == {"name": "cross_entropy", "label_smoothing": 0.1}
    assert fnn.CrossEntropy().get_config() == {"name": "cross_entropy"}      # files unchanged
    assert repr(ce) == "CategoricalCrossentropy(from_logits=False, label_smoothing=0.1)"
    assert repr(fnn.BinaryCrossEntropy(0.2)) == "BinaryCrossEntropy(label_smoothing=0.2)"
    again = L.get_loss({"name": "binary_crossentropy", "label_smoothing": 0.25})
    assert isinstance(again, fnn.BinaryCrossEntropy) and again.label_smoothing == 0.25
    model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=2, seed=0)
    model.compile(loss=fnn.CrossEntropy(label_smoothing=0.15), optimizer="adam")
    model.fit(np.ones((4, 2)), [0, 1, 2, 0], epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.loss.label_smoothing == 0.15
    x, y = np.ones((4, 2)), [0, 1, 2, 0]
    assert loaded.evaluate(x, y)["loss"] == model.evaluate(x, y)["loss"]


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: fnn.CrossEntropy(label_smoothing=-0.1), ValueError, r"label_smoothing"),
    (lambda: fnn.BinaryCrossEntropy(label_smoothing=1.5), ValueError, r"label_smoothing=1.5"),
    (lambda: fnn.losses.CategoricalCrossentropy(label_smoothing="0.1"), TypeError,
     r"label_smoothing"),
    (lambda: fnn.losses.BinaryCrossentropy(label_smoothing=float("nan")), ValueError,
     r"label_smoothing"),
    (lambda: L.get_loss({"name": "mse", "label_smoothing": 0.1}), TypeError,
     r"label_smoothing"),
])
def test_bad_values_are_refused_by_name(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
