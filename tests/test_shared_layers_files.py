"""Shared layers in files, pickles, configs and clones: a later call of a shared layer (or
model) is ``{"shared": <index of its first entry>, "inbound": [...]}`` in the functional
config; round trips are bitwise, and the loader refuses forged references by name."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn as fnn
import fastnn.io as fio
from test_model_files import build, mutate_header, parse
from test_model_files_v2 import _refused_before_allocation
from test_model_files_v3 import FUZZ_V3, _load_or_refuse


def _siamese(backend="numpy", seed=0):
    """A shared Conv2D tower, a shared Dense, and a shared tower model called twice."""
    conv, dense = fnn.Conv2D(2, 3, activation="relu"), fnn.Dense(4, activation="tanh")
    tower = fnn.Sequential([fnn.Dense(3, activation="relu"), fnn.Dense(2)], input_dim=4,
                           seed=3, backend=backend)
    a, b = fnn.Input((5, 5, 1)), fnn.Input((5, 5, 1))
    ta = tower(dense(fnn.Flatten()(conv(a))))
    tb = tower(dense(fnn.Flatten()(conv(b))))
    out = fnn.Dense(1, activation="sigmoid")(fnn.Concatenate()([ta, tb]))
    return fnn.Model([a, b], out, seed=seed, backend=backend)


def _data(n=8):
    rng = np.random.default_rng(0)
    return ([rng.normal(size=(n, 5, 5, 1)), rng.normal(size=(n, 5, 5, 1))],
            rng.integers(0, 2, size=(n, 1)).astype(float))


def test_the_config_lists_a_shared_layer_once_and_references_it():
    model = _siamese()
    layers = model.get_config()["layers"]
    shared = [e for e in layers if "shared" in e]
    assert len(shared) == 3                      # the Conv2D, the Dense, the tower model
    first = {e["shared"] for e in shared}
    assert all("config" in layers[k] for k in first)
    kinds = [layers[k]["config"]["class"] for k in sorted(first)]
    assert kinds == ["Conv2D", "Dense", "Model"]
    assert all(set(e) == {"shared", "inbound"} for e in shared)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_save_load_pickle_and_from_config_round_trip_bitwise(backend, tmp_path):
    model = _siamese(backend)
    x, y = _data()
    model.compile(loss="binary_crossentropy", optimizer=fnn.Adam(lr=0.01))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False)
    path = tmp_path / "siamese.fnn"
    model.save(path)
    copies = [fnn.load(path), pickle.loads(pickle.dumps(model))]
    for other in copies:
        assert [layer.name for layer in other.layers] == [layer.name for layer in model.layers]
        assert other.count_params() == model.count_params()
        assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(),
                                                        model.get_weights()))
        assert other.predict(x).tobytes() == model.predict(x).tobytes()
        assert other.get_config() == model.get_config()
    # training resumes identically (the optimizer state, one slot per shared weight)
    copies[0].fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert all(np.array_equal(a, b) for a, b in zip(copies[0].get_weights(),
                                                    model.get_weights()))
    rebuilt = fnn.Model.from_config(model.get_config(), backend=backend)
    rebuilt.set_weights(model.get_weights())
    assert rebuilt.predict(x).tobytes() == model.predict(x).tobytes()


def test_clone_model_keeps_the_sharing_with_fresh_weights():
    model = _siamese(seed=5)
    twin = fnn.models.clone_model(model)
    assert twin.get_config() == model.get_config()
    assert twin.count_params() == model.count_params()
    again = _siamese(seed=5)           # the same seed: the same fresh weights
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights()[:4],
                                                    again.get_weights()[:4]))


def _shared_file():
    blob = fio.model_to_bytes(_siamese())
    version, header, start = parse(blob)
    return header, blob[start:]


def _entry_index(header, kind):
    """The first 'shared' entry whose referenced layer is of ``kind``."""
    layers = header["model"]["layers"]
    return next(i for i, e in enumerate(layers) if "shared" in e
                and layers[e["shared"]]["config"]["class"] == kind)


def _forge(change):
    def run(header):
        change(header["model"]["layers"], header)
    return run


def _set_shared(value, kind="Conv2D"):
    def change(layers, header):
        layers[_entry_index(header, kind)]["shared"] = value
    return change


def _points_to_itself(layers, header):
    i = _entry_index(header, "Conv2D")
    layers[i]["shared"] = i


def _points_to_a_reference(layers, header):
    i = _entry_index(header, "Model")
    layers[i]["shared"] = _entry_index(header, "Conv2D")


def _with_config_too(layers, header):
    i = _entry_index(header, "Conv2D")
    layers[i]["config"] = layers[layers[i]["shared"]]["config"]


def _two_inputs(layers, header):
    i = _entry_index(header, "Dense")
    layers[i]["inbound"] = [0, 1]


def _other_shape(layers, header):
    # the second call of the Conv2D reads the first Flatten's output, not an image
    i = _entry_index(header, "Conv2D")
    flat = next(k for k, e in enumerate(layers) if "config" in e
                and e["config"]["class"] == "Flatten")
    layers[i]["inbound"] = [2 + flat]


def _dense_other_shape(layers, header):
    # the second call of the Dense reads the first tower's output, (2,), not (18,)
    i = _entry_index(header, "Dense")
    tower = next(k for k, e in enumerate(layers) if "config" in e
                 and e["config"]["class"] == "Model")
    layers[i]["inbound"] = [2 + tower]


def _model_other_shape(layers, header):
    i = _entry_index(header, "Model")
    layers[i]["inbound"] = [0]


FORGED = {
    "negative": (_set_shared(-1), r"'shared' must be the index of an earlier entry"),
    "later": (_set_shared(50), r"'shared' must be the index of an earlier entry"),
    "bool": (_set_shared(True), r"'shared' must be the index"),
    "string": (_set_shared("0"), r"'shared' must be the index"),
    "float": (_set_shared(0.0), r"'shared' must be the index"),
    "itself": (_points_to_itself, r"'shared' must be the index of an earlier entry"),
    "a_reference": (_points_to_a_reference, r"has its own config"),
    "config_too": (_with_config_too, r"only 'shared' and 'inbound'"),
    "input_count": (_two_inputs, r"reads 1 tensor\(s\), this call 2"),
    "layer_kind": (_other_shape, r"layer \d+ \(Conv2D\) is invalid.*input shape \(18,\)"),
    "layer_shape": (_dense_other_shape, r"shared layer \d+ on inputs of shape \[\(2,\)\]; its "
                                        r"first call takes \[\(18,\)\]"),
    "model_shape": (_model_other_shape, r"nested model takes \[\(4,\)\], it receives "
                                        r"\(5, 5, 1\)"),
}


@pytest.fixture(scope="module")
def shared_file():
    return _shared_file()


@pytest.mark.parametrize("name", list(FORGED))
def test_the_loader_refuses_forged_shared_references(shared_file, name):
    header, data = shared_file
    change, pattern = FORGED[name]
    header = copy.deepcopy(header)
    _forge(change)(header)
    _refused_before_allocation(build(header, data, version=2), pattern)


def test_from_config_refuses_forged_shared_references():
    config = _siamese().get_config()
    bad = copy.deepcopy(config)
    i = next(k for k, e in enumerate(bad["layers"]) if "shared" in e)
    bad["layers"][i]["shared"] = i
    with pytest.raises(ValueError, match=rf"layer {i}: 'shared' must be the index"):
        fnn.Model.from_config(bad)


@FUZZ_V3
@given(data=st.data())
def test_fuzz_mutated_shared_header(shared_file, data):
    """Mutations of a file with shared layers (the 'shared' and 'inbound' entries among the
    values drawn) load a valid model or are refused by the loader's ValueError."""
    import json
    header, body = shared_file
    try:
        raw = json.dumps(mutate_header(header, data)).encode()
    except (ValueError, TypeError):
        return
    _load_or_refuse(build(None, body, version=2, header_bytes=raw))


@pytest.mark.parametrize("value", [-1, 0, 1, 2, 3, 5, 8, 2**31, None, [0], {"a": 0}])
def test_hostile_shared_values_load_or_are_refused(shared_file, value):
    header, body = shared_file
    for i in range(len(header["model"]["layers"])):
        forged = copy.deepcopy(header)
        entry = forged["model"]["layers"][i]
        entry.pop("config", None)
        entry["shared"] = value
        _load_or_refuse(build(forged, body, version=2))
