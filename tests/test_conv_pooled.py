"""The kernel gradient of a relu convolution read only by a max pooling, taken from the pooling's
output gradient and argmax (conv2d_backward_pooled; src_c/fnn_conv_pooled_tmpl.h): dL/dz is zero
but at each window's argmax, so each window adds its gradient times its argmax's patch, and dz is
never formed. Held to the two passes it replaces (maxpool2d_backward_relu, then conv2d_backward)
in float64 on both backends and in every flavour (its register shapes: kernel rows 1 to 7 of 1
or 2 vectors, two filters at a time or one, and the in-memory sums beyond), to PyTorch in a
model, bitwise at 1 and 2 threads; and the models that take it (a first-layer convolution whose
input gradient nobody wants) train as they did.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend

RELU = 4

# (n, h, w, c, f, (kh, kw), (sh, sw), (dh, dw), padding, (pool h, pool w, stride h, stride w)):
# LeNet-5's first layer; 1 to 20 channels (patch rows of 1, 2 and 4+ vectors: register sums
# and in-memory ones), kernels 1x1 to 8x8, strides and dilations, odd filter counts (the last
# filter alone), pools of 2x2, 3x2, 1x1, overlapping windows and windows past the edge
CASES = [
    (3, 28, 28, 1, 6, (5, 5), (1, 1), (1, 1), "same", (2, 2, 2, 2)),
    (2, 14, 14, 6, 16, (5, 5), (1, 1), (1, 1), "valid", (2, 2, 2, 2)),
    (17, 8, 8, 1, 16, (3, 3), (1, 1), (1, 1), "same", (2, 2, 2, 2)),
    (2, 9, 11, 3, 5, (3, 3), (2, 1), (1, 1), "same", (3, 2, 3, 2)),
    (1, 12, 10, 2, 3, (7, 7), (1, 1), (1, 1), "same", (2, 2, 2, 2)),
    (2, 10, 9, 4, 7, (3, 5), (1, 2), (2, 1), "same", (2, 2, 2, 2)),
    (1, 6, 6, 9, 1, (2, 2), (1, 1), (1, 1), "valid", (1, 1, 1, 1)),
    (2, 16, 16, 1, 4, (1, 1), (1, 1), (1, 1), "valid", (2, 2, 2, 2)),
    (2, 20, 20, 1, 3, (8, 8), (1, 1), (1, 1), "same", (2, 2, 2, 2)),
    (2, 12, 12, 20, 2, (3, 3), (1, 1), (1, 1), "same", (2, 2, 2, 2)),
    (1, 11, 13, 2, 9, (3, 3), (1, 1), (2, 2), "valid", (3, 3, 2, 2)),
    (2, 9, 9, 1, 5, (4, 4), (3, 3), (1, 1), "same", (2, 2, 2, 2)),
]


def _geometry(case):
    n, h, w, c, f, (kh, kw), (sh, sw), (dh, dw), padding, _ = case
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        top = max((oh - 1) * sh + span_h - h, 0) // 2
        left = max((ow - 1) * sw + span_w - w, 0) // 2
    else:
        oh, ow, top, left = (h - span_h) // sh + 1, (w - span_w) // sw + 1, 0, 0
    return (oh, ow), (top, left)


def _data(case, dtype, seed):
    """x, the kernel, and the pooling of relu(conv(x)) (its argmax and output) with a dy."""
    n, h, w, c, f, (kh, kw), strides, dilations, padding, (ph, pw, psh, psw) = case
    rng = np.random.default_rng(seed)
    (oh, ow), pads = _geometry(case)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    z = np.empty((n, oh, ow, f), dtype)
    numpy_backend.conv2d_forward(x, kernel, np.zeros(f, dtype), strides, dilations, pads, RELU,
                                 0.0, z)
    poh, pow_ = (oh - ph) // psh + 1, (ow - pw) // psw + 1
    yp, am = np.empty((n, poh, pow_, f), dtype), np.empty((n, poh, pow_, f), np.int64)
    numpy_backend.maxpool2d_forward(z, ph, pw, psh, psw, 0, 0, yp, am)
    dy = rng.standard_normal(yp.shape).astype(dtype)
    return x, kernel, z, yp, am, dy


def _two_passes(be, case, x, kernel, z, yp, am, dy):
    """The reference: dz from the pooling's backward and the relu's derivative, then the
    convolution's backward."""
    (ph, pw, psh, psw), (_, pads) = case[9], _geometry(case)
    dz = np.zeros_like(z)
    if psh >= ph and psw >= pw:
        be.maxpool2d_backward_relu(dy, am, yp, ph, pw, psh, psw, 0, 0, dz)
    else:                                   # overlapping windows: scatter-add, then the relu
        be.maxpool2d_backward(dy, am, dz)
        dz *= z > 0
    dk, db = np.empty_like(kernel), np.empty(kernel.shape[3], kernel.dtype)
    be.conv2d_backward(x, kernel, dz, case[6], case[7], pads, dk, db, None)
    return dk, db


def _pooled(be, case, x, kernel, yp, am, dy):
    out_hw, pads = _geometry(case)
    dk = np.full_like(kernel, np.nan)
    db = np.full(kernel.shape[3], np.nan, kernel.dtype)
    be.conv2d_backward_pooled(x, dy, am, yp, out_hw, case[6], case[7], pads, dk, db)
    return dk, db


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# in a subprocess per FASTNN_KERNEL: every case, both types, against the two passes and the
# NumPy twin
_FLAVOUR_SCRIPT = """
from fastnn.backends import fast_backend, numpy_backend
from tests.test_conv_pooled import CASES, _data, _pooled, _rel, _two_passes
for i, case in enumerate(CASES):
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-12)):
        x, kernel, z, yp, am, dy = _data(case, dtype, i)
        want = _two_passes(numpy_backend, case, x, kernel, z, yp, am, dy)
        for be in (fast_backend, numpy_backend):
            got = _pooled(be, case, x, kernel, yp, am, dy)
            for g, w in zip(got, want):
                assert _rel(g, w) <= tol, (case, dtype, be.__name__, _rel(g, w))
print(fast_backend.kernel_name())
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_pooled_gradient_equals_the_two_passes_in_every_flavour(flavour):
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.strip() != flavour:
        pytest.skip(f"this CPU runs {done.stdout.strip()!r}, not {flavour!r}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pooled_gradient_is_bitwise_the_same_at_one_and_two_threads(case, thread_count):
    x, kernel, z, yp, am, dy = _data(case, "float32", 3)
    results = []
    for t in (1, 2):
        thread_count(t)
        results.append(_pooled(fast_backend, case, x, kernel, yp, am, dy))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


def test_non_finite_gradients_and_bad_argmax_entries():
    """A non-finite dy where the relu was inactive adds NaN (dy * 0, as the two passes);
    argmax entries outside the output are dropped, not followed."""
    case = CASES[0]
    x, kernel, z, yp, am, dy = _data(case, "float64", 7)
    dy[0, 3, 4, 2] = np.inf
    yp[0, 3, 4, 2] = 0.0
    dy[1, 5, 5, 0] = np.nan
    want = _two_passes(numpy_backend, case, x, kernel, z, yp, am, dy)
    for be in (fast_backend, numpy_backend):
        got = _pooled(be, case, x, kernel, yp, am, dy)
        assert np.isnan(got[0][..., 2]).all() and np.isnan(got[1][[0, 2]]).all()
        assert np.array_equal(np.isnan(got[0]), np.isnan(want[0]))
        fine = ~np.isnan(want[0])
        assert _rel(got[0][fine], want[0][fine]) <= 1e-12
    x, kernel, z, yp, am, dy = _data(case, "float64", 8)
    bad = am.copy()
    bad[0, 0, 0, :] = -3
    bad[1, 2, 2, :] = 28 * 28
    bad[2, 1, 1, :] = 2 ** 62
    keep = bad == am
    want = _two_passes(numpy_backend, case, x, kernel, z, yp, am, dy * keep)
    for be in (fast_backend, numpy_backend):
        got = _pooled(be, case, x, kernel, yp, bad, dy)
        for g, w in zip(got, want):
            assert _rel(g, w) <= 1e-12


@pytest.mark.parametrize("be", [fast_backend, numpy_backend], ids=["fast", "numpy"])
def test_pooled_gradient_refuses_mismatched_shapes(be):
    x, kernel, z, yp, am, dy = _data(CASES[0], "float64", 1)
    dk, db = np.empty_like(kernel), np.empty(6)
    if be is fast_backend:
        with pytest.raises(ValueError, match="one shape"):
            be.conv2d_backward_pooled(x, dy, am[:, :-1].copy(), yp, (28, 28), (1, 1), (1, 1),
                                      (2, 2), dk, db)
        with pytest.raises(ValueError, match="does not come from"):
            be.conv2d_backward_pooled(x, dy, am, yp, (99, 28), (1, 1), (1, 1), (2, 2), dk, db)
        with pytest.raises(ValueError, match="dbias"):
            be.conv2d_backward_pooled(x, dy, am, yp, (28, 28), (1, 1), (1, 1), (2, 2), dk,
                                      np.empty(5))
    with pytest.raises(ValueError):
        be.conv2d_backward_pooled(x, dy, am, yp, (28, 28), (1, 1), (1, 1), (2, 2),
                                  np.empty((5, 5, 2, 6)), db)


# -- in models: a relu convolution on the model's input, read only by a max pooling

def _lenet(backend, seed=0):
    return fnn.Sequential([
        fnn.Conv2D(6, 5, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Conv2D(5, 3, activation="relu"), fnn.MaxPooling2D(padding="same"), fnn.Flatten(),
        fnn.Dense(10, activation="softmax")], input_shape=(12, 12, 1), seed=seed,
        dtype="float64", backend=backend)


def test_only_a_first_convolution_takes_the_pooled_gradient():
    model = _lenet("fast")
    assert len(model._relu_fused) == 4 and model._pooled_grad == {2: 1}
    inp = fnn.Input((8, 8, 1))                    # a dense layer before: no input convolution
    h = fnn.Conv2D(4, 3, activation="relu")(fnn.Dense(1)(inp))
    assert fnn.Model(inp, fnn.MaxPooling2D()(h))._pooled_grad == {}


def _sequence_model(backend, seed=0):
    return fnn.Sequential([
        fnn.Conv1D(5, 3, padding="same", activation="relu"), fnn.MaxPooling1D(3),
        fnn.Flatten(), fnn.Dense(10, activation="softmax")], input_shape=(13, 2), seed=seed,
        dtype="float64", backend=backend)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("make,shape", [(_lenet, (12, 12, 1)), (_sequence_model, (13, 2))],
                         ids=["conv2d", "conv1d"])
def test_pooled_gradient_trains_as_the_two_passes(backend, make, shape):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, *shape)), np.arange(16) % 10
    pooled, plain = make(backend), make(backend)
    assert pooled._pooled_grad
    plain._pooled_grad = {}
    for m in (pooled, plain):
        m.compile(loss="cross_entropy", optimizer=fnn.SGD(0.05, momentum=0.9))
    for _ in range(5):
        assert pooled.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(x, y),
                                                            rel=1e-12)
    for a, b in zip(pooled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_pooled_gradient_matches_pytorch_in_a_model():
    torch = pytest.importorskip("torch")
    model = _lenet("fast", seed=3)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 12, 12, 1)), np.arange(5) % 10
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(1.0))
    before = model.get_weights()
    model.train_on_batch(x, y)
    got = [b - a for a, b in zip(model.get_weights(), before)]   # lr 1: the gradients
    k1, b1, k2, b2, wd, bd = (torch.tensor(w, requires_grad=True) for w in before)
    F = torch.nn.functional
    h = F.conv2d(torch.tensor(x.transpose(0, 3, 1, 2)), k1.permute(3, 2, 0, 1), b1, padding=2)
    h = F.max_pool2d(F.relu(h), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, k2.permute(3, 2, 0, 1), b2)), 2, ceil_mode=True)
    logits = h.permute(0, 2, 3, 1).reshape(5, -1) @ wd + bd
    F.cross_entropy(logits, torch.tensor(y)).backward()
    for g, t in zip(got, (k1, b1, k2, b2, wd, bd)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_pooled_gradient_matches_finite_differences(backend):
    """Through a training step (the path that takes the pooled gradient: no input gradient is
    wanted), SGD at learning rate 1 moves each weight by its gradient: held to central finite
    differences of the mean cross-entropy in float64."""
    def make():
        return fnn.Sequential([
            fnn.Conv2D(2, 3, activation="relu"), fnn.MaxPooling2D(), fnn.Flatten(),
            fnn.Dense(3, activation="softmax")], input_shape=(7, 6, 1), seed=4, dtype="float64",
            backend=backend)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 7, 6, 1)), np.array([0, 1, 2, 1, 0])
    model = make()
    assert model._pooled_grad
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(1.0))
    weights = model.get_weights()
    model.train_on_batch(x, y)
    grads = [a - b for a, b in zip(weights, model.get_weights())]
    probe = make()

    def loss(ws):
        probe.set_weights(ws)
        p = probe.predict(x)
        return -float(np.mean(np.log(p[np.arange(5), y])))

    h = 1e-6
    for k, w in enumerate(weights):
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                shifted = [v.copy() for v in weights]
                shifted[k][idx] += sign * h
                fd[idx] += sign * loss(shifted) / (2 * h)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-9)
