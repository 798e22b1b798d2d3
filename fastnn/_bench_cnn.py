"""The convolutional benchmark: fastnn against PyTorch CPU on the networks people meet first.

Rows (float32, the same architecture and optimizer on both sides, PyTorch in its default
NCHW layout or channels-last, whichever is faster for the row):

- ``LeNet-5 step b64``: 28x28x1, conv 5x5x6 same, 2x2 max pool, conv 5x5x16, pool, Dense 120,
  84, 10 (softmax cross-entropy), one SGD-with-momentum training step on 64 images;
- ``digits CNN step b32``: 8x8x1, conv 3x3x16 same, pool, conv 3x3x32 same, pool, Dense 64, 10;
- ``LeNet-5 predict x1``: one image through LeNet-5 (what an app classifying one input pays);
- ``conv 3x3 64->64 32x32 b32``: one convolution's forward pass, the GEMM-bound case;
- ``separable 3x3 64->64 32x32 b32``: one SeparableConv2D's (relu) forward and backward pass
  (PyTorch: conv2d with groups=64, then a 1x1 conv2d), the depthwise kernels' case;
- ``DCGAN generator step b64``: the generator of Keras' DCGAN example for 28x28 images: noise
  100, Dense 7x7x128 relu, Conv2DTranspose 64 4x4 stride 2 "same" relu (14x14), Conv2DTranspose
  1 4x4 stride 2 "same" tanh (28x28), one SGD-with-momentum step on an MSE to fixed images
  (PyTorch: ConvTranspose2d with padding 1, which is the same geometry);
- ``Conv3D 3x3x3 8->16 16^3 b8 fwd`` and ``... step``: one Conv3D's forward, and its forward and
  backward (fastnn/_bench_conv3d.py);
- ``grouped conv 3x3 64->64 g4 32x32 b32 fwd`` / ``step`` and the same with ``g32``: a
  ``Conv2D(64, 3, groups=G)`` forward, and forward and backward (fastnn/_bench_grouped_conv.py).

Calls of the two engines alternate in one run, at the same thread count, and the table gives
the medians, PyTorch's time over fastnn's (above 1: fastnn is faster), fastnn's GFLOP/s and that
as a fraction of the machine's GEMM peak measured in the same run (fastnn's own 1024^3 float32
product at that thread count). FLOPs count the multiply-adds of the convolutions and dense
layers (x2): forward, and for a step also the kernel and input gradients (the first layer has
no input gradient).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn

Row = tuple[str, float, Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]]]


def lenet5(seed: int = 0, backend: Any = "fast") -> Any:
    """LeNet-5 for 28x28x1 images, as in the issue's benchmark (ReLU, max pooling)."""
    return fnn.Sequential([
        fnn.Conv2D(6, 5, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Conv2D(16, 5, activation="relu"), fnn.MaxPooling2D(), fnn.Flatten(),
        fnn.Dense(120, activation="relu"), fnn.Dense(84, activation="relu"),
        fnn.Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=seed,
        backend=backend)


def digits_cnn(seed: int = 0, backend: Any = "fast") -> Any:
    """Two 3x3 convolutions (16, 32 channels) with pooling, Dense 64, Dense 10, on 8x8x1."""
    return fnn.Sequential([
        fnn.Conv2D(16, 3, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Conv2D(32, 3, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Flatten(), fnn.Dense(64, activation="relu"), fnn.Dense(10, activation="softmax")],
        input_shape=(8, 8, 1), seed=seed, backend=backend)


def dcgan_generator(seed: int = 0, backend: Any = "fast") -> Any:
    """Noise 100 -> 28x28x1 images through two strided transposed convolutions."""
    return fnn.Sequential([
        fnn.Dense(7 * 7 * 128, activation="relu"), fnn.Reshape((7, 7, 128)),
        fnn.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu"),
        fnn.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")],
        input_dim=100, seed=seed, backend=backend)


def _torch_dcgan_generator(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Linear(100, 7 * 7 * 128), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
                         nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1), nn.Tanh())


def _torch_lenet5(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def _torch_digits(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def _flops(layers: list[tuple[int, int]], step: bool) -> float:
    """2 x multiply-adds: layers as (output positions x batch, K x F) products."""
    total = 0.0
    for i, (rows, kf) in enumerate(layers):
        total += 2.0 * rows * kf * ((3 if i else 2) if step else 1)
    return total


def _lenet_flops(n: int, step: bool) -> float:
    return _flops([(n * 784, 25 * 6), (n * 100, 150 * 16), (n, 400 * 120), (n, 120 * 84),
                   (n, 84 * 10)], step)


def _digits_flops(n: int, step: bool) -> float:
    return _flops([(n * 64, 9 * 16), (n * 16, 144 * 32), (n, 128 * 64), (n, 64 * 10)], step)


def rows() -> list[Row]:
    """(name, flops per call, fastnn setup -> call, torch setup(torch) -> call)."""
    from fastnn._bench_conv3d import rows as conv3d_rows
    from fastnn._bench_grouped_conv import rows as grouped_conv_rows
    rng = np.random.default_rng(0)

    def step(make: Callable[..., Any], torch_make: Callable[[Any], Any], hw: int,
             n: int) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]]]:
        X = rng.standard_normal((n, hw, hw, 1)).astype(np.float32)
        y = np.arange(n) % 10

        def mine() -> Callable[[], Any]:
            model = make()
            model.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
            return lambda: model.train_on_batch(X, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = torch_make(torch)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            loss = torch.nn.CrossEntropyLoss()
            xt, yt = torch.tensor(X.transpose(0, 3, 1, 2).copy()), torch.tensor(y)

            def call() -> None:
                opt.zero_grad()
                loss(net(xt), yt).backward()
                opt.step()
            return call
        return mine, theirs

    def predict_one() -> tuple[Callable[[], Callable[[], Any]],
                               Callable[[Any], Callable[[], Any]]]:
        x = rng.standard_normal((1, 28, 28, 1)).astype(np.float32)

        def mine() -> Callable[[], Any]:
            model = lenet5()
            return lambda: model.predict(x)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_lenet5(torch).eval()
            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())

            def call() -> None:
                with torch.no_grad():
                    net(xt)
            return call
        return mine, theirs

    def conv64() -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]]]:
        x = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)
        kernel = (rng.standard_normal((3, 3, 64, 64)) * 0.05).astype(np.float32)
        bias = np.zeros(64, np.float32)

        def mine() -> Callable[[], Any]:
            from fastnn.backends import fast_backend as fb
            y = np.empty_like(x)
            return lambda: fb.conv2d_forward(x, kernel, bias, (1, 1), (1, 1), (1, 1), 0, 0.0, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            conv = torch.nn.Conv2d(64, 64, 3, padding=1)
            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
            best: Optional[float] = None
            call: Any = None
            for fmt in (torch.contiguous_format, torch.channels_last):
                xf, cf = xt.contiguous(memory_format=fmt), conv.to(memory_format=fmt)

                def run(xf: Any = xf, cf: Any = cf) -> None:
                    with torch.no_grad():
                        cf(xf)
                run()
                start = time.perf_counter()
                for _ in range(3):
                    run()
                took = time.perf_counter() - start
                if best is None or took < best:
                    best, call = took, run
            return call
        return mine, theirs

    def separable64() -> tuple[Callable[[], Callable[[], Any]],
                               Callable[[Any], Callable[[], Any]]]:
        x = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)
        dy = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)

        def mine() -> Callable[[], Any]:
            model = fnn.Sequential([fnn.SeparableConv2D(64, 3, padding="same",
                                                        activation="relu")],
                                   input_shape=(32, 32, 64), seed=0)

            def call() -> None:
                model.forward(x, training=True)
                model.backward(dy)
            return call

        def theirs(torch: Any) -> Callable[[], Any]:
            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
            dyt = torch.tensor(dy.transpose(0, 3, 1, 2).copy())
            depth = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
            point = torch.nn.Conv2d(64, 64, 1)

            def call() -> None:
                xt.grad = None
                for p in (*depth.parameters(), *point.parameters()):
                    p.grad = None
                torch.relu(point(depth(xt))).backward(dyt)
            return call
        return mine, theirs

    def generator_step(n: int) -> tuple[Callable[[], Callable[[], Any]],
                                        Callable[[Any], Callable[[], Any]]]:
        z = rng.standard_normal((n, 100)).astype(np.float32)
        images = np.tanh(rng.standard_normal((n, 28, 28, 1))).astype(np.float32)

        def mine() -> Callable[[], Any]:
            model = dcgan_generator()
            model.compile(loss="mse", optimizer=fnn.SGD(0.01, momentum=0.9))
            target = images.reshape(n, -1)
            return lambda: model.train_on_batch(z, target)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_dcgan_generator(torch)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            loss = torch.nn.MSELoss()
            zt, yt = torch.tensor(z), torch.tensor(images.transpose(0, 3, 1, 2).copy())

            def call() -> None:
                opt.zero_grad()
                loss(net(zt), yt).backward()
                opt.step()
            return call
        return mine, theirs

    dcgan = _flops([(64, 100 * 6272), (64 * 49, 128 * 64 * 16), (64 * 196, 64 * 16)], True)
    return [("LeNet-5 step b64", _lenet_flops(64, True), *step(lenet5, _torch_lenet5, 28, 64)),
            ("digits CNN step b32", _digits_flops(32, True),
             *step(digits_cnn, _torch_digits, 8, 32)),
            ("LeNet-5 predict x1", _lenet_flops(1, False), *predict_one()),
            ("conv 3x3 64->64 32x32 b32", 2.0 * 32 * 1024 * 576 * 64, *conv64()),
            ("separable 3x3 64->64 32x32 b32", 2.0 * 3 * 32 * 1024 * (9 * 64 + 64 * 64),
             *separable64()),
            ("DCGAN generator step b64", dcgan, *generator_step(64)),
            *conv3d_rows(), *grouped_conv_rows()]


def gemm_peak(threads: int, repeats: int = 5) -> float:
    """fastnn's float32 GEMM at 1024^3 on ``threads`` threads, best of ``repeats``: GFLOP/s."""
    from fastnn.backends import fast_backend as fb
    a = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    out = np.empty_like(a)
    with fnn.threads(threads):
        fb.matmul(a, a, out)
        best = min(_timed(lambda: fb.matmul(a, a, out)) for _ in range(repeats))
    return 2.0 * 1024 ** 3 / best / 1e9


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(threads: int, repeats: int = 30,
            log: Optional[Callable[[str], None]] = None,
            make_rows: Callable[[], list[Row]] = rows) -> dict[str, Any]:
    """{"peak": GFLOP/s, "rows": {name: (fastnn s, torch s or None, flops)}} at ``threads``,
    the two engines' calls alternating (the rows of ``make_rows``: this module's, or another
    benchmark's such as fastnn/_bench_rnn.py)."""
    torch: Any
    try:
        import torch
    except ImportError:
        torch = None
    results: dict[str, Any] = {"peak": gemm_peak(threads), "rows": {}}
    previous = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(threads)
        with fnn.threads(threads):
            for name, flops, mine, theirs in make_rows():
                a = mine()
                b = theirs(torch) if torch is not None else None
                n = repeats * 4 if "predict" in name else repeats
                # warm-up: a few calls, and at least 0.3 s of them (at most 300) so that each
                # engine reaches its steady state (fastnn's thread chooser times its first
                # calls at 1 and at all threads before it settles)
                started, calls = time.perf_counter(), 0
                while calls < max(3, n // 5) or (time.perf_counter() - started < 0.3
                                                 and calls < 300):
                    a()
                    if b is not None:
                        b()
                    calls += 1
                ta, tb = [], []
                for _ in range(n):
                    ta.append(_timed(a))
                    if b is not None:
                        tb.append(_timed(b))
                results["rows"][name] = (float(np.median(ta)),
                                         float(np.median(tb)) if tb else None, flops)
                if log is not None:
                    log(f"  {threads} thread(s): {name}")
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)
    return results


def format_table(by_threads: dict[int, dict[str, Any]],
                 title: str = "Convolutional networks") -> str:
    lines = [f"{title}: fastnn against PyTorch CPU, calls alternating in one run "
             "(ratio = PyTorch time / fastnn time; GFLOP/s and % of the GEMM peak are fastnn's)"]
    for threads, res in by_threads.items():
        lines.append(f"{threads} thread(s), GEMM peak {res['peak']:.0f} GFLOP/s")
        lines.append(f"  {'workload':32s} {'fastnn':>10s} {'PyTorch':>10s} {'ratio':>7s} "
                     f"{'GFLOP/s':>8s} {'% peak':>7s}")
        for name, (ta, tb, flops) in res["rows"].items():
            gf = flops / ta / 1e9
            theirs = f"{tb * 1e3:8.3f}ms" if tb is not None else "       n/a"
            ratio = f"{tb / ta:6.2f}x" if tb is not None else "    n/a"
            lines.append(f"  {name:32s} {ta * 1e3:8.3f}ms {theirs} {ratio} {gf:8.1f} "
                         f"{100 * gf / res['peak']:6.1f}%")
    return "\n".join(lines)


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Optional[Callable[[str], None]] = None,
        make_rows: Callable[[], list[Row]] = rows) -> dict[int, dict[str, Any]]:
    return {t: measure(t, repeats, log, make_rows) for t in thread_counts}
