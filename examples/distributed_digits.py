"""Hand-written digits trained over MPI:  mpiexec -n 2 python examples/distributed_digits.py

digits.py's 64-256-128-10 network with one line changed: ``model.fit(X, y, ...)`` becomes
``fnn.distributed.fit(model, X, y, ...)``. Every rank runs this script with the same data;
each computes the gradients of its part of every batch of 32 and the ranks add them up, so
all end with the same weights. Rank 0 prints the progress and the result.
Needs ``pip install "fastnn[mpi]"``.
"""

import argparse
import hashlib

from mpi4py import MPI

import fastnn as fnn
from fastnn.datasets import load_digits, train_test_split

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()

comm = MPI.COMM_WORLD
X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, seed=0)
model = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(128, activation="relu"),
                        fnn.Dense(10, activation="softmax")], input_dim=64, seed=0)
model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9),
              metrics=["accuracy"])
history = fnn.distributed.fit(model, X_train, y_train, epochs=args.epochs, batch_size=32,
                              validation_data=(X_test, y_test), verbose=2)

digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
digests = comm.gather(digest)
if comm.Get_rank() == 0:
    same = len(set(digests)) == 1
    ranks = comm.Get_size()
    print(f"{'the same' if same else 'DIFFERENT'} weights on all {ranks} rank"
          f"{'s' if ranks > 1 else ''}")
    print("test accuracy:", model.evaluate(X_test, y_test)["accuracy"])
    assert same
    assert history.history["val_accuracy"][-1] > (0.95 if args.epochs >= 10 else 0.85)
