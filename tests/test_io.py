"""Model files: save -> load gives the same model, bit for bit, and it can keep training."""

import numpy as np
import pytest

import fastnn as fnn
import _reference as ref


def _trained_model(backend, dtype, optimizer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = rng.integers(0, 3, 60)
    model = fnn.Sequential([fnn.Dense(16, activation="relu"),
                            fnn.Dense(8, activation=fnn.LeakyReLU(alpha=0.3)),
                            fnn.Dense(3), fnn.Softmax()],
                           input_dim=6, seed=4, dtype=dtype, backend=backend)
    model.compile(loss="cross_entropy", optimizer=optimizer, metrics=["accuracy"])
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    return model, X, y


OPTIMIZERS = {"adam": lambda: fnn.Adam(lr=1e-2, weight_decay=1e-3),
              "sgd-nesterov": lambda: fnn.SGD(lr=0.05, momentum=0.9, nesterov=True)}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_roundtrip_is_bitwise(tmp_path, backend, dtype, opt):
    model, X, y = _trained_model(backend, dtype, OPTIMIZERS[opt]())
    path = tmp_path / "model.fnn"
    model.save(str(path))
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89FNN"                 # our format, not a pickle
    same = fnn.load(str(path))
    assert isinstance(same, fnn.Sequential)
    assert same.predict(X).dtype == np.dtype(dtype)
    assert np.array_equal(same.predict(X), model.predict(X))
    for a, b in zip(same.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert same.evaluate(X, y) == model.evaluate(X, y)

    # both keep training identically: the optimizer state (and Adam's step count) was saved
    for step in range(3):
        xb, yb = X[step * 20:(step + 1) * 20], y[step * 20:(step + 1) * 20]
        assert same.train_on_batch(xb, yb) == model.train_on_batch(xb, yb)
    for a, b in zip(same.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)
    h1 = model.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    h2 = same.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    assert h1 == h2 and np.isfinite(h1["loss"]).all()


def test_loaded_model_keeps_learning(tmp_path, backend):
    model, X, y = _trained_model(backend, "float32", fnn.SGD(lr=0.05, momentum=0.9))
    path = tmp_path / "m.fnn"
    model.save(path)                              # a pathlib.Path works too
    same = fnn.load(path)
    before = same.evaluate(X, y)["loss"]
    same.fit(X, y, epochs=20, batch_size=16, verbose=0)
    assert same.evaluate(X, y)["loss"] < before


def test_uncompiled_model_and_activation_parameters(tmp_path, backend, dtype):
    model = fnn.Sequential([fnn.Dense(5, activation=fnn.Step(threshold=0.2)),
                            fnn.Dense(4, activation="tanh"), fnn.LeakyReLU(alpha=0.25),
                            fnn.Dense(2, activation="sigmoid")],
                           input_dim=3, seed=9, dtype=dtype, backend=backend)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    path = tmp_path / "u.fnn"
    model.save(path)
    same = fnn.load(path)
    assert np.array_equal(same.predict(X), model.predict(X))
    # the step threshold and the slope survived: compare with the hand-written forward
    W = same.get_weights()
    h = ref.act_forward(X @ W[0].astype(np.float64) + W[1], "step", 0.2)
    h = ref.act_forward(h @ W[2].astype(np.float64) + W[3], "tanh")
    h = ref.act_forward(h, "leaky_relu", 0.25)
    h = ref.act_forward(h @ W[4].astype(np.float64) + W[5], "sigmoid")
    ref.assert_close(same.predict(X), h, dtype, scale=1.0)
    same.compile(loss="binary_cross_entropy", optimizer="adam")
    same.fit(X, (X[:, :2] > 0).astype(float), epochs=1, verbose=0)


def test_bytes_without_the_optimizer_hold_architecture_and_weights(backend):
    from fastnn.io import model_from_bytes, model_to_bytes

    model, X, _ = _trained_model(backend, "float64", fnn.Adam())
    full, bare = model_to_bytes(model), model_to_bytes(model, include_optimizer=False)
    assert bare == model_to_bytes(model, include_optimizer=False)      # deterministic
    weights = sum(w.nbytes for w in model.get_weights())
    assert len(full) > len(bare) + 2 * weights - 512      # Adam's two moments are left out
    same = model_from_bytes(bare)
    assert same.loss is None and same.optimizer is None and same.backend == backend
    assert np.array_equal(same.predict(X), model.predict(X))
    with pytest.raises(TypeError, match="include_optimizer must be True or False"):
        model_to_bytes(model, include_optimizer="no")


def test_load_into_other_backend(tmp_path, dtype):
    model, X, _ = _trained_model("fast", dtype, fnn.Adam())
    model.save(tmp_path / "f.fnn")
    other = fnn.load(tmp_path / "f.fnn", backend="numpy")
    assert other.backend == "numpy"
    ref.assert_close(other.predict(X), model.predict(X), dtype, scale=1.0)


@pytest.mark.parametrize("cut", [0, 4, 15, 40, -65, -200])  # trailing padding < 64 bytes
def test_truncated_or_corrupt_files_raise_valueerror(tmp_path, cut):
    model, _, _ = _trained_model("numpy", "float64", fnn.Adam())
    path = tmp_path / "t.fnn"
    model.save(path)
    blob = path.read_bytes()
    path.write_bytes(blob[:cut])
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        fnn.load(path)


@pytest.mark.parametrize("blob", [b"", b"hello world" * 10, b"\x80\x04\x95" + b"\x00" * 64,
                                  b"\x89FNN\r\n\x1a\n" + b"\xff" * 64])
def test_foreign_files_raise_valueerror(tmp_path, blob):
    path = tmp_path / "x.fnn"
    path.write_bytes(blob)
    with pytest.raises(ValueError):
        fnn.load(path)


def test_bytes_and_pathlike_paths(tmp_path):
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=1)
    model.compile("mse", "sgd")
    x = np.ones((2, 3))
    for path in (bytes(tmp_path / "m.fnn"), tmp_path / "p.fnn", str(tmp_path / "s.fnn")):
        model.save(path)
        assert np.array_equal(fnn.load(path).predict(x), model.predict(x))
