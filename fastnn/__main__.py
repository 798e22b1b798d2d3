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
    started = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                        validation_data=(X_test, y_test), verbose=1 if args.progress else 2)
    per_epoch = (time.perf_counter() - started) / max(args.epochs, 1)
    proba = model.predict(X_test)
    predicted = proba.argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    print(f"\nTest accuracy: {accuracy:.2%}   time per epoch: {per_epoch * 1e3:.1f} ms "
          f"(including validation)")
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_test, predicted), 1)
    print("\nConfusion matrix (rows: true digit, columns: predicted)")
    print("      " + " ".join(f"{j:>3d}" for j in range(10)))
    for i in range(10):
        print(f"  {i:>2d}  " + " ".join(f"{c:>3d}" for c in confusion[i]))
    if backend == "fast" and args.epochs > 0:
        reference = _digits_model("numpy", args.seed)
        started = time.perf_counter()
        reference.fit(X_train, y_train, epochs=min(args.epochs, 3), batch_size=32, verbose=0)
        numpy_epoch = (time.perf_counter() - started) / min(args.epochs, 3)
        fast = _digits_model("fast", args.seed)
        started = time.perf_counter()
        fast.fit(X_train, y_train, epochs=min(args.epochs, 3), batch_size=32, verbose=0)
        fast_epoch = (time.perf_counter() - started) / min(args.epochs, 3)
        print(f"\nSpeed: one training epoch takes {fast_epoch * 1e3:.1f} ms with fastnn and "
              f"{numpy_epoch * 1e3:.1f} ms with the NumPy backend "
              f"({numpy_epoch / fast_epoch:.1f}x)")
    return 0


def _bench(args):
    from fastnn import _bench_table
    return _bench_table.main(args)


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: neural networks on "
                                     "compiled CPU kernels.")
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
    bench.set_defaults(func=_bench)
    info = sub.add_parser("info", help="version, SIMD kernel, OpenMP, threads")
    info.set_defaults(func=_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "epochs", 0) is not None and getattr(args, "epochs", 0) < 0:
        parser.error(f"--epochs must be >= 0. Received: {args.epochs}")
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
