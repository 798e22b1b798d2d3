"""The Transformer benchmark: fastnn against PyTorch CPU on the encoder layer of issue #18.

Rows (float32, the same architecture, loss and optimizer on both sides; PyTorch's
``nn.TransformerEncoderLayer(64, 4, 256, norm_first=True, batch_first=True, dropout=0.0)``
against ``fnn.TransformerBlock(num_heads=4, key_dim=16, ff_dim=256, norm_first=True)``, each
followed by Flatten and Dense 10 with softmax cross-entropy):

- ``Transformer step b16 L32``: one SGD-with-momentum training step on 16 sequences of 32
  steps of 64 features (gelu feed-forward: fastnn's default; PyTorch given ``activation="gelu"``);
- ``Transformer relu step b16 L32``: the same with ReLU (PyTorch's default activation);
- ``Transformer predict x1 L32``: one sequence through the gelu model (what an app pays per
  call): fastnn's ``predict``, PyTorch's module in eval mode under ``torch.inference_mode``
  (its fused encoder fast path).

Timing, ratios and the GEMM peak as in fastnn/_bench_cnn.py (whose ``measure`` runs these rows).
FLOPs count the products: per sample, the Q/K/V projection 2 L d 3d, the scores and the
weighted sum 2 x 2 H L^2 D, the output projection 2 L d^2, the feed-forward 2 x 2 L d ff and
the classifier 2 L d 10; a training step does each product three times (forward, input
gradient, weight gradient: the attention's backward is four products for its two).
Targets (issue #18): the step >= 2x PyTorch, the one-sample forward >= 3x (``check_targets``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import Row

STEPS, WIDTH, HEADS, FF, CLASSES = 32, 64, 4, 256, 10
TARGETS = {"step": 2.0, "predict": 3.0}     # PyTorch time / fastnn time, issue #18


def flops(n: int, step: bool) -> float:
    """2 x multiply-adds of the model's products for ``n`` sequences (x3 for a training step)."""
    L, d, H = STEPS, WIDTH, HEADS
    D = d // H
    per_sample = (2.0 * L * d * 3 * d + 2 * 2.0 * H * L * L * D + 2.0 * L * d * d
                  + 2 * 2.0 * L * d * FF + 2.0 * L * d * CLASSES)
    return n * per_sample * (3 if step else 1)


def model(activation: str = "gelu", seed: int = 0) -> Any:
    """TransformerBlock(4 heads of 16, ff 256, pre-norm) on (32, 64), Flatten, Dense 10."""
    x = fnn.Input((STEPS, WIDTH))
    h = fnn.TransformerBlock(num_heads=HEADS, key_dim=WIDTH // HEADS, ff_dim=FF,
                             norm_first=True, activation=activation)(x)
    y = fnn.Dense(CLASSES, activation="softmax")(fnn.Flatten()(h))
    return fnn.Model(x, y, seed=seed)


def _torch_model(torch: Any, activation: str) -> Any:
    nn = torch.nn
    module: Any = nn.Module

    class Net(module):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.TransformerEncoderLayer(WIDTH, HEADS, FF, dropout=0.0,
                                                      activation=activation,
                                                      batch_first=True, norm_first=True)
            self.dense = nn.Linear(STEPS * WIDTH, CLASSES)

        def forward(self, x: Any) -> Any:
            return self.dense(self.encoder(x).flatten(1))
    return Net()


def rows() -> list[Row]:
    """(name, flops per call, fastnn setup -> call, torch setup(torch) -> call)."""
    rng = np.random.default_rng(0)

    def step(activation: str, n: int) -> tuple[Callable[[], Callable[[], Any]],
                                               Callable[[Any], Callable[[], Any]]]:
        X = rng.standard_normal((n, STEPS, WIDTH)).astype(np.float32)
        y = np.arange(n) % CLASSES

        def mine() -> Callable[[], Any]:
            net = model(activation)
            net.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
            return lambda: net.train_on_batch(X, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_model(torch, activation)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            loss = torch.nn.CrossEntropyLoss()
            xt, yt = torch.tensor(X), torch.tensor(y)

            def call() -> None:
                opt.zero_grad()
                loss(net(xt), yt).backward()
                opt.step()
            return call
        return mine, theirs

    def predict_one() -> tuple[Callable[[], Callable[[], Any]],
                               Callable[[Any], Callable[[], Any]]]:
        x = rng.standard_normal((1, STEPS, WIDTH)).astype(np.float32)

        def mine() -> Callable[[], Any]:
            net = model()
            return lambda: net.predict(x)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_model(torch, "gelu").eval()
            xt = torch.tensor(x)

            def call() -> None:
                with torch.inference_mode():
                    net(xt)
            return call
        return mine, theirs

    return [("Transformer step b16 L32", flops(16, True), *step("gelu", 16)),
            ("Transformer relu step b16 L32", flops(16, True), *step("relu", 16)),
            ("Transformer predict x1 L32", flops(1, False), *predict_one())]


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Callable[[str], None] | None = None) -> dict[int, dict[str, Any]]:
    from fastnn import _bench_cnn as BC
    return BC.run(thread_counts, repeats, log, make_rows=rows)


def format_table(by_threads: dict[int, dict[str, Any]]) -> str:
    from fastnn import _bench_cnn as BC
    return BC.format_table(by_threads, title="Transformer encoder layer")


def check_targets(by_threads: dict[int, dict[str, Any]]) -> list[str]:
    """Lines "MET/MISSED  target: measured" for issue #18's ratios, with the fraction of the
    GEMM peak measured in the same run beside each."""
    lines = []
    for threads, res in by_threads.items():
        for name, (ta, tb, fl) in res["rows"].items():
            if tb is None:
                continue
            goal = TARGETS["predict" if "predict" in name else "step"]
            ratio = tb / ta
            lines.append(f"  {'MET   ' if ratio >= goal else 'MISSED'}  {name}, {threads} thr: "
                         f">= {goal:.0f}x PyTorch: {ratio:.2f}x ({100 * fl / ta / 1e9 / res['peak']:.1f}% "
                         f"of the GEMM peak)")
    return lines
