"""``fastnn.distributed.fit`` of a model with several outputs: the per-output losses and
metrics in the History (training and validation) and the weights as ``model.fit`` gives them,
on one rank in this process and on two under mpiexec (tests/_distributed_multi_output_worker.py).
"""

import json
import pathlib

import numpy as np
import pytest

import fastnn as fnn

from _distributed_multi_output_worker import fit_args, model

WORKER = pathlib.Path(__file__).parent / "_distributed_multi_output_worker.py"
KEYS = ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae"]


class _OneRank:
    """A communicator of one rank (tests/test_distributed.py's)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def allgather(self, obj):
        return [obj]

    def bcast(self, obj, root=0):
        return obj

    def Bcast(self, buf, root=0):
        pass


def _history_close(got, want, rtol):
    assert sorted(got) == sorted(want) == sorted(KEYS + ["val_" + k for k in KEYS])
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-15, err_msg=key)


@pytest.mark.parametrize("with_loss_b", [True, False])
def test_one_rank_trains_as_fit(with_loss_b):
    """One rank: the same steps as fit (gradient weight 1), so the same weights to the bit;
    the logs' per-output sums are divided back (to ~1e-15)."""
    net, ref = model(with_loss_b), model(with_loss_b)
    args = fit_args()
    X, y = args.pop("x"), args.pop("y")
    history = fnn.distributed.fit(net, X, y, comm=_OneRank(), **args)
    want = ref.fit(X, y, **args)
    for a, b in zip(net.get_weights(), ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    if with_loss_b:
        _history_close(history.history, want.history, 1e-13)
    else:   # one trained output: no per-output loss keys (Keras), and 'reg' stays put
        assert sorted(history.history) == sorted(want.history)
        for key in want.history:
            np.testing.assert_allclose(history.history[key], want.history[key], rtol=1e-13)
        assert np.array_equal(net.get_weights()[4], model(False).get_weights()[4])


def test_two_ranks_train_as_one_process(tmp_path):
    from test_distributed import run_mpi
    status, out, err, _ = run_mpi(2, WORKER, tmp_path, timeout=300)
    assert status == 0, err[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [[z[f"arr_{i}"] for i in range(6)] for z in ranks]
    for a, b in zip(*weights):
        assert a.tobytes() == b.tobytes()                  # the same bits on every rank
    assert logs[0] == logs[1]
    ref = model()
    args = fit_args()
    want = ref.fit(args.pop("x"), args.pop("y"), **args)
    for got, expected in zip(weights[0], ref.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-14)
    _history_close(logs[0], want.history, 1e-11)


def test_one_rank_of_a_masked_output_beside_another_trains_as_fit():
    """A masked per-step output (Embedding(mask_zero=True) -> Dense softmax) beside an
    unmasked one: the masked loss and metrics, training and validation, as fit's."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 8, (40, 5)).astype(np.float64)
    for i, length in enumerate(rng.integers(1, 6, 40)):
        ids[i, length:] = 0
    tags, summary = rng.integers(0, 3, (40, 5)), rng.standard_normal((40, 2))

    def net():
        inp = fnn.Input((5,))
        emb = fnn.Embedding(8, 4, mask_zero=True)(inp)
        a = fnn.Dense(3, activation="softmax", name="tags")(emb)
        b = fnn.Dense(2, name="summary")(fnn.GlobalAveragePooling1D()(emb))
        return fnn.Model(inp, [a, b], seed=2, dtype="float64").compile(
            ["sparse_categorical_crossentropy", "mse"], fnn.Adam(0.01),
            metrics=[["accuracy"], ["mae"]])

    model, ref = net(), net()
    args = dict(epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    history = fnn.distributed.fit(model, ids, [tags, summary], comm=_OneRank(), **args)
    want = ref.fit(ids, [tags, summary], **args)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert sorted(history.history) == sorted(want.history)
    for key in want.history:
        np.testing.assert_allclose(history.history[key], want.history[key], rtol=1e-13,
                                   err_msg=key)
