"""What tests/test_distributed_multi_output.py runs under ``mpiexec -n 2``:

    mpiexec -n 2 python tests/_distributed_multi_output_worker.py OUTDIR

``fastnn.distributed.fit`` of a model with two outputs (the model and data below, importable
without mpi4py); each rank writes its weights and History to OUTDIR/rank<r>.npz and .json.
Nothing here computes an expected value.
"""

import json
import os
import sys

import numpy as np

import fastnn as fnn

N = 83               # batch_size 16: 5 batches of 16 (8 + 8 rows), then 3 (2 + 1)


def data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N, 6))
    ya = (X[:, :3] @ rng.standard_normal((3, 3))).argmax(axis=1)
    yb = np.tanh(X[:, 3:5])
    return X, ya, yb, rng.uniform(0.0, 2.0, N)


def model(with_loss_b=True):
    """Input 6 -> Dense 8 tanh ('hid') -> 'cls' Dense 3 softmax, 'reg' Dense 2; SGD momentum;
    per-output metrics and loss weights."""
    inp = fnn.Input((6,))
    h = fnn.Dense(8, activation="tanh", name="hid")(inp)
    a = fnn.Dense(3, activation="softmax", name="cls")(h)
    b = fnn.Dense(2, name="reg")(h)
    net = fnn.Model(inp, [a, b], seed=7, dtype="float64")
    return net.compile(loss={"cls": "sparse_categorical_crossentropy",
                             "reg": "mse" if with_loss_b else None},
                       loss_weights={"reg": 0.7}, optimizer=fnn.SGD(lr=0.1, momentum=0.9),
                       metrics={"cls": ["accuracy"], "reg": ["mae"]})


def fit_args():
    X, ya, yb, w = data()
    return dict(x=X, y={"cls": ya, "reg": yb}, epochs=2, batch_size=16, verbose=0,
                validation_split=0.2, sample_weight={"cls": w})


def main(outdir):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    net = model()
    args = fit_args()
    history = fnn.distributed.fit(net, args.pop("x"), args.pop("y"), comm=comm, **args)
    np.savez(os.path.join(outdir, f"rank{rank}.npz"), *net.get_weights())
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump(history.history, f)


if __name__ == "__main__":
    main(sys.argv[1])
