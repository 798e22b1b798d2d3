"""fastnn.dask: predict over dask arrays on a LocalCluster of 2 worker processes and on the local
schedulers; the model travels as bytes, loads once per worker process; bad arguments.

Results are compared two ways. Bitwise with ``model.predict`` on each block of rows (the same
rows per call: the same computation), and within a few ulps of ``model.predict`` on the whole
array: the GEMM blocking varies with the row count, so a row's last bits depend on how many
rows were computed with it (README, Limitations). With row chunks a multiple of ``batch_size``
both compute the same batches, and results equal ``model.predict(X, batch_size)`` bitwise.
"""

import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pytest.importorskip("dask.distributed")

import fastnn as fnn  # noqa: E402
from fastnn.datasets import load_digits  # noqa: E402

DIGITS_X, _ = load_digits()
TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


@pytest.fixture(scope="module")
def client():
    """One cluster for the module (its start-up, ~2 s, is paid once)."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _model(kind, dtype="float32", backend="fast", seed=0):
    """(model, inputs): a Dense net, a CNN and an Embedding + LSTM net (the digits for the
    first two; token ids for the last), and a functional model of two inputs and outputs."""
    if kind == "dense":
        return fnn.Sequential([fnn.Dense(32, activation="relu"),
                               fnn.Dense(10, activation="softmax")], input_dim=64, seed=seed,
                              dtype=dtype, backend=backend), DIGITS_X / 16
    if kind == "cnn":
        return fnn.Sequential([fnn.Conv2D(4, 3, activation="relu"), fnn.MaxPooling2D(2),
                               fnn.Flatten(), fnn.Dense(10, activation="softmax")],
                              input_shape=(8, 8, 1), seed=seed, dtype=dtype,
                              backend=backend), (DIGITS_X / 16).reshape(-1, 8, 8, 1)
    if kind == "rnn":
        ids = np.random.default_rng(0).integers(0, 30, (900, 6))
        return fnn.Sequential([fnn.Embedding(30, 8), fnn.LSTM(16), fnn.Dense(4)],
                              input_shape=(6,), seed=seed, dtype=dtype, backend=backend), ids
    rng = np.random.default_rng(1)
    a, b = fnn.Input((5,)), fnn.Input((3, 2))
    h = fnn.Concatenate()([fnn.Dense(8, activation="tanh")(a),
                           fnn.Dense(8, activation="relu")(fnn.Flatten()(b))])
    outputs = [fnn.Dense(2, activation="softmax")(h), fnn.Reshape((2, 3))(fnn.Dense(6)(h))]
    return (fnn.Model([a, b], outputs, seed=seed, dtype=dtype, backend=backend),
            [rng.standard_normal((700, 5)), rng.standard_normal((700, 3, 2))])


def _per_block(model, X, row_chunks, **kw):
    """model.predict on each block of rows, concatenated (outputs as a list if several)."""
    xs = X if isinstance(X, list) else [X]
    bounds = np.cumsum((0,) + tuple(row_chunks))
    parts = [model.predict([x[a:b] for x in xs] if isinstance(X, list) else X[a:b], **kw)
             for a, b in zip(bounds[:-1], bounds[1:])]
    if isinstance(parts[0], list):
        return [np.concatenate(p) for p in zip(*parts)]
    return np.concatenate(parts)


def _check(model, X, result, dtype, computed=None):
    """``result`` (dask) holds model.predict's values, bitwise per block, to a few ulps whole."""
    results = result if isinstance(result, list) else [result]
    got = computed if computed is not None else list(dask.compute(*results))
    blocks = _per_block(model, X, results[0].chunks[0])
    whole = model.predict(X)
    for g, b, w, r in zip(got, blocks if isinstance(blocks, list) else [blocks],
                          whole if isinstance(whole, list) else [whole], results):
        assert g.dtype == r.dtype == np.dtype(dtype) and g.shape == w.shape == r.shape
        assert np.array_equal(g, b)
        np.testing.assert_allclose(g, w, **TOLERANCE[dtype])
    return got


# ---------------------------------------------------------------- on a cluster of 2 processes
@pytest.mark.parametrize("kind", ["dense", "cnn", "rnn"])
def test_predict_on_a_cluster_equals_model_predict(client, kind, dtype):
    model, X = _model(kind, dtype)
    Xd = da.from_array(X, chunks=(400,) + X.shape[1:])       # 1797 or 900 rows: several chunks
    result = fnn.dask.predict(model, Xd)
    assert isinstance(result, da.Array) and result.chunks[0] == Xd.chunks[0]
    assert result.shape == (len(X),) + tuple(model.output_shape)
    _check(model, X, result, dtype)
    # row chunks of whole batches: the same batches as model.predict(X, batch_size)
    batched = fnn.dask.predict(model, Xd, batch_size=100).compute()
    assert np.array_equal(batched, model.predict(X, batch_size=100))


def test_several_inputs_and_outputs_on_a_cluster(client, dtype):
    model, (A, B) = _model("two-in-two-out", dtype)
    # different row chunks per input (aligned by dask), and B's last axis split (rechunked)
    outs = fnn.dask.predict(model, [da.from_array(A, chunks=(250, 5)),
                                    da.from_array(B, chunks=(180, 3, 1))])
    assert isinstance(outs, list) and [o.shape for o in outs] == [(700, 2), (700, 2, 3)]
    assert outs[0].chunks[0] == outs[1].chunks[0] == (180, 70, 110, 140, 40, 160)
    _check(model, [A, B], outs, dtype)


def test_the_model_loads_once_per_worker_process(client):
    model, X = _model("dense", seed=3)
    client.run(fnn.dask.clear_cache)
    result = fnn.dask.predict(model, da.from_array(X, chunks=(150, 64)))     # 12 blocks
    graph = dict(result.__dask_graph__())
    assert not any("fastnn-model" in str(key) for key in graph)    # scattered, not in the graph
    first = result.compute()
    loads = client.run(fnn.dask.cache_info)
    assert len(loads) == 2 and 1 <= sum(info["loads"] for info in loads.values()) <= 2
    digests = {d for info in loads.values() for d in info["models"]}
    assert len(digests) == 1 and all(info["loads"] == len(info["models"]) <= 1
                                     for info in loads.values())
    again = fnn.dask.predict(model, da.from_array(X, chunks=(100, 64))).compute()
    assert client.run(fnn.dask.cache_info) == loads                 # cached: no new load
    assert np.array_equal(first, _per_block(model, X, [150] * 11 + [147]))
    assert np.array_equal(again, _per_block(model, X, [100] * 17 + [97]))


def test_filtered_rows_unknown_chunk_sizes_and_empty_blocks(client):
    model, X = _model("dense")
    Xd = da.from_array(X, chunks=(200, 64))
    keep = X[:, 20] > 0.9                 # some blocks keep no row at all
    result = fnn.dask.predict(model, Xd[da.from_array(keep, chunks=200)])
    assert np.isnan(result.shape[0])
    got = result.compute()
    assert got.shape == (keep.sum(), 10)
    np.testing.assert_allclose(got, model.predict(X[keep]), **TOLERANCE["float32"])


# ---------------------------------------------------------------- local schedulers, no cluster
@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_local_schedulers_share_one_loaded_model(scheduler, backend):
    model, X = _model("cnn", backend=backend, seed=5)
    fnn.dask.clear_cache()
    # a client may be active (the cluster tests): the scheduler chosen here wins
    with dask.config.set(scheduler=scheduler, num_workers=4):
        result = fnn.dask.predict(model, da.from_array(X, chunks=(100, 8, 8, 1)))    # 18
        graph = dict(result.__dask_graph__())
        blob = fnn.io.model_to_bytes(model, include_optimizer=False)
        # the model bytes are one node of the graph; no block's task carries them
        assert sum(str(key).startswith("fastnn-model-") for key in graph) == 1
        assert all(len(pickle.dumps(task)) < len(blob) // 2 for key, task in graph.items()
                   if str(key).startswith("('fastnn-predict"))
        _check(model, X, result, "float32")
    assert fnn.dask.cache_info()["loads"] == 1


def test_the_cache_keeps_the_last_few_models():
    fnn.dask.clear_cache()
    X = da.from_array(DIGITS_X[:300] / 16, chunks=(100, 64))
    models = [_model("dense", seed=s)[0] for s in range(fnn.dask.CACHE_SIZE + 2)]
    with dask.config.set(scheduler="sync"):
        for m in models:
            assert np.array_equal(fnn.dask.predict(m, X).compute(),
                                  _per_block(m, X.compute(), X.chunks[0]))
        info = fnn.dask.cache_info()
        assert info["loads"] == len(models) and len(info["models"]) == fnn.dask.CACHE_SIZE
        fnn.dask.predict(models[-1], X).compute()            # held: no load
        assert fnn.dask.cache_info()["loads"] == len(models)
        fnn.dask.predict(models[0], X).compute()             # evicted: loaded again
        assert fnn.dask.cache_info()["loads"] == len(models) + 1


def test_the_result_is_the_model_as_it_was_when_predict_was_called():
    model, X = _model("dense", "float64")
    expected = model.predict(X[:400], batch_size=200)
    with dask.config.set(scheduler="sync"):
        result = fnn.dask.predict(model, da.from_array(X[:400], chunks=(200, 64)),
                                  batch_size=200)
        model.set_weights([w + 1 for w in model.get_weights()])     # later changes
        assert np.array_equal(result.compute(), expected)


def test_a_numpy_input_is_predicted_in_memory():
    model, (A, B) = _model("two-in-two-out")
    got = fnn.dask.predict(model, [A, B], batch_size=64)
    assert all(isinstance(g, np.ndarray) and np.array_equal(g, w)
               for g, w in zip(got, model.predict([A, B], batch_size=64)))


# ---------------------------------------------------------------- bad arguments
def _bad_cases():
    dense, X = _model("dense")
    two, (A, B) = _model("two-in-two-out")
    Xd, Ad, Bd = (da.from_array(x, chunks=100) for x in (X, A, B))
    unbuilt = fnn.Sequential([fnn.Dense(3)])
    return [
        ("not a model", (object(), Xd), {}, TypeError, "model must be a fastnn model"),
        ("unbuilt", (unbuilt, Xd), {}, ValueError, "must be built before predict"),
        ("features", (dense, Xd[:, :10]), {}, ValueError, r"X must have shape \(n, 64\)"),
        ("one sample", (dense, Xd[0]), {}, ValueError, r"Received: X with shape \(64,\)"),
        ("unknown width", (dense, Xd[:, da.from_array(np.ones(64, bool))]), {}, ValueError,
         r"shape \(1797, nan\); compute its unknown sizes first: X.compute_chunk_sizes\(\)"),
        ("no rows", (dense, Xd[:0]), {}, ValueError, "at least one sample"),
        ("complex", (dense, Xd.astype(complex)), {}, TypeError, "must hold real numbers"),
        ("delayed", (dense, dask.delayed(X)), {}, TypeError, "must be a dask array"),
        ("batch 0", (dense, Xd), {"batch_size": 0}, ValueError, "batch_size must be"),
        ("batch str", (dense, Xd), {"batch_size": "8"}, TypeError, "batch_size must be"),
        ("one of two", (two, Ad), {}, ValueError, "list of 2 arrays, one per input"),
        ("mixed", (two, [Ad, B]), {}, TypeError, "dask arrays only, or NumPy arrays only"),
        ("rows differ", (two, [Ad, Bd[:600]]), {}, ValueError, "same number of samples"),
        ("second input", (two, [Ad, Bd[:, :2]]), {}, ValueError, r"X\[1\] must have shape"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda case: case[0])
def test_bad_arguments_are_refused_when_predict_is_called(case):
    _, args, kwargs, error, message = case
    with dask.config.set(scheduler="sync"), pytest.raises(error, match=message):
        fnn.dask.predict(*args, **kwargs)


def test_non_finite_values_fail_in_the_block_that_holds_them():
    model, X = _model("dense")
    X = X.copy()
    X[250, 3] = np.nan
    with dask.config.set(scheduler="sync"):
        result = fnn.dask.predict(model, da.from_array(X, chunks=(100, 64)))
        with pytest.raises(ValueError, match="NaN"):
            result.compute()


def test_fastnn_imports_without_dask_and_names_the_extra():
    code = ("import sys\n"
            "import fastnn as fnn\n"
            "print('dask' in sys.modules)\n"
            "sys.modules['dask'] = None            # as if not installed\n"
            "try:\n    fnn.dask\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "False" and 'pip install "fastnn[dask]"' in out[1]


def test_the_readme_dask_recipe_runs(client, monkeypatch):
    """The README's LocalCluster recipe learns the digits and predicts them on a cluster: the
    module's, which its LocalCluster(...) and Client(...) stand for (the same arguments; a
    second cluster would double the start-up time)."""
    class ModuleCluster:
        def __init__(self, **kwargs):
            assert kwargs == {"n_workers": 2, "threads_per_worker": 1}

        def __enter__(self):
            return client.cluster

        def __exit__(self, *exc):
            pass

    class ModuleClient(ModuleCluster):
        def __init__(self, cluster):
            assert cluster is client.cluster

        def __enter__(self):
            return client

    monkeypatch.setattr(dask.distributed, "LocalCluster", ModuleCluster)
    monkeypatch.setattr(dask.distributed, "Client", ModuleClient)
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("### Batch inference on Dask\n", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    namespace = {"__name__": "__main__"}
    exec(compile(block, "README.md", "exec"), namespace)
    assert (namespace["labels"] == namespace["y"]).mean() > 0.9
    assert isinstance(namespace["proba"], da.Array) and namespace["proba"].numblocks == (4, 1)
