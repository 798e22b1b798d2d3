"""The model file format (fastnn/io.py) and a loader that trusts nothing.

The format is read here independently (struct + json + np.frombuffer) to hold the writer to its
documentation. Every malformed file raises ValueError; a hypothesis fuzz test (mutated and
truncated bytes, random bytes, mutated JSON headers) sees nothing else. Loading never unpickles.
"""

import contextlib
import copy
import json
import math
import pickle
import resource
import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn as fnn
import fastnn.io as fio
from fastnn.io import model_from_bytes

MAGIC = b"\x89FNN\r\n\x1a\n"


def _trained_model(dtype="float32", optimizer="adam", backend="numpy"):
    model = fnn.Sequential([fnn.Dense(5, activation="relu"), fnn.LeakyReLU(alpha=0.2),
                            fnn.Dense(4), fnn.Softmax()],
                           input_dim=3, seed=1, dtype=dtype, backend=backend)
    opt = fnn.Adam(lr=0.01) if optimizer == "adam" else fnn.SGD(lr=0.1, momentum=0.9)
    model.compile("cross_entropy", opt, metrics=["accuracy"])
    X = np.random.default_rng(0).standard_normal((16, 3))
    model.fit(X, np.arange(16) % 4, epochs=2, batch_size=5, verbose=0)
    return model


def parse(blob):
    """(version, header dict, data section start) read by the documented layout."""
    assert blob[:8] == MAGIC
    version, size = struct.unpack_from("<II", blob, 8)
    header = json.loads(blob[16:16 + size].decode("utf-8"))
    start = 16 + size
    return version, header, start + (-start % 64)


def build(header, data, version=1, magic=MAGIC, header_bytes=None, size=None):
    """A file from a header (dict, or raw bytes) and a data section, per the documented layout."""
    raw = json.dumps(header).encode() if header_bytes is None else header_bytes
    start = 16 + len(raw)
    pad = -start % 64
    return (magic + struct.pack("<II", version, len(raw) if size is None else size) + raw
            + b"\0" * pad + data)


@pytest.fixture(scope="module")
def good():
    model = _trained_model()
    blob = fio.model_to_bytes(model)
    version, header, data_start = parse(blob)
    return {"model": model, "blob": blob, "header": header, "data": blob[data_start:]}


def _entry(header, name):
    return next(e for e in header["arrays"] if e["name"] == name)


# --------------------------------------------------------------------------- the format
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_format_is_as_documented(dtype, optimizer, tmp_path):
    model = _trained_model(dtype, optimizer)
    path = tmp_path / "m.fnn"
    model.save(path)
    blob = path.read_bytes()
    assert blob == fio.model_to_bytes(model)
    version, header, data_start = parse(blob)
    assert version == 1
    assert data_start % 64 == 0
    size = struct.unpack_from("<I", blob, 12)[0]
    assert blob[16 + size:data_start] == b"\0" * (data_start - 16 - size)
    assert header["model"]["input_dim"] == 3 and header["model"]["dtype"] == dtype
    assert [layer["class"] for layer in header["model"]["layers"]] == \
        ["Dense", "LeakyReLU", "Dense", "Softmax"]
    assert header["compile"]["loss"] == "cross_entropy"
    assert header["compile"]["optimizer"]["name"] == optimizer
    assert header["compile"]["metrics"] == ["accuracy"]
    if optimizer == "adam":
        assert header["compile"]["iterations"] == model.optimizer.iterations == 8
    code = "<f4" if dtype == "float32" else "<f8"
    state = model.optimizer.state()
    expected = {"dense_0/W": model.get_weights()[0], "dense_0/b": model.get_weights()[1],
                "dense_1/W": model.get_weights()[2], "dense_1/b": model.get_weights()[3],
                **{"optimizer/" + k: v for k, v in state.items()}}
    assert [e["name"] for e in header["arrays"]] == list(expected)
    end = 0
    for entry in header["arrays"]:
        assert entry["dtype"] == code and entry["offset"] % 64 == 0 and entry["offset"] >= end
        want = expected[entry["name"]]
        assert entry["shape"] == list(want.shape)
        got = np.frombuffer(blob, dtype=code, count=want.size,
                            offset=data_start + entry["offset"]).reshape(want.shape)
        assert got.tobytes() == want.astype(code).tobytes()
        end = entry["offset"] + want.nbytes
    assert len(blob) - data_start - end < 64
    # a round trip restores everything, bitwise, and training continues identically
    loaded = fnn.load(path)
    X = np.random.default_rng(5).standard_normal((7, 3))
    assert loaded.predict(X).tobytes() == model.predict(X).tobytes()
    for k, v in loaded.optimizer.state().items():
        assert v.tobytes() == state[k].tobytes()
    y = np.arange(7) % 4
    assert loaded.train_on_batch(X, y) == model.train_on_batch(X, y)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_the_good_file_loads(good):
    model = model_from_bytes(good["blob"])
    assert model.get_weights()[0].tobytes() == good["model"].get_weights()[0].tobytes()
    # and the rebuild helper reproduces it byte for byte
    assert build(good["header"], good["data"]) == good["blob"]


# --------------------------------------------------------------------------- refusals
def _with_header(good, change):
    header = copy.deepcopy(good["header"])
    change(header)
    return build(header, good["data"])


def _set(path, value):
    def change(header):
        node = header
        for key in path[:-1]:
            node = node[key] if not isinstance(key, tuple) else \
                next(e for e in node if e["name"] == key[1])
        node[path[-1]] = value
    return change


def _nan_in(good, name, value=math.nan):
    header = good["header"]
    entry = _entry(header, name)
    data = bytearray(good["data"])
    code = np.dtype(entry["dtype"])
    data[entry["offset"] + code.itemsize:entry["offset"] + 2 * code.itemsize] = \
        np.array([value], dtype=code).tobytes()
    return build(header, bytes(data))


def _swap_layers(header):
    header["model"]["layers"][0]["units"] = 6


def _drop(name):
    return lambda header: header["arrays"].remove(_entry(header, name))


def _extra(header):
    header["arrays"].append(dict(_entry(header, "dense_0/b"), name="extra", offset=0))


def _overlap(header):
    _entry(header, "dense_0/b")["offset"] = _entry(header, "dense_0/W")["offset"] + 8


BAD_FILES = {
    "bad_magic": (lambda g: b"\x89FNX" + g["blob"][4:], r"bad magic"),
    "pickle_payload": (lambda g: pickle.dumps({"weights": [1, 2, 3]}), r"bad magic"),
    "pickle_after_preamble": (lambda g: build(None, b"", header_bytes=pickle.dumps([1])),
                              r"not valid JSON"),
    "empty": (lambda g: b"", r"0 bytes is shorter"),
    "preamble_only_part": (lambda g: g["blob"][:11], r"shorter than the 16-byte preamble"),
    "version_3": (lambda g: build(g["header"], g["data"], version=3), r"format version 3"),
    "version_2_with_v1_header": (lambda g: build(g["header"], g["data"], version=2),
                                 r"must be an object with 'class' Sequential or Model"),
    "version_0": (lambda g: build(g["header"], g["data"], version=0), r"format version 0"),
    "header_length_over_limit": (lambda g: build(g["header"], g["data"], size=(1 << 20) + 1),
                                 r"header length 1048577 exceeds"),
    "header_length_max_uint32": (lambda g: build(g["header"], g["data"], size=2**32 - 1),
                                 r"header length 4294967295 exceeds"),
    "header_length_past_end": (lambda g: build(g["header"], b"",
                                               size=len(json.dumps(g["header"])) + 500),
                               r"exceeds the limit or the file"),
    "header_not_utf8": (lambda g: build(None, g["data"], header_bytes=b"\xff\xfe{}"),
                        r"not valid JSON"),
    "header_not_json": (lambda g: build(None, g["data"], header_bytes=b"{model: 1}"),
                        r"not valid JSON"),
    "header_deeply_nested": (lambda g: build(None, g["data"], header_bytes=b"[" * 100000),
                             r"not valid JSON"),
    "header_is_a_list": (lambda g: build([], g["data"]), r"lacks 'model' and 'arrays'"),
    "header_without_arrays": (lambda g: _with_header(g, lambda h: h.pop("arrays")),
                              r"lacks 'model' and 'arrays'"),
    "dtype_object": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"), "dtype"],
                                                    "|O")), r"dtype '\|O'"),
    "dtype_big_endian": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"),
                                                         "dtype"], ">f4")), r"dtype '>f4'"),
    "dtype_int64": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/b"), "dtype"],
                                                   "<i8")), r"dtype '<i8'"),
    "dtype_float16": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/b"), "dtype"],
                                                     "<f2")), r"dtype '<f2'"),
    "dtype_not_a_string": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/b"),
                                                           "dtype"], ["<f4"])),
                           r"dtype \['<f4'\]"),
    "dtype_mismatch_with_model": (lambda g: _with_header(g, _set(["model", "dtype"], "float64")),
                                  r"is <f4\[3, 5\], the model needs <f8\[3, 5\]"),
    "shape_too_big_for_span": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"),
                                                               "shape"], [3, 50])),
                               r"overlap|beyond"),
    "shape_last_array_past_end": (lambda g: _with_header(g, _set(
        ["arrays", ("name", "optimizer/v"), "shape"], [10**6])), r"beyond the file"),
    "shape_smaller_than_model": (lambda g: _with_header(g, _set(
        ["arrays", ("name", "dense_0/W"), "shape"], [3, 4])), r"\[3, 4\], the model needs"),
    "shape_negative": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"), "shape"],
                                                      [3, -5])), r"bad shape \[3, -5\]"),
    "shape_huge": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"), "shape"],
                                                  [2**31, 2**31])), r"bad shape"),
    "shape_huge_product": (lambda g: _with_header(g, _set(
        ["arrays", ("name", "dense_0/W"), "shape"], [2**30, 2**30, 2**30])), r"beyond the file"),
    "shape_float": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"), "shape"],
                                                   [3.0, 5])), r"bad shape"),
    "shape_not_a_list": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_0/W"),
                                                         "shape"], 15)), r"bad shape 15"),
    "offset_out_of_bounds": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_1/b"),
                                                             "offset"], 10**9)),
                             r"'dense_1/b' spans bytes .* beyond the file"),
    "offset_negative": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_1/b"),
                                                        "offset"], -64)), r"bad offset -64"),
    "offset_string": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_1/b"),
                                                      "offset"], "0")), r"bad offset '0'"),
    "offset_bool": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_1/b"),
                                                    "offset"], True)), r"bad offset True"),
    "arrays_overlap": (lambda g: _with_header(g, _overlap), r"overlap"),
    "array_missing": (lambda g: _with_header(g, _drop("optimizer/m")),
                      r"do not match the (architecture|optimizer)"),
    "array_extra": (lambda g: _with_header(g, _extra), r"overlap|do not match the architecture"),
    "array_name_repeated": (lambda g: _with_header(g, _set(["arrays", ("name", "dense_1/b"),
                                                            "name"], "dense_0/b")),
                            r"repeated array name 'dense_0/b'"),
    "array_entry_not_object": (lambda g: _with_header(g, lambda h: h["arrays"].append(3)),
                               r"not an object"),
    "architecture_changed": (lambda g: _with_header(g, _swap_layers),
                             r"'dense_0/W' is <f4\[3, 5\], the model needs <f4\[3, 6\]"),
    "layer_class_unknown": (lambda g: _with_header(g, _set(["model", "layers", 0, "class"],
                                                           "os.system")),
                            r"unknown layer class .*'os.system'"),
    "layer_units_negative": (lambda g: _with_header(g, _set(["model", "layers", 0, "units"],
                                                            -1)), r"units=-1"),
    # a 1 KB file must not make the loader allocate terabytes (MemoryError) or gigabytes (host
    # memory): the architecture is checked against the arrays the file holds before building
    "layer_units_huge": (lambda g: _with_header(g, _set(["model", "layers", 0, "units"], 2**40)),
                         r"dense_0|units|architecture"),
    "input_dim_huge": (lambda g: _with_header(g, _set(["model", "input_dim"], 2**41)),
                       r"dense_0|input_dim|architecture"),
    "layer_extra_argument": (lambda g: _with_header(g, _set(["model", "layers", 0, "__init__"],
                                                            1)), r"model description is invalid"),
    "input_dim_string": (lambda g: _with_header(g, _set(["model", "input_dim"], "3")),
                         r"input_dim='3'"),
    "model_dtype_unknown": (lambda g: _with_header(g, _set(["model", "dtype"], "object")),
                            r"dtype='object'"),
    "backend_unknown": (lambda g: _with_header(g, _set(["model", "backend"], "cuda")),
                        r"backend='cuda'"),
    "loss_unknown": (lambda g: _with_header(g, _set(["compile", "loss"], "pickle")),
                     r"loss='pickle'"),
    "optimizer_unknown": (lambda g: _with_header(g, _set(["compile", "optimizer", "name"],
                                                         "adadelta")),
                          r"optimizer=\{'name': 'adadelta'"),
    # json.dumps writes NaN, which is not JSON: refused by the parser, before the optimizer
    "optimizer_lr_nan": (lambda g: _with_header(g, _set(["compile", "optimizer", "lr"], math.nan)),
                         r"holds NaN, which is not a JSON number"),
    "optimizer_not_a_dict": (lambda g: _with_header(g, _set(["compile", "optimizer"], 5)),
                             r"optimizer=5"),
    "iterations_negative": (lambda g: _with_header(g, _set(["compile", "iterations"], -1)),
                            r"bad optimizer step count.*iterations=-1"),
    "iterations_float": (lambda g: _with_header(g, _set(["compile", "iterations"], 2.5)),
                         r"bad optimizer step count.*iterations=2.5"),
    "compile_not_a_dict": (lambda g: _with_header(g, _set(["compile"], [1])),
                           r"model description is invalid"),
    "nan_weight": (lambda g: _nan_in(g, "dense_1/W"), r"'dense_1/W' holds NaN or inf"),
    "inf_bias": (lambda g: _nan_in(g, "dense_0/b", math.inf), r"'dense_0/b' holds NaN or inf"),
    "nan_optimizer_state": (lambda g: _nan_in(g, "optimizer/v"),
                            r"'optimizer/v' holds NaN or inf"),
    "truncated_in_data": (lambda g: g["blob"][:len(g["blob"]) - 100], r"beyond the file"),
    "truncated_in_header": (lambda g: g["blob"][:40], r"exceeds the limit or the file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_loader_refuses(case, good, tmp_path):
    make, pattern = BAD_FILES[case]
    blob = make(good)
    path = tmp_path / "bad.fnn"
    path.write_bytes(blob)
    with pytest.raises(Exception) as info, memory_cap():
        fnn.load(path)
    assert info.type is ValueError, f"{info.type.__name__}: {info.value}"
    assert info.match(r"bad\.fnn' is not a valid fastnn model file")
    assert info.match(pattern)


def test_every_refusal_changes_a_loadable_file(good):
    """Guard: the cases are single changes to a file that loads, so each refusal is the loader's
    judgement of that change, not of something else."""
    assert model_from_bytes(build(copy.deepcopy(good["header"]), good["data"])) is not None


# --------------------------------------------------------------------------- never pickle
def test_loading_never_unpickles(good, tmp_path):
    path = tmp_path / "m.fnn"
    path.write_bytes(good["blob"])
    evil = tmp_path / "evil.fnn"
    evil.write_bytes(pickle.dumps(fnn.Dense(3)))
    with mock.patch("pickle.loads") as loads, mock.patch("pickle.load") as load, \
            mock.patch("pickle.Unpickler") as unpickler, \
            mock.patch("numpy.load") as np_load:
        model = fnn.load(path)
        with pytest.raises(ValueError):
            fnn.load(evil)
        with pytest.raises(ValueError):
            model_from_bytes(build(None, b"", header_bytes=pickle.dumps({"model": 1})))
    assert model.count_params() == good["model"].count_params()
    for spy in (loads, load, unpickler, np_load):
        assert not spy.called
    assert "pickle" not in vars(fio)
    source = open(fio.__file__).read()
    assert "import pickle" not in source and "allow_pickle" not in source


def test_object_arrays_are_never_built(good):
    """The allow-list keeps object dtypes out: np.frombuffer is never asked for one."""
    real = np.frombuffer
    seen = []

    def spy(buffer, dtype=float, *args, **kwargs):
        seen.append(np.dtype(dtype))
        return real(buffer, dtype, *args, **kwargs)

    with mock.patch.object(fio.np, "frombuffer", spy):
        model_from_bytes(good["blob"])
        with pytest.raises(ValueError):
            model_from_bytes(_with_header(good, _set(["arrays", ("name", "dense_0/W"), "dtype"],
                                                     "|O")))
    assert seen and all(d.kind == "f" for d in seen)


# --------------------------------------------------------------------------- fuzz
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def memory_cap(extra=1 << 30):
    """Cap this process's address space at its current size + ``extra`` for the block, so a
    loader that tries to allocate what a header claims fails fast (MemoryError) instead of
    taking the host's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[0]) * resource.getpagesize()
    cap = current + extra if hard == resource.RLIM_INFINITY else min(current + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _load_or_refuse(blob):
    try:
        with memory_cap():
            model = model_from_bytes(blob)
    except ValueError:
        return None
    # whatever loads is a working model with finite weights
    assert all(np.isfinite(w).all() for w in model.get_weights())
    model.predict(np.zeros((2, model.input_dim)))
    return model


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_bytes(good, data):
    blob = bytearray(good["blob"])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    _load_or_refuse(bytes(blob))


@FUZZ
@given(data=st.data())
def test_fuzz_truncated_and_extended(good, data):
    blob = good["blob"]
    cut = data.draw(st.integers(0, len(blob)))
    tail = data.draw(st.binary(max_size=200))
    _load_or_refuse(blob[:cut] + tail)


@FUZZ
@given(blob=st.one_of(st.binary(max_size=600),
                      st.binary(max_size=600).map(lambda b: MAGIC + b),
                      st.binary(max_size=600).map(lambda b: MAGIC + struct.pack("<I", 1) + b)))
def test_fuzz_random_bytes(blob):
    _load_or_refuse(blob)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=4),
    max_leaves=10)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def mutate_header(header, data):
    """A copy of ``header`` with 1-3 entries replaced, deleted or set to a small integer."""
    header = copy.deepcopy(header)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(header) if p]
        path = data.draw(st.sampled_from(paths))
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "small_int"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "small_int":
            parent[path[-1]] = data.draw(st.integers(-3, 300))
        else:
            parent[path[-1]] = data.draw(JSON_VALUES)
    return header


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_json_header(good, data):
    try:
        raw = json.dumps(mutate_header(good["header"], data)).encode()
    except (ValueError, TypeError):
        return
    _load_or_refuse(build(None, good["data"], header_bytes=raw))
