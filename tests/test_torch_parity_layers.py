"""The new layers inside models against PyTorch in float64, on both backends (<= 1e-10
relative): BatchNormalization (training and inference, running statistics), LayerNormalization,
Dropout with a given mask, a regularized loss, and sample weights through a normalized model.
"""

import numpy as np
import pytest

import fastnn as fnn

torch = pytest.importorskip("torch")
F = torch.nn.functional
BACKENDS = ["numpy", "fast"]


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _t(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _dense_bn_model(backend, momentum=0.9, eps=1e-3):
    model = fnn.Sequential([fnn.Dense(5), fnn.BatchNormalization(momentum=momentum, epsilon=eps),
                            fnn.Dense(3, activation="tanh")],
                           input_shape=(4, 6), seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(1)
    weights = model.get_weights()
    weights[2] = rng.uniform(0.5, 1.5, 5)                 # gamma
    weights[3] = rng.standard_normal(5)                   # beta
    weights[4] = rng.standard_normal(5) * 0.1             # moving mean
    weights[5] = rng.uniform(0.5, 2.0, 5)                 # moving variance
    model.set_weights(weights)
    return model


def _torch_dense_bn(weights, x, training, running, momentum, eps):
    W1, b1, gamma, beta, mm, mv, W2, b2 = [_t(w, grad=i not in (4, 5))
                                            for i, w in enumerate(weights)]
    h = _t(x) @ W1 + b1                                       # (n, 4, 5)
    rm, rv = running
    flat = h.reshape(-1, 5)
    z = F.batch_norm(flat, rm, rv, gamma, beta, training=training, momentum=1 - momentum,
                     eps=eps).reshape(h.shape)
    out = torch.tanh(z @ W2 + b2)
    return out, [W1, b1, gamma, beta, W2, b2]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_matches_torch(backend, training):
    momentum, eps = 0.9, 1e-3
    model = _dense_bn_model(backend, momentum, eps)
    weights = model.get_weights()
    x = np.random.default_rng(2).standard_normal((7, 4, 6))
    R = np.random.default_rng(3).standard_normal((7, 4, 3))
    running = (_t(weights[4]), _t(weights[5]))
    out_t, params = _torch_dense_bn(weights, x, training, running, momentum, eps)
    (out_t * _t(R)).sum().backward()
    if not training:
        model.layers[1].trainable = False     # Keras: a frozen BatchNormalization is inference
    out = model.forward(x, training=True)
    model.zero_grad()
    model.backward(R)
    assert _rel(out, out_t.detach().numpy()) <= 1e-10
    grads = [g for i, g in enumerate(model.grads) if i not in (4, 5)]
    scale = max(np.max(np.abs(p.grad.numpy())) for p in params)
    for i, (g, p) in enumerate(zip(grads, params)):
        if not training and i in (2, 3):      # frozen gamma and beta: no gradient
            assert not g.any()
            continue
        # relative to the largest gradient: b1's is zero in exact arithmetic (the batch mean
        # removes it), rounding noise on both sides
        assert np.max(np.abs(g - p.grad.numpy())) <= 1e-10 * scale
    # running statistics: updated in training (unbiased variance, as PyTorch), kept otherwise
    after = model.get_weights()
    assert _rel(after[4], running[0].numpy()) <= 1e-12
    assert _rel(after[5], running[1].numpy()) <= 1e-12
    if not training:
        assert np.array_equal(after[4], weights[4]) and np.array_equal(after[5], weights[5])
    # predict is inference: the moving statistics
    infer, _ = _torch_dense_bn(after, x, False, (_t(after[4]), _t(after[5])), momentum, eps)
    assert _rel(model.predict(x), infer.detach().numpy()) <= 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_normalization_matches_torch(backend):
    eps = 1e-5
    model = fnn.Sequential([fnn.Dense(6, activation="relu"), fnn.LayerNormalization(epsilon=eps),
                            fnn.Dense(2)], input_shape=(3, 4), seed=0, dtype="float64",
                           backend=backend)
    rng = np.random.default_rng(4)
    weights = model.get_weights()
    weights[2], weights[3] = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6)
    model.set_weights(weights)
    x, R = rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 3, 2))
    W1, b1, g, b, W2, b2 = [_t(w, grad=True) for w in weights]
    out_t = F.layer_norm(torch.relu(_t(x) @ W1 + b1), (6,), g, b, eps) @ W2 + b2
    (out_t * _t(R)).sum().backward()
    out = model.forward(x)
    model.zero_grad()
    dx = model.backward(R)
    assert _rel(out, out_t.detach().numpy()) <= 1e-10
    for mine, theirs in zip(model.grads, [W1, b1, g, b, W2, b2]):
        assert _rel(mine, theirs.grad.numpy()) <= 1e-10
    xt = _t(x, grad=True)
    F.layer_norm(torch.relu(xt @ W1 + b1), (6,), g, b, eps).matmul(W2).add(b2).mul(_t(R)) \
        .sum().backward()
    assert _rel(dx, xt.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_with_its_mask_matches_torch(backend):
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dropout(0.4, seed=3),
                            fnn.Dense(2)], input_dim=5, seed=0, dtype="float64", backend=backend)
    x = np.random.default_rng(5).standard_normal((6, 5))
    R = np.random.default_rng(6).standard_normal((6, 2))
    out = model.forward(x)
    model.zero_grad()
    model.backward(R)
    # the mask the layer drew, read back from a forward pass of ones through it alone
    probe = fnn.Sequential([fnn.Dropout(0.4, seed=3)], input_dim=8, dtype="float64",
                           backend=backend)
    mask = probe.forward(np.ones((6, 8)))
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    W1, b1, W2, b2 = [_t(w, grad=True) for w in model.get_weights()]
    out_t = (torch.tanh(_t(x) @ W1 + b1) * _t(mask)) @ W2 + b2
    (out_t * _t(R)).sum().backward()
    assert _rel(out, out_t.detach().numpy()) <= 1e-10
    for mine, theirs in zip(model.grads, [W1, b1, W2, b2]):
        assert _rel(mine, theirs.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_regularized_loss_and_sample_weights_match_torch(backend):
    model = fnn.Sequential([
        fnn.Dense(6, activation="relu", kernel_regularizer=fnn.regularizers.l1_l2(0.01, 0.02)),
        fnn.LayerNormalization(),
        fnn.Dense(3, bias_regularizer=fnn.regularizers.l2(0.05))],
        input_dim=4, seed=1, dtype="float64", backend=backend)
    model.compile("mse", fnn.SGD(lr=0.1))
    rng = np.random.default_rng(7)
    x, y, w = rng.standard_normal((9, 4)), rng.standard_normal((9, 3)), rng.uniform(0, 2, 9)
    weights = model.get_weights()
    W1, b1, g, b, W2, b2 = [_t(v, grad=True) for v in weights]
    out_t = F.layer_norm(torch.relu(_t(x) @ W1 + b1), (6,), g, b, 1e-3) @ W2 + b2
    per_sample = ((out_t - _t(y)) ** 2).mean(dim=1)
    loss_t = (per_sample * _t(w)).mean() + 0.01 * W1.abs().sum() + 0.02 * (W1 ** 2).sum() \
        + 0.05 * (b2 ** 2).sum()
    loss_t.backward()
    loss = model.train_on_batch(x, y, sample_weight=w)
    assert abs(loss - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    for before, after, p in zip(weights, model.get_weights(), [W1, b1, g, b, W2, b2]):
        assert _rel((before - after) / 0.1, p.grad.numpy()) <= 1e-9
