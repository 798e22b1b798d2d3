"""Command line: ``fastnn demo | bench | info`` (also ``python -m fastnn ...``)."""

import argparse
import sys
import time

import numpy as np


def _info(args):
    import fastnn
    from fastnn.backends import fast_available
    print(f"fastnn {fastnn.__version__}")
    print(f"numpy {np.__version__}")
    if fast_available():
        from fastnn.backends import fast_backend as fb
        print(f"compiled backend: yes")
        print(f"SIMD kernel: {fb.kernel_name()}")
        print(f"OpenMP: {'on' if fb.openmp_enabled() else 'off'}")
        print(f"a product takes threads from {fb.parallel_min_work():.3g} multiply-adds "
              "(FASTNN_PAR_MIN_WORK)")
    else:
        print("compiled backend: NOT BUILT (falling back to the NumPy backend)")
    print(f"threads: {fastnn.get_num_threads()} (at most {fastnn.thread_limit()}: "
          "fastnn.thread_limit())")
    if fast_available():
        print(f"default thread count: {fb.DEFAULT_THREADS}, from the {fb.DEFAULT_THREADS_SOURCE}")
        print(f"adaptive threads: {'on' if fastnn.get_adaptive_threads() else 'off'} (the "
              "compiled plans run 1 or all allowed threads, whichever is faster now)")
    return 0


def _why_no_compiled_backend():
    """A note for when the compiled extension does not import, saying why and what to do."""
    import os
    import fastnn
    from fastnn.backends import get_backend
    try:
        get_backend("fast")
        return ""
    except ImportError as exc:
        reason = str(exc)
    note = f"note: running on the NumPy backend: {reason}"
    package = os.path.dirname(os.path.abspath(fastnn.__file__))
    if os.path.abspath(os.getcwd()) == os.path.dirname(package):
        note += ("\nnote: fastnn was imported from the source folder in the current directory, "
                 "which has no build: run `fastnn demo`, run from another directory, or build in "
                 "place with `pip install -e .`")
    return note


def _digits_model(backend, seed, dtype="float32"):
    import fastnn as fnn
    model = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(128, activation="relu"),
                            fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=seed, dtype=dtype, backend=backend)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9),
                  metrics=["accuracy"])
    return model


def _blas_threads():
    """NumPy's BLAS pool size, when threadpoolctl (optional) can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
    return counts[0] if counts else None


def _speed_line(X, y, seed, rounds=9):
    """fastnn against the NumPy backend on the digits: one epoch of each in turn, `rounds`
    times after one untimed epoch each, the fastest of each engine's epochs (alternating, so
    both see the same machine; the fastest, because the NumPy backend's epochs vary with its
    BLAS pool's state by up to 40% from one run to the next, where its best does not), with
    each engine's thread count."""
    models = {"fast": _digits_model("fast", seed), "numpy": _digits_model("numpy", seed)}
    times = {"fast": [], "numpy": []}
    for r in range(rounds + 1):
        for name, model in models.items():
            started = time.perf_counter()
            model.fit(X, y, epochs=1, batch_size=32, verbose=0)
            if r:
                times[name].append(time.perf_counter() - started)
    fast, ref = (min(times[k]) for k in ("fast", "numpy"))
    from fastnn import get_num_threads
    allowed = get_num_threads()
    plan = models["fast"]._train_plan
    used = plan.threads[0] if plan is not None and plan.threads[0] else allowed
    blas = _blas_threads()
    return (f"Speed (best of {rounds} epochs each, in turn): fastnn {fast * 1e3:.1f} ms per "
            f"epoch on {used} thread{'s' if used > 1 else ''} (of {allowed} allowed: it "
            f"picks 1 or {allowed} by timing), the NumPy backend {ref * 1e3:.1f} ms "
            f"(NumPy's BLAS: {f'{blas} threads' if blas else 'its own thread pool'}): "
            f"{ref / fast:.1f}x")


def _demo(args):
    from fastnn.backends import fast_available
    from fastnn.datasets import load_digits, train_test_split
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, seed=0)
    backend = "fast" if fast_available() else "numpy"
    if backend == "numpy":
        print(_why_no_compiled_backend(), file=sys.stderr)
    print(f"Hand-written digits (UCI, 8x8): {len(X_train)} training and {len(X_test)} test "
          f"images; a 64-256-128-10 ReLU network, SGD with momentum 0.9, backend={backend!r}")
    model = _digits_model(backend, args.seed)
    if args.epochs:
        started = time.perf_counter()
        model.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                  validation_data=(X_test, y_test), verbose=1 if args.progress else 2)
        per_epoch = (time.perf_counter() - started) / args.epochs
    proba = model.predict(X_test)
    predicted = proba.argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    if args.epochs:
        print(f"\nTest accuracy: {accuracy:.2%}   time per epoch: {per_epoch * 1e3:.1f} ms "
              f"(including validation)")
    else:
        print(f"\n--epochs 0: no training. Test accuracy of the initial random weights: "
              f"{accuracy:.2%} (chance is about 10%; try --epochs 20)")
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_test, predicted), 1)
    print("\nConfusion matrix (rows: true digit, columns: predicted)")
    print("      " + " ".join(f"{j:>3d}" for j in range(10)))
    for i in range(10):
        print(f"  {i:>2d}  " + " ".join(f"{c:>3d}" for c in confusion[i]))
    if backend == "fast" and args.epochs > 0:
        print("\n" + _speed_line(X_train, y_train, args.seed))
    return 0


def _bench(args):
    from fastnn import _bench_table
    return _bench_table.main(args)


def _package_version():
    import fastnn
    return fastnn.__version__


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: neural networks on "
                                     "compiled CPU kernels.")
    parser.add_argument("--version", action="version",
                        version=f"fastnn {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench,info}")
    demo = sub.add_parser("demo", help="train on the bundled hand-written digits")
    demo.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--no-progress", dest="progress", action="store_false",
                      help="one line per epoch instead of progress bars")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="time fastnn against the NumPy backend "
                           "(and PyTorch when installed)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--threads", type=int, nargs="+", default=None,
                       help="thread counts to measure (default: 1 and 2)")
    bench.add_argument("--plot", metavar="FILE", help="save a bar chart of the ratios (PNG)")
    bench.add_argument("--no-cnn", dest="cnn", action="store_false",
                       help="skip the table of convolutional networks against PyTorch")
    bench.add_argument("--no-rnn", dest="rnn", action="store_false",
                       help="skip the table of recurrent networks against PyTorch")
    bench.add_argument("--no-transformer", dest="transformer", action="store_false",
                       help="skip the table of the Transformer encoder layer against PyTorch")
    bench.add_argument("--no-generation", dest="generation", action="store_false",
                       help="skip the table of generation (tiny GPT, key/value cache) against "
                            "PyTorch")
    bench.add_argument("--no-interference", dest="interference", action="store_false",
                       help="skip the table of speeds under interference (a NumPy product "
                            "between calls, another busy process)")
    bench.set_defaults(func=_bench)
    info = sub.add_parser("info", help="version, SIMD kernel, OpenMP, threads")
    info.set_defaults(func=_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        if extra:
            parser.error("unrecognized arguments: " + " ".join(extra))
        parser.print_help()
        return 2
    # a mistake in a subcommand's arguments shows that subcommand's usage, not the top level's
    own = _subparsers(parser)[args.command]
    if extra:
        own.error("unrecognized arguments: " + " ".join(extra))
    if getattr(args, "epochs", 0) < 0:
        own.error(f"--epochs must be >= 0. Received: {args.epochs}")
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _subparsers(parser):
    """{name: the subcommand's own parser}"""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


if __name__ == "__main__":
    sys.exit(main())
