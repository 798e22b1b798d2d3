"""Benchmark rows of the layers of session 32, float32, forward and backward (training) each,
against the closest PyTorch:

- ``RNN(StackedRNNCells([LSTMCell(64), LSTMCell(64)]))`` b32 L50 d32 (the last step's output)
  against ``nn.LSTM(32, 64, num_layers=2, batch_first=True)``;
- ``Attention()`` (dot scores) and ``AdditiveAttention()`` b16 Tq=Tv=64 d64 (value as key)
  against the same written in torch ops (torch has no such layers): ``softmax(q v^T) v`` and
  ``softmax(sum(scale * tanh(q_i + v_j))) v``;
- ``Dot(axes=2, normalize=True)`` b32 64x64 (two sequences, their cosine similarities
  (b, 64, 64)) and ``UnitNormalization`` b256 x256, against ``F.normalize`` and ``bmm``;
- ``ConvLSTM2D(16, 3, padding="same")`` b4 L8 16x16x8 (the last step's output) against a
  ConvLSTM written here in torch (an input and a recurrent ``conv2d`` each step, Keras' gate
  order i, f, c, o);
- ``Conv3DTranspose(8, 3, strides=2)`` b4 8^3x16 against ``nn.ConvTranspose3d(16, 8, 3, 2)``;
- ``MultiHeadAttention(4, 16, dropout=0.1)`` self-attention b16 L64 d64, a training step
  (dropout on), against ``nn.MultiheadAttention(64, 4, dropout=0.1)`` in train mode;

and of session 33:

- ``RMSNormalization`` b16x256x512 against ``nn.RMSNorm(512)`` (both epsilon 1e-6);
- ``LayerNormalization(axis=[1, 2, 3])`` b32 16x16x32 against ``nn.LayerNorm((16, 16, 32))``
  (both epsilon 1e-3);
- ``LSTM(64, stateful=True)`` b32 L50 d32, two consecutive batches (each forward and backward
  of the last step's output, the second from the first one's final states), against
  ``nn.LSTM(32, 64)`` given the last batch's states detached (truncated backpropagation, as
  the stateful layer's).

The NumPy backend runs the layers' twins. PyTorch takes the faster of its contiguous and
channels-last layouts for the convolution rows (picked when the case is built).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastnn._bench_layers import _fastest

LSTM = (32, 50, 32, 64)                 # batch, steps, features, units (two cells)
SCORE = (16, 64, 64)                    # batch, steps (query and value), width
DOT = (32, 64, 64)                      # batch, steps, width
UNITNORM = (256, 256)                   # batch, width
CONVLSTM = (4, 8, 16, 8, 16)            # batch, steps, side, channels, filters
CONV3DT = (4, 8, 16, 8)                 # batch, side, channels, filters
MHA = (16, 64, 4, 16)                   # batch, steps, heads, key_dim (model width heads*key_dim)
RMSNORM = (16, 256, 512)                # batch, rows, width
LN_AXES = (32, 16, 16, 32)              # batch, and the three axes normalized together
STATEFUL = (32, 50, 32, 64)             # batch, steps, features, units

KIND = "more_layers"


def workloads(workload_class: Any) -> list:
    """The rows, as ``fastnn.benchmarking.Workload``s."""
    engines = ("fastnn", "numpy", "torch")
    b, t, d, u = LSTM
    sb, st, sd = SCORE
    db, dt, dd = DOT
    nb, nd = UNITNORM
    cb, ct, cs, cc, cf = CONVLSTM
    tb, ts, tc, tf = CONV3DT
    mb, ml, mh, mk = MHA
    rows = [(f"RNN(Stacked[LSTMCell({u})x2]) b{b} L{t} d{d} fwd+bwd", "stacked_lstm"),
            (f"Attention() b{sb} Tq=Tv={st} d{sd} fwd+bwd", "attention"),
            (f"AdditiveAttention() b{sb} Tq=Tv={st} d{sd} fwd+bwd", "additive"),
            (f"Dot(axes=2, normalize=True) b{db} {dt}x{dd} fwd+bwd", "dot"),
            (f"UnitNormalization b{nb} x{nd} fwd+bwd", "unitnorm"),
            (f"ConvLSTM2D({cf}, 3, same) b{cb} L{ct} {cs}x{cs}x{cc} fwd+bwd", "convlstm"),
            (f"Conv3DTranspose({tf}, 3, strides=2) b{tb} {ts}^3x{tc} fwd+bwd", "conv3dt"),
            (f"MultiHeadAttention({mh}, {mk}, dropout=0.1) b{mb} L{ml} train step", "mha"),
            ("RMSNormalization b{} {}x{} fwd+bwd".format(*RMSNORM), "rmsnorm"),
            ("LayerNormalization(axis=[1, 2, 3]) b{} {}x{}x{} fwd+bwd".format(*LN_AXES),
             "layernorm_axes"),
            ("LSTM({3}, stateful=True) b{0} L{1} d{2} two batches fwd+bwd".format(*STATEFUL),
             "stateful_lstm")]
    return [workload_class(key, KIND, (name,), engines) for key, name in rows]


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is the row's forward and backward on ``engine``."""
    return _ROWS[w.params[0]](w, engine, rng, case_class)


def _randn(rng: Any, *shape: int) -> Any:
    return rng.standard_normal(shape).astype(np.float32)


def _fastnn_case(w: Any, engine: str, case_class: Any, model: Any, x: Any, dy: Any) -> Any:
    def run() -> None:
        model.forward(x, training=True)
        model.backward(dy)
    return case_class(w, engine, run, keep=[model, x, dy])


def _sequential(engine: str, layer: Any, shape: tuple) -> Any:
    import fastnn as fnn
    return fnn.Sequential([layer], input_shape=shape, seed=0,
                          backend="fast" if engine == "fastnn" else "numpy")


def _two_inputs(engine: str, layer: Any, shape: tuple) -> Any:
    """A model whose output is ``layer([a, b])`` for two inputs of ``shape``."""
    import fastnn as fnn
    a, b = fnn.Input(shape), fnn.Input(shape)
    return fnn.Model([a, b], layer([a, b]), seed=0,
                     backend="fast" if engine == "fastnn" else "numpy")


def _torch_case(w: Any, engine: str, case_class: Any, runs: list[Callable[[], Any]],
                keep: list) -> Any:
    return case_class(w, engine, _fastest(runs), keep=keep)


def _leaf(torch: Any, a: Any) -> Any:
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True)


# ---------------------------------------------------------------------------- the rows

def _stacked_lstm(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, d, u = LSTM
    x, dy = _randn(rng, b, t, d), _randn(rng, b, u)
    if engine != "torch":
        import fastnn as fnn
        layer = fnn.RNN(fnn.StackedRNNCells([fnn.LSTMCell(u), fnn.LSTMCell(u)]))
        return _fastnn_case(w, engine, case_class, _sequential(engine, layer, (t, d)), x, dy)
    import torch
    torch.manual_seed(0)
    net = torch.nn.LSTM(d, u, num_layers=2, batch_first=True)
    tx, tdy = _leaf(torch, x), torch.from_numpy(dy)

    def run() -> None:
        net(tx)[0][:, -1].backward(tdy)
    return _torch_case(w, engine, case_class, [run], [net, tx, tdy])


def _score(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, d = SCORE
    additive = w.params[0] == "additive"
    q, v, dy = _randn(rng, b, t, d), _randn(rng, b, t, d), _randn(rng, b, t, d)
    if engine != "torch":
        import fastnn as fnn
        layer = fnn.AdditiveAttention() if additive else fnn.Attention()
        return _fastnn_case(w, engine, case_class, _two_inputs(engine, layer, (t, d)),
                            [q, v], dy)
    import torch
    tq, tv, tdy = _leaf(torch, q), _leaf(torch, v), torch.from_numpy(dy)
    scale = torch.full((d,), 1.0 / d ** 0.5, requires_grad=True)

    def dot() -> None:
        a = torch.softmax(torch.bmm(tq, tv.transpose(1, 2)), dim=-1)
        torch.bmm(a, tv).backward(tdy)

    def add() -> None:
        s = (scale * torch.tanh(tq[:, :, None, :] + tv[:, None, :, :])).sum(-1)
        torch.bmm(torch.softmax(s, dim=-1), tv).backward(tdy)
    return _torch_case(w, engine, case_class, [add if additive else dot],
                       [tq, tv, tdy, scale])


def _dot(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, d = DOT
    p, q, dy = _randn(rng, b, t, d), _randn(rng, b, t, d), _randn(rng, b, t, t)
    if engine != "torch":
        import fastnn as fnn
        layer = fnn.Dot(axes=2, normalize=True)
        return _fastnn_case(w, engine, case_class, _two_inputs(engine, layer, (t, d)),
                            [p, q], dy)
    import torch
    import torch.nn.functional as F
    tp, tq, tdy = _leaf(torch, p), _leaf(torch, q), torch.from_numpy(dy)

    def run() -> None:
        torch.bmm(F.normalize(tp, dim=2, eps=1e-6),
                  F.normalize(tq, dim=2, eps=1e-6).transpose(1, 2)).backward(tdy)
    return _torch_case(w, engine, case_class, [run], [tp, tq, tdy])


def _unitnorm(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, d = UNITNORM
    x, dy = _randn(rng, b, d), _randn(rng, b, d)
    if engine != "torch":
        import fastnn as fnn
        model = _sequential(engine, fnn.UnitNormalization(), (d,))
        return _fastnn_case(w, engine, case_class, model, x, dy)
    import torch
    import torch.nn.functional as F
    tx, tdy = _leaf(torch, x), torch.from_numpy(dy)

    def run() -> None:
        F.normalize(tx, dim=-1, eps=1e-6).backward(tdy)
    return _torch_case(w, engine, case_class, [run], [tx, tdy])


def _torch_conv_lstm(torch: Any, x: Any, wx: Any, wh: Any, bias: Any, filters: int) -> Any:
    """The last hidden state of a ConvLSTM ("same" padding) over x (b, steps, c, h, w)."""
    import torch.nn.functional as F
    b, steps, _, h, w = x.shape
    hs = x.new_zeros((b, filters, h, w))
    cs = x.new_zeros((b, filters, h, w))
    pad = wx.shape[-1] // 2
    for t in range(steps):
        z = F.conv2d(x[:, t], wx, bias, padding=pad) + F.conv2d(hs, wh, padding=pad)
        i, f, g, o = z.chunk(4, dim=1)
        cs = torch.sigmoid(f) * cs + torch.sigmoid(i) * torch.tanh(g)
        hs = torch.sigmoid(o) * torch.tanh(cs)
    return hs


def _convlstm(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, s, c, f = CONVLSTM
    x, dy = _randn(rng, b, t, s, s, c), _randn(rng, b, s, s, f)
    if engine != "torch":
        import fastnn as fnn
        layer = fnn.ConvLSTM2D(f, 3, padding="same")
        return _fastnn_case(w, engine, case_class, _sequential(engine, layer, (t, s, s, c)),
                            x, dy)
    import torch
    wx = _leaf(torch, 0.1 * _randn(rng, 4 * f, c, 3, 3))
    wh = _leaf(torch, 0.1 * _randn(rng, 4 * f, f, 3, 3))
    bias = _leaf(torch, np.zeros(4 * f, np.float32))
    tx = _leaf(torch, x.transpose(0, 1, 4, 2, 3))
    tdy = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def run() -> None:
        _torch_conv_lstm(torch, tx, wx, wh, bias, f).backward(tdy)
    return _torch_case(w, engine, case_class, [run], [tx, tdy, wx, wh, bias])


def _conv3dt(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, s, c, f = CONV3DT
    out = (s - 1) * 2 + 3
    x, dy = _randn(rng, b, s, s, s, c), _randn(rng, b, out, out, out, f)
    if engine != "torch":
        import fastnn as fnn
        layer = fnn.Conv3DTranspose(f, 3, strides=2)
        return _fastnn_case(w, engine, case_class, _sequential(engine, layer, (s, s, s, c)),
                            x, dy)
    import torch
    torch.manual_seed(0)
    net = torch.nn.ConvTranspose3d(c, f, 3, stride=2)
    ncdhw = (0, 4, 1, 2, 3)
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(ncdhw)))
    tdy = torch.from_numpy(np.ascontiguousarray(dy.transpose(ncdhw)))
    cl = torch.channels_last_3d

    def call(a: Any, da: Any) -> Callable[[], None]:
        a = a.detach().requires_grad_(True)

        def run() -> None:
            net(a).backward(da)
        return run
    runs = [call(tx, tdy), call(tx.contiguous(memory_format=cl), tdy.contiguous(memory_format=cl))]
    return _torch_case(w, engine, case_class, runs, [net, tx, tdy])


def _mha(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, h, k = MHA
    d = h * k
    x, dy = _randn(rng, b, t, d), _randn(rng, b, t, d)
    if engine != "torch":
        import fastnn as fnn
        inp = fnn.Input((t, d))
        out = fnn.MultiHeadAttention(h, k, dropout=0.1, seed=0)(inp, inp)
        model = fnn.Model(inp, out, seed=0, backend="fast" if engine == "fastnn" else "numpy")
        return _fastnn_case(w, engine, case_class, model, x, dy)
    import torch
    torch.manual_seed(0)
    net = torch.nn.MultiheadAttention(d, h, dropout=0.1, batch_first=True)
    net.train()
    tx, tdy = _leaf(torch, x), torch.from_numpy(dy)

    def run() -> None:
        net(tx, tx, tx, need_weights=False)[0].backward(tdy)
    return _torch_case(w, engine, case_class, [run], [net, tx, tdy])


def _normalization(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    rms = w.params[0] == "rmsnorm"
    b, *shape = RMSNORM if rms else LN_AXES
    x, dy = _randn(rng, b, *shape), _randn(rng, b, *shape)
    if engine != "torch":
        return _fastnn_case(w, engine, case_class,
                            _sequential(engine, _our_normalization(rms), tuple(shape)), x, dy)
    import torch
    net = _torch_normalization(torch, rms)
    tx, tdy = _leaf(torch, x), torch.from_numpy(dy)

    def run() -> None:
        net(tx).backward(tdy)
    return _torch_case(w, engine, case_class, [run], [net, tx, tdy])


def _our_normalization(rms: bool) -> Any:
    import fastnn as fnn
    if rms:
        return fnn.RMSNormalization(epsilon=1e-6)
    axes: Any = [1, 2, 3]          # (the constructor's annotation says int; it takes a list)
    return fnn.LayerNormalization(axis=axes, epsilon=1e-3)


def _torch_normalization(torch: Any, rms: bool) -> Any:
    if rms:
        return torch.nn.RMSNorm(RMSNORM[-1], eps=1e-6)
    return torch.nn.LayerNorm(LN_AXES[1:], eps=1e-3)


def _stateful_lstm(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    b, t, d, u = STATEFUL
    xs, dy = [_randn(rng, b, t, d), _randn(rng, b, t, d)], _randn(rng, b, u)
    if engine != "torch":
        import fastnn as fnn
        model = _sequential(engine, fnn.LSTM(u, stateful=True), (t, d))

        def run() -> None:
            for x in xs:
                model.forward(x, training=True)
                model.backward(dy)
        return case_class(w, engine, run, keep=[model, xs, dy])
    import torch
    torch.manual_seed(0)
    net = torch.nn.LSTM(d, u, batch_first=True)
    txs, tdy = [_leaf(torch, x) for x in xs], torch.from_numpy(dy)
    carried: list = [None]

    def step() -> None:
        for tx in txs:
            out, (h, c) = net(tx, carried[0])
            out[:, -1].backward(tdy)
            carried[0] = (h.detach(), c.detach())
    return _torch_case(w, engine, case_class, [step], [net, txs, tdy, carried])


_ROWS: dict[str, Callable[..., Any]] = {
    "stacked_lstm": _stacked_lstm, "attention": _score, "additive": _score, "dot": _dot,
    "unitnorm": _unitnorm, "convlstm": _convlstm, "conv3dt": _conv3dt, "mha": _mha,
    "rmsnorm": _normalization, "layernorm_axes": _normalization,
    "stateful_lstm": _stateful_lstm}


def _session33_disagreement(name: str, rng: Any) -> float:
    """``disagreement`` of the rows "rmsnorm", "layernorm_axes" (their default scales and
    offsets, 1 and 0, on both sides) and "stateful_lstm" (the second of two consecutive
    batches, torch given fastnn's weights)."""
    import torch

    import fastnn as fnn
    if name == "stateful_lstm":
        b, t, d, u = STATEFUL
        model = _sequential("fastnn", fnn.LSTM(u, stateful=True), (t, d))
        kernel, recurrent, bias = model.get_weights()
        net = torch.nn.LSTM(d, u, batch_first=True)
        with torch.no_grad():
            for key, value in (("weight_ih_l0", kernel.T), ("weight_hh_l0", recurrent.T),
                               ("bias_ih_l0", bias), ("bias_hh_l0", 0 * bias)):
                getattr(net, key).copy_(torch.from_numpy(np.ascontiguousarray(value)))
            xs = [_randn(rng, 4, t, d), _randn(rng, 4, t, d)]
            state = None
            for x in xs:
                mine = model.predict(x)
                out, state = net(torch.from_numpy(x), state)
            theirs = out[:, -1].numpy()
    else:
        rms = name == "rmsnorm"
        shape = (RMSNORM if rms else LN_AXES)[1:]
        x = _randn(rng, 2, *shape)
        mine = _sequential("fastnn", _our_normalization(rms), shape).predict(x)
        with torch.no_grad():
            theirs = _torch_normalization(torch, rms)(torch.from_numpy(x)).numpy()
    return float(np.abs(mine - theirs).max() / np.abs(theirs).max())


def disagreement(name: str, seed: int = 0) -> float:
    """max |fastnn - torch| / max |torch| of the forward outputs of row ``name`` ("attention",
    "additive", "dot", "unitnorm", "rmsnorm", "layernorm_axes", "stateful_lstm"), both as the
    rows compute them (float32; AdditiveAttention's torch scale set to fastnn's weight): the
    rows time the same function."""
    import torch

    import fastnn as fnn
    rng = np.random.default_rng(seed)
    if name in ("rmsnorm", "layernorm_axes", "stateful_lstm"):
        return _session33_disagreement(name, rng)
    if name == "unitnorm":
        b, d = UNITNORM
        x = _randn(rng, 8, d)
        mine = _sequential("fastnn", fnn.UnitNormalization(), (d,)).predict(x)
        theirs = torch.nn.functional.normalize(torch.from_numpy(x), dim=-1, eps=1e-6).numpy()
    else:
        b, t, d = DOT if name == "dot" else SCORE
        p, q = _randn(rng, 2, t, d), _randn(rng, 2, t, d)
        makers: dict[str, Callable[[], Any]] = {
            "attention": fnn.Attention, "additive": fnn.AdditiveAttention,
            "dot": lambda: fnn.Dot(axes=2, normalize=True)}
        layer = makers[name]()
        model = _two_inputs("fastnn", layer, (t, d))
        mine = model.predict([p, q])
        tp, tq = torch.from_numpy(p), torch.from_numpy(q)
        if name == "dot":
            F = torch.nn.functional
            theirs = torch.bmm(F.normalize(tp, dim=2, eps=1e-6),
                               F.normalize(tq, dim=2, eps=1e-6).transpose(1, 2)).numpy()
        elif name == "attention":
            theirs = torch.bmm(torch.softmax(torch.bmm(tp, tq.transpose(1, 2)), dim=-1),
                               tq).numpy()
        else:
            scale = torch.from_numpy(np.asarray(layer.get_weights()[0], np.float32))
            s = (scale * torch.tanh(tp[:, :, None, :] + tq[:, None, :, :])).sum(-1)
            theirs = torch.bmm(torch.softmax(s, dim=-1), tq).numpy()
    return float(np.abs(mine - theirs).max() / np.abs(theirs).max())
