"""Run by tests/test_multi_output_followups.py in a subprocess with KERAS_BACKEND=torch (Keras'
numpy backend cannot train): Keras 3's ``train_on_batch`` returns and an AdamW step on a model
whose second output has no loss, in float64, from the weights and data of the .npz given as the
first argument; writes the results to the .npz given as the second (``<second>.json`` holds the
returned lists and dicts).

The last model has a masked per-step output ('tags', behind Embedding(mask_zero=True)) beside
an unmasked one ('summary', behind GlobalAveragePooling1D); it is fitted.

The two-output model is tests/test_multi_output_fit.py's: Input -> Dense tanh ('hid') ->
'out_a' Dense softmax, 'out_b' Dense linear; the one-output model is Input -> Dense softmax.
"""

import json
import os
import sys

import numpy as np

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402
from keras.src.backend.common import dtypes  # noqa: E402

# a float64 oracle: Keras 3 otherwise computes on two 64-bit tensors in 32 bits
dtypes.BIT64_TO_BIT32_DTYPE.clear()


def two_outputs(data, regularized=False):
    inp = keras.Input((data["X"].shape[1],))
    h = keras.layers.Dense(data["w0"].shape[1], activation="tanh", name="hid")(inp)
    a = keras.layers.Dense(data["w2"].shape[1], activation="softmax", name="out_a")(h)
    b = keras.layers.Dense(data["w4"].shape[1], name="out_b",
                           kernel_regularizer=keras.regularizers.L2(float(data["l2"]))
                           if regularized else None)(h)
    model = keras.Model(inp, [a, b])
    model.set_weights([data[f"w{i}"] for i in range(6)])
    return model


def one_output(data):
    inp = keras.Input((data["X"].shape[1],))
    out = keras.layers.Dense(data["v0"].shape[1], activation="softmax", name="probs")(inp)
    model = keras.Model(inp, out)
    model.set_weights([data["v0"], data["v1"]])
    return model


def sgd(data):
    return keras.optimizers.SGD(learning_rate=float(data["lr"]))


def main(source, target):
    keras.config.set_floatx("float64")
    data = dict(np.load(source))
    X, ya, yb = data["X"], data["ya"], data["yb"]
    returns, arrays = {}, {}

    model = one_output(data)
    model.compile(optimizer=sgd(data), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    returns["one_metrics"] = model.train_on_batch(X, ya)
    returns["one_metrics_dict"] = model.train_on_batch(X, ya, return_dict=True)
    model = one_output(data)
    model.compile(optimizer=sgd(data), loss="sparse_categorical_crossentropy")
    returns["one_plain"] = model.train_on_batch(X, ya)
    returns["one_plain_dict"] = model.train_on_batch(X, ya, return_dict=True)

    losses = ["sparse_categorical_crossentropy", "mse"]
    model = two_outputs(data)
    model.compile(optimizer=sgd(data), loss=losses, loss_weights=[1.0, float(data["weight_b"])],
                  metrics=[["accuracy"], ["mae"]])
    returns["two_metrics"] = model.train_on_batch(X, [ya, yb])
    returns["two_metrics_dict"] = model.train_on_batch(X, [ya, yb], return_dict=True)
    returns["two_metrics_test"] = model.test_on_batch(X, [ya, yb])
    model = two_outputs(data)
    model.compile(optimizer=sgd(data), loss=losses, loss_weights=[1.0, float(data["weight_b"])])
    returns["two_plain"] = model.train_on_batch(X, [ya, yb])
    returns["two_plain_dict"] = model.train_on_batch(X, [ya, yb], return_dict=True)
    model = two_outputs(data)
    model.compile(optimizer=sgd(data), loss=["sparse_categorical_crossentropy", None])
    returns["one_trained"] = model.train_on_batch(X, [ya, yb])

    # AdamW, out_b without a loss: which weights move (and how far)
    for regularized in (False, True):
        model = two_outputs(data, regularized)
        model.compile(optimizer=keras.optimizers.AdamW(
            learning_rate=float(data["adam_lr"]), weight_decay=float(data["decay"]),
            epsilon=1e-7), loss=["sparse_categorical_crossentropy", None])
        for _ in range(int(data["steps"])):
            model.train_on_batch(X, [ya, yb])
        for i, w in enumerate(model.get_weights()):
            arrays[f"adamw{int(regularized)}_{i}"] = w
    # a masked per-step output beside an unmasked one: fit, then the weights and History
    ids, tags, summary = data["ids"], data["tags"], data["summary"]
    inp = keras.Input((ids.shape[1],))
    emb = keras.layers.Embedding(data["m0"].shape[0], data["m0"].shape[1], mask_zero=True)(inp)
    per_step = keras.layers.Dense(data["m1"].shape[1], activation="softmax", name="tags")(emb)
    pooled = keras.layers.GlobalAveragePooling1D()(emb)
    whole = keras.layers.Dense(data["m3"].shape[1], name="summary")(pooled)
    model = keras.Model(inp, [per_step, whole])
    model.set_weights([data[f"m{i}"] for i in range(5)])
    model.compile(optimizer=sgd(data), loss=["sparse_categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], []])
    history = model.fit(ids, [tags, summary], epochs=2, batch_size=4, shuffle=False,
                        verbose=0).history
    for i, w in enumerate(model.get_weights()):
        arrays[f"masked_{i}"] = w
    returns["masked_history"] = history
    np.savez(target, **arrays)
    with open(target + ".json", "w") as f:
        json.dump(returns, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
