"""Numerical robustness: extreme logits, saturated sigmoids, exact 0/1 targets, divergence.

- Pre-activations of +-1e4 at the output, for every final activation and every loss, both backends
  and both dtypes, give a finite loss and finite gradients (``model.loss_and_gradients``); where the
  loss reads logits (fused or not), its value matches a float64 computation written here with
  log-sum-exp / softplus.
- Training that diverges (a huge learning rate) raises FloatingPointError naming the epoch and the
  batch, and leaves the weights and optimizer state finite; with ``TerminateOnNaN`` it stops
  instead, weights finite.
"""

import math
import re

import numpy as np
import pytest

import fastnn as fnn

FINALS = ["linear", "sigmoid", "softmax", "tanh", "relu", "leaky_relu", "step"]
LOSSES = ["mse", "binary_cross_entropy", "cross_entropy"]
C = 3
BIG = 1e4
# inputs of the output layer; with W2 = BIG * I the pre-activations are +-1e4, 0 and mixtures
X = np.array([[1, -1, 0], [-1, 1, -1], [1, 1, 1], [-1, -1, -1], [0.5, -1, 1], [0, 0, 0]],
             dtype=np.float64)
Z = BIG * X
LABELS = np.array([1, 0, 2, 1, 0, 2])      # row 0: the true class has logit -1e4, the others +1e4
BINARY = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 0]],
                  dtype=np.float64)          # exactly 0 and 1, often "confidently wrong"


def _targets(loss):
    if loss == "cross_entropy":
        return LABELS
    return BINARY


def _model(backend, dtype, final, loss):
    # identity hidden layer, then the output layer scaling by 1e4: z = 1e4 * x
    model = fnn.Sequential([fnn.Dense(C), fnn.Dense(C, activation=final)], input_dim=C,
                           seed=0, dtype=dtype, backend=backend)
    model.set_weights([np.eye(C), np.zeros(C), BIG * np.eye(C), np.zeros(C)])
    model.compile(loss, fnn.SGD(lr=0.1))
    return model


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(z / 2))     # no overflow for large |z|


def _softplus(z):
    return np.logaddexp(0.0, z)


def _clipped_probability_loss(final, loss, dtype):
    """The fused kinds (BCE after sigmoid, CE after softmax) see only the probabilities, which
    saturate to exactly 0 or 1: their loss value clips p to [eps, 1 - eps] (the gradient p - y
    is exact). This is that clipped value, computed here in float64 from rounded probabilities."""
    eps = float(np.finfo(dtype).eps)
    if final == "sigmoid" and loss == "binary_cross_entropy":
        p = np.clip(_sigmoid(Z).astype(dtype).astype(np.float64), eps, 1 - eps)
        return float(-np.mean(BINARY * np.log(p) + (1 - BINARY) * np.log(1 - p)))
    if final == "softmax" and loss == "cross_entropy":
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        p = (e / e.sum(axis=1, keepdims=True)).astype(dtype).astype(np.float64)
        return float(-np.mean(np.log(np.maximum(p[np.arange(len(Z)), LABELS], eps))))
    return None


def expected_loss(final, loss, dtype):
    """The loss in float64 from the logits, where it is defined without clipping."""
    if loss == "mse":
        out = {"linear": Z, "relu": np.maximum(Z, 0), "tanh": np.tanh(Z),
               "leaky_relu": np.where(Z > 0, Z, 0.01 * Z),
               "sigmoid": _sigmoid(Z), "step": (Z >= 0.5).astype(float)}.get(final)
        return None if out is None else float(np.mean((out - BINARY) ** 2))
    clipped = _clipped_probability_loss(final, loss, dtype)
    if clipped is not None:
        return clipped
    if loss == "binary_cross_entropy" and final == "linear":
        # BCE on logits z: softplus(z) - y z, mean over all entries
        return float(np.mean(_softplus(Z) - BINARY * Z))
    if loss == "cross_entropy" and final == "linear":
        lse = np.logaddexp.reduce(Z, axis=1)
        return float(np.mean(lse - Z[np.arange(len(Z)), LABELS]))
    return None


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("final", FINALS)
def test_extreme_logits_give_finite_loss_and_gradients(backend, dtype, final, loss):
    model = _model(backend, dtype, final, loss)
    value, grads = model.loss_and_gradients(X, _targets(loss))
    assert math.isfinite(value) and value >= 0
    assert len(grads) == 4
    for g, w in zip(grads, model.get_weights()):
        assert g.shape == w.shape and g.dtype == np.dtype(dtype)
        assert np.isfinite(g).all()
    want = expected_loss(final, loss, dtype)
    if want is not None:
        assert value == pytest.approx(want, rel=1e-6 if dtype == "float32" else 1e-12)
    # a training step from here keeps everything finite too
    model.train_on_batch(X, _targets(loss))
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_saturated_sigmoid_with_exact_targets(backend, dtype, sign):
    """sigmoid(+-1e4) is exactly 1 or 0 in floating point. BCE with targets exactly 0 and 1 stays
    finite; the fused gradient (p - y) / count is exact; on logits (no final sigmoid) the value
    is the exact softplus form: one sample right (loss 0), one wrong (loss 1e4)."""
    x = np.array([[sign], [sign]])
    y = np.array([0.0, 1.0])
    fused = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=1, dtype=dtype,
                           backend=backend)
    fused.set_weights([np.array([[BIG]]), np.zeros(1)])
    fused.compile("binary_cross_entropy")
    assert fused.predict(x).ravel().tolist() == ([1.0, 1.0] if sign > 0 else [0.0, 0.0])
    value, (dW, db) = fused.loss_and_gradients(x, y)
    eps = float(np.finfo(dtype).eps)
    assert value == pytest.approx(-math.log(eps) / 2, rel=1e-6)     # clipped, see above
    p = 1.0 if sign > 0 else 0.0
    assert db.tolist() == [((p - 0) + (p - 1)) / 2]
    assert dW.tolist() == [[sign * ((p - 0) + (p - 1)) / 2]]

    logits = fnn.Sequential([fnn.Dense(1)], input_dim=1, dtype=dtype, backend=backend)
    logits.set_weights([np.array([[BIG]]), np.zeros(1)])
    logits.compile("binary_cross_entropy")
    value, (dW, db) = logits.loss_and_gradients(x, y)
    assert value == pytest.approx(BIG / 2, rel=1e-6)
    assert db.tolist() == [((p - 0) + (p - 1)) / 2]


# --------------------------------------------------------------------------- divergence
def _regression(seed=0):
    rng = np.random.default_rng(seed)
    X_ = rng.standard_normal((64, 8))
    return X_, X_ @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((64, 1))


def _diverging_model(backend, dtype, optimizer):
    model = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.Dense(1)], input_dim=8,
                           seed=0, dtype=dtype, backend=backend)
    model.compile("mse", optimizer)
    return model


class Recorder(fnn.Callback):
    """Keeps the weights after each completed batch (the last finite step)."""

    def on_train_begin(self, logs=None):
        self.weights, self.batches = [self.model.get_weights()], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if math.isfinite(logs["loss"]):
            self.weights.append(self.model.get_weights())
            self.batches.append((self.epoch, batch))


OPTIMIZERS = {
    "sgd_1e3": lambda dtype: fnn.SGD(lr=1e3),
    "sgd_momentum_1e4": lambda dtype: fnn.SGD(lr=1e4, momentum=0.9),
    "sgd_1e12": lambda dtype: fnn.SGD(lr=1e12),
    "sgd_nesterov_wd_1e30": lambda dtype: fnn.SGD(lr=1e30, momentum=0.5, nesterov=True,
                                            weight_decay=0.1),
    # Adam moves each weight by about lr per step: float64 needs a far larger lr to overflow
    "adam_huge": lambda dtype: fnn.Adam(lr=1e12 if dtype == "float32" else 1e200),
    "adam_1e37": lambda dtype: fnn.Adam(lr=1e37 if dtype == "float32" else 1e300),
}


def _all_finite(model):
    return (all(np.isfinite(w).all() for w in model.get_weights())
            and all(np.isfinite(s).all() for s in model.optimizer.state().values()))


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_divergence_raises_naming_epoch_and_batch(backend, dtype, opt):
    X_, y = _regression()
    model = _diverging_model(backend, dtype, OPTIMIZERS[opt](dtype))
    recorder = Recorder()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as info:
        model.fit(X_, y, epochs=50, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[recorder])
    found = re.search(r"epoch (\d+), batch (\d+)", str(info.value))
    assert found, str(info.value)
    epoch, batch = int(found.group(1)), int(found.group(2))
    # the failing batch is the one after the last completed one (numbers count from 1)
    last_epoch, last_batch = recorder.batches[-1] if recorder.batches else (0, -1)
    per_epoch = len(X_) // 8
    assert (epoch - 1) * per_epoch + (batch - 1) == last_epoch * per_epoch + last_batch + 1
    assert _all_finite(model)
    # the weights are those of the last completed step: the failing step changed nothing
    for w, kept in zip(model.get_weights(), recorder.weights[-1]):
        assert w.tobytes() == kept.tobytes()
    # and the model still predicts (finite inputs in, no crash)
    with np.errstate(all="ignore"):
        assert model.predict(X_[:3]).shape == (3, 1)


@pytest.mark.parametrize("opt", ["sgd_momentum_1e4", "adam_huge"])
def test_terminate_on_nan_stops_with_finite_weights(backend, dtype, opt):
    X_, y = _regression()
    model = _diverging_model(backend, dtype, OPTIMIZERS[opt](dtype))
    recorder = Recorder()
    with np.errstate(all="ignore"):
        history = model.fit(X_, y, epochs=50, batch_size=8, shuffle=False, verbose=0,
                            callbacks=[recorder, fnn.TerminateOnNaN()])
    assert len(history.epoch) < 50, "training did not stop"
    assert model.stop_training
    assert _all_finite(model)
    for w, kept in zip(model.get_weights(), recorder.weights[-1]):
        assert w.tobytes() == kept.tobytes()


def test_train_on_batch_divergence_leaves_weights_unchanged(backend, dtype):
    X_, y = _regression()
    model = _diverging_model(backend, dtype, fnn.SGD(lr=1e4, momentum=0.9))
    with np.errstate(all="ignore"):
        for step in range(100):
            before = model.get_weights()
            try:
                value = model.train_on_batch(X_[8 * (step % 8):8 * (step % 8) + 8],
                                             y[8 * (step % 8):8 * (step % 8) + 8])
            except FloatingPointError as exc:
                assert "diverged" in str(exc)
                break
            assert math.isfinite(value)
            assert _all_finite(model), f"step {step} returned {value} but left non-finite weights"
        else:
            pytest.fail("training did not diverge")
    for w, kept in zip(model.get_weights(), before):
        assert w.tobytes() == kept.tobytes()
    assert _all_finite(model)
