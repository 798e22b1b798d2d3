"""The interference benchmark: fastnn at its default thread count against one thread, on a
machine that is not quiet.

A parallel region waits for its slowest thread, so a second thread pays off only while its core
is free. The benchmark makes the conditions a user's machine has, itself:

- ``quiet``: nothing else runs;
- ``numpy matmul``: a NumPy 256x256 product before each timed call (OpenBLAS then keeps its
  threads spinning on the cores for a while, as in a script that mixes NumPy and fastnn);
- ``busy 50%`` / ``busy 100%``: another process computes for half of / all of every 10 ms
  on one core.

For each condition and workload the calls at one thread and at the default count alternate in
one run (so both see the same machine), and the table gives the default count's speed relative
to one thread: time at 1 / time at N, from the medians. fastnn's plans choose between one
thread and N by timing (src_c/fnn_adapt.h), so the ratio should stay >= 0.9 everywhere while
the quiet machine keeps the gain of N threads.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn

CONDITIONS = ("quiet", "numpy matmul", "busy 50%", "busy 100%")
BURN_PERIOD = 0.01                      # seconds per duty cycle of the busy process


def _burn(duty: float, stop: Any) -> None:
    """Busy for ``duty`` of every BURN_PERIOD seconds until ``stop`` is set (child process)."""
    while not stop.is_set():
        start = time.perf_counter()
        while time.perf_counter() - start < duty * BURN_PERIOD:
            pass
        if duty < 1.0:
            time.sleep((1.0 - duty) * BURN_PERIOD)


class _Condition:
    """The interference of one condition: a busy process while the block runs, or a NumPy
    product to call before each timed call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.before: Optional[Callable[[], Any]] = None
        self._process: Any = None
        self._stop: Any = None
        if name == "numpy matmul":
            a = np.random.default_rng(0).standard_normal((256, 256))
            product = np.empty_like(a)

            def before() -> None:
                np.matmul(a, a, out=product)
            self.before = before

    def __enter__(self) -> "_Condition":
        if self.name.startswith("busy"):
            duty = float(self.name.split()[1].rstrip("%")) / 100.0
            ctx = multiprocessing.get_context("spawn")
            self._stop = ctx.Event()
            self._process = ctx.Process(target=_burn, args=(duty, self._stop), daemon=True)
            self._process.start()
            time.sleep(0.3)                     # let it start burning
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._process is not None:
            self._stop.set()
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()


def _mlp(sizes: tuple[int, ...], seed: int = 0) -> Any:
    layers = [fnn.Dense(units, activation="relu") for units in sizes[1:-1]]
    layers.append(fnn.Dense(sizes[-1], activation="softmax"))
    model = fnn.Sequential(layers, input_dim=sizes[0], seed=seed)
    return model.compile("cross_entropy", fnn.SGD(lr=0.01, momentum=0.9))


def workloads() -> list[tuple[str, Callable[[], Callable[[], Any]]]]:
    """(name, setup) pairs; ``setup()`` returns the call to time."""
    rng = np.random.default_rng(0)

    def step(sizes: tuple[int, ...], batch: int) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            model = _mlp(sizes)
            x = rng.random((batch, sizes[0])).astype(np.float32)
            y = rng.integers(0, sizes[-1], batch)
            return lambda: model.train_on_batch(x, y)
        return setup

    def predict(sizes: tuple[int, ...], rows: int) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            model = _mlp(sizes)
            x = rng.random((rows, sizes[0])).astype(np.float32)
            return lambda: model.predict(x)
        return setup

    def epoch() -> Callable[[], Any]:
        X, y = fnn.datasets.load_digits()
        X = (X / 16.0).astype(np.float32)
        model = _mlp((64, 256, 128, 10))
        return lambda: model.fit(X, y, epochs=1, batch_size=32, verbose=0)

    return [("train step 64-256-128-10 b32", step((64, 256, 128, 10), 32)),
            ("train step 784-256-128-10 b64", step((784, 256, 128, 10), 64)),
            ("predict 784-256-128-10 x256", predict((784, 256, 128, 10), 256)),
            ("predict 64-256-128-10 x32", predict((64, 256, 128, 10), 32)),
            ("digits epoch 64-256-128-10 b32", epoch)]


def _timed(run: Callable[[], Any], before: Optional[Callable[[], Any]]) -> float:
    if before is not None:
        before()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(condition: str, threads: int, repeats: int = 40,
            log: Optional[Callable[[str], None]] = None) -> dict[str, tuple[float, float]]:
    """{workload: (median seconds at 1 thread, at ``threads``)} under ``condition``."""
    results = {}
    with _Condition(condition) as cond:
        for name, setup in workloads():
            run = setup()
            n = max(4, repeats // 4) if name.startswith("digits") else repeats
            times: dict[int, list[float]] = {1: [], threads: []}
            for count in (threads, 1):          # warm-up: plans built, the choice measured
                with fnn.threads(count):
                    for _ in range(max(3, n // 2)):
                        _timed(run, cond.before)
            for _ in range(n):
                for count in (1, threads):
                    with fnn.threads(count):
                        times[count].append(_timed(run, cond.before))
            results[name] = (float(np.median(times[1])), float(np.median(times[threads])))
            if log is not None:
                log(f"  {condition}: {name}")
    return results


def run(threads: int = 2, repeats: int = 40, conditions: tuple[str, ...] = CONDITIONS,
        log: Optional[Callable[[str], None]] = None) -> dict[str, dict[str, tuple[float, float]]]:
    """{condition: measure(condition, ...)} for each condition."""
    return {c: measure(c, threads, repeats, log) for c in conditions}


def format_table(results: dict[str, dict[str, tuple[float, float]]], threads: int) -> str:
    """The speed at ``threads`` threads relative to one thread, per workload and condition
    (time at 1 / time at N; below 0.9 is marked)."""
    conditions = list(results)
    names = list(next(iter(results.values())))
    width = max(len(n) for n in names)
    lines = [f"Interference: fastnn at {threads} threads against 1 thread, same run "
             f"(speed = time at 1 / time at {threads}; '!' below 0.9)",
             f"{'workload':{width}s}  " + "  ".join(f"{c:>14s}" for c in conditions)]
    for name in names:
        cells = []
        for c in conditions:
            t1, tn = results[c][name]
            ratio = t1 / tn
            cells.append(f"{ratio:5.2f}x{'!' if ratio < 0.9 else ' '} "
                         f"{tn * 1e6:6.0f}us")
        lines.append(f"{name:{width}s}  " + "  ".join(f"{cell:>14s}" for cell in cells))
    return "\n".join(lines)
