"""The benchmark workloads, shared by ``python -m fastnn bench`` and ``benchmarks/`` (pytest-benchmark).

A workload is one thing to time (a GEMM shape, a dense layer, a training step, ...). For each
engine that can run it, ``build(workload, engine)`` does all the setup (arrays, buffers, models)
and returns a ``Case`` whose ``run`` is the zero-argument callable to time. Engines:

- ``"fastnn"``: the compiled backend (kernels on preallocated buffers, or a ``backend="fast"`` model);
- ``"numpy"``: fastnn's NumPy reference backend (for GEMM: ``np.matmul(a, b, out=out)``);
- ``"torch"``: PyTorch, float32, when it is importable;
- ``"sklearn"``: scikit-learn's MLPClassifier, for the digits epochs only.

Everything runs in float32. ``threads(n)`` sets the thread count of every engine at once.
Nothing here imports pytest; torch, scikit-learn and threadpoolctl are optional.
"""

import contextlib
import copy
import functools
import importlib.util
import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np

import fastnn as fnn
from fastnn import _bench_activations, _bench_attention, _bench_augment, _bench_optimizers
from fastnn import _bench_layers
from fastnn import _bench_more_layers
from fastnn import _bench_shared
from fastnn import _validation as V
from fastnn import activations as A
from fastnn.backends import fast_available, get_backend

ENGINES = ("fastnn", "numpy", "torch", "sklearn")
DTYPE = np.float32
TRAIN_RESTART = 100     # training steps between restarts from the initial weights
EPOCH_RESTART = 5       # digits epochs between restarts


@dataclass(frozen=True)
class Workload:
    """One timed task. ``flops`` is the floating-point work of one call (GEMMs only)."""

    key: str                   # short unique name, e.g. "gemm 512x512x512"
    kind: str                  # gemm | dense_fwd | ... | epoch | digits20 | attention
    params: tuple              # kind-specific, e.g. (m, k, n, trans_a, trans_b) for gemm
    engines: tuple             # engines that can run it, fastnn first
    flops: float = 0.0
    slow: bool = False         # one call takes long: few repeats

    def __str__(self):
        return self.key


@dataclass
class Case:
    """A built workload: ``run()`` is what to time; ``score()`` (digits20) the test accuracy
    reached by the last run."""

    workload: Workload
    engine: str
    run: object
    score: object = None
    keep: list = field(default_factory=list)   # keeps buffers alive


# ---------------------------------------------------------------------------- the workload list

def _gemm(m, k, n, trans_a=False, trans_b=False, label=None):
    key = f"gemm {m}x{k}x{n}" + (f" ({label})" if label else "")
    return Workload(key, "gemm", (m, k, n, trans_a, trans_b), ("fastnn", "numpy", "torch"),
                    flops=2.0 * m * k * n, slow=m * k * n >= 1024 ** 3)


def workloads(quick=False):
    """All workloads, in table order. ``quick`` drops the largest and smallest GEMMs."""
    squares = (256, 512, 1024) if quick else (128, 256, 512, 1024, 2048)
    items = [_gemm(s, s, s) for s in squares]
    items += [_gemm(64, 784, 256, label="x@W"), _gemm(256, 784, 256, label="x@W"),
              _gemm(784, 64, 256, True, False, "x.T@dz"),
              _gemm(64, 256, 784, False, True, "dz@W.T")]
    three = ("fastnn", "numpy", "torch")
    for batch in (64, 256):
        items.append(Workload(f"dense fwd 784->256 relu b{batch}", "dense_fwd",
                              (batch, 784, 256), three))
    for batch in (64, 256):
        items.append(Workload(f"dense bwd 784->256 relu b{batch}", "dense_bwd",
                              (batch, 784, 256), three))
    for sizes, batch in (((784, 256, 128, 10), 64), ((784, 256, 128, 10), 256),
                         ((64, 64, 10), 32)):
        name = "-".join(map(str, sizes))
        items.append(Workload(f"train step {name} b{batch}", "train_step", (sizes, batch), three))
    items.append(Workload("predict 16-32-1 x1", "predict", ((16, 32, 1),), three))
    four = ("fastnn", "numpy", "torch", "sklearn")
    items.append(Workload("digits epoch 64-256-128-10 b32", "epoch", (), four))
    items.append(Workload("digits 20 epochs (+accuracy)", "digits20", (20,), four, slow=True))
    items += _bench_attention.workloads(Workload)
    items += _bench_activations.workloads(Workload)
    items += _bench_optimizers.workloads(Workload)
    items += _bench_augment.workloads(Workload)
    items += _bench_layers.workloads(Workload)
    items += _bench_more_layers.workloads(Workload)
    items += _bench_shared.workloads(Workload)
    return items


def workloads_of(*kinds, quick=False):
    """The workloads of the given kinds, in table order."""
    return [w for w in workloads(quick) if w.kind in kinds]


def cases_of(*kinds, quick=False):
    """(workload, engine) pairs for every workload of the given kinds and each of its engines."""
    return [(w, e) for w in workloads_of(*kinds, quick=quick) for e in w.engines]


# ---------------------------------------------------------------------------- engines and threads

def engine_available(engine):
    """True when ``engine`` can run here."""
    if engine == "fastnn":
        return fast_available()
    if engine == "numpy":
        return True
    if engine in ("torch", "sklearn"):
        return importlib.util.find_spec(engine) is not None
    raise ValueError(f"engine must be one of {ENGINES}. Received: engine={V._describe(engine)}")


def _torch():
    import torch
    return torch


@contextlib.contextmanager
def threads(n):
    """Run the block with ``n`` threads in fastnn, NumPy's BLAS (threadpoolctl) and torch."""
    previous = fnn.get_num_threads()
    torch = _torch() if engine_available("torch") else None
    torch_previous = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as stack:
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=n))
        fnn.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            fnn.set_num_threads(previous)
            if torch is not None:
                torch.set_num_threads(torch_previous)


# ---------------------------------------------------------------------------- builders

def build(workload, engine):
    """Set up ``workload`` for ``engine``; returns a Case. Raises RuntimeError when the
    engine is not available here."""
    if engine not in workload.engines:
        raise ValueError(f"workload {workload.key!r} has no {engine!r} version")
    if not engine_available(engine):
        raise RuntimeError(f"engine {engine!r} is not available (not installed or not built)")
    builder = _BUILDERS[workload.kind]
    return builder(workload, engine, np.random.default_rng(0))


def _backend_of(engine):
    return get_backend("fast" if engine == "fastnn" else "numpy")


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(DTYPE)


def _build_gemm(w, engine, rng):
    m, k, n, trans_a, trans_b = w.params
    a = _randn(rng, k, m) if trans_a else _randn(rng, m, k)
    b = _randn(rng, n, k) if trans_b else _randn(rng, k, n)
    out = np.empty((m, n), dtype=DTYPE)
    if engine == "fastnn":
        mm = _backend_of(engine).matmul
        return Case(w, engine, lambda: mm(a, b, out, trans_a, trans_b), keep=[a, b, out])
    if engine == "numpy":
        opa, opb = (a.T if trans_a else a), (b.T if trans_b else b)
        return Case(w, engine, lambda: np.matmul(opa, opb, out=out), keep=[a, b, out])
    torch = _torch()
    ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
    ta, tb = (ta.t() if trans_a else ta), (tb.t() if trans_b else tb)
    return Case(w, engine, lambda: torch.mm(ta, tb, out=tout), keep=[a, b, out])


def _dense_arrays(rng, batch, fan_in, units):
    x = _randn(rng, batch, fan_in)
    W = (_randn(rng, fan_in, units) * np.sqrt(2.0 / fan_in)).astype(DTYPE)
    b = (_randn(rng, units) * 0.1).astype(DTYPE)
    return x, W, b


def _build_dense_fwd(w, engine, rng):
    batch, fan_in, units = w.params
    x, W, b = _dense_arrays(rng, batch, fan_in, units)
    out = np.empty((batch, units), dtype=DTYPE)
    if engine in ("fastnn", "numpy"):
        fwd = _backend_of(engine).dense_forward
        return Case(w, engine, lambda: fwd(x, W, b, A.RELU, 0.0, out), keep=[x, W, b, out])
    torch = _torch()
    F = torch.nn.functional
    tx, tb = torch.from_numpy(x), torch.from_numpy(b)
    tw = torch.from_numpy(np.ascontiguousarray(W.T))     # torch's (out, in) layout
    return Case(w, engine, lambda: torch.relu_(F.linear(tx, tw, tb)), keep=[x, W, b])


def _build_dense_bwd(w, engine, rng):
    """The backward of a hidden ReLU layer: dz, dW, db and dx (explicit kernels, no autograd)."""
    batch, fan_in, units = w.params
    x, W, b = _dense_arrays(rng, batch, fan_in, units)
    y = np.maximum(x @ W + b, 0).astype(DTYPE)
    dy = _randn(rng, batch, units)
    dz, dW, db = np.empty_like(dy), np.empty_like(W), np.empty_like(b)
    dx = np.empty_like(x)
    keep = [x, W, y, dy, dz, dW, db, dx]
    if engine in ("fastnn", "numpy"):
        bwd = _backend_of(engine).dense_backward
        return Case(w, engine, lambda: bwd(x, W, y, dy, A.RELU, 0.0, dz, dW, db, dx), keep=keep)
    torch = _torch()
    tx, ty, tdy, tdz, tdw, tdb, tdx = (torch.from_numpy(t) for t in (x, y, dy, dz, dW, db, dx))
    tw = torch.from_numpy(np.ascontiguousarray(W.T))     # (units, fan_in)
    tdw_t = torch.empty(units, fan_in)                   # torch keeps dW in its own layout

    def step():
        torch.mul(tdy, ty > 0, out=tdz)
        torch.mm(tdz.t(), tx, out=tdw_t)
        torch.sum(tdz, 0, out=tdb)
        torch.mm(tdz, tw, out=tdx)

    return Case(w, engine, step, keep=keep)


def _fastnn_mlp(sizes, hidden, last, engine, seed=0):
    layers = [fnn.Dense(units, activation=hidden) for units in sizes[1:-1]]
    layers.append(fnn.Dense(sizes[-1], activation=last))
    return fnn.Sequential(layers, input_dim=sizes[0], seed=seed, dtype="float32",
                          backend="fast" if engine == "fastnn" else "numpy")


def _torch_mlp(sizes, last=None, seed=0):
    torch = _torch()
    torch.manual_seed(seed)
    nn, mods = torch.nn, []
    for fan_in, units in zip(sizes[:-1], sizes[1:]):
        mods += [nn.Linear(fan_in, units), nn.ReLU()]
    mods.pop()                                           # no ReLU after the output layer
    if last is not None:
        mods.append(last)
    return nn.Sequential(*mods)


def _torch_trainer(net, lr, momentum):
    torch = _torch()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    criterion = torch.nn.CrossEntropyLoss()

    def step(tx, ty):
        opt.zero_grad()
        loss = criterion(net(tx), ty)
        loss.backward()
        opt.step()
        return loss

    return step, opt


def _restarting(step, restart, every):
    """``step``, with ``restart()`` before every ``every``-th call (its cost is amortised).

    Trained for thousands of steps on one batch, a network drives its loss to zero and the
    momentum of dead ReLU units decays into subnormal floats, which make every engine's
    arithmetic many times slower. Restarting from the initial weights keeps each timed step
    representative of early training.
    """
    count = [0]

    def run():
        if count[0] == every:
            restart()
            count[0] = 0
        count[0] += 1
        return step()

    def loop(number):
        """``run()`` ``number`` times -- the same calls and restarts -- without a Python frame
        of its own around each call (the timer uses it: harness overhead is not the engine's)."""
        left = number
        while left:
            if count[0] == every:
                restart()
                count[0] = 0
            chunk = min(left, every - count[0])
            for _ in itertools.repeat(None, chunk):
                step()
            count[0] += chunk
            left -= chunk

    run.loop = loop
    return run


def _fastnn_restart(model):
    weights = model.get_weights()

    def restart():
        model.set_weights(weights)
        for buffer in model.optimizer.state().values():
            buffer[...] = 0

    return restart


def _torch_restart(net, opt):
    state = {k: v.clone() for k, v in net.state_dict().items()}

    def restart():
        net.load_state_dict(state)
        opt.state.clear()               # momentum buffers are created again at the next step

    return restart


def _build_train_step(w, engine, rng):
    sizes, batch = w.params
    x = rng.random((batch, sizes[0])).astype(DTYPE)
    y = rng.integers(0, sizes[-1], batch)
    if engine in ("fastnn", "numpy"):
        model = _fastnn_mlp(sizes, "relu", "softmax", engine)
        model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.01, momentum=0.9))
        # functools.partial rather than a lambda: one Python frame less per call of the timed
        # loop, for every engine (it is harness overhead, not the engine's)
        run = _restarting(functools.partial(model.train_on_batch, x, y),
                          _fastnn_restart(model), TRAIN_RESTART)
        return Case(w, engine, run, keep=[model, x, y])
    torch = _torch()
    net = _torch_mlp(sizes)
    step, opt = _torch_trainer(net, lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    run = _restarting(functools.partial(step, tx, ty), _torch_restart(net, opt), TRAIN_RESTART)
    return Case(w, engine, run, keep=[x, y])


def _build_predict(w, engine, rng):
    (sizes,) = w.params
    x = rng.random((1, sizes[0])).astype(DTYPE)
    if engine in ("fastnn", "numpy"):
        model = _fastnn_mlp(sizes, "relu", "sigmoid", engine)
        return Case(w, engine, functools.partial(model.predict, x), keep=[model, x])
    torch = _torch()
    net = _torch_mlp(sizes, last=torch.nn.Sigmoid()).eval()
    tx = torch.from_numpy(x)

    def predict():
        with torch.inference_mode():
            return net(tx)

    return Case(w, engine, predict, keep=[x])


# ---------------------------------------------------------------------------- the digits

DIGITS_SIZES = (64, 256, 128, 10)
DIGITS_LR, DIGITS_MOMENTUM, DIGITS_BATCH = 0.05, 0.9, 32


def digits_split():
    """The bundled digits scaled to [0, 1], split 75/25 (stratified, seed 0), X as float32."""
    X, y = fnn.datasets.load_digits()
    X_train, X_test, y_train, y_test = fnn.datasets.train_test_split(X / 16.0, y,
                                                                     test_size=0.25, seed=0)
    return X_train.astype(DTYPE), X_test.astype(DTYPE), y_train, y_test


def sklearn_mlp(epochs):
    """scikit-learn's MLPClassifier configured like fastnn's digits model."""
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=DIGITS_SIZES[1:-1], activation="relu", solver="sgd",
                         learning_rate_init=DIGITS_LR, momentum=DIGITS_MOMENTUM,
                         nesterovs_momentum=False, batch_size=DIGITS_BATCH, max_iter=epochs,
                         alpha=0.0, tol=0, n_iter_no_change=1000, shuffle=True, random_state=0)


def _digits_fastnn(engine, seed=0):
    model = _fastnn_mlp(DIGITS_SIZES, "relu", "softmax", engine, seed=seed)
    model.compile(loss="cross_entropy",
                  optimizer=fnn.SGD(lr=DIGITS_LR, momentum=DIGITS_MOMENTUM))
    return model


def _torch_epochs(step, tX, ty, epochs):
    torch = _torch()
    n = tX.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n)
        Xs, ys = tX[order], ty[order]
        for start in range(0, n, DIGITS_BATCH):
            step(Xs[start:start + DIGITS_BATCH], ys[start:start + DIGITS_BATCH])


def _build_epoch(w, engine, rng):
    """One more epoch of training on the digits, restarting every few epochs."""
    X_train, _, y_train, _ = digits_split()
    if engine in ("fastnn", "numpy"):
        model = _digits_fastnn(engine)
        step = lambda: model.fit(X_train, y_train, epochs=1, batch_size=DIGITS_BATCH, verbose=0)
        run = _restarting(step, _fastnn_restart(model), EPOCH_RESTART)
        return Case(w, engine, run, keep=[model])
    if engine == "sklearn":
        from sklearn.exceptions import ConvergenceWarning
        state = {"clf": sklearn_mlp(1)}

        def step():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                state["clf"].partial_fit(X_train, y_train, classes=np.arange(10))

        step()                          # the first call also initialises the weights
        initial = copy.deepcopy(state["clf"])
        run = _restarting(step, lambda: state.update(clf=copy.deepcopy(initial)), EPOCH_RESTART)
        return Case(w, engine, run, keep=[state])
    torch = _torch()
    torch.manual_seed(0)
    net = _torch_mlp(DIGITS_SIZES)
    trainer, opt = _torch_trainer(net, DIGITS_LR, DIGITS_MOMENTUM)
    tX, ty = torch.from_numpy(X_train), torch.from_numpy(y_train)
    run = _restarting(lambda: _torch_epochs(trainer, tX, ty, 1), _torch_restart(net, opt),
                      EPOCH_RESTART)
    return Case(w, engine, run, keep=[net])


def _build_digits20(w, engine, rng):
    """Train a fresh model for ``epochs`` epochs; ``score()`` is its test accuracy."""
    (epochs,) = w.params
    X_train, X_test, y_train, y_test = digits_split()
    state = {}
    if engine in ("fastnn", "numpy"):
        def run():
            model = _digits_fastnn(engine)
            model.fit(X_train, y_train, epochs=epochs, batch_size=DIGITS_BATCH, verbose=0)
            state["model"] = model

        def score():
            return float(np.mean(state["model"].predict(X_test).argmax(axis=1) == y_test))
    elif engine == "sklearn":
        from sklearn.exceptions import ConvergenceWarning

        def run():
            clf = sklearn_mlp(epochs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X_train, y_train)
            state["model"] = clf

        def score():
            return float(np.mean(state["model"].predict(X_test) == y_test))
    else:
        torch = _torch()
        tX, ty, tXt = (torch.from_numpy(a) for a in (X_train, y_train, X_test))

        def run():
            torch.manual_seed(0)
            net = _torch_mlp(DIGITS_SIZES)
            _torch_epochs(_torch_trainer(net, DIGITS_LR, DIGITS_MOMENTUM)[0], tX, ty, epochs)
            state["model"] = net

        def score():
            with torch.inference_mode():
                predicted = state["model"](tXt).argmax(dim=1).numpy()
            return float(np.mean(predicted == y_test))
    return Case(w, engine, run, score=score)


def _build_attention(w, engine, rng):
    return _bench_attention.build(w, engine, rng, Case)


def _build_activation(w, engine, rng):
    return _bench_activations.build(w, engine, rng, Case)


def _build_optimizer(w, engine, rng):
    return _bench_optimizers.build(w, engine, rng, Case)


def _build_augment(w, engine, rng):
    return _bench_augment.build(w, engine, rng, Case)


def _build_layers(w, engine, rng):
    return _bench_layers.build(w, engine, rng, Case)


def _build_more_layers(w, engine, rng):
    return _bench_more_layers.build(w, engine, rng, Case)


def _build_shared(w, engine, rng):
    return _bench_shared.build(w, engine, rng, Case)


_BUILDERS = {"gemm": _build_gemm, "dense_fwd": _build_dense_fwd, "dense_bwd": _build_dense_bwd,
             "train_step": _build_train_step, "predict": _build_predict, "epoch": _build_epoch,
             "digits20": _build_digits20, "attention": _build_attention,
             "activation": _build_activation, "optimizer": _build_optimizer,
             "augment": _build_augment, "layers": _build_layers,
             "more_layers": _build_more_layers, _bench_shared.KIND: _build_shared}
