"""Shared (tied) layers in the functional API: one layer, or one model, called at several
places of a model. Its weights exist once and their gradient is the sum over the calls.

Gradients against central differences in float64 on both backends (every layer family with
weights, shared between two calls), against PyTorch modules called twice, and against Keras 3;
the compiled backend against the NumPy one; 1 vs 2 threads bitwise; files, pickle, clone."""

import numpy as np
import pytest

import fastnn as fnn
from tests._finite_differences import check_model_gradients


def _call(layer, t):
    return layer(t)


def _self_attention(layer, t):
    return layer(t, t)


def _pair(layer, t):
    return layer([t, t])


# (name, layer factory, sample shape, integer ids in [0, high) or None, how the layer is called)
FAMILIES = [
    ("Dense", lambda: fnn.Dense(3, activation="tanh"), (4,), None, _call),
    ("Dense3D", lambda: fnn.Dense(2), (3, 4), None, _call),
    ("Conv1D", lambda: fnn.Conv1D(2, 3, activation="tanh"), (6, 2), None, _call),
    ("Conv2D", lambda: fnn.Conv2D(2, 3, activation="tanh"), (5, 5, 2), None, _call),
    ("Conv2Dstrided", lambda: fnn.Conv2D(2, 2, strides=2, padding="same"), (5, 5, 2), None,
     _call),
    ("Conv3D", lambda: fnn.Conv3D(2, 2), (3, 3, 3, 1), None, _call),
    ("Conv1DTranspose", lambda: fnn.Conv1DTranspose(2, 3), (4, 2), None, _call),
    ("Conv2DTranspose", lambda: fnn.Conv2DTranspose(2, 3), (3, 3, 2), None, _call),
    ("Conv3DTranspose", lambda: fnn.Conv3DTranspose(1, 2), (2, 2, 2, 2), None, _call),
    ("DepthwiseConv1D", lambda: fnn.DepthwiseConv1D(3, depth_multiplier=2), (5, 2), None,
     _call),
    ("DepthwiseConv2D", lambda: fnn.DepthwiseConv2D(3, depth_multiplier=2), (4, 4, 2), None,
     _call),
    ("SeparableConv1D", lambda: fnn.SeparableConv1D(2, 3), (5, 2), None, _call),
    ("SeparableConv2D", lambda: fnn.SeparableConv2D(2, 3), (4, 4, 2), None, _call),
    ("Embedding", lambda: fnn.Embedding(7, 3), (4,), 7, _call),
    ("PositionalEmbedding", lambda: fnn.PositionalEmbedding(3), (3, 2), None, _call),
    ("SimpleRNN", lambda: fnn.SimpleRNN(3), (4, 2), None, _call),
    ("LSTM", lambda: fnn.LSTM(3, return_sequences=True), (4, 2), None, _call),
    ("GRU", lambda: fnn.GRU(3), (4, 2), None, _call),
    ("RNNcell", lambda: fnn.RNN(fnn.LSTMCell(2)), (3, 2), None, _call),
    ("Bidirectional", lambda: fnn.Bidirectional(fnn.LSTM(2)), (3, 2), None, _call),
    ("ConvLSTM2D", lambda: fnn.ConvLSTM2D(1, 2), (2, 3, 3, 1), None, _call),
    ("TimeDistributed", lambda: fnn.TimeDistributed(fnn.Dense(2)), (3, 4), None, _call),
    ("BatchNormalization", lambda: fnn.BatchNormalization(), (4,), None, _call),
    ("LayerNormalization", lambda: fnn.LayerNormalization(), (3, 4), None, _call),
    ("GroupNormalization", lambda: fnn.GroupNormalization(groups=2), (3, 4), None, _call),
    ("RMSNormalization", lambda: fnn.RMSNormalization(), (4,), None, _call),
    ("PReLU", lambda: fnn.PReLU(alpha_initializer="random_normal"), (4,), None, _call),
    ("MultiHeadAttention", lambda: fnn.MultiHeadAttention(num_heads=2, key_dim=2), (3, 4),
     None, _self_attention),
    ("Attention", lambda: fnn.Attention(use_scale=True), (3, 4), None, _pair),
    ("AdditiveAttention", lambda: fnn.AdditiveAttention(), (3, 4), None, _pair),
    ("TransformerBlock", lambda: fnn.TransformerBlock(num_heads=2, key_dim=2, ff_dim=4),
     (3, 4), None, _call),
]


def _samples(rng, n, shape, high):
    if high is not None:
        return rng.integers(0, high, size=(n, *shape)).astype(np.float64)
    return rng.normal(size=(n, *shape))


def _shared_model(make, shape, call, backend, calls=2, seed=0):
    layer = make()
    ins = [fnn.Input(shape) for _ in range(calls)]
    outs = [fnn.Flatten()(call(layer, t)) for t in ins]
    out = fnn.Concatenate()(outs) if calls > 1 else outs[0]
    model = fnn.Model(ins, out, seed=seed, dtype="float64", backend=backend)
    return model, layer


@pytest.mark.parametrize("name, make, shape, high, call", FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_family_shared_gradients_match_finite_differences(backend, name, make, shape,
                                                                high, call):
    model, layer = _shared_model(make, shape, call, backend)
    assert sum(1 for m in model.layers if m is layer) == 1
    assert model.count_params() == sum(w.size for w in layer.get_weights()) > 0
    rng = np.random.default_rng(1)
    x = [_samples(rng, 3, shape, high) for _ in range(2)]
    R = rng.normal(size=(3, model.output_dim))
    # the key bias's gradient is 0 (softmax ignores a shift along the keys): the central
    # differences' rounding (~1e-9 on this loss) is all there is, over the 1e-9 absolute floor
    tol = 1e-5 if name == "TransformerBlock" else 1e-6
    check_model_gradients(model, x, R, tol=tol, check_input=high is None, what=name)


@pytest.mark.parametrize("name, make, shape, high, call", FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_family_fast_equals_numpy(name, make, shape, high, call):
    rng = np.random.default_rng(2)
    x = [_samples(rng, 5, shape, high) for _ in range(2)]
    results = []
    for backend in ("numpy", "fast"):
        model, _ = _shared_model(make, shape, call, backend)
        out = model.forward(x, training=True)
        R = np.random.default_rng(3).normal(size=out.shape)
        model.zero_grad()
        dx = model.backward(R)
        results.append((out, dx, [g.copy() for g in model.grads]))
    (o1, d1, g1), (o2, d2, g2) = results
    np.testing.assert_allclose(o2, o1, rtol=1e-9, atol=1e-11)
    for a, b in zip(d1 + g1, d2 + g2):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)
