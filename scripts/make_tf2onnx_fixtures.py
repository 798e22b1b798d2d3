"""Write the tf2onnx fixtures of tests/test_onnx_tf2onnx.py into tests/data/tf2onnx/.

Small Keras 2 (tf_keras) models with seeded random weights (biases and BatchNormalization
statistics not zero, so no converter shortcut hides them) are converted by tf2onnx's
``from_keras`` at opset 17; next to each ``<name>.onnx`` goes ``<name>.npz`` with inputs at
batch 1 and 7 (``x1``, ``x7``) and Keras' own predictions for them (``y1``, ``y7``).

TensorFlow is not a test dependency (its numpy and protobuf pins fight onnx's), so the
fixtures are committed and this script runs in a side environment:

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0 tf2onnx==1.17.0
    /tmp/tfenv/bin/python scripts/make_tf2onnx_fixtures.py

(the versions that wrote the committed files; the onnx in that environment was 1.23.2).
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")       # tf2onnx converts Keras 2 models
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
import tf_keras as keras  # noqa: E402

L = keras.layers
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "tf2onnx"


def _models() -> dict:
    """name: (sample shape, layers, integer ids?)."""
    return {
        "mlp": ((5,), [L.Dense(8, activation="relu"), L.Dense(6, activation="tanh"),
                       L.Dense(4, activation="sigmoid"), L.Dense(3, activation="softmax")], False),
        "cnn_maxpool": ((8, 8, 1), [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                                    L.Flatten(), L.Dense(5, activation="softmax")], False),
        "cnn_same_strides": ((9, 9, 2), [L.Conv2D(4, 3, padding="same", strides=2,
                                                  activation="relu"),
                                         L.AveragePooling2D(2, padding="same"),
                                         L.Conv2D(3, 2, padding="valid"), L.Flatten(),
                                         L.Dense(3)], False),
        "conv1d_gap": ((12, 3), [L.Conv1D(4, 3, padding="same", strides=2, activation="tanh"),
                                 L.Conv1D(5, 2, padding="valid"),
                                 L.GlobalAveragePooling1D()], False),
        "batchnorm": ((6,), [L.Dense(5), L.BatchNormalization(), L.Activation("relu"),
                             L.Dense(2)], False),
        "conv_batchnorm": ((6, 6, 2), [L.Conv2D(3, 3), L.BatchNormalization(),
                                       L.GlobalAveragePooling2D()], False),
        "layernorm": ((6,), [L.Dense(4), L.LayerNormalization(), L.Dense(3)], False),
        "conv1d_layernorm": ((7, 3), [L.Conv1D(4, 2, activation="relu"),
                                      L.LayerNormalization(epsilon=0.01),
                                      L.LayerNormalization(center=False),
                                      L.GlobalAveragePooling1D()], False),
        "simplernn": ((6, 3), [L.SimpleRNN(4)], False),
        "simplernn_sequences": ((5, 3), [L.SimpleRNN(4, activation="relu",
                                                     return_sequences=True), L.Dense(2)], False),
        "lstm_sequences": ((6, 3), [L.LSTM(4, return_sequences=True)], False),
        "lstm_last": ((6, 3), [L.LSTM(4), L.Dense(2)], False),
        "gru_sequences": ((6, 3), [L.GRU(4, return_sequences=True)], False),
        "gru_last": ((6, 3), [L.GRU(4)], False),
        "bidirectional_lstm": ((6, 3), [L.Bidirectional(L.LSTM(4))], False),
        "bidirectional_gru_sequences": ((6, 3), [L.Bidirectional(
            L.GRU(3, return_sequences=True))], False),
        "embedding_lstm": ((5,), [L.Embedding(10, 4), L.LSTM(3)], True),
    }


def _randomize(model: keras.Model, rng: np.random.Generator) -> None:
    """Weights, biases and statistics drawn at random (variances positive)."""
    for layer in model.layers:
        for w in layer.weights:
            shape = tuple(w.shape)
            if "moving_variance" in w.name:
                w.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
            else:
                w.assign(rng.normal(0, 0.5, shape).astype(np.float32))


def make(name: str, shape: tuple, layers: list, ids: bool) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(sum(map(ord, name)))
    model = keras.Sequential([keras.Input(shape), *layers])   # ids as floats, as in fastnn
    _randomize(model, rng)
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    onnx.save(proto, str(OUT / f"{name}.onnx"))
    arrays = {}
    for rows in (1, 7):
        if ids:
            x = rng.integers(0, 10, size=(rows, *shape)).astype(np.float32)
        else:
            x = rng.normal(size=(rows, *shape)).astype(np.float32)
        arrays[f"x{rows}"] = x
        arrays[f"y{rows}"] = np.asarray(model(x, training=False))
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    print(name, [n.op_type for n in proto.graph.node])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    models = _models()
    for name in sys.argv[1:] or models:
        make(name, *models[name])


if __name__ == "__main__":
    main()
