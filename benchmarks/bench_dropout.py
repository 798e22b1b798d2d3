"""Training-step cost of dropout in ConvLSTM2D(dropout, recurrent_dropout) and
Attention(dropout): fastnn with and without dropout against a PyTorch equivalent of the same form
(the same layer written with F.conv2d / bmm and F.dropout), float32, one thread, calls
alternating, medians. Run: python benchmarks/bench_dropout.py [repeats]."""

import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastnn as fnn


def median_times(fns, repeats):
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


def conv_lstm_cases(rate):
    n, T, H, W, C, Fl, k = 8, 6, 16, 16, 4, 16, 3
    x = np.random.default_rng(0).normal(size=(n, T, H, W, C)).astype(np.float32)
    model = fnn.Sequential([fnn.ConvLSTM2D(Fl, k, padding="same", dropout=rate,
                                           recurrent_dropout=rate)],
                           input_shape=(T, H, W, C), seed=0)
    g = np.ones((n, H, W, Fl), np.float32)

    def ours():
        model.forward(x, training=True)
        model.backward(g)
    Wt = torch.randn(4 * Fl, C, k, k, requires_grad=True)
    Ut = torch.randn(4 * Fl, Fl, k, k, requires_grad=True)
    b = torch.zeros(4 * Fl, requires_grad=True)
    xt = torch.tensor(x).permute(0, 1, 4, 2, 3).contiguous()

    def theirs():
        h = torch.zeros(n, Fl, H, W)
        c = torch.zeros_like(h)
        xin = F.dropout(torch.ones(n, C, H, W), rate) if rate else None
        rin = F.dropout(torch.ones(n, Fl, H, W), rate) if rate else None
        for t in range(T):
            xs = xt[:, t] * xin if rate else xt[:, t]
            hs = h * rin if rate else h
            z = F.conv2d(xs, Wt, b, padding=1) + F.conv2d(hs, Ut, padding=1)
            i, f, gg, o = z.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
        h.sum().backward()
    return ours, theirs


def attention_cases(rate):
    n, T, D = 64, 64, 64
    rng = np.random.default_rng(1)
    qa, va = (rng.normal(size=(n, T, D)).astype(np.float32) for _ in range(2))
    q, v = fnn.Input((T, D)), fnn.Input((T, D))
    model = fnn.Model([q, v], fnn.Attention(use_scale=True, dropout=rate)([q, v]), seed=0)
    g = np.ones((n, T, D), np.float32)

    def ours():
        model.forward([qa, va], training=True)
        model.backward(g)
    tq = torch.tensor(qa, requires_grad=True)
    tv = torch.tensor(va, requires_grad=True)
    scale = torch.ones((), requires_grad=True)

    def theirs():
        A = torch.softmax(scale * (tq @ tv.transpose(1, 2)), -1)
        if rate:
            A = F.dropout(A, rate)
        (A @ tv).sum().backward()
    return ours, theirs


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    fnn.set_num_threads(1)
    torch.set_num_threads(1)
    print(f"load: {os.getloadavg()}")
    for name, make in (("ConvLSTM2D n8 T6 16x16x4->16 k3", conv_lstm_cases),
                       ("Attention n64 64x64 d64", attention_cases)):
        o0, t0 = make(0.0)
        o1, t1 = make(0.25)
        for fn in (o0, t0, o1, t1):
            fn()
        a, b, c, d = median_times([o0, t0, o1, t1], repeats)
        print(f"{name}: fastnn {a * 1e3:.2f} ms -> {c * 1e3:.2f} ms with dropout "
              f"(x{c / a:.3f}); torch {b * 1e3:.2f} -> {d * 1e3:.2f} ms (x{d / b:.3f}); "
              f"torch/fastnn {b / a:.2f} without, {d / c:.2f} with dropout")


if __name__ == "__main__":
    main()
