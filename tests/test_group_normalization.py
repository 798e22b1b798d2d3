"""Keras' GroupNormalization (fastnn/layers/group_normalization.py): PyTorch's group_norm in
float64 (outputs, gamma's, beta's and the input's gradients) over ranks, group counts and
instance normalization, Keras' own layer on the same weights, finite differences on both
backends, compiled = NumPy backend and bitwise at 1 and 2 threads, files, bad arguments."""

import os

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

BACKENDS = ["fast", "numpy"]
CASES = [((6, 5, 8), 4), ((6, 5, 8), 1), ((6, 5, 8), -1), ((7, 6), 3), ((12,), 4),
         ((3, 4, 5, 6), 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, groups", CASES)
def test_matches_torch_group_norm_in_float64(shape, groups, backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    c = shape[-1]
    model = fnn.Sequential([fnn.GroupNormalization(groups, epsilon=1e-5)], input_shape=shape,
                           dtype="float64", backend=backend)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    model.set_weights([gamma, beta])
    x = rng.standard_normal((3, *shape)) * 3 + 1
    R = rng.standard_normal(x.shape)
    model.zero_grad()
    y = model.forward(x, training=True)
    dx = model.backward(R)
    tx = torch.tensor(np.moveaxis(x, -1, 1).copy(), requires_grad=True)     # NC...
    tg, tb = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    ty = torch.nn.functional.group_norm(tx, c if groups == -1 else groups, tg, tb, eps=1e-5)
    (ty * torch.tensor(np.moveaxis(R, -1, 1).copy())).sum().backward()
    assert np.abs(y - np.moveaxis(ty.detach().numpy(), 1, -1)).max() <= 1e-12
    assert np.abs(dx - np.moveaxis(tx.grad.numpy(), 1, -1)).max() <= 1e-11
    assert np.abs(model.grads[0] - tg.grad.numpy()).max() <= 1e-11
    assert np.abs(model.grads[1] - tb.grad.numpy()).max() <= 1e-11


def test_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 6, 8)).astype(np.float32)
    model = fnn.Sequential([fnn.Conv2D(8, 3), fnn.GroupNormalization(4), fnn.Flatten(),
                            fnn.Dense(2)], input_shape=(5, 6, 8), seed=0)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    ref = keras.Sequential([keras.Input((5, 6, 8)), keras.layers.Conv2D(8, 3),
                            keras.layers.GroupNormalization(4), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    ref.set_weights(model.get_weights())
    assert np.abs(model.predict(x) - ref.predict(x, verbose=0)).max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    model = fnn.Sequential([fnn.Dense(24, activation="tanh"), fnn.Reshape((3, 8)),
                            fnn.GroupNormalization(2, gamma_initializer="random_normal",
                                                   beta_initializer="random_normal"),
                            fnn.GroupNormalization(-1, center=False), fnn.Flatten(),
                            fnn.Dense(2)], input_dim=3, seed=0, dtype="float64", backend=backend)
    x = np.random.default_rng(1).standard_normal((5, 3))
    R = np.random.default_rng(2).standard_normal((5, 2))
    check_model_gradients(model, x, R)


def _train(backend, dtype, threads):
    with fnn.threads(threads):
        model = fnn.Sequential([fnn.Conv2D(8, 3), fnn.GroupNormalization(4), fnn.Flatten(),
                                fnn.Dense(2)], input_shape=(9, 9, 3), seed=0, dtype=dtype,
                               backend=backend)
        model.compile("mse", fnn.SGD(learning_rate=0.05))
        x = np.random.default_rng(3).standard_normal((32, 9, 9, 3))
        y = np.random.default_rng(4).standard_normal((32, 2))
        return [model.train_on_batch(x, y) for _ in range(3)], model.get_weights(), model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_and_threads(dtype, tmp_path):
    (l0, w0, _), (l1, w1, m1), (l2, w2, _) = (_train("numpy", dtype, 1),
                                              _train("fast", dtype, 1), _train("fast", dtype, 2))
    assert np.allclose(l0, l1, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert l1 == l2
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    m1.save(tmp_path / "g.fnn")
    loaded = fnn.load(tmp_path / "g.fnn")
    x = np.random.default_rng(5).standard_normal((4, 9, 9, 3))
    assert loaded.predict(x).tobytes() == m1.predict(x).tobytes()
    assert loaded.layers[1].get_config() == m1.layers[1].get_config()


BAD = [
    (lambda: fnn.GroupNormalization(0), ValueError, "groups"),
    (lambda: fnn.GroupNormalization(-2), ValueError, "groups"),
    (lambda: fnn.GroupNormalization(2.0), TypeError, "groups"),
    (lambda: fnn.GroupNormalization(2, epsilon=0), ValueError, "epsilon"),
    (lambda: fnn.GroupNormalization(2, epsilon=1e308), ValueError, r"epsilon=1e\+308"),
    (lambda: fnn.GroupNormalization(2, epsilon=3.4028236e38), ValueError, "epsilon"),
    (lambda: fnn.Sequential([fnn.GroupNormalization(3)], input_shape=(4, 8)), ValueError,
     "divide the 8 channels"),
    (lambda: fnn.Sequential([fnn.GroupNormalization(16)], input_shape=(4, 8)), ValueError,
     "divide"),
    (lambda: fnn.Sequential([fnn.GroupNormalization(2, axis=1)], input_shape=(4, 8)), ValueError,
     "axis"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_are_refused(case):
    make, error, match = BAD[case]
    with pytest.raises(error, match=match):
        make()


def test_epsilon_up_to_the_largest_float32_is_accepted():
    """An epsilon that float32 holds is taken (its outputs: beta, as the variance vanishes
    beside it); one that would be inf in float32 is refused, from code and from a file."""
    big = float(np.finfo(np.float32).max)
    model = fnn.Sequential([fnn.GroupNormalization(2, epsilon=big,
                                                   beta_initializer="ones")],
                           input_shape=(3, 4))
    assert np.all(model.predict(np.ones((2, 3, 4), np.float32)) == 1.0)
    config = dict(model.layers[0].get_config(), epsilon=1e308)
    from fastnn.layers import layer_from_config
    with pytest.raises(ValueError, match=r"epsilon=1e\+308"):
        layer_from_config(config)


# The kernels (fastnn/_ext/_normalization.pyx and their NumPy twins) against a plain float64
# computation over (n, P, G, k): shapes with two threads' work (8 n P C >= 131072), one group,
# one channel a group, a single position; channel blocks with a vector tail (40 = 32 + 8, 21,
# groups of 50 and of 128), one sample split over the threads by groups, a large spatial size.
KERNEL_CASES = [((16, 49, 32), 4), ((4, 300, 64), 1), ((8, 64, 24), 24), ((40, 1, 512), 8),
                ((3, 5, 6), 3), ((2, 4096, 8), 2), ((6, 77, 40), 5), ((5, 37, 21), 7),
                ((3, 90, 200), 4), ((2, 70, 256), 2), ((1, 4096, 64), 8), ((1, 1000, 40), 40),
                ((1, 16384, 16), 1)]


def _reference(x, dy, gamma, groups, eps):
    n, P, C = x.shape
    xg = x.astype(np.float64).reshape(n, P, groups, C // groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(1, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((xg - mean) * inv).reshape(n, P, C)
    g = (dy * gamma).reshape(n, P, groups, C // groups)
    xh = xhat.reshape(g.shape)
    N = P * C // groups
    dx = inv / N * (N * g - g.sum(axis=(1, 3), keepdims=True)
                    - xh * (g * xh).sum(axis=(1, 3), keepdims=True))
    return (xhat, mean.reshape(n, groups), inv.reshape(n, groups), dx.reshape(n, P, C),
            (dy * xhat).sum(axis=(0, 1)), dy.sum(axis=(0, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, groups", KERNEL_CASES)
def test_kernels_match_reference_twin_and_threads(shape, groups, dtype):
    from fastnn.backends import get_backend
    rng = np.random.default_rng(shape[1] + groups)
    n, P, C = shape
    x = (rng.standard_normal(shape) * 3 + rng.standard_normal((1, 1, C)) * 5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = (rng.standard_normal(C).astype(dtype) for _ in range(2))
    start_g, start_b = (rng.standard_normal(C).astype(dtype) for _ in range(2))
    eps = 1e-3
    xhat, want_mean, want_inv, want_dx, want_dg, want_db = _reference(
        x.astype(np.float64), dy.astype(np.float64), gamma.astype(np.float64), groups, eps)
    want_y = xhat * gamma.astype(np.float64) + beta
    tol = 1e-10 if dtype == np.float64 else 2e-5
    runs = []
    previous = fnn.get_num_threads()
    try:
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            fnn.set_num_threads(threads)
            be = get_backend(name)
            y, dx = np.full_like(x, 7), np.full_like(x, 7)
            mean, inv = np.full((n, groups), 7, dtype), np.full((n, groups), 7, dtype)
            dg, db, dg2, db2 = start_g.copy(), start_b.copy(), start_g.copy(), start_b.copy()
            be.groupnorm_forward(x, gamma, beta, groups, eps, y, mean, inv)
            be.groupnorm_backward(x, dy, gamma, mean, inv, dx, dg, db)
            be.groupnorm_backward(x, dy, gamma, mean, inv, None, dg2, db2)
            assert dg.tobytes() == dg2.tobytes() and db.tobytes() == db2.tobytes(), name
            for got, want in ((y, want_y), (mean, want_mean), (inv, want_inv), (dx, want_dx),
                              (dg, want_dg + start_g), (db, want_db + start_b)):
                scale = np.abs(want).max()
                assert np.abs(got - want).max() <= tol * scale, name
            runs.append([a.tobytes() for a in (y, mean, inv, dx, dg, db)])
    finally:
        fnn.set_num_threads(previous)
    assert runs[1] == runs[2]                        # 1 and 2 threads, bit for bit
    assert runs[0][:3] == runs[1][:3]                # the forward: the twin's bits
    assert runs[0][3:] == runs[1][3:]                # the backward too (same order of sums)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_sample_model_is_bitwise_at_1_and_2_threads_and_the_twin(dtype):
    """Batch 1 (the work split over the groups), 64 x 64 positions: the model's forward and
    backward give the same bits on 1 and 2 threads and on the NumPy backend."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 64, 64, 48)).astype(dtype) * 2 + 1
    dy = rng.standard_normal(x.shape).astype(dtype)
    got = []
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        model = fnn.Sequential([fnn.GroupNormalization(6, gamma_initializer="random_normal",
                                                       beta_initializer="random_normal")],
                               input_shape=x.shape[1:], seed=0, dtype=dtype, backend=backend)
        with fnn.threads(threads):
            y = model.forward(x, training=True)
            dx = model.backward(dy)
        got.append([a.tobytes() for a in (y, dx, *model.grads)])
    assert got[0] == got[1] == got[2]


def test_kernels_with_no_rows():
    from fastnn.backends import get_backend
    for name in ("numpy", "fast"):
        be = get_backend(name)
        x = np.zeros((0, 3, 4))
        dg = np.full(4, 2.0)
        be.groupnorm_forward(x, np.ones(4), np.zeros(4), 2, 1e-3, x.copy(), np.zeros((0, 2)),
                             np.zeros((0, 2)))
        be.groupnorm_backward(x, x, np.ones(4), np.zeros((0, 2)), np.zeros((0, 2)), x.copy(),
                              dg, dg.copy())
        assert dg.tolist() == [2.0] * 4
