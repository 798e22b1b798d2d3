"""Multiply, Subtract, Average, Maximum, Minimum: Keras' outputs (2 and 3 inputs), gradients
by hand (ties and zeros included), the kernels bitwise on both backends and thread counts,
bad inputs. (Finite differences, files, threads through a model: tests/test_layers_graph.py.)"""


import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

RNG = np.random.default_rng(0)
NAMES = ["Multiply", "Subtract", "Average", "Maximum", "Minimum"]


def _model(name, k, backend, dtype="float32", shape=(3, 4)):
    inputs = [fnn.Input(shape) for _ in range(k)]
    return fnn.Model(inputs, getattr(fnn, name)()(inputs), backend=backend, dtype=dtype)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("name, k", [(n, k) for n in NAMES for k in (2, 3)
                                     if not (n == "Subtract" and k == 3)])
def test_outputs_match_keras(keras, backend, name, k):
    xs = [RNG.normal(size=(5, 3, 4)).astype(np.float32) for _ in range(k)]
    xs[1][0] = xs[0][0]                          # ties
    theirs = np.asarray(getattr(keras.layers, name)()(xs))
    ours = _model(name, k, backend).predict(xs)
    assert ours.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_by_hand(backend):
    a = np.array([[1.0, 0.0, -2.0, 3.0]])
    b = np.array([[2.0, 5.0, -2.0, 1.0]])
    c = np.array([[0.5, 4.0, -3.0, -1.0]])
    dy = np.array([[1.0, 2.0, 3.0, 4.0]])

    def grads(name, xs):
        model = _model(name, len(xs), backend, "float64", shape=(4,))
        model.forward(xs)
        return model.backward(dy)
    ga, gb, gc = grads("Multiply", [a, b, c])
    assert np.array_equal(ga, dy * b * c) and np.array_equal(gb, dy * a * c)
    assert np.array_equal(gc, dy * a * b)               # a has a zero: no division by it
    ga, gb = grads("Subtract", [a, b])
    assert np.array_equal(ga, dy) and np.array_equal(gb, -dy)
    assert all(np.array_equal(g, dy / 3) for g in grads("Average", [a, b, c]))
    ga, gb, gc = grads("Maximum", [a, b, c])            # column 2: a and b tie -> a
    assert np.array_equal(ga, [[0, 0, 3, 4]]) and np.array_equal(gb, [[1, 2, 0, 0]])
    assert not gc.any()
    ga, gb = grads("Minimum", [a, b])                   # column 2: the tie -> a
    assert np.array_equal(ga, [[1, 2, 3, 0]]) and np.array_equal(gb, [[0, 0, 0, 4]])


def test_kernels_bitwise_on_both_backends_and_threads():
    for dtype in (np.float32, np.float64):
        a, b = (RNG.normal(size=100003).astype(dtype) for _ in range(2))
        b[::7] = a[::7]
        results = []
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            be = get_backend(name)
            with fnn.threads(threads):
                outs = []
                for op in range(5):
                    out = np.empty_like(a)
                    be.binary_op(a, b, op, out)
                    outs.append(out.tobytes())
                d = np.empty_like(a)
                be.divide_scalar(a, 3.0, d)
                best, idx = a.copy(), np.zeros(a.size, np.int32)
                be.select_update(best, idx, b, 1, True)
                g = np.empty_like(a)
                be.select_grad(b, idx, 1, g)
            results.append(outs + [d.tobytes(), best.tobytes(), idx.tobytes(), g.tobytes()])
        assert results[0] == results[1] == results[2]
        assert results[0][1] == np.where(b > a, b, a).tobytes()
        assert results[0][5] == (a / dtype(3)).tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_kernels_refuse_bad_arguments(backend):
    be = get_backend(backend)
    a, short = np.zeros(5), np.zeros(4)
    with pytest.raises(ValueError, match="binary_op"):
        be.binary_op(a, short, 0, np.zeros(5))
    with pytest.raises(ValueError, match="op be 0 to 4"):
        be.binary_op(a, a, 7, np.zeros(5))
    with pytest.raises(ValueError, match="select_grad"):
        be.select_grad(a, np.zeros(4, np.int32), 0, np.zeros(5))


@pytest.mark.parametrize("make, pattern", [
    (lambda: _model("Subtract", 3, "fast"), r"exactly 2 inputs"),
    (lambda: fnn.Model([fnn.Input((2,)), fnn.Input((3,))],
                       fnn.Multiply()([fnn.Input((2,)), fnn.Input((3,))])),
     r"inputs of one shape"),
    (lambda: fnn.Maximum()(fnn.Input((2,))), r"list|takes"),
])
def test_bad_uses_are_refused(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make()


def test_files(tmp_path):
    inputs = [fnn.Input((3,)), fnn.Input((3,))]
    out = fnn.Average()([fnn.Multiply()(inputs), fnn.Maximum()(inputs),
                         fnn.Subtract()(inputs)])
    model = fnn.Model(inputs, out, seed=0)
    model.save(tmp_path / "m.fnn")
    xs = [RNG.normal(size=(4, 3)) for _ in range(2)]
    assert fnn.load(tmp_path / "m.fnn").predict(xs).tobytes() == model.predict(xs).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_matches_onnxruntime(dtype, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    inputs = [fnn.Input((3,)), fnn.Input((3,)), fnn.Input((3,))]
    out = fnn.Concatenate()([fnn.Multiply()(inputs), fnn.Subtract()(inputs[:2]),
                             fnn.Average()(inputs), fnn.Maximum()(inputs),
                             fnn.Minimum()(inputs[1:])])
    model = fnn.Model(inputs, out, seed=0, dtype=dtype)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = [RNG.normal(size=(6, 3)).astype(dtype) for _ in range(3)]
    got = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs)})[0]
    assert got.tobytes() == model.predict(xs).tobytes()
