"""The one-call kernels of Attention(score_mode="dot") (dot_attention_forward/backward) and of
Dot(axes=-1, normalize=True) (cosine_forward/backward) in fastnn/_ext/_keras_attention.pyx:
against their NumPy twins and at 1 and 2 threads bitwise (sizes off every tile multiple,
Tq != Tv, masks, causal, dropout, the scale, the scores' gradient, the value as key, one sample
with the GEMM threading each product), and the layers on them against PyTorch float64."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

FAST, NP = get_backend("fast"), get_backend("numpy")


def _threads(fn):
    """fn() at 1 and at 2 threads."""
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        one = fn()
        fnn.set_num_threads(2)
        two = fn()
    finally:
        fnn.set_num_threads(before)
    return one, two


def _attention_calls(dtype, B, Tq, Tv, D, Dv, scaled, masks, causal, rate, scores, value_key):
    rng = np.random.default_rng(B * 1000 + Tq)
    q = rng.standard_normal((B, Tq, D)).astype(dtype)
    v = rng.standard_normal((B, Tv, Dv)).astype(dtype)
    k = v if value_key else rng.standard_normal((B, Tv, D)).astype(dtype)
    dy = rng.standard_normal((B, Tq, Dv)).astype(dtype)
    dsc = rng.standard_normal((B, Tq, Tv)).astype(dtype) if scores else None
    vm = qm = None
    if masks:
        vm = (rng.random((B, Tv)) > 0.3).astype(np.uint8)
        vm[0] = 0                                      # a sample that sees no key
        qm = (rng.random((B, Tq)) > 0.2).astype(np.uint8)
    c, key = 0.7, 0x5EED1234

    def run(be):
        A0 = np.empty((B, Tq, Tv), dtype)
        raw = np.empty_like(A0) if scaled else A0
        A = np.empty_like(A0) if rate else A0
        y = np.empty((B, Tq, Dv), dtype)
        be.dot_attention_forward(q, k, v, c, scaled, vm, causal, qm, rate, key, raw, A0, A, y)
        dA, dq, dv = np.empty_like(A0), np.empty_like(q), np.empty_like(v)
        dk = None if value_key else np.empty_like(k)
        dO = np.empty_like(dy) if masks else None
        parts = np.empty(B) if scaled else None
        be.dot_attention_backward(q, k, v, c, scaled, qm, rate, key, raw, A0, A, dy, dsc, dA,
                                  dO, dq, dk, dv, parts)
        out = {"raw": raw, "A0": A0, "A": A, "y": y, "dS": dA, "dq": dq, "dv": dv}
        if dk is not None:
            out["dk"] = dk
        if scaled:
            out["parts"] = parts
        return out
    return run


CASES = [  # B, Tq, Tv, D, Dv, scaled, masks, causal, rate, scores, value_key
    (6, 33, 41, 24, 20, False, False, False, 0.0, False, False),
    (5, 17, 70, 16, 16, True, True, True, 0.0, True, True),
    (4, 50, 19, 9, 33, True, False, True, 0.3, False, False),
    (3, 64, 64, 64, 64, False, True, False, 0.2, True, True),
    (1, 190, 230, 40, 40, True, True, True, 0.1, True, True),     # one sample: GEMM threads
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_dot_attention_kernels_match_twins_and_threads_bitwise(dtype, case):
    run = _attention_calls(dtype, *case)
    want = run(NP)
    one, two = _threads(lambda: run(FAST))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for key in want:
        assert one[key].tobytes() == two[key].tobytes(), key
        scale = max(1.0, np.abs(want[key]).max())
        assert np.abs(one[key] - want[key]).max() <= tol * scale, key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, M, N, K", [(7, 33, 17, 45), (1, 300, 200, 64), (32, 64, 64, 64)])
def test_cosine_kernels_match_twins_and_threads_bitwise(dtype, B, M, N, K):
    rng = np.random.default_rng(M)
    x = rng.standard_normal((B, M, K)).astype(dtype)
    z = rng.standard_normal((B, N, K)).astype(dtype)
    x[0, 1] = 0                                        # a zero row: the cap
    g = rng.standard_normal((B, M, N)).astype(dtype)

    def run(be):
        xn, zn = np.empty_like(x), np.empty_like(z)
        invx, invz = np.empty((B, M), dtype), np.empty((B, N), dtype)
        y = np.empty((B, M, N), dtype)
        be.cosine_forward(x, z, 1e-7, xn, zn, invx, invz, y)
        dx, dz = np.empty_like(x), np.empty_like(z)
        be.cosine_backward(xn, zn, invx, invz, 1e-7, g, dx, dz)
        return {"xn": xn, "zn": zn, "invx": invx, "invz": invz, "y": y, "dx": dx, "dz": dz}
    want = run(NP)
    one, two = _threads(lambda: run(FAST))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for key in want:
        assert one[key].tobytes() == two[key].tobytes(), key
        scale = max(1.0, np.abs(want[key]).max())
        assert np.abs(one[key] - want[key]).max() <= tol * scale, key


def test_kernels_refuse_inconsistent_shapes():
    a = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="dot_attention_forward"):
        FAST.dot_attention_forward(a, np.zeros((2, 5, 4)), np.zeros((2, 5, 4)), 1.0, False,
                                   None, False, None, 0.0, 0, np.zeros((2, 3, 6)),
                                   np.zeros((2, 3, 6)), np.zeros((2, 3, 6)), a)
    with pytest.raises(ValueError, match="cosine_forward"):
        FAST.cosine_forward(a, np.zeros((2, 5, 3)), 1e-7, a, np.zeros((2, 5, 3)),
                            np.zeros((2, 3)), np.zeros((2, 5)), np.zeros((2, 3, 5)))
    for be in (FAST, NP):
        with pytest.raises(ValueError, match="rate"):
            be.dot_attention_forward(a, a, a, 1.0, False, None, False, None, 1.0, 0,
                                     np.zeros((2, 3, 3)), np.zeros((2, 3, 3)),
                                     np.zeros((2, 3, 3)), a)


# ------------------------------------------------------------------ layers against PyTorch
def _torch_attention(torch, q, v, k, qm, vm, scale, causal):
    S = scale * (q @ k.transpose(1, 2))
    hidden = (vm == 0)[:, None, :].expand_as(S)
    if causal:
        hidden = hidden | torch.triu(torch.ones(S.shape[1:], dtype=torch.bool), 1)
    A = torch.softmax(torch.where(hidden, S - 1e9, S), -1)
    return torch.where(qm[..., None] != 0, A @ v, torch.zeros((), dtype=q.dtype)), A


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("n, Tq, Tv, dim, use_scale, causal, with_key", [
    (5, 17, 40, 24, True, True, False), (3, 33, 20, 16, False, False, True),
    (1, 70, 90, 20, True, True, True)])
def test_attention_layer_matches_torch_float64(backend, n, Tq, Tv, dim, use_scale, causal,
                                               with_key):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(n + Tq)
    q, v = fnn.Input((Tq, dim)), fnn.Input((Tv, dim))
    ins = [q, v] + ([fnn.Input((Tv, dim))] if with_key else [])
    qm, vm = fnn.Input((Tq,)), fnn.Input((Tv,))
    layer = fnn.Attention(use_scale=use_scale)
    out = fnn.Concatenate()(layer(ins, mask=[qm, vm], use_causal_mask=causal,
                                  return_attention_scores=True))
    model = fnn.Model(ins + [qm, vm], out, backend=backend, dtype="float64")
    scale = 0.8
    if use_scale:
        layer.set_weights([np.array(scale)])
    xs = [rng.standard_normal((n, Tq, dim)), rng.standard_normal((n, Tv, dim))]
    if with_key:
        xs.append(rng.standard_normal((n, Tv, dim)))
    qmask = (rng.random((n, Tq)) > 0.2).astype(float)
    vmask = (rng.random((n, Tv)) > 0.3).astype(float)
    vmask[:, 0] = 1                                    # (every query sees a key)
    R = rng.standard_normal((n, Tq, dim + Tv))
    model.zero_grad()
    got = model.forward(xs + [qmask, vmask], training=True).reshape(n, Tq, -1)
    dxs = model.backward(R)
    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    tk = tx[2] if with_key else tx[1]
    ts = torch.tensor(scale if use_scale else 1.0, dtype=torch.float64, requires_grad=True)
    O, A = _torch_attention(torch, tx[0], tx[1], tk, torch.tensor(qmask), torch.tensor(vmask),
                            ts, causal)
    want = torch.cat([O, A], -1)
    assert np.abs(got - want.detach().numpy()).max() <= 1e-12
    (want * torch.tensor(R)).sum().backward()
    for d, t in zip(dxs, tx):
        ref = t.grad.numpy()
        assert np.abs(d - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())
    if use_scale:
        ref = ts.grad.item()
        assert abs(model.grads[0] - ref) <= 1e-10 * max(1.0, abs(ref))


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("n, M, N, K", [(4, 33, 17, 45), (1, 80, 120, 64)])
def test_cosine_dot_layer_matches_torch_float64(backend, n, M, N, K):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(M)
    a, b = fnn.Input((M, K)), fnn.Input((N, K))
    model = fnn.Model([a, b], fnn.Dot(axes=2, normalize=True)([a, b]), backend=backend,
                      dtype="float64")
    xa, xb = rng.standard_normal((n, M, K)), rng.standard_normal((n, N, K))
    xa[0, 2] = 0                                       # a zero row (Keras: stays zero)
    R = rng.standard_normal((n, M, N))
    got = model.forward([xa, xb], training=True).reshape(n, M, N)
    dxa, dxb = model.backward(R)
    ta, tb = torch.tensor(xa, requires_grad=True), torch.tensor(xb, requires_grad=True)

    def unit(t):    # Keras: x * min(rsqrt(sum x^2), 1 / 1e-7) (the cap a constant)
        s = t.pow(2).sum(-1, keepdim=True)
        free = s > 1e-14
        return t * torch.where(free, torch.rsqrt(torch.where(free, s, torch.ones_like(s))),
                               torch.full_like(s, 1e7))
    want = unit(ta) @ unit(tb).transpose(1, 2)
    assert np.abs(got - want.detach().numpy()).max() <= 1e-12
    (want * torch.tensor(R)).sum().backward()
    for d, t in ((dxa, ta), (dxb, tb)):
        ref = t.grad.numpy()
        assert np.abs(d - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())


def test_layers_threads_bitwise_float32():
    rng = np.random.default_rng(11)
    q, v = fnn.Input((20, 32)), fnn.Input((30, 32))
    att = fnn.Attention(use_scale=True)([q, v], use_causal_mask=True)
    cos = fnn.Dot(axes=2, normalize=True)([q, v])
    model = fnn.Model([q, v], [att, cos], seed=0)
    xs = [rng.standard_normal((48, 20, 32)).astype(np.float32),
          rng.standard_normal((48, 30, 32)).astype(np.float32)]
    R = [rng.standard_normal((48, 20, 32)).astype(np.float32),
         rng.standard_normal((48, 20, 30)).astype(np.float32)]

    def run():
        model.zero_grad()
        ys = [y.copy() for y in model.forward(xs, training=True)]
        return ys + [d.copy() for d in model.backward(R)] + [g.copy() for g in model.grads]
    one, two = _threads(run)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()
