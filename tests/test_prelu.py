"""Keras' PReLU and Identity (fastnn/layers/prelu.py): PyTorch in float64 (outputs, the slope's
and the input's gradients), Keras' own layer on the same weights, finite differences through
a model on both backends, compiled = NumPy backend, files, bad arguments."""

import os

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

BACKENDS = ["fast", "numpy"]
CASES = [((5, 6, 3), [1, 2]), ((5, 6, 3), None), ((7, 4), [1]), ((9,), None),
         ((5, 6, 3), [1, 2, 3]), ((5, 6, 3), 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, shared", CASES)
def test_matches_torch_in_float64(shape, shared, backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = fnn.Sequential([fnn.PReLU(shared_axes=shared)], input_shape=shape,
                           dtype="float64", backend=backend)
    alpha = rng.uniform(-0.5, 1.0, model.layers[0].get_weights()[0].shape)
    model.layers[0].set_weights([alpha])
    x = rng.standard_normal((4, *shape))
    x[0].flat[0] = 0.0                           # the kink: the slope's side, as PyTorch
    R = rng.standard_normal(x.shape)
    model.zero_grad()
    y = model.forward(x, training=True)
    dx = model.backward(R)
    tx = torch.tensor(x, requires_grad=True)
    ta = torch.tensor(alpha, requires_grad=True)
    ty = torch.where(tx > 0, tx, ta * tx)
    (ty * torch.tensor(R)).sum().backward()
    assert np.abs(y - ty.detach().numpy()).max() <= 1e-12
    assert np.abs(dx - tx.grad.numpy()).max() <= 1e-12
    assert np.abs(model.grads[0] - ta.grad.numpy()).max() <= 1e-10 * np.abs(ta.grad).max()
    if shared == [1, 2]:                         # one slope per channel: nn.PReLU(channels)
        module = torch.nn.PReLU(shape[-1]).double()
        module.weight.data = torch.tensor(alpha.reshape(-1))
        want = module(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        assert np.abs(y - want.detach().numpy()).max() <= 1e-12


def test_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 6, 4)).astype(np.float32)
    model = fnn.Sequential([fnn.Conv2D(4, 3), fnn.PReLU(shared_axes=[1, 2]), fnn.Identity(),
                            fnn.Flatten(), fnn.Dense(2)], input_shape=(5, 6, 4), seed=0)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    ref = keras.Sequential([keras.Input((5, 6, 4)), keras.layers.Conv2D(4, 3),
                            keras.layers.PReLU(shared_axes=[1, 2]), keras.layers.Identity(),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    ref.set_weights(model.get_weights())
    assert np.abs(model.predict(x) - ref.predict(x, verbose=0)).max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    model = fnn.Sequential([fnn.Dense(12, activation="tanh"), fnn.Reshape((3, 4)),
                            fnn.PReLU(alpha_initializer="random_normal", shared_axes=[1]),
                            fnn.Identity(), fnn.Flatten(), fnn.PReLU(), fnn.Dense(2)],
                           input_dim=3, seed=0, dtype="float64", backend=backend)
    x = np.random.default_rng(1).standard_normal((6, 3))
    R = np.random.default_rng(2).standard_normal((6, 2))
    check_model_gradients(model, x, R)


def test_backends_agree_and_files_round_trip(tmp_path):
    runs = []
    x = np.random.default_rng(3).standard_normal((16, 6, 6, 2))
    y = np.random.default_rng(4).standard_normal((16, 2))
    for backend in BACKENDS:
        model = fnn.Sequential([fnn.Conv2D(4, 3), fnn.PReLU(shared_axes=[1, 2],
                                                             alpha_regularizer="l2"),
                                fnn.Flatten(), fnn.Dense(2)], input_shape=(6, 6, 2), seed=0,
                               backend=backend)
        model.compile("mse", fnn.SGD(learning_rate=0.05))
        runs.append([model.train_on_batch(x, y) for _ in range(3)])
        model.save(tmp_path / f"{backend}.fnn")
        loaded = fnn.load(tmp_path / f"{backend}.fnn")
        assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
        assert loaded.layers[1].get_config() == model.layers[1].get_config()
    assert np.allclose(runs[0], runs[1], rtol=1e-5)


BAD = [
    (lambda: fnn.PReLU(alpha_constraint="non_neg"), ValueError, "alpha_constraint"),
    (lambda: fnn.PReLU(shared_axes=[0]), ValueError, "shared_axes"),
    (lambda: fnn.PReLU(shared_axes=[1, 1]), ValueError, "repeat"),
    (lambda: fnn.PReLU(shared_axes="1"), TypeError, "shared_axes"),
    (lambda: fnn.PReLU(alpha_initializer="nope"), ValueError, "alpha_initializer"),
    (lambda: fnn.Sequential([fnn.PReLU(shared_axes=[3])], input_shape=(4, 2)), ValueError,
     "shared_axes must be axes of the input"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_are_refused(case):
    make, error, match = BAD[case]
    with pytest.raises(error, match=match):
        make()


# The kernels (fastnn/_ext/_layer_ops.pyx and their NumPy twins) against plain broadcasting:
# shapes large enough for two threads (threads_for: 131072 values), shared axes that are not
# neighbours, none and all of them.
KERNEL_CASES = [((8, 12, 10), (0, 2)), ((4, 9, 10, 7), (0, 1, 3)), ((3, 50, 1000), (0,)),
                ((5, 6, 7), (0, 1, 2)), ((6, 30), (0,)), ((2, 3, 65536), (0,))]


def _reference(x, dy, alpha_b, axes):
    """Broadcasting in float64, independent of the kernels' index map and their order."""
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y = np.where(x64 > 0, x64, alpha_b * x64)
    dx = np.where(x64 > 0, dy64, alpha_b * dy64)
    dalpha = np.sum(np.where(x64 <= 0, dy64 * x64, 0.0), axis=axes, keepdims=True)[0]
    return y, dx, dalpha


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, shared", KERNEL_CASES)
def test_kernels_match_broadcasting_twin_and_threads(shape, shared, dtype):
    from fastnn.backends import get_backend
    rng = np.random.default_rng(len(shape) + shape[-1])
    n = shape[0]
    x = rng.standard_normal(shape).astype(dtype)
    x[..., :2] = 0.0                               # x == 0 takes the slope's side
    dy = rng.standard_normal(shape).astype(dtype)
    alpha_shape = tuple(1 if k in shared else d for k, d in enumerate(shape))[1:]
    alpha = rng.standard_normal(alpha_shape).astype(dtype)
    start = rng.standard_normal(alpha_shape).astype(dtype)     # dalpha accumulates
    index = np.ascontiguousarray(np.broadcast_to(
        np.arange(alpha.size).reshape(alpha_shape), shape[1:])).reshape(-1)
    want_y, want_dx, want_dalpha = _reference(x, dy, alpha.astype(np.float64)[None], shared)
    want_dalpha = want_dalpha + start
    results = []
    previous = fnn.get_num_threads()
    try:
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            fnn.set_num_threads(threads)
            be = get_backend(name)
            y, dx = np.full_like(x, 7), np.full_like(x, 7)
            dalpha, dalpha_only = start.copy(), start.copy()
            be.prelu_forward(x.reshape(n, -1), alpha.reshape(-1), index, y.reshape(n, -1))
            be.prelu_backward(x.reshape(n, -1), dy.reshape(n, -1), alpha.reshape(-1), index,
                              dx.reshape(n, -1), dalpha.reshape(-1))
            be.prelu_backward(x.reshape(n, -1), dy.reshape(n, -1), alpha.reshape(-1), index,
                              None, dalpha_only.reshape(-1))
            assert dalpha_only.tobytes() == dalpha.tobytes(), name
            # y and dx: one product or a copy an element, so exactly the rounded reference
            assert y.tobytes() == want_y.astype(dtype).tobytes(), name
            assert dx.tobytes() == want_dx.astype(dtype).tobytes(), name
            tol = 1e-12 if dtype == np.float64 else 1e-6
            assert np.allclose(dalpha, want_dalpha, rtol=tol, atol=tol * n), name
            results.append(dalpha)
    finally:
        fnn.set_num_threads(previous)
    assert results[1].tobytes() == results[2].tobytes()          # 1 and 2 threads
    assert np.allclose(results[0], results[1], rtol=1e-12 if dtype == np.float64 else 1e-7,
                       atol=0)


def test_kernels_with_no_rows():
    from fastnn.backends import get_backend
    for name in ("numpy", "fast"):
        be = get_backend(name)
        x = np.zeros((0, 6))
        alpha, dalpha, index = np.ones(3), np.full(3, 2.0), np.arange(6) % 3
        be.prelu_forward(x, alpha, index, x.copy())
        be.prelu_backward(x, x, alpha, index, x.copy(), dalpha)
        assert dalpha.tolist() == [2.0, 2.0, 2.0]


def test_training_is_the_same_at_one_and_two_threads():
    """A layer large enough for two threads: the same losses and weights, bit for bit."""
    runs = []
    x = np.random.default_rng(5).standard_normal((64, 32, 32, 4))
    y = np.random.default_rng(6).standard_normal((64, 2))
    for threads in (1, 2):
        with fnn.threads(threads):
            model = fnn.Sequential([fnn.PReLU(alpha_initializer="random_normal",
                                              shared_axes=[1]), fnn.Conv2D(2, 3, strides=4),
                                    fnn.Flatten(), fnn.Dense(2)],
                                   input_shape=(32, 32, 4), seed=0)
            model.compile("mse", fnn.SGD(learning_rate=0.01))
            losses = [model.train_on_batch(x, y) for _ in range(3)]
            runs.append((losses, [w.tobytes() for w in model.get_weights()]))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_input_makes_its_slope_gradient_nan_as_in_torch(backend, dtype):
    """PyTorch's slope gradient sums dy * x where x is not > 0: a NaN x makes its channel's
    gradient NaN (the other channels' stay finite and equal to PyTorch's); dx follows the
    slope's side there (alpha * dy), as PyTorch's."""
    torch = pytest.importorskip("torch")
    from fastnn.backends import get_backend
    rng = np.random.default_rng(5)
    n, m, channels = 6, 40, 4          # 40 values a row (over a SIMD width), 4 slopes
    x = rng.standard_normal((n, m)).astype(dtype)
    x[2, 5] = np.nan                   # channel 5 % 4 = 1
    x[4, 39] = np.nan                  # channel 3, in the row's tail
    dy = rng.standard_normal((n, m)).astype(dtype)
    alpha = rng.uniform(0.1, 0.5, channels).astype(dtype)
    index = (np.arange(m) % channels).astype(np.int64)
    be = get_backend(backend)
    dx = np.empty_like(x)
    dalpha = np.zeros(channels, dtype)
    be.prelu_backward(x, dy, alpha, index, dx, dalpha)
    tx = torch.tensor(x.reshape(n, m // channels, channels).transpose(0, 2, 1).copy(),
                      dtype=torch.float64, requires_grad=True)      # (n, channels, steps)
    module = torch.nn.PReLU(channels).double()
    module.weight.data = torch.tensor(alpha, dtype=torch.float64)
    module(tx).backward(torch.tensor(dy.reshape(n, m // channels, channels).transpose(0, 2, 1)
                                     .copy(), dtype=torch.float64))
    want = module.weight.grad.numpy()
    assert np.isnan(want[[1, 3]]).all() and np.isfinite(want[[0, 2]]).all()    # the oracle
    assert np.isnan(dalpha[[1, 3]]).all()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(dalpha[[0, 2]] - want[[0, 2]]).max() <= tol * np.abs(want[[0, 2]]).max()
    want_dx = tx.grad.numpy().transpose(0, 2, 1).reshape(n, m)
    assert np.abs(dx - want_dx).max() <= tol * np.abs(want_dx).max()
