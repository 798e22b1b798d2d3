"""fastnn against onnxruntime on the same models: LeNet-5 and the small LSTM (32 steps of 32
features, 64 units, Dense 10), one sample and a batch of 64, one thread each.

    python benchmarks/bench_onnx.py [--repeats 200]

fastnn runs ``model.predict``; onnxruntime runs fastnn's export of the same model
(``fastnn.onnx.export``, intra_op_num_threads=1, inter_op_num_threads=1, all graph
optimizations). Median wall time per call; ratio = fastnn / onnxruntime (below 1: fastnn is
faster). Compare ratios from one run; keep other work off the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import lenet5
from fastnn._bench_rnn import model as rnn_model


def _median_us(call, repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):      # warm up (workspaces, ORT's first run)
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    import onnxruntime as ort
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    fnn.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    rng = np.random.default_rng(0)
    models = [("LeNet-5", lenet5(), (28, 28, 1)),
              ("LSTM T32 F32 U64", rnn_model("LSTM", 32, 32, 64), (32, 32))]
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; onnxruntime "
          f"{ort.__version__}, 1 thread each")
    print(f"{'model':<18} {'batch':>5} {'fastnn us':>11} {'onnxruntime us':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, shape in models:
            path = fnn.onnx.export(model, os.path.join(tmp, "m.onnx"))
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            feed = session.get_inputs()[0].name
            for batch in (1, 64):
                x = rng.normal(size=(batch, *shape)).astype(np.float32)
                np.testing.assert_allclose(session.run(None, {feed: x})[0], model.predict(x),
                                           rtol=1e-4, atol=1e-6)
                mine = _median_us(lambda: model.predict(x), args.repeats)
                theirs = _median_us(lambda: session.run(None, {feed: x}), args.repeats)
                print(f"{name:<18} {batch:>5} {mine:>11.1f} {theirs:>15.1f} "
                      f"{mine / theirs:>7.2f}")


if __name__ == "__main__":
    main()
