"""fastnn.distributed: training over MPI, checked under ``mpiexec -n 2`` on this machine.

The ranks run tests/_distributed_worker.py and write what they end with; the references are
single-process ``fit`` runs here, on the same global batches. Each launch covers several
things, to keep the whole file to a few seconds.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn as fnn
import _distributed_worker as W

ROOT = pathlib.Path(__file__).parent.parent
WORKER = pathlib.Path(__file__).parent / "_distributed_worker.py"


def _mpiexec():
    pytest.importorskip("mpi4py")
    folder = pathlib.Path(sys.executable).parent          # the mpich wheel's, in a venv
    for name in ("mpiexec", "mpirun"):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    assert found, "mpi4py is installed but no mpiexec was found: pip install mpich"
    return found


def run_mpi(ranks, *args, timeout=60):
    """``mpiexec -n ranks python args...``: (exit status, stdout, stderr, seconds). One thread
    per rank; the environment lets Open MPI run as root and oversubscribe (MPICH needs
    nothing). On timeout the whole process group is killed, then the test fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
           "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
           # the ranks import the fastnn this test imports
           "PYTHONPATH": os.pathsep.join([str(pathlib.Path(fnn.__file__).parent.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    proc = subprocess.Popen([_mpiexec(), "-n", str(ranks), sys.executable, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {ranks} did not finish in {timeout} s (a rank hangs?)\n"
                    f"{out[-2000:]}\n{err[-2000:]}")
    return proc.returncode, out, err, time.perf_counter() - started


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One launch of the ``train`` scenario: its output directory and stdout."""
    out = tmp_path_factory.mktemp("distributed")
    code, stdout, stderr, _ = run_mpi(2, WORKER, "train", out, 2)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    return out, stdout


def _ranks(out, case):
    arrays = [np.load(out / f"{case}-rank{r}.npz") for r in range(2)]
    logs = [json.loads((out / f"{case}-rank{r}.json").read_text()) for r in range(2)]
    return arrays, logs


def _same_on_both(arrays, logs):
    """Every rank holds the same weights to the bit, and the same History."""
    assert np.array_equal(arrays[0]["weights"], arrays[1]["weights"])
    assert arrays[0]["weights"].tobytes() == arrays[1]["weights"].tobytes()
    assert int(arrays[0]["iterations"]) == int(arrays[1]["iterations"])
    assert logs[0]["history"] == logs[1]["history"] and logs[0]["epoch"] == logs[1]["epoch"]


def _close(got, want, rtol):
    """Within rtol of the reference, relative to the largest weight (weights near 0 too)."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def _history_close(got, want, rtol):
    assert sorted(got) == sorted(want.history)
    for key, values in want.history.items():
        np.testing.assert_allclose(got[key], values, rtol=rtol, err_msg=key)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_two_ranks_train_as_one_process_on_the_same_global_batches(trained, dtype, rtol):
    """Shuffled batches of 25 (13 + 12 rows; the last one 8: 4 + 4), class weights, a
    validation split, a learning-rate schedule on rank 0 (float64: also a checkpoint and a
    recording callback): the same weights on both ranks, those of single-process fit."""
    out, stdout = trained
    arrays, logs = _ranks(out, f"dense-{dtype}")
    _same_on_both(arrays, logs)
    X, y = W.dense_data(dtype)
    ref = W.dense_model(dtype)
    history = ref.fit(X, y, epochs=3, batch_size=25, verbose=0, validation_split=0.1,
                      class_weight={0: 2.0}, callbacks=[fnn.LearningRateScheduler(W.schedule)])
    _close(arrays[0]["weights"], W.flat(ref), rtol)
    assert int(arrays[0]["iterations"]) == ref.optimizer.iterations == 3 * 8
    _history_close(logs[0]["history"], history, rtol)
    assert logs[0]["steps"] == 24
    if dtype == "float64":
        # callbacks and progress output ran on rank 0 only; checkpoints were written by it
        assert (out / "callbacks-rank0.txt").read_text().split("\n")[:4] == [
            "train_begin", "epoch_end 0", "epoch_end 1", "epoch_end 2"]
        assert not (out / "callbacks-rank1.txt").exists()
        assert sorted(p.name for p in out.glob("ckpt-*")) == [
            f"ckpt-rank0-{e}.fnn" for e in (1, 2, 3)]
        saved = fnn.load(out / "ckpt-rank0-3.fnn")
        assert np.array_equal(W.flat(saved), arrays[0]["weights"])
        assert stdout.count("Epoch 1/3") == 1 and stdout.count("Epoch 3/3") == 1


def test_a_batch_callback_on_rank_0_stops_every_rank_where_fit_stops(trained):
    out, _ = trained
    arrays, logs = _ranks(out, "stop")
    _same_on_both(arrays, logs)
    X, y = W.dense_data()
    ref = W.dense_model()
    history = ref.fit(X, y, epochs=3, batch_size=25, verbose=0, callbacks=[W.StopAt(1, 3)])
    assert logs[0]["epoch"] == history.epoch == [0, 1]
    assert int(arrays[0]["iterations"]) == ref.optimizer.iterations == 9 + 4
    _close(arrays[0]["weights"], W.flat(ref), 1e-12)
    _history_close(logs[0]["history"], history, 1e-12)


def test_every_layer_kind_trains_as_in_one_process(trained):
    """Embedding, Conv1D, TransformerBlock, LSTM, a regularised Dense; float64. (SGD: Adam
    would turn the rounding noise of gradients that are 0 in exact arithmetic, such as the
    attention key bias's, into steps of lr * 1e-10, and different noise is all this compares.)"""
    out, _ = trained
    arrays, logs = _ranks(out, "layers")
    _same_on_both(arrays, logs)
    X, y = W.layers_data()
    ref = W.layers_model()
    history = ref.fit(X, y, epochs=2, batch_size=15, verbose=0, validation_data=(X[:20], y[:20]))
    _close(arrays[0]["weights"], W.flat(ref), 1e-12)
    _history_close(logs[0]["history"], history, 1e-12)


def test_batch_norm_statistics_and_dropout_counters_stay_equal_on_every_rank(trained):
    out, _ = trained
    arrays, logs = _ranks(out, "bn_dropout")
    _same_on_both(arrays, logs)
    fresh = W.bn_dropout_model()
    assert np.isfinite(arrays[0]["weights"]).all()
    # the moving statistics moved (the forward passes updated them) and stayed equal
    moving_mean = fresh.layers[1].get_weights()[2].size
    start = sum(w.size for w in fresh.get_weights()[:4])
    assert np.abs(arrays[0]["weights"][start:start + moving_mean]).max() > 0
    # the model's own mask seed is back on both ranks; each forward pass counted once
    seed = fresh.layers[2]._mask_seed
    steps = logs[0]["steps"]
    assert steps == 2 * 7
    for a in arrays:
        assert a["dropout"].tolist() == [[seed, steps]]


def test_sharded_ranks_train_on_the_union_of_their_parts(trained):
    """sharded=True, no shuffle: global batch k is rank 0's rows 10k..10k+9, then rank 1's;
    single-process fit over those batches in that order is the reference."""
    out, _ = trained
    arrays, logs = _ranks(out, "sharded")
    _same_on_both(arrays, logs)
    parts = W.sharded_parts(2)
    X = np.concatenate([p[0][k:k + 10] for k in range(0, 60, 10) for p in parts])
    y = np.concatenate([p[1][k:k + 10] for k in range(0, 60, 10) for p in parts])
    ref = W.dense_model()
    history = ref.fit(X, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    _close(arrays[0]["weights"], W.flat(ref), 1e-12)
    _history_close(logs[0]["history"], history, 1e-12)
    # unequal parts (61 and 50 rows), shuffled: 7 steps an epoch, the same bits on both
    arrays, logs = _ranks(out, "sharded_shuffled")
    _same_on_both(arrays, logs)
    assert logs[0]["steps"] == 14 and np.isfinite(logs[0]["history"]["loss"]).all()


def test_refusals_and_divergence_raise_on_every_rank(trained):
    out, _ = trained
    errors = [json.loads((out / f"refusals-rank{r}.json").read_text()) for r in range(2)]
    # different options: the same ValueError on both
    assert errors[0]["options"] == errors[1]["options"]
    assert errors[0]["options"][0] == "ValueError" and "rank 1 differs" in errors[0]["options"][1]
    # a bad array on rank 1: fit's own message there, rank 0 names rank 1
    assert errors[1]["bad_x"][0] == "ValueError" and "X must be finite" in errors[1]["bad_x"][1]
    assert errors[0]["bad_x"][0] == "RuntimeError"
    assert "rank 1: ValueError: X must be finite" in errors[0]["bad_x"][1]
    # divergence: FloatingPointError on both, where single-process fit raises it
    X, y = W.dense_data()
    with pytest.raises(FloatingPointError) as single:
        W.diverging_model().fit(X * 1e3, y.astype(float), epochs=20, batch_size=25, verbose=0)
    assert errors[0]["diverged"] == errors[1]["diverged"]
    assert errors[0]["diverged"][0] == "FloatingPointError"
    assert errors[0]["diverged"][1].split(":")[0] == str(single.value).split(":")[0]
    # with TerminateOnNaN (on rank 0), every rank stops there instead, with the same weights
    ref = W.diverging_model()
    history = ref.fit(X * 1e3, y.astype(float), epochs=20, batch_size=25, verbose=0,
                      callbacks=[fnn.TerminateOnNaN()])
    assert errors[0]["terminate"] == errors[1]["terminate"]
    assert errors[0]["terminate"]["epoch"] == history.epoch
    assert errors[0]["terminate"]["iterations"] == ref.optimizer.iterations


def test_a_rank_that_raises_aborts_the_job_instead_of_hanging(tmp_path):
    code, stdout, stderr, seconds = run_mpi(2, WORKER, "raise", tmp_path, 2, timeout=60)
    assert code != 0, stdout[-2000:] + stderr[-2000:]
    assert "rank 1 of 2 raised ValueError: rank 1 fails on purpose" in stderr, stderr[-3000:]
    assert "MPI_Abort" in stderr
    assert not list(tmp_path.glob("finished-*"))
    assert seconds < 60


def test_the_sum_is_added_in_rank_order_and_is_the_same_bits_on_three_ranks(tmp_path):
    """FixedOrderSum on 3 ranks (1001 float32 values, not a multiple of 3): every rank gets
    ((b0 + b1) + b2), the bits of that order, computed here."""
    code, stdout, stderr, _ = run_mpi(3, WORKER, "sum", tmp_path, 3)
    assert code == 0, stdout[-2000:] + stderr[-2000:]
    got = [np.load(tmp_path / f"sum-rank{r}.npy") for r in range(3)]
    parts = [(np.random.default_rng(r).standard_normal(1001) * 10.0 ** r).astype(np.float32)
             for r in range(3)]
    want = (parts[0] + parts[1]) + parts[2]
    for g in got:
        assert g.dtype == np.float32 and g.tobytes() == want.tobytes()


def test_the_distributed_digits_example_runs_on_two_ranks(tmp_path):
    code, stdout, stderr, _ = run_mpi(2, ROOT / "examples" / "distributed_digits.py",
                                      "--epochs", "3", timeout=120)
    assert code == 0, stdout[-2000:] + stderr[-2000:]
    assert "the same weights on all 2 ranks" in stdout
    assert stdout.count("test accuracy") == 1


# ---------------------------------------------------------------- in this process, no MPI
class _OneRank:
    """A communicator of one rank (what fit calls on it), so the loop runs here."""

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


def test_one_rank_gives_fits_bits():
    """With one rank the step is fit's step (gradient weight 1, nothing added): the same
    weights and History to the bit, the compiled plan there and the per-layer kernels here."""
    X, y = W.dense_data()
    model, ref = W.dense_model(), W.dense_model()
    history = fnn.distributed.fit(model, X, y, epochs=2, batch_size=25, verbose=0,
                                  validation_split=0.1, comm=_OneRank())
    want = ref.fit(X, y, epochs=2, batch_size=25, verbose=0, validation_split=0.1)
    assert W.flat(model).tobytes() == W.flat(ref).tobytes()
    assert history.history == want.history and len(history.allreduce_seconds) == 16


def test_one_rank_weighs_validation_loss_as_fit():
    """validation_data with sample weights: val_loss weighted as fit weighs it."""
    X, y = W.dense_data()
    wv = np.linspace(0.0, 3.0, 30)
    model, ref = W.dense_model(), W.dense_model()
    history = fnn.distributed.fit(model, X, y, epochs=2, batch_size=25, verbose=0,
                                  validation_data=(X[:30], y[:30], wv), comm=_OneRank())
    want = ref.fit(X, y, epochs=2, batch_size=25, verbose=0,
                   validation_data=(X[:30], y[:30], wv))
    assert history.history == want.history
    plain = W.dense_model().fit(X, y, epochs=2, batch_size=25, verbose=0,
                                validation_data=(X[:30], y[:30]))
    assert plain.history["val_loss"] != want.history["val_loss"]


def test_one_rank_of_a_masked_tagger_gives_fits_history():
    """A per-step classifier on padded ids (Embedding(mask_zero=True)): the masked loss and
    accuracy, training and validation, as fit gives them."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, (60, 6)).astype(np.float64)
    for i, length in enumerate(rng.integers(1, 7, 60)):
        ids[i, length:] = 0
    tags = rng.integers(0, 3, (60, 6))

    def tagger():
        model = fnn.Sequential([fnn.Embedding(9, 4, mask_zero=True),
                                fnn.GRU(5, return_sequences=True),
                                fnn.Dense(3, activation="softmax")], input_shape=(6,), seed=1,
                               dtype="float64")
        return model.compile("sparse_categorical_crossentropy", "adam", metrics=["accuracy"])

    model, ref = tagger(), tagger()
    history = fnn.distributed.fit(model, ids, tags, epochs=2, batch_size=20, verbose=0,
                                  validation_split=0.25, comm=_OneRank())
    want = ref.fit(ids, tags, epochs=2, batch_size=20, verbose=0, validation_split=0.25)
    assert history.history == want.history


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(X=iter([])), TypeError, "takes arrays"),
    (dict(steps_per_epoch=3), TypeError, "takes arrays"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(sharded="yes"), TypeError, "sharded"),
    (dict(model="model"), TypeError, "model must be a fastnn"),
    (dict(model=fnn.Sequential([fnn.Dense(2)], input_dim=12)), ValueError, "compile"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    X, y = W.dense_data()
    model = kwargs.pop("model", None) or W.dense_model()
    with pytest.raises(error, match=match):
        fnn.distributed.fit(model, kwargs.pop("X", X), y, comm=_OneRank(), **kwargs)


def test_without_mpi4py_fastnn_imports_and_fit_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # import mpi4py fails
    X, y = W.dense_data()
    assert callable(fnn.distributed.fit)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[mpi\]"'):
        fnn.distributed.fit(W.dense_model(), X, y)
