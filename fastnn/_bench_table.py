"""``python -m fastnn bench``: time every workload of ``fastnn.benchmarking`` and print a table.

Each cell is a robust median: a warm-up call, a loop count calibrated so that one sample lasts at
least 20 ms, then samples until the cell's time budget is spent. On one thread the engines of one
row are sampled in turn (round robin, in an order that turns each round), so a noisy neighbour
slows them all alike and the ratios, which are what to compare, stay meaningful; on several
threads each engine is timed in its own block after a pause (see ``measure_row``). A ratio above
1 means fastnn is faster.
"""

import importlib.util
import os
import platform
import statistics
import sys
import time

import numpy as np

import fastnn
from fastnn import _bench_attention
from fastnn import benchmarking as B
from fastnn.backends import fast_available

# One timing sample lasts at least this long (a loop of calls). In the one-thread round robin
# each sample starts with the caches and predictors the previous engine left: with 4 ms
# samples that cost PyTorch's 64-64-10 step 199 us per call against 172 us timed alone, with
# 20 ms samples 185 us (fastnn: 7.4 and 7.2 us).
SAMPLE_SECONDS = 0.02
BUDGET = {False: 0.35, True: 0.06}      # seconds of sampling per cell (full, --quick)
MIN_SAMPLES = {False: 5, True: 3}
SLOW_SAMPLES = {False: 3, True: 1}      # for workloads of about a second per call
ROW_LIMIT = {False: 8.0, True: 2.0}     # seconds: a row stops sampling after this, whatever
MAX_ROUNDS = 400                        # the counts (a busy machine can slow calls 10x)
COMPARED = ("numpy", "torch", "sklearn")
SETTLE = 1.0  # seconds before each engine at 2+ threads (see measure_row)
NOISE = 0.05  # "not slower": a ratio of one engine's rows this close to 1 counts as equal


# ---------------------------------------------------------------------------- timing

class Timer:
    """Per-call time samples of one Case: ``number`` calls per sample."""

    def __init__(self, case):
        self.case = case
        self.number = 1
        self.samples = []

    def calibrate(self, warm):
        run = self.case.run
        for _ in range(warm):
            run()
        while True:
            elapsed = self._loop(self.number)
            if elapsed >= SAMPLE_SECONDS or self.number >= 1 << 20:
                return elapsed / self.number
            grow = SAMPLE_SECONDS / max(elapsed, 1e-7)
            self.number = int(self.number * min(max(grow * 1.2, 2.0), 100.0))

    def _loop(self, number):
        run, clock = self.case.run, time.perf_counter
        loop = getattr(run, "loop", None)      # a case's own loop of the same calls
        if loop is not None:
            start = clock()
            loop(number)
            return clock() - start
        start = clock()
        for _ in range(number):
            run()
        return clock() - start

    def sample(self):
        self.samples.append(self._loop(self.number) / self.number)

    @property
    def spent(self):
        return sum(self.samples) * self.number

    def median(self):
        return statistics.median(self.samples)


def measure_row(cases, quick, threads=1):
    """Median seconds per call for each case; {engine: seconds}.

    On one thread the engines of the row are sampled in turn (round robin, the order turning
    each round), so a noisy neighbour slows them all alike. With several threads that would
    measure each engine against the previous one's idle workers: OpenBLAS, libgomp and
    PyTorch's own OpenMP runtime keep their threads busy-waiting for a while after a call
    (OpenBLAS for up to a second here), and on a machine with few cores the next engine then
    runs with its threads starved, several times slower. So at 2+ threads each engine is timed in blocks, each after a pause of ``SETTLE``
    seconds that lets the other pools go to sleep: every engine timed the way it runs alone.
    """
    slow = cases[0].workload.slow
    timers = [Timer(case) for case in cases]
    budget = BUDGET[quick]
    least = SLOW_SAMPLES[quick] if slow else MIN_SAMPLES[quick]

    def warm(timer):
        if slow:                        # a call already lasts long: one warm-up at most
            if not quick:
                timer.case.run()
        else:
            timer.calibrate(warm=2)

    if threads > 1:
        # blocks in forward then reverse order (a full run: two rounds), so that whatever
        # happens to precede a block is not always the same engine
        rounds = 1 if quick else 2
        for r in range(rounds):
            for timer in (timers if r % 2 == 0 else timers[::-1]):
                time.sleep(SETTLE)
                if r == 0:
                    warm(timer)
                else:
                    timer.case.run()
                limit = time.perf_counter() + ROW_LIMIT[quick] / len(timers) / rounds
                goal = len(timer.samples) + -(-least // rounds)
                spent = timer.spent
                while len(timer.samples) < goal or (timer.spent - spent < budget / rounds
                                                    and time.perf_counter() < limit):
                    timer.sample()
        return {t.case.engine: t.median() for t in timers}
    for timer in timers:
        warm(timer)
    limit = time.perf_counter() + ROW_LIMIT[quick]
    for r in range(MAX_ROUNDS):
        busy = [t for t in timers if len(t.samples) < least or t.spent < budget]
        if not busy or (time.perf_counter() > limit and all(t.samples for t in timers)):
            break
        # the order turns each round, so that no engine always runs right after the same other
        # one: a large product leaves the core slower for the next call (after a 1024^3 PyTorch
        # product, the next engine's own took ~8% longer here)
        shift = r % len(busy)
        for timer in busy[shift:] + busy[:shift]:
            timer.sample()
    return {t.case.engine: t.median() for t in timers}


# ---------------------------------------------------------------------------- the table

def _fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _ratio(times, engine):
    if "fastnn" not in times or engine not in times:
        return None
    return times[engine] / times["fastnn"]


def _gflops(workload, seconds):
    return None if not workload.flops or seconds is None else workload.flops / seconds / 1e9


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _header(thread_counts, quick):
    lines = [f"fastnn {fastnn.__version__} benchmark{' (--quick)' if quick else ''}",
             f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs)"]
    if B.engine_available("fastnn"):
        from fastnn.backends import fast_backend as fb
        lines.append(f"SIMD kernel: {fb.kernel_name()}   OpenMP: "
                     f"{'on' if fb.openmp_enabled() else 'off'}")
    else:
        lines.append("compiled backend: NOT BUILT -- the fastnn column is empty "
                     "(build with `pip install -e .`)")
    versions = [f"numpy {np.__version__}"]
    for name in ("torch", "sklearn"):
        if B.engine_available(name):
            versions.append(f"{name} {__import__(name).__version__}")
        else:
            versions.append(f"{name} not installed")
    lines.append("   ".join(versions) + f"   python {platform.python_version()}")
    lines.append(f"threads: {', '.join(map(str, thread_counts))}   float32   "
                 "times are medians per call; ratio = other / fastnn (> 1: fastnn faster)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > max(0.5, 0.25 * (os.cpu_count() or 1)):
        lines.append(f"WARNING: the machine is busy (load average {load:.1f} on {os.cpu_count()} "
                     "CPUs): multi-threaded times of every engine suffer; compare ratios only")
    return "\n".join(lines)


COLUMNS = ("workload", "thr", "fastnn", "numpy", "np/fnn", "torch", "torch/fnn", "sklearn",
           "skl/fnn", "fnn GF/s", "np GF/s", "note")


def _cells(row):
    w, n, times, notes = row["workload"], row["threads"], row["times"], row["notes"]
    gf_fnn, gf_np = _gflops(w, times.get("fastnn")), _gflops(w, times.get("numpy"))
    return (w.key, str(n), _fmt_time(times.get("fastnn")), _fmt_time(times.get("numpy")),
            _fmt_ratio(_ratio(times, "numpy")), _fmt_time(times.get("torch")),
            _fmt_ratio(_ratio(times, "torch")), _fmt_time(times.get("sklearn")),
            _fmt_ratio(_ratio(times, "sklearn")),
            "-" if gf_fnn is None else f"{gf_fnn:.1f}", "-" if gf_np is None else f"{gf_np:.1f}",
            notes)


def format_table(rows):
    cells = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    sep = "  ".join("-" * w for w in widths)
    out = []
    for i, c in enumerate(cells):
        out.append("  ".join(v.ljust(w) if j in (0, len(COLUMNS) - 1) else v.rjust(w)
                             for j, (v, w) in enumerate(zip(c, widths))).rstrip())
        if i == 0:
            out.append(sep)
    return "\n".join(out)


# ---------------------------------------------------------------------------- targets

def check_targets(rows):
    """Lines "MET/MISSED  target: measured" for the targets the speed issue sets."""
    by = {(r["workload"].key, r["threads"]): r for r in rows}
    lines = []

    def add(ok, text):
        lines.append(f"  {'MET   ' if ok else 'MISSED'}  {text}")

    for (key, n), r in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        t, w = r["times"], r["workload"]
        if key in ("gemm 512x512x512", "gemm 1024x1024x1024") and _ratio(t, "numpy") is not None:
            value = _ratio(t, "numpy")
            add(value >= 0.95, f"{key}, {n} thr: fastnn >= 0.95x NumPy: {value:.2f}x")
        if key == "train step 784-256-128-10 b64":
            for eng in ("numpy", "torch"):
                if _ratio(t, eng) is not None:
                    add(_ratio(t, eng) >= 1.8, f"{key}, {n} thr: >= 1.8x faster than {eng}: "
                        f"{_ratio(t, eng):.2f}x")
        if key == "train step 64-64-10 b32":
            for eng, goal in (("numpy", 5.0), ("torch", 30.0)):
                if _ratio(t, eng) is not None:
                    add(_ratio(t, eng) >= goal, f"{key}, {n} thr: >= {goal:g}x faster than "
                        f"{eng}: {_ratio(t, eng):.2f}x")
        if w.kind == "predict" and "fastnn" in t:
            add(t["fastnn"] <= 2e-6, f"{key}, {n} thr: <= 2 us per call: "
                f"{t['fastnn'] * 1e6:.2f} us")
        if w.kind == "digits20" and _ratio(t, "sklearn") is not None:
            acc = r["scores"]
            add(_ratio(t, "sklearn") >= 5.0, f"{key}, {n} thr: >= 5x faster than sklearn: "
                f"{_ratio(t, 'sklearn'):.2f}x")
            if "fastnn" in acc and "sklearn" in acc:
                add(acc["fastnn"] >= acc["sklearn"] - 0.01, f"{key}, {n} thr: accuracy "
                    f"fastnn {acc['fastnn']:.2%} vs sklearn {acc['sklearn']:.2%} "
                    "(equal within 1 point)")
        attention = _bench_attention.check(key, n, _ratio(t, "torch"))
        if attention is not None:
            add(*attention)
    one, two = by.get(("gemm 1024x1024x1024", 1)), by.get(("gemm 1024x1024x1024", 2))
    if one and two and "fastnn" in one["times"] and "fastnn" in two["times"]:
        value = one["times"]["fastnn"] / two["times"]["fastnn"]
        add(value >= 1.8, f"gemm 1024 fastnn: 2 threads >= 1.8x one thread: {value:.2f}x "
            f"(NumPy: {one['times']['numpy'] / two['times']['numpy']:.2f}x)")
    # "2 threads are never slower than 1": the training rows, within NOISE
    for (key, n), r in sorted(by.items(), key=lambda kv: kv[0]):
        one = by.get((key, 1))
        if (n == 1 or one is None or r["workload"].kind not in ("train_step", "epoch", "digits20")
                or "fastnn" not in r["times"] or "fastnn" not in one["times"]):
            continue
        value = one["times"]["fastnn"] / r["times"]["fastnn"]
        add(value >= 1 - NOISE, f"{key}: fastnn on {n} threads not slower than on 1 "
            f"(within {NOISE:.0%}): {value:.2f}x")
    return lines


# ---------------------------------------------------------------------------- plot

def plot_ratios(rows, path):
    """Bar chart of the ratios (log scale) for each workload and thread count."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OSError("--plot needs matplotlib: pip install matplotlib") from None
    labels = [f"{r['workload'].key} ({r['threads']}t)" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    height = 0.8 / len(COMPARED)
    ys = np.arange(len(rows))
    for i, engine in enumerate(COMPARED):
        values = [_ratio(r["times"], engine) or 0.0 for r in rows]
        if any(values):
            ax.barh(ys + (i - 1) * height, values, height, label=f"{engine} / fastnn")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio (> 1: fastnn faster)")
    ax.set_title(f"fastnn speed-up ({cpu_model()})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- entry point

def run_benchmarks(thread_counts, quick, log=None):
    """Measure every workload at each thread count; returns the table rows."""
    rows = []
    for workload in B.workloads(quick):
        engines = [e for e in workload.engines if B.engine_available(e)]
        for n in thread_counts:
            with B.threads(n):
                cases = [B.build(workload, e) for e in engines]
                times = measure_row(cases, quick, n)
                scores = {c.engine: c.score() for c in cases if c.score is not None}
            notes = ""
            if scores:
                notes = "acc " + " ".join(f"{e[:5]} {s:.1%}" for e, s in scores.items())
            row = {"workload": workload, "threads": n, "times": times, "scores": scores,
                   "notes": notes}
            rows.append(row)
            if log is not None:
                log(row)
    return rows


def main(args):
    quick = bool(getattr(args, "quick", False))
    thread_counts = getattr(args, "threads", None) or [1, 2]
    if any(n < 1 for n in thread_counts):
        raise ValueError(f"--threads must be positive integers. Received: {thread_counts}")
    plot = getattr(args, "plot", None)
    if plot:        # fail now, not after minutes of measuring
        if importlib.util.find_spec("matplotlib") is None:
            raise OSError("--plot needs matplotlib: pip install matplotlib")
        folder = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(folder):
            raise OSError(f"--plot: the folder {folder!r} does not exist")
    print(_header(thread_counts, quick), flush=True)
    started = time.perf_counter()
    progress = sys.stderr.isatty()

    def log(row):
        if progress:
            print(f"  measured {row['workload'].key} at {row['threads']} thread(s)",
                  file=sys.stderr, flush=True)

    rows = run_benchmarks(thread_counts, quick, log)
    print()
    print(format_table(rows))
    targets = check_targets(rows)
    if targets:
        print("\nTargets")
        print("\n".join(targets))
    if getattr(args, "interference", True) and fast_available():
        from fastnn import _bench_interference as BI
        counts = [n for n in thread_counts if n > 1] or [2]
        print(f"\nMeasuring under interference ({', '.join(BI.CONDITIONS)})...", flush=True)
        results = BI.run(counts[0], repeats=15 if quick else 40,
                         log=lambda line: progress and print(line, file=sys.stderr, flush=True))
        print()
        print(BI.format_table(results, counts[0]))
    if getattr(args, "cnn", True) and fast_available():
        from fastnn import _bench_cnn as BC
        print("\nMeasuring convolutional networks against PyTorch...", flush=True)
        cnn = BC.run(tuple(thread_counts), repeats=10 if quick else 30,
                     log=lambda line: progress and print(line, file=sys.stderr, flush=True))
        print()
        print(BC.format_table(cnn))
    if getattr(args, "rnn", True) and fast_available():
        from fastnn import _bench_rnn as BR
        print("\nMeasuring recurrent networks against PyTorch...", flush=True)
        rnn = BR.run(tuple(thread_counts), repeats=10 if quick else 30,
                     log=lambda line: progress and print(line, file=sys.stderr, flush=True))
        print()
        print(BR.format_table(rnn))
    if getattr(args, "transformer", True) and fast_available():
        from fastnn import _bench_transformer as BT
        print("\nMeasuring the Transformer encoder layer against PyTorch...", flush=True)
        tfm = BT.run(tuple(thread_counts), repeats=10 if quick else 30,
                     log=lambda line: progress and print(line, file=sys.stderr, flush=True))
        print()
        print(BT.format_table(tfm))
        lines = BT.check_targets(tfm)
        if lines:
            print("\nTargets (issue #18)")
            print("\n".join(lines))
    if getattr(args, "generation", True) and fast_available():
        from fastnn import _bench_generation as BG
        print("\nMeasuring generation (tiny GPT, key/value cache) against PyTorch...", flush=True)
        gen = BG.run(tuple(thread_counts), repeats=10 if quick else 30,
                     log=lambda line: progress and print(line, file=sys.stderr, flush=True))
        print()
        print(BG.format_table(gen))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if plot:
        plot_ratios(rows, plot)
        print(f"ratios plotted to {plot}")
    return 0
