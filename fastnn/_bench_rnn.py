"""The recurrent benchmark: fastnn against PyTorch CPU on the sequence models of issue #17.

Rows (float32, the same architecture, loss and optimizer on both sides; PyTorch's modules with
``batch_first=True``):

- ``LSTM / GRU / SimpleRNN step b32``: 32 steps of 32 features, 64 units, the last step into
  Dense 10 (softmax cross-entropy), one SGD-with-momentum training step on 32 sequences;
- ``LSTM predict x1``: one sequence of 32 steps through that LSTM (what an app pays per call);
- ``LSTM step b64 64->256 T50``: 50 steps of 64 features, 256 units, the large, GEMM-bound case;
- ``LSTM dropout+recurrent_dropout step b32``: the first row's network with Keras'
  ``dropout=0.2, recurrent_dropout=0.2`` (one mask per sequence on x_t and on h_{t-1}, drawn
  per step call); PyTorch's LSTM has no recurrent dropout, so its side is the loop a Keras user
  writes: ``LSTMCell`` over the steps on the masked x and the masked h_{t-1};
- ``LSTM masked step b32``: the first row's network on sequences right-padded to 32 steps from
  lengths 8 to 32: fastnn's ``Masking`` (the kernel skips padded steps), PyTorch's packed
  sequences (``pack_padded_sequence``, ``h_n`` into the Dense layer). FLOPs of the real steps;
- ``GRU step b32 T50 (vs nn.GRU)`` and ``GRU reset_after=False step b32 T50 (vs nn.GRU)``:
  Keras' two GRUs, 50 steps of 32 features, 64 units. PyTorch has no reset_after=False GRU:
  both rows run ``nn.GRU`` (reset_after=True semantics) as the anchor, so the second row's
  ratio against the first's is the cost of the variant (two dependent recurrent products per
  step instead of one). The same FLOPs count.

Timing, ratios and the GEMM peak as in fastnn/_bench_cnn.py (whose ``measure`` runs these rows).
FLOPs count the products: per step 2 x rows x K x (features + units) forward, with K = gates x
units; a training step adds the recurrent input gradient, the recurrent and input kernel
gradients (the first layer has no input gradient), and the Dense layer's three products.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import Row

GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _flops(kind: str, n: int, steps: int, features: int, units: int, step: bool) -> float:
    K = GATES[kind] * units
    forward = 2.0 * n * steps * K * (features + units) + 2.0 * n * units * 10
    if not step:
        return forward
    return forward + 2.0 * n * steps * K * (2 * units + features) + 4.0 * n * units * 10


def model(kind: str, steps: int, features: int, units: int, seed: int = 0,
          **kwargs: Any) -> Any:
    """``kind`` (LSTM, GRU or SimpleRNN) of ``units`` (and ``kwargs``) over (steps, features),
    then Dense 10."""
    layer = getattr(fnn, kind)(units, **kwargs)
    return fnn.Sequential([layer, fnn.Dense(10, activation="softmax")],
                          input_shape=(steps, features), seed=seed)


def _torch_model(torch: Any, kind: str, features: int, units: int) -> Any:
    nn = torch.nn
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "SimpleRNN": nn.RNN}[kind]
    module: Any = nn.Module

    class Net(module):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.rnn = cls(features, units, batch_first=True)
            self.dense = nn.Linear(units, 10)

        def forward(self, x: Any) -> Any:
            out, _ = self.rnn(x)
            return self.dense(out[:, -1])
    return Net()


def rows() -> list[Row]:
    """(name, flops per call, fastnn setup -> call, torch setup(torch) -> call)."""
    rng = np.random.default_rng(0)

    def step(kind: str, n: int, steps: int, features: int, units: int, **kwargs: Any
             ) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]]]:
        X = rng.standard_normal((n, steps, features)).astype(np.float32)
        y = np.arange(n) % 10

        def mine() -> Callable[[], Any]:
            net = model(kind, steps, features, units, **kwargs)
            net.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
            return lambda: net.train_on_batch(X, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_model(torch, kind, features, units)
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
        x = rng.standard_normal((1, 32, 32)).astype(np.float32)

        def mine() -> Callable[[], Any]:
            net = model("LSTM", 32, 32, 64)
            return lambda: net.predict(x)

        def theirs(torch: Any) -> Callable[[], Any]:
            net = _torch_model(torch, "LSTM", 32, 64).eval()
            xt = torch.tensor(x)

            def call() -> None:
                with torch.no_grad():
                    net(xt)
            return call
        return mine, theirs

    def masked(n: int, steps: int, features: int, units: int
               ) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]],
                          float]:
        lengths = np.linspace(steps // 4, steps, n).astype(np.int64)
        X = rng.standard_normal((n, steps, features)).astype(np.float32)
        for i, length in enumerate(lengths):
            X[i, length:] = 0.0
        y = np.arange(n) % 10

        def mine() -> Callable[[], Any]:
            net = fnn.Sequential([fnn.Masking(), fnn.LSTM(units),
                                  fnn.Dense(10, activation="softmax")],
                                 input_shape=(steps, features), seed=0)
            net.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
            return lambda: net.train_on_batch(X, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            nn = torch.nn
            lstm, dense = nn.LSTM(features, units, batch_first=True), nn.Linear(units, 10)
            params = [*lstm.parameters(), *dense.parameters()]
            opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
            loss = nn.CrossEntropyLoss()
            xt, yt, lt = torch.tensor(X), torch.tensor(y), torch.tensor(lengths)

            def call() -> None:
                opt.zero_grad()
                packed = nn.utils.rnn.pack_padded_sequence(xt, lt, batch_first=True,
                                                           enforce_sorted=False)
                _, (h, _) = lstm(packed)
                loss(dense(h[0]), yt).backward()
                opt.step()
            return call
        return mine, theirs, float(lengths.sum()) / (n * steps)

    def dropped(n: int, steps: int, features: int, units: int, rate: float
                ) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], Callable[[], Any]]]:
        X = rng.standard_normal((n, steps, features)).astype(np.float32)
        y = np.arange(n) % 10

        def mine() -> Callable[[], Any]:
            net = fnn.Sequential([fnn.LSTM(units, dropout=rate, recurrent_dropout=rate),
                                  fnn.Dense(10, activation="softmax")],
                                 input_shape=(steps, features), seed=0)
            net.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
            return lambda: net.train_on_batch(X, y)

        def theirs(torch: Any) -> Callable[[], Any]:
            nn = torch.nn
            cell, dense = nn.LSTMCell(features, units), nn.Linear(units, 10)
            params = [*cell.parameters(), *dense.parameters()]
            opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
            loss = nn.CrossEntropyLoss()
            xt, yt = torch.tensor(X), torch.tensor(y)
            keep = 1.0 - rate

            def call() -> None:
                opt.zero_grad()
                im = torch.bernoulli(torch.full((n, 1, features), keep)) / keep
                rm = torch.bernoulli(torch.full((n, units), keep)) / keep
                xm = xt * im
                h = torch.zeros(n, units)
                c = torch.zeros(n, units)
                for t in range(steps):
                    h, c = cell(xm[:, t], (h * rm, c))
                loss(dense(h), yt).backward()
                opt.step()
            return call
        return mine, theirs

    out: list[Row] = []
    mine_m, theirs_m, real = masked(32, 32, 32, 64)
    for kind in ("LSTM", "GRU", "SimpleRNN"):
        out.append((f"{kind} step b32 32->64 T32", _flops(kind, 32, 32, 32, 64, True),
                    *step(kind, 32, 32, 32, 64)))
    out.append(("LSTM predict x1 T32", _flops("LSTM", 1, 32, 32, 64, False), *predict_one()))
    out.append(("LSTM step b64 64->256 T50", _flops("LSTM", 64, 50, 64, 256, True),
                *step("LSTM", 64, 50, 64, 256)))
    out.append(("LSTM dropout+recurrent_dropout step b32 32->64 T32",
                _flops("LSTM", 32, 32, 32, 64, True), *dropped(32, 32, 32, 64, 0.2)))
    out.append(("LSTM masked step b32 T<=32", real * _flops("LSTM", 32, 32, 32, 64, True),
                mine_m, theirs_m))
    for name, reset_after in (("GRU", True), ("GRU reset_after=False", False)):
        out.append((f"{name} step b32 T50 (vs nn.GRU)",
                    _flops("GRU", 32, 50, 32, 64, True),
                    *step("GRU", 32, 50, 32, 64, reset_after=reset_after)))
    return out


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Callable[[str], None] | None = None) -> dict[int, dict[str, Any]]:
    from fastnn import _bench_cnn as BC
    return BC.run(thread_counts, repeats, log, make_rows=rows)


def format_table(by_threads: dict[int, dict[str, Any]]) -> str:
    from fastnn import _bench_cnn as BC
    return BC.format_table(by_threads, title="Recurrent networks")
