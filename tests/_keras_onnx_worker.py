"""Run by tests/test_onnx_keras.py in a subprocess with KERAS_BACKEND=torch (Keras fixes its
backend at import, and tests/test_interop.py imports Keras on another): builds small Keras 3
models with seeded random weights, exports each with ``model.export(path, format="onnx")``
and writes ``<name>.onnx`` and ``<name>.npz`` (inputs x1, x7 and Keras' outputs y1, y7) into
the directory given as the first argument; the model names to make follow it."""

import os
import sys

import numpy as np

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402

L = keras.layers


def models():
    """name: (sample shape, layers, integer ids?)."""
    return {
        "mlp": ((5,), lambda: [L.Dense(8, activation="relu"), L.Dense(6, activation="tanh"),
                               L.Dense(4, activation="sigmoid"),
                               L.Dense(3, activation="softmax")], False),
        "cnn_maxpool": ((8, 8, 1), lambda: [L.Conv2D(4, 3, activation="relu"),
                                            L.MaxPooling2D(), L.Flatten(),
                                            L.Dense(5, activation="softmax")], False),
        "cnn_same_strides": ((9, 9, 2), lambda: [L.Conv2D(4, 3, padding="same", strides=2,
                                                          activation="relu"),
                                                 L.AveragePooling2D(2),
                                                 L.Conv2D(3, 2, padding="same"), L.Flatten(),
                                                 L.Dense(3)], False),
        "conv1d_gap": ((12, 3), lambda: [L.Conv1D(4, 3, padding="same", strides=2,
                                                  activation="tanh"),
                                         L.Conv1D(5, 2, padding="valid"),
                                         L.GlobalAveragePooling1D()], False),
        "batchnorm": ((6,), lambda: [L.Dense(5), L.BatchNormalization(),
                                     L.Activation("relu"), L.Dense(2)], False),
        "conv_batchnorm": ((6, 6, 2), lambda: [L.Conv2D(3, 3), L.BatchNormalization(),
                                               L.GlobalAveragePooling2D()], False),
        "embedding_gap": ((5,), lambda: [L.Embedding(10, 4), L.GlobalAveragePooling1D(),
                                         L.Dense(2)], True),
        "simplernn": ((6, 3), lambda: [L.SimpleRNN(4)], False),     # unrolled, matched whole
        "simplernn_sequences": ((5, 3), lambda: [L.SimpleRNN(4, activation="relu",
                                                             return_sequences=True),
                                                 L.Dense(2)], False),
        "lstm": ((6, 3), lambda: [L.LSTM(4)], False),                # unrolled too
        "lstm_sequences": ((4, 2), lambda: [L.LSTM(3, return_sequences=True), L.Dense(2)],
                           False),
        "gru": ((6, 3), lambda: [L.GRU(4, return_sequences=True)], False),
        "gru_last": ((5, 3), lambda: [L.GRU(3), L.Dense(2)], False),
        # go_backwards (the input flipped by a Slice) and Bidirectional (the backward
        # sequence flipped back), every merge mode
        "simplernn_backwards": ((5, 2), lambda: [L.SimpleRNN(3, go_backwards=True)], False),
        "simplernn_backwards_sequences": ((5, 2), lambda: [
            L.SimpleRNN(3, go_backwards=True, return_sequences=True), L.Dense(2)], False),
        "lstm_backwards": ((5, 2), lambda: [L.LSTM(3, go_backwards=True)], False),
        "lstm_backwards_sequences": ((4, 3), lambda: [
            L.LSTM(3, go_backwards=True, return_sequences=True)], False),
        "gru_backwards_sequences": ((5, 2), lambda: [
            L.GRU(3, go_backwards=True, return_sequences=True)], False),
        "gru_backwards": ((4, 2), lambda: [L.GRU(3, go_backwards=True), L.Dense(2)], False),
        "bidirectional_simplernn": ((5, 2), lambda: [L.Bidirectional(L.SimpleRNN(3))], False),
        "bidirectional_simplernn_sequences_sum": ((5, 2), lambda: [L.Bidirectional(
            L.SimpleRNN(3, activation="relu", return_sequences=True), merge_mode="sum"),
            L.Dense(2)], False),
        "bidirectional_simplernn_sequences_ave": ((4, 3), lambda: [L.Bidirectional(
            L.SimpleRNN(3, return_sequences=True), merge_mode="ave")], False),
        "bidirectional_lstm_sequences": ((5, 2), lambda: [L.Bidirectional(
            L.LSTM(3, return_sequences=True))], False),
        "bidirectional_lstm_ave": ((5, 2), lambda: [L.Bidirectional(L.LSTM(3),
                                                                    merge_mode="ave")], False),
        "bidirectional_lstm_mul": ((4, 2), lambda: [L.Bidirectional(L.LSTM(2),
                                                                    merge_mode="mul")], False),
        "bidirectional_gru": ((5, 2), lambda: [L.Bidirectional(L.GRU(3)), L.Dense(2)], False),
        "bidirectional_gru_sequences_mul": ((5, 2), lambda: [L.Bidirectional(
            L.GRU(3, return_sequences=True), merge_mode="mul")], False),
        "bidirectional_gru_sequences_sum": ((4, 3), lambda: [L.Bidirectional(
            L.GRU(2, return_sequences=True), merge_mode="sum")], False),
        # depthwise (a Conv with group = channels), separable (then a 1x1 Conv), transposed
        "depthwise_separable": ((9, 8, 3), lambda: [
            L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
            L.SeparableConv2D(4, 3, strides=2, activation="relu"),
            L.DepthwiseConv2D(2, use_bias=False), L.GlobalAveragePooling2D()], False),
        "separable1d": ((10, 3), lambda: [
            L.SeparableConv1D(4, 3, padding="same", depth_multiplier=2, activation="tanh"),
            L.DepthwiseConv1D(2, strides=2), L.Flatten()], False),
        "conv_transpose": ((4, 5, 3), lambda: [
            L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(2, (2, 3), strides=(2, 1), output_padding=(1, 0)),
            L.Flatten()], False),
        "conv1d_transpose": ((6, 2), lambda: [
            L.Conv1DTranspose(3, 4, strides=2, padding="same", activation="relu"),
            L.Conv1DTranspose(2, 3, strides=3), L.Flatten()], False),
        # refused: an LSTM with another activation than Keras' cell matched, an average
        # pooling with "same" padding as an edge-replicating Pad
        "lstm_relu": ((5, 2), lambda: [L.LSTM(3, activation="relu")], False),
        "avgpool_same": ((5, 5, 2), lambda: [L.AveragePooling2D(2, padding="same"),
                                             L.Flatten()], False),
    }


def make(out, name, shape, layers, ids):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(sum(map(ord, name)))
    model = keras.Sequential([keras.Input(shape), *layers()])
    for w in model.weights:
        values = (rng.uniform(0.5, 2.0, w.shape) if "variance" in w.path
                  else rng.normal(0, 0.5, w.shape))
        w.assign(values.astype("float32"))
    arrays = {}
    for rows in (1, 7):
        x = (rng.integers(0, 10, size=(rows, *shape)) if ids
             else rng.normal(size=(rows, *shape))).astype(np.float32)
        arrays[f"x{rows}"] = x
        arrays[f"y{rows}"] = keras.ops.convert_to_numpy(model(x, training=False))
    model.export(os.path.join(out, f"{name}.onnx"), format="onnx", verbose=False)
    np.savez(os.path.join(out, f"{name}.npz"), **arrays)


if __name__ == "__main__":
    out, names = sys.argv[1], sys.argv[2:]
    table = models()
    for name in names or table:
        make(out, name, *table[name])
