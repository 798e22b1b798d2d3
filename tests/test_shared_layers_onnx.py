"""ONNX export of models with shared layers: each shared weight is one initializer that every
call's nodes read, and onnxruntime gives the model's outputs."""

import numpy as np
import pytest

import fastnn as fnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _dense_siamese():
    h1, h2 = fnn.Dense(32, activation="relu"), fnn.Dense(16, activation="tanh")
    a, b = fnn.Input((20,)), fnn.Input((20,))
    return [a, b], fnn.Dense(1, activation="sigmoid")(fnn.Subtract()([h2(h1(a)), h2(h1(b))]))


def _conv_siamese():
    conv, dense = fnn.Conv2D(8, 3, activation="relu"), fnn.Dense(12)
    a, b = fnn.Input((7, 7, 2)), fnn.Input((7, 7, 2))
    ta = dense(fnn.Flatten()(fnn.MaxPooling2D(2)(conv(a))))
    tb = dense(fnn.Flatten()(fnn.MaxPooling2D(2)(conv(b))))
    return [a, b], fnn.Concatenate()([ta, tb])


def _embedding_lstm():
    emb, lstm = fnn.Embedding(30, 8), fnn.LSTM(12)
    a, b = fnn.Input((6,)), fnn.Input((6,))
    return [a, b], fnn.Add()([lstm(emb(a)), lstm(emb(b))])


def _tower_model():
    tower = fnn.Sequential([fnn.Dense(24, activation="relu"), fnn.Dense(8)], input_dim=10,
                           seed=3)
    a, b, c = fnn.Input((10,)), fnn.Input((10,)), fnn.Input((10,))
    return [a, b, c], fnn.Concatenate()([tower(a), tower(b), tower(c)])


KINDS = {"dense": (_dense_siamese, False), "conv2d": (_conv_siamese, False),
         "embedding_lstm": (_embedding_lstm, True), "tower_model": (_tower_model, False)}


@pytest.mark.parametrize("kind", list(KINDS))
def test_shared_weights_export_once_and_run_in_onnxruntime(kind, tmp_path):
    make, ids = KINDS[kind]
    ins, out = make()
    model = fnn.Model(ins, out, seed=0)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    floats = sum(int(np.prod(t.dims)) for t in proto.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT)
    # every weight once (a second copy per call would add the shared layers' weights again);
    # a few small constants besides
    assert model.count_params() <= floats <= model.count_params() + 64, floats
    rng = np.random.default_rng(0)
    xs = [(rng.integers(0, 30, size=(5, *t.shape)) if ids else rng.normal(size=(5, *t.shape)))
          .astype(np.float32) for t in ins]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(session.get_inputs(), xs)}
    np.testing.assert_allclose(session.run(None, feed)[0], model.predict(xs), rtol=1e-5,
                               atol=1e-6)
