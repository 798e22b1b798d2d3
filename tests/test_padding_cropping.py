"""ZeroPadding2D/1D, Cropping2D/1D and RepeatVector: Keras' outputs for each argument form,
gradients by hand, the copy kernel bitwise on both backends and thread counts, files, bad
arguments. (Finite differences through all five, both backends, threads: test_layers_graph.)"""


import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

RNG = np.random.default_rng(0)


CASES = [
    ("ZeroPadding2D", dict(padding=1), (4, 5, 2)),
    ("ZeroPadding2D", dict(padding=(2, 0)), (4, 5, 2)),
    ("ZeroPadding2D", dict(padding=((1, 3), (0, 2))), (4, 5, 2)),
    ("ZeroPadding1D", dict(padding=2), (6, 3)),
    ("ZeroPadding1D", dict(padding=(0, 3)), (6, 3)),
    ("Cropping2D", dict(cropping=1), (5, 6, 2)),
    ("Cropping2D", dict(cropping=(2, 0)), (5, 6, 2)),
    ("Cropping2D", dict(cropping=((1, 2), (0, 3))), (5, 6, 2)),
    ("Cropping1D", dict(cropping=(2, 1)), (6, 3)),
    ("Cropping1D", dict(cropping=1), (6, 3)),
    ("RepeatVector", dict(n=3), (4,)),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_outputs_match_keras(keras, backend, name, kwargs, shape):
    x = RNG.normal(size=(3, *shape)).astype(np.float32)
    model = fnn.Sequential([getattr(fnn, name)(**kwargs)], input_shape=shape, backend=backend)
    theirs = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
    ours = model.predict(x)
    assert ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_by_hand(backend):
    x = RNG.normal(size=(2, 4, 5, 3))
    pad = fnn.Sequential([fnn.ZeroPadding2D(((1, 2), (3, 0)))], input_shape=(4, 5, 3),
                         dtype="float64", backend=backend)
    dy = RNG.normal(size=(2, 7, 8, 3))
    pad.forward(x)
    assert pad.backward(dy).tobytes() == np.ascontiguousarray(dy[:, 1:5, 3:8]).tobytes()
    crop = fnn.Sequential([fnn.Cropping2D(((1, 2), (3, 0)))], input_shape=(7, 8, 3),
                          dtype="float64", backend=backend)
    crop.forward(dy)
    dx = crop.backward(np.ascontiguousarray(x))
    want = np.zeros_like(dy)
    want[:, 1:5, 3:8] = x
    assert dx.tobytes() == want.tobytes()
    rep = fnn.Sequential([fnn.RepeatVector(5)], input_dim=3, dtype="float64", backend=backend)
    v = RNG.normal(size=(4, 3))
    rep.forward(v)
    g = RNG.normal(size=(4, 5, 3))
    expect = np.zeros((4, 3))
    for t in range(5):
        expect += g[:, t]
    assert rep.backward(g).tobytes() == expect.tobytes()


def test_copy_kernel_bitwise_on_both_backends_and_threads():
    for dtype in (np.float32, np.float64):
        src = RNG.normal(size=(9, 13, 11, 5)).astype(dtype)
        results = []
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            be = get_backend(name)
            a = np.full((9, 17, 12, 5), 7.0, dtype)
            b = np.full((9, 17, 12, 5), 7.0, dtype)
            with fnn.threads(threads):
                be.copy_window(src, 2, 1, a, 3, 0, 10, 9, True)
                be.copy_window(src, 2, 1, b, 3, 0, 10, 9, False)
            results.append((a.tobytes(), b.tobytes()))
        assert results[0] == results[1] == results[2]
        a = np.frombuffer(results[0][0], dtype).reshape(9, 17, 12, 5)
        b = np.frombuffer(results[0][1], dtype).reshape(9, 17, 12, 5)
        rest = a.copy()
        rest[:, 3:13, 0:9] = 0
        assert (a[:, 3:13, 0:9] == src[:, 2:12, 1:10]).all() and not rest.any()
        assert (b[:, 3:13, 0:9] == src[:, 2:12, 1:10]).all() and (b[:, :3] == 7).all()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("args", [
    (2, 0, 0, 0, 4, 4),      # the window runs off src
    (0, 0, 3, 0, 4, 4),      # off dst
    (0, 0, 0, 0, -1, 4),     # negative size
])
def test_copy_kernel_refuses_windows_that_do_not_fit(backend, args):
    src, dst = np.zeros((2, 5, 5, 1)), np.zeros((2, 6, 6, 1))
    st, sl, dt, dl, h, w = args
    with pytest.raises(ValueError, match="copy_window: a"):
        get_backend(backend).copy_window(src, st, sl, dst, dt, dl, h, w, True)


def test_configs_and_files(tmp_path):
    model = fnn.Sequential([fnn.ZeroPadding2D(((1, 0), (2, 3))), fnn.Cropping2D(1),
                            fnn.Reshape((-1, 2)), fnn.ZeroPadding1D((1, 0)),
                            fnn.Cropping1D((0, 2)), fnn.Flatten(), fnn.RepeatVector(2)],
                           input_shape=(3, 3, 2))
    layers = model.get_config()["layers"]
    assert layers[0] == {"class": "ZeroPadding2D", "padding": [[1, 0], [2, 3]]}
    assert layers[1] == {"class": "Cropping2D", "cropping": [[1, 1], [1, 1]]}
    assert layers[3]["padding"] == [1, 0] and layers[6]["n"] == 2
    model.save(tmp_path / "m.fnn")
    x = RNG.normal(size=(2, 3, 3, 2))
    assert fnn.load(tmp_path / "m.fnn").predict(x).tobytes() == model.predict(x).tobytes()
    assert repr(model.layers[0]) == "ZeroPadding2D([[1, 0], [2, 3]])"


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.ZeroPadding2D(-1), ValueError, r"padding"),
    (lambda: fnn.ZeroPadding2D((1, 2, 3)), ValueError, r"padding must be an int, a pair"),
    (lambda: fnn.ZeroPadding2D(((1, 2), "a")), ValueError, r"padding must be"),
    (lambda: fnn.ZeroPadding1D((1, 2, 3)), ValueError, r"an int or a pair"),
    (lambda: fnn.Cropping2D(2**31), ValueError, r"below 2\*\*31"),
    (lambda: fnn.ZeroPadding2D(data_format="channels_first"), ValueError, r"channels-last"),
    (lambda: fnn.RepeatVector(0), ValueError, r"n"),
    (lambda: fnn.RepeatVector(2.0), TypeError, r"n"),
    (lambda: fnn.Sequential([fnn.Cropping2D(2)], input_shape=(4, 6, 1)), ValueError,
     r"leaves nothing"),
    (lambda: fnn.Sequential([fnn.RepeatVector(2)], input_shape=(3, 2)), ValueError,
     r"samples of one dimension"),
    (lambda: fnn.Sequential([fnn.ZeroPadding2D()], input_dim=3), ValueError,
     r"\(height, width, channels\)"),
])
def test_bad_arguments_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()
