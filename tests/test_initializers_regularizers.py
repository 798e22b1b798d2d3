"""fastnn.initializers and fastnn.regularizers: Keras' names and formulas, lookup by name,
dict and instance, the user's own initializer checked, and what the model does with both
(seeded weights, penalties in the loss, L2 under SGD equal to weight decay, model files)."""

import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import initializers as I
from fastnn import regularizers as R

RNG = np.random.default_rng


# --------------------------------------------------------------------------- initializers
@pytest.mark.parametrize("cls, shape, std", [
    (I.GlorotNormal, (300, 200), math.sqrt(2 / 500)),
    (I.HeNormal, (300, 200), math.sqrt(2 / 300)),
    (I.LecunNormal, (300, 200), math.sqrt(1 / 300)),
    (I.GlorotUniform, (300, 200), math.sqrt(2 / 500)),
    (I.HeUniform, (300, 200), math.sqrt(2 / 300)),
    (I.LecunUniform, (300, 200), math.sqrt(1 / 300)),
    (I.HeNormal, (3, 3, 16, 32), math.sqrt(2 / (3 * 3 * 16))),      # a conv kernel's fan in
    (I.GlorotUniform, (5, 8, 40), math.sqrt(2 / (5 * 8 + 5 * 40))),
])
def test_variance_scaling_family_has_keras_variances(cls, shape, std):
    w = cls(seed=1)(shape, "float64")
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.std() / std - 1) < 0.03 and abs(w.mean()) < 0.05 * std
    if "Uniform" in cls.__name__:
        assert np.abs(w).max() <= math.sqrt(3) * std
    else:                                            # truncated at two standard deviations
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12


def test_simple_initializers():
    assert not I.Zeros()((2, 3)).any() and (I.Ones()((4,), "float64") == 1).all()
    assert (I.Constant(0.5)((3,)) == 0.5).all()
    u = I.RandomUniform(-1, 2, seed=0)((10000,), "float64")
    assert u.min() >= -1 and u.max() < 2 and abs(u.mean() - 0.5) < 0.05
    n = I.RandomNormal(1.0, 0.1, seed=0)((10000,), "float64")
    assert abs(n.mean() - 1) < 0.01 and abs(n.std() - 0.1) < 0.005
    t = I.TruncatedNormal(0.0, 1.0, seed=0)((10000,), "float64")
    assert np.abs(t).max() <= 2.0
    np.testing.assert_array_equal(I.Identity(2.0)((3, 3)), 2 * np.eye(3))
    assert I.get("normal") == I.RandomNormal() and I.get("uniform") == I.RandomUniform()


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 3, 5)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    w = I.Orthogonal(gain=1.5, seed=3)(shape, "float64").reshape(-1, shape[-1])
    small = min(w.shape)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(small), atol=1e-12)


def test_seeds_and_the_models_generator():
    assert np.array_equal(I.HeNormal(seed=4)((5, 5)), I.HeNormal(seed=4)((5, 5)))
    assert not np.array_equal(I.HeNormal()((5, 5)), I.HeNormal()((5, 5)))

    def model(seed, init):
        return fnn.Sequential([fnn.Dense(8, kernel_initializer=init), fnn.Dense(2)],
                              input_dim=5, seed=seed, backend="numpy")
    a, b, c = model(0, "orthogonal"), model(0, "orthogonal"), model(1, "orthogonal")
    assert a.get_weights()[0].tobytes() == b.get_weights()[0].tobytes()
    assert a.get_weights()[0].tobytes() != c.get_weights()[0].tobytes()
    w = a.get_weights()[0].astype(np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-6)


@pytest.mark.parametrize("name", sorted(I._NAMES))
def test_names_classes_and_dicts_give_the_same_initializer(name):
    made = I.get(name)
    assert I.get(type(made).__name__) == made
    assert I.get(I.serialize(made)) == made
    layer = fnn.Dense(2, kernel_initializer=name)
    again = fnn.layers.layer_from_config(layer.get_config())
    assert again.kernel_initializer == made


@pytest.mark.parametrize("value, error, pattern", [
    ("he_normall", ValueError, r"unknown initializer 'he_normall'; known: constant, glorot_normal"),
    ({"class_name": "HeNormal"}, ValueError, r"exactly the keys 'class_name' and 'config'"),
    ({"class_name": "Nope", "config": {}}, ValueError, r"unknown initializer class 'Nope'"),
    ({"class_name": "HeNormal", "config": {"sed": 1}}, TypeError, r"takes the arguments \['seed'\]"),
    ({"class_name": "RandomNormal", "config": {"stddev": -1}}, ValueError, r"stddev"),
    (3, TypeError, r"an initializer must be a name"),
    (I.HeNormal, TypeError, r"an initializer must be a name"),
])
def test_bad_initializers_are_refused(value, error, pattern):
    with pytest.raises(error, match=pattern):
        fnn.Dense(2, kernel_initializer=value)


def test_a_users_initializer_is_called_and_checked(tmp_path):
    calls = []

    def fives(shape, dtype):
        calls.append((shape, dtype))
        return np.full(shape, 5.0)
    model = fnn.Sequential([fnn.Dense(3, kernel_initializer=fives)], input_dim=2,
                           backend="numpy")
    assert (model.get_weights()[0] == 5).all() and calls == [((2, 3), np.float32)]
    with pytest.raises(ValueError, match="cannot be stored in a model file"):
        model.save(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match=r"returned an array of shape \(3,\) for the weight "
                                         r"shape \(2, 3\)"):
        fnn.Sequential([fnn.Dense(3, kernel_initializer=lambda s, d: np.ones(3))], input_dim=2)
    with pytest.raises(ValueError, match="NaN or inf"):
        fnn.Sequential([fnn.Dense(3, kernel_initializer=lambda s, d: np.full(s, np.nan))],
                       input_dim=2)


# --------------------------------------------------------------------------- regularizers
def test_penalties_and_gradients_follow_keras():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert R.L1(0.1)(w) == pytest.approx(0.35)
    assert R.L2(0.1)(w) == pytest.approx(0.525)
    assert R.L1L2(0.1, 0.1)(w) == pytest.approx(0.875)
    assert R.l1_l2() == R.L1L2(0.01, 0.01) and R.l2() == R.L2(0.01) and R.l1 is R.L1
    g = np.zeros_like(w)
    R.L1L2(0.1, 0.1).add_gradient(w, g)
    np.testing.assert_allclose(g, 0.1 * np.sign(w) + 0.2 * w)


@pytest.mark.parametrize("value, error, pattern", [
    ("l3", ValueError, r"unknown regularizer 'l3'; known: l1, l1_l2, l2"),
    (lambda w: 0.0, TypeError, r"a bare function cannot be trained through"),
    ({"class_name": "L2", "config": {"l2": -1}}, ValueError, r"l2 must be a finite number"),
    (R.L2(0.1).get_config(), ValueError, r"exactly the keys"),
])
def test_bad_regularizers_are_refused(value, error, pattern):
    with pytest.raises(error, match=pattern):
        fnn.Dense(2, kernel_regularizer=value)


def test_names_and_dicts_give_the_same_regularizer():
    for name, made in (("l1", R.L1()), ("l2", R.L2()), ("l1_l2", R.l1_l2())):
        assert R.get(name) == made == R.get(R.serialize(made))


def test_l2_under_sgd_is_weight_decay_and_the_penalty_is_in_the_loss():
    rng = RNG(0)
    X, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))

    def model(reg, decay):
        m = fnn.Sequential([fnn.Dense(6, activation="tanh", kernel_regularizer=reg,
                                      bias_regularizer=reg),
                            fnn.Dense(2, kernel_regularizer=reg, bias_regularizer=reg)],
                           input_dim=5, seed=2, dtype="float64")
        return m.compile("mse", fnn.SGD(lr=0.05, weight_decay=decay))
    regularized, decayed = model(R.L2(0.01), 0.0), model(None, 0.02)
    assert regularized.path == "general" and decayed.path == "fast"
    penalty = sum(0.01 * float(np.sum(w ** 2)) for w in regularized.get_weights())
    assert regularized.regularization_loss() == pytest.approx(penalty, rel=1e-12)
    plain = decayed.evaluate(X, y)["loss"]
    assert regularized.evaluate(X, y)["loss"] == pytest.approx(plain + penalty, rel=1e-12)
    regularized.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    decayed.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(regularized.get_weights(), decayed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
