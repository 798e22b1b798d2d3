"""Scaling of fastnn.distributed: 2 ranks x 1 thread against 1 rank x 1 thread.

    python benchmarks/bench_distributed.py [--rows 16384] [--epochs 3] [--repeat 3]

The 784-256-128-10 network (ReLU, softmax, SGD with momentum, float32) on synthetic data, at a
global batch of 256. It launches ``mpiexec -n 1`` and ``mpiexec -n 2`` (OMP_NUM_THREADS=1) on
itself, each configuration ``--repeat`` times in turn, and prints per configuration the
training throughput (samples/s: the median over the timed epochs after one warm-up epoch, and
the fastest epoch, which is what a quiet machine gives), the time per step spent in the
gradient sum (median over the timed steps; it includes waiting for the slower rank) and, from
a separate loop after a barrier, the time of the sum alone on the same buffer. The 1-rank rows are single-process
``model.fit`` (the compiled whole-step plan) and ``fastnn.distributed.fit`` on one rank.
Needs ``pip install "fastnn[mpi]"``; the MPI runs share the machine with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np


def _model():
    import fastnn as fnn
    model = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(128, activation="relu"),
                            fnn.Dense(10, activation="softmax")], input_dim=784, seed=0)
    return model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.01, momentum=0.9))


def _data(rows):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 784)).astype(np.float32)
    y = rng.integers(0, 10, rows)
    return X, y


def worker(rows, epochs, batch, plain):
    """One configuration, on every rank of COMM_WORLD; rank 0 prints a JSON line."""
    import fastnn as fnn
    from mpi4py import MPI

    from fastnn.distributed._comm import FixedOrderSum
    comm = MPI.COMM_WORLD
    X, y = _data(rows)
    model = _model()
    seconds, reduce_steps = [], []
    for epoch in range(epochs + 1):          # epoch 0 warms up (plans, workspaces, caches)
        comm.Barrier()
        started = time.perf_counter()
        if plain:
            model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
        else:
            history = fnn.distributed.fit(model, X, y, epochs=1, batch_size=batch, verbose=0)
        comm.Barrier()
        if epoch:
            seconds.append(time.perf_counter() - started)
            if not plain:
                reduce_steps += history.allreduce_seconds
    size = sum(w.size for w in model.get_weights()) + 3       # grads + loss, flags
    reducer = FixedOrderSum(comm, size, np.float32)
    alone = []
    for _ in range(60):
        comm.Barrier()
        reducer()
    alone = reducer.seconds[10:]
    if comm.Get_rank() == 0:
        steps = -(-rows // batch)
        print(json.dumps({"ranks": comm.Get_size(), "plain": plain,
                          "samples_per_s": rows / float(np.median(seconds)),
                          "best_samples_per_s": rows / float(np.min(seconds)),
                          "step_ms": 1e3 * float(np.median(seconds)) / steps,
                          "reduce_ms": 1e3 * float(np.median(reduce_steps)) if reduce_steps
                          else None,
                          "sum_alone_ms": 1e3 * float(np.median(alone)),
                          "parameters": size - 3}), flush=True)


def _mpiexec():
    here = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else (shutil.which("mpiexec") or "mpiexec")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="launches per configuration")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.rows, args.epochs, args.batch, args.plain)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    configs = ((1, True), (1, False), (2, False))
    runs: dict[tuple[int, bool], list[dict]] = {c: [] for c in configs}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):        # the configurations in turn, so that load hits all
        for ranks, plain in configs:
            cmd = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker",
                   "--rows", str(args.rows), "--epochs", str(args.epochs), "--batch",
                   str(args.batch)] + (["--plain"] if plain else [])
            out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                 check=True).stdout
            runs[(ranks, plain)].append(json.loads(out.strip().splitlines()[-1]))
    load = max(load, os.getloadavg()[0])
    print(f"784-256-128-10, float32, global batch {args.batch}, {args.rows} synthetic rows, "
          f"1 thread per rank, {args.repeat} x {args.epochs} timed epochs per configuration; "
          f"load average up to {load:.2f} on {os.cpu_count()} CPUs")
    print(f"{'configuration':32} {'samples/s':>10} {'ratio':>6} {'best/s':>8} {'ratio':>6} "
          f"{'ms/step':>8} {'sum ms/step':>12} {'sum alone ms':>13}")
    rows = {c: {key: float(np.median([r[key] for r in runs[c]])) if runs[c][0][key]
                is not None else None for key in runs[c][0] if key not in ("ranks", "plain")}
            for c in configs}
    for key in ("best_samples_per_s",):
        for c in configs:
            rows[c][key] = max(r[key] for r in runs[c])
    base = rows[configs[0]]
    for (ranks, plain), r in rows.items():
        name = ("1 rank, model.fit" if plain else
                f"{ranks} rank{'s' if ranks > 1 else ''}, fastnn.distributed.fit")
        reduce_ms = "-" if r["reduce_ms"] is None else f"{r['reduce_ms']:.3f}"
        print(f"{name:32} {r['samples_per_s']:10.0f} "
              f"{r['samples_per_s'] / base['samples_per_s']:6.2f} "
              f"{r['best_samples_per_s']:8.0f} "
              f"{r['best_samples_per_s'] / base['best_samples_per_s']:6.2f} "
              f"{r['step_ms']:8.2f} {reduce_ms:>12} {r['sum_alone_ms']:13.3f}")
    print("samples/s, ms/step, sum: medians (over epochs, then runs); best/s: the fastest "
          "epoch; sum ms/step includes waiting for the slower rank")


if __name__ == "__main__":
    main()
