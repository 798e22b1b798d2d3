"""What tests/test_distributed.py runs under ``mpiexec -n 2`` (and the models and data it
compares with single-process training, importable without mpi4py).

    mpiexec -n 2 python tests/_distributed_worker.py train OUTDIR 2
    mpiexec -n 2 python tests/_distributed_worker.py raise OUTDIR 2
    mpiexec -n 3 python tests/_distributed_worker.py sum OUTDIR 3

Each rank writes what it ends with (weights, histories, errors) to OUTDIR/<case>-rank<r>.npz
or .json; the test reads them. Nothing here computes an expected value.
"""

import json
import os
import sys

import numpy as np

import fastnn as fnn

N_DENSE = 203        # batch_size 25: 8 batches of 25 (13 + 12 rows), then 3 (2 + 1)


def dense_data(dtype="float64"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_DENSE, 12)).astype(dtype)
    y = (X[:, :5] @ rng.standard_normal((5, 4))).argmax(axis=1)
    return X, y


def dense_model(dtype="float64", lr=0.1):
    model = fnn.Sequential([fnn.Dense(16, activation="tanh"), fnn.Dense(4, activation="softmax")],
                           input_dim=12, seed=3, dtype=dtype)
    return model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=lr, momentum=0.9),
                         metrics=["accuracy"])


def diverging_model():
    """A linear regression whose learning rate is far too large: the weights blow up."""
    model = fnn.Sequential([fnn.Dense(1)], input_dim=12, seed=3, dtype="float64")
    return model.compile(loss="mse", optimizer=fnn.SGD(lr=10.0))


def schedule(epoch):
    return 0.1 * 0.5 ** epoch


class StopAt(fnn.Callback):
    """Stops training after batch ``batch`` of epoch ``epoch`` (a batch-level decision)."""

    def __init__(self, epoch, batch):
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.model.stop_training = True


class Record(fnn.Callback):
    """Appends each hook it sees to OUTDIR/callbacks-rank<r>.txt."""

    def __init__(self, path):
        self.path = path

    def _log(self, text):
        with open(self.path, "a") as f:
            f.write(text + "\n")

    def on_train_begin(self, logs=None):
        self._log("train_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._log(f"epoch_end {epoch}")


def layers_data():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 20, size=(70, 8)).astype(np.float64)
    y = (X[:, 0] + X[:, 3] > 19).astype(np.int64) + (X[:, 5] > 14)
    return X, y


def layers_model():
    """Embedding, Conv1D, TransformerBlock, LSTM, Dense (with an L2 penalty), on the general
    path."""
    model = fnn.Sequential([fnn.Embedding(20, 8), fnn.Conv1D(8, 3, padding="same",
                                                             activation="relu"),
                            fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=16),
                            fnn.LSTM(6),
                            fnn.Dense(3, activation="softmax",
                                      kernel_regularizer=fnn.regularizers.l2(1e-3))],
                           input_shape=(8,), seed=5, dtype="float64")
    return model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))


def bn_dropout_model():
    model = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.BatchNormalization(),
                            fnn.Dropout(0.3), fnn.Dense(4, activation="softmax")],
                           input_dim=12, seed=4, dtype="float32")
    return model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=0.01))


def sharded_parts(ranks):
    """120 rows, split between the ranks (rank r: rows r::ranks)."""
    X, y = dense_data()
    X, y = X[:120], y[:120]
    return [(X[r::ranks], y[r::ranks]) for r in range(ranks)]


def flat(model):
    return np.concatenate([w.ravel() for w in model.get_weights()])


def _save(out, case, rank, model, history, **extra):
    np.savez(os.path.join(out, f"{case}-rank{rank}.npz"), weights=flat(model),
             iterations=model.optimizer.iterations, **extra)
    with open(os.path.join(out, f"{case}-rank{rank}.json"), "w") as f:
        json.dump({"history": history.history, "epoch": history.epoch,
                   "steps": len(history.allreduce_seconds)}, f)


def _refusals(out, rank):
    """Arguments one rank gets wrong: every rank raises, none hangs."""
    X, y = dense_data()
    errors = {}
    cases = {"options": dict(batch_size=25 if rank == 0 else 16),
             "bad_x": dict(X=np.where(np.arange(12) == 3, np.nan, X) if rank == 1 else X),
             "diverged": dict(model=diverging_model(), X=X * 1e3, epochs=20, y=y.astype(float))}
    cases["terminate"] = {**cases["diverged"], "model": diverging_model(),
                          "callbacks": [fnn.TerminateOnNaN()]}
    for name, kw in cases.items():
        model = kw.pop("model", None) or dense_model()
        try:
            history = fnn.distributed.fit(model, kw.pop("X", X), kw.pop("y", y), verbose=0,
                                          **{"batch_size": 25, "epochs": 2, **kw})
            errors[name] = {"epoch": history.epoch, "iterations": model.optimizer.iterations,
                            "weights": flat(model).tolist()}
        except Exception as exc:
            errors[name] = [type(exc).__name__, str(exc)]
    with open(os.path.join(out, f"refusals-rank{rank}.json"), "w") as f:
        json.dump(errors, f)


def train(out, rank, ranks):
    X, y = dense_data()
    for dtype in ("float64", "float32"):
        Xd = X.astype(dtype)
        model = dense_model(dtype)
        callbacks = [fnn.LearningRateScheduler(schedule), Record(
            os.path.join(out, f"callbacks-rank{rank}.txt")),
            fnn.ModelCheckpoint(os.path.join(out, f"ckpt-rank{rank}-{{epoch}}.fnn"))]
        history = fnn.distributed.fit(model, Xd, y, epochs=3, batch_size=25,
                                      verbose=2 if dtype == "float64" else 0,
                                      validation_split=0.1, class_weight={0: 2.0},
                                      callbacks=callbacks if dtype == "float64" else
                                      callbacks[:1])
        _save(out, f"dense-{dtype}", rank, model, history)
    model = dense_model()
    history = fnn.distributed.fit(model, X, y, epochs=3, batch_size=25, verbose=0,
                                  callbacks=[StopAt(1, 3)])
    _save(out, "stop", rank, model, history)
    Xl, yl = layers_data()
    model = layers_model()
    history = fnn.distributed.fit(model, Xl, yl, epochs=2, batch_size=15, verbose=0,
                                  validation_data=(Xl[:20], yl[:20]))
    _save(out, "layers", rank, model, history)
    model = bn_dropout_model()
    history = fnn.distributed.fit(model, X.astype("float32"), y, epochs=2, batch_size=32,
                                  verbose=0)
    drops = [(d._mask_seed, d.calls) for d in model.layers if isinstance(d, fnn.layers.Dropout)]
    _save(out, "bn_dropout", rank, model, history, dropout=np.array(drops, dtype=np.uint64))
    Xs, ys = sharded_parts(ranks)[rank]
    model = dense_model()
    history = fnn.distributed.fit(model, Xs, ys, epochs=2, batch_size=20, shuffle=False,
                                  sharded=True, verbose=0)
    _save(out, "sharded", rank, model, history)
    part = slice(0, 61) if rank == 0 else slice(61, 111)         # unequal parts, shuffled
    model = dense_model()
    history = fnn.distributed.fit(model, X[part], y[part], epochs=2, batch_size=20,
                                  sharded=True, verbose=0)
    _save(out, "sharded_shuffled", rank, model, history)
    _refusals(out, rank)


class FailOnRank1:
    """A metric that raises on rank 1 at its 3rd call (mid-training)."""
    __name__ = "fail_on_rank1"

    def __init__(self, rank):
        self.rank, self.calls = rank, 0

    def __call__(self, y_true, y_pred):
        self.calls += 1
        if self.rank == 1 and self.calls == 3:
            raise ValueError("rank 1 fails on purpose")
        return 0.0


def fail(out, rank, ranks):
    X, y = dense_data()
    model = dense_model()
    model.compile(loss="cross_entropy", optimizer="sgd", metrics=[FailOnRank1(rank)])
    fnn.distributed.fit(model, X, y, epochs=50, batch_size=25, verbose=0)
    with open(os.path.join(out, f"finished-rank{rank}.txt"), "w") as f:
        f.write("not aborted\n")


def fixed_order_sum(out, rank, ranks):
    from mpi4py import MPI

    from fastnn.distributed._comm import FixedOrderSum
    reducer = FixedOrderSum(MPI.COMM_WORLD, 1001, np.float32)
    reducer.buffer[:] = np.random.default_rng(rank).standard_normal(1001) * 10.0 ** rank
    np.save(os.path.join(out, f"sum-rank{rank}.npy"), reducer())


if __name__ == "__main__":
    from mpi4py import MPI
    what, out, ranks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    comm = MPI.COMM_WORLD
    if comm.Get_size() != ranks:
        sys.exit(f"started as one of {ranks} ranks but MPI sees {comm.Get_size()}: the mpiexec "
                 f"used is not the launcher of the MPI library mpi4py loads "
                 f"({MPI.Get_library_version().splitlines()[0]})")
    {"train": train, "raise": fail, "sum": fixed_order_sum}[what](
        out, comm.Get_rank(), comm.Get_size())
