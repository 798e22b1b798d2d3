"""Run by tests/test_multi_output_fit.py in a subprocess with KERAS_BACKEND=torch (Keras' numpy
backend cannot fit, and Keras fixes its backend per process): a two-output Keras 3 model in
float64 (a softmax classifier head and a linear regression head on a shared tanh layer) with the
weights, data and settings read from the .npz given as the first argument; writes Keras' results
to the .npz given as the second and its log keys to ``<second>.json``.

Results: ``loss_a``, ``loss_b``, ``total`` (the means of Keras' per-sample loss functions on its
float64 predictions: its ``evaluate`` sums in float32 trackers, so it is also kept, as
``evaluate``, for the keys and a looser check), ``fit_<i>`` the weights after ``fit`` (SGD, shuffle=False), ``history_<key>``,
and ``sw_fit_<i>`` the weights after a ``fit`` with per-output sample weights.
"""

import json
import os
import sys

import numpy as np

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402
from keras.src.backend.common import dtypes  # noqa: E402

# Keras 3 computes an operation on two 64-bit tensors in 32 bits ("to be aligned with JAX's
# default"): a float64 Dense is then only ~1e-7 from float64. Emptying that table makes it a
# float64 oracle (its float64 matmul then agrees with NumPy's to ~1e-16).
dtypes.BIT64_TO_BIT32_DTYPE.clear()


def make(data):
    inp = keras.Input((data["X"].shape[1],))
    h = keras.layers.Dense(data["w0"].shape[1], activation="tanh", name="hid")(inp)
    a = keras.layers.Dense(data["w2"].shape[1], activation="softmax", name="out_a")(h)
    b = keras.layers.Dense(data["w4"].shape[1], name="out_b")(h)
    model = keras.Model(inp, [a, b])
    model.set_weights([data[f"w{i}"] for i in range(6)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=float(data["lr"])),
                  loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, float(data["weight_b"])],
                  metrics=[["accuracy"], ["mae"]])
    return model


def main(source, target):
    keras.config.set_floatx("float64")
    data = dict(np.load(source))
    X, ya, yb = data["X"], data["ya"], data["yb"]
    epochs, batch = int(data["epochs"]), int(data["batch_size"])
    out = {}
    model = make(data)
    pa, pb = model.predict(X, verbose=0)
    # the loss functions per sample, in float64 (the Loss objects' reduction gives float32)
    per_sample = keras.ops.convert_to_numpy
    out["loss_a"] = float(np.mean(per_sample(keras.losses.sparse_categorical_crossentropy(ya,
                                                                                         pa))))
    out["loss_b"] = float(np.mean(per_sample(keras.losses.mean_squared_error(yb, pb))))
    out["total"] = out["loss_a"] + float(data["weight_b"]) * out["loss_b"]
    scores = model.evaluate(X, [ya, yb], verbose=0, return_dict=True)
    out["evaluate"] = np.array(model.evaluate(X, [ya, yb], verbose=0))
    history = model.fit(X, [ya, yb], epochs=epochs, batch_size=batch, shuffle=False, verbose=0,
                        validation_data=(X, [ya, yb])).history
    for i, w in enumerate(model.get_weights()):
        out[f"fit_{i}"] = w
    for key, values in history.items():
        out[f"history_{key}"] = np.array(values)
    model = make(data)
    model.fit(X, [ya, yb], epochs=epochs, batch_size=batch, shuffle=False, verbose=0,
              sample_weight=[data["swa"], data["swb"]])
    for i, w in enumerate(model.get_weights()):
        out[f"sw_fit_{i}"] = w
    np.savez(target, **out)
    with open(target + ".json", "w") as f:
        json.dump({"evaluate_keys": list(scores), "history_keys": list(history)}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
