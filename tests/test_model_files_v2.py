"""Model file format version 2: any layer kind and any graph, validated before allocation.

A functional model holding every layer kind (and a nested Sequential) round-trips bitwise; a
table of forged topologies (unknown kinds, cycles, dangling or out-of-range references, shape
mismatches, parameter shapes, architectures larger than the file) is refused with a ValueError
naming the problem; the fuzz tests of ``test_model_files`` run on a v2 file too.
"""

import copy
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn as fnn
import fastnn.io as fio
from fastnn.io import model_from_bytes
from test_model_files import FUZZ, build, memory_cap, mutate_header, parse

# a layer whose weight needs more than the file holds, or whose weight is over the bound of
# 2**31 - 1 values that building it checks first (fastnn.layers.base.MAX_WEIGHT_VALUES)
WEIGHT_BOUND = (r"more than the file|over the limit of 2\*\*31 - 1 values a weight"
                r"|over the limit of 2\*\*40 \(fastnn.layers.base.MAX_OUTPUT_VALUES\)")


def _every_kind(backend="numpy"):
    inner = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(4)], input_dim=4,
                           seed=2, backend=backend, name="inner")
    a, b = fnn.Input((2, 3)), fnn.Input((4,))
    h = fnn.Flatten()(fnn.Dense(2, activation="relu")(a))              # (4,)
    h = fnn.BatchNormalization()(h)
    h = fnn.Add()([h, inner(b)])
    h = fnn.Concatenate()([fnn.LayerNormalization()(h), fnn.Dropout(0.2, seed=1)(b)])
    h = fnn.Reshape((2, 4))(h)
    out = fnn.Dense(3, activation="softmax", name="head")(fnn.Flatten()(h))
    model = fnn.Model([a, b], out, seed=0, backend=backend)
    return model.compile("cross_entropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 2, 3)), rng.standard_normal((n, 4))], rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def good():
    model = _every_kind()
    X, y = _data()
    model.fit(X, y, epochs=2, batch_size=5, verbose=0)
    blob = fio.model_to_bytes(model)
    version, header, start = parse(blob)
    return {"model": model, "blob": blob, "header": header, "data": blob[start:],
            "version": version}


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_every_kind_round_trips_bitwise(backend, tmp_path):
    model = _every_kind(backend)
    X, y = _data()
    model.fit(X, y, epochs=2, batch_size=5, verbose=0)
    model.save(tmp_path / "m.fnn")
    assert parse((tmp_path / "m.fnn").read_bytes())[0] == 2
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.summary.__self__ is loaded and loaded.count_params() == model.count_params()
    assert [w.tobytes() for w in loaded.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert loaded.predict(X).tobytes() == model.predict(X).tobytes()
    assert loaded.train_on_batch(X, y) == model.train_on_batch(X, y)
    assert [w.tobytes() for w in loaded.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert loaded.get_layer("head").get_weights()[0].shape == (8, 3)


def test_a_plain_mlp_is_still_written_as_version_1_and_v1_files_load(tmp_path):
    mlp = fnn.Sequential([fnn.Dense(3, activation="relu"), fnn.Dense(2)], input_dim=4, seed=0)
    assert parse(fio.model_to_bytes(mlp))[0] == 1
    named = fnn.Sequential([fnn.Dense(3, name="hidden"), fnn.Dense(2)], input_dim=4, seed=0)
    assert parse(fio.model_to_bytes(named))[0] == 2
    assert fnn.load.__module__ == "fastnn.io"
    back = model_from_bytes(fio.model_to_bytes(named))
    assert back.layers[0].name == "hidden" and back.path == "fast"


def _forge(good, change):
    header = copy.deepcopy(good["header"])
    change(header["model"])
    return build(header, good["data"], version=2)


def _layer(i, **values):
    def change(model):
        model["layers"][i]["config"].update(values)
    return change


def _inbound(i, value):
    def change(model):
        model["layers"][i]["inbound"] = value
    return change


REFUSALS = {
    "unknown_kind": (_layer(0, **{"class": "Conv7D"}), r"unknown layer kind 'Conv7D'"),
    "kind_not_a_string": (_layer(0, **{"class": []}), r"unknown layer kind \[\]"),
    "cycle": (_inbound(0, [5]), r"earlier nodes.*cycle"),
    "dangling": (_inbound(3, [99]), r"earlier nodes"),
    "negative_reference": (_inbound(3, [-1]), r"earlier nodes"),
    "inbound_not_a_list": (_inbound(3, 1), r"'inbound'"),
    "output_out_of_range": (lambda m: m.update(outputs=[40]), r"'outputs' must list"),
    "output_is_an_input": (lambda m: m.update(outputs=[0]), r"'outputs' must list"),
    "shape_mismatch": (_layer(0, units=3), r"one shape|do not match"),
    "parameter_shape": (lambda m: m["layers"][-1]["config"].update(units=5),
                        r"head/kernel.*needs|do not match"),
    "bigger_than_the_file": (_layer(10, units=2**28), WEIGHT_BOUND),
    "bad_argument": (_layer(6, rate=2.0), r"rate"),
    "unknown_argument": (_layer(0, kernel_size=3), r"kernel_size"),
    "input_shape_bad": (lambda m: m.update(inputs=[[2, 0], [4]]), r"dimension"),
    "model_class_unknown": (lambda m: m.update({"class": "Graph"}), r"Sequential or Model"),
    "nested_unknown_kind": (lambda m: m["layers"][3]["config"]["model"]["layers"][0]
                            .update({"class": "Nope"}), r"unknown layer kind 'Nope'"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_the_loader_refuses_forged_graphs(good, name):
    change, pattern = REFUSALS[name]
    with memory_cap():
        with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
            model_from_bytes(_forge(good, change))
    assert info.match(pattern), str(info.value)


def test_the_layers_in_the_good_file_are_where_the_refusals_expect(good):
    layers = good["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "Dense", "Flatten", "BatchNormalization", "Model", "Add", "LayerNormalization",
        "Dropout", "Concatenate", "Reshape", "Flatten", "Dense"]
    assert model_from_bytes(good["blob"]).predict(_data()[0]).shape == (12, 3)


def _load_or_refuse(blob):
    try:
        with memory_cap():
            model = model_from_bytes(blob)
    except ValueError:
        return
    assert all(np.isfinite(w).all() for w in model.get_weights())
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    xs = [np.zeros((2, *s)) for s in shapes]
    model.predict(xs if len(xs) > 1 else xs[0])


@FUZZ
@given(data=st.data())
def test_fuzz_v2_mutated_bytes(good, data):
    blob = bytearray(good["blob"])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    _load_or_refuse(bytes(blob))


@FUZZ
@given(data=st.data())
def test_fuzz_v2_mutated_json_header(good, data):
    try:
        raw = json.dumps(mutate_header(good["header"], data)).encode()
    except (ValueError, TypeError):
        return
    _load_or_refuse(build(None, good["data"], version=2, header_bytes=raw))


# ---------------------------------------------------------------- convolution and recurrent graphs
def _conv_rnn(backend="numpy"):
    """Layers 0-8: Conv2D, MaxPooling2D, Flatten, LSTM(return_state; inputs x, h0, c0),
    OutputOf 0, OutputOf 1, Conv1D, Bidirectional(GRU), Concatenate; then the Dense head.
    Nodes: inputs 0-3 (image, sequence, h0, c0), layer i is node 4 + i."""
    img, seq, h0, c0 = fnn.Input((6, 6, 1)), fnn.Input((5, 2)), fnn.Input((3,)), fnn.Input((3,))
    a = fnn.Flatten()(fnn.MaxPooling2D()(fnn.Conv2D(2, 3, activation="relu")(img)))
    s, h, _ = fnn.LSTM(3, return_state=True)(seq, initial_state=[h0, c0])
    r = fnn.Bidirectional(fnn.GRU(2))(fnn.Conv1D(2, 2)(seq))
    out = fnn.Dense(2, activation="softmax")(fnn.Concatenate()([a, s, h, r]))
    return fnn.Model([img, seq, h0, c0], out, seed=0, backend=backend)


@pytest.fixture(scope="module")
def conv_rnn():
    blob = fio.model_to_bytes(_conv_rnn())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


def _nested(i, key, **values):
    def change(model):
        model["layers"][i]["config"][key].update(values)
    return change


def _replace_nested(i, key, value):
    def change(model):
        model["layers"][i]["config"][key] = value
    return change


_DENSE = {"class": "Dense", "units": 2, "activation": "linear"}
_BIDI_GRU = {"class": "Bidirectional", "layer": {"class": "GRU", "units": 2},
             "merge_mode": "concat"}

HOSTILE_LAYERS = {
    "conv_filters_2_30": (_layer(0, filters=2**30), WEIGHT_BOUND),
    "conv_filters_2_31": (_layer(0, filters=2**31), r"filters=2147483648"),
    "conv_kernel_2_30": (_layer(0, kernel_size=[2**30, 2**30]), r"does not fit"),
    "conv_kernel_2_30_same": (_layer(0, kernel_size=[2**30, 2**30], padding="same"),
                              r"kernel_size=\[1073741824, 1073741824\].*window spanning"),
    "conv_kernel_2_31": (_layer(0, kernel_size=[3, 2**31]), r"kernel_size"),
    "conv_strides_zero": (_layer(0, strides=[0, 1]), r"strides=0\b"),
    "conv_strides_negative": (_layer(0, strides=[1, -1]), r"strides=-1\b"),
    "conv_dilation_zero": (_layer(0, dilation_rate=[0, 0]), r"dilation_rate=0\b"),
    "conv_kernel_size_string": (_layer(0, kernel_size="3"), r"kernel_size='3'"),
    "conv_filters_float": (_layer(0, filters=2.0), r"filters=2\.0"),
    "conv_padding_unknown": (_layer(0, padding="full"), r"padding='full'"),
    "conv_channels_first": (_layer(0, data_format="channels_first"), r"data_format"),
    "conv_activation_unknown": (_layer(0, activation="swishy"), r"activation='swishy'"),
    "conv1d_kernel_2_30": (_layer(6, kernel_size=[2**30]), r"does not fit"),
    "pool_size_zero": (_layer(1, pool_size=[0, 2]), r"pool_size=0\b"),
    "pool_strides_negative": (_layer(1, strides=[-2, 2]), r"strides=-2\b"),
    "pool_larger_than_input": (_layer(1, pool_size=[2**30, 2**30]), r"does not fit"),
    "lstm_units_2_40": (_layer(3, units=2**40), r"units=1099511627776"),
    "lstm_units_2_30": (_layer(3, units=2**30), r"initial_state must be 2 tensor\(s\) of shape "
                                                 r"\(1073741824,\)"),
    "lstm_units_zero": (_layer(3, units=0), r"units=0\b"),
    "lstm_units_negative": (_layer(3, units=-1), r"units=-1\b"),
    "lstm_units_string": (_layer(3, units="3"), r"units='3'"),
    "lstm_units_float": (_layer(3, units=3.0), r"units=3\.0"),
    "lstm_units_bool": (_layer(3, units=True), r"units=True"),
    "lstm_activation_softmax": (_layer(3, activation="softmax"), r"activation='softmax'"),
    "lstm_activation_unknown": (_layer(3, activation="bogus"), r"activation='bogus'"),
    "lstm_recurrent_activation_step": (_layer(3, recurrent_activation="step"),
                                       r"recurrent_activation='step'"),
    "lstm_four_inbound": (_inbound(3, [1, 2, 3, 3]), r"initial_state must be 2"),
    "lstm_one_state": (_inbound(3, [1, 2]), r"initial_state must be 2"),
    "lstm_state_is_the_image": (_inbound(3, [1, 0, 3]), r"initial_state"),
    "lstm_sequence_is_a_state": (_inbound(3, [2, 2, 3]), r"steps, features"),
    # reset_after flipped without the weights: the bias the file holds no longer fits
    "gru_reset_after_false": (_nested(7, "layer", reset_after=False),
                              r"bias' is <f\d\[2, 6\], the model needs <f\d\[6\]"),
    "gru_reset_after_int": (_nested(7, "layer", reset_after=0), r"reset_after=0\b"),
    "gru_units_2_40": (_nested(7, "layer", units=2**40), r"units=1099511627776"),
    "gru_units_zero": (_nested(7, "backward_layer", units=0), r"units=0\b"),
    "bidirectional_of_dense": (_replace_nested(7, "layer", _DENSE), r"layer=Dense"),
    "bidirectional_of_bidirectional": (_replace_nested(7, "layer", _BIDI_GRU),
                                       r"layer=Bidirectional"),
    "bidirectional_backward_dense": (_replace_nested(7, "backward_layer", _DENSE),
                                     r"backward_layer"),
    "bidirectional_layer_not_a_dict": (_replace_nested(7, "layer", "GRU"), r"layer"),
    "bidirectional_merge_mode": (_layer(7, merge_mode="bogus"), r"merge_mode='bogus'"),
    "output_of_out_of_range": (_layer(4, index=3), r"picks output 3"),
    "output_of_negative": (_layer(4, index=-1), r"index=-1\b"),
    "output_of_string": (_layer(5, index="1"), r"index='1'"),
    "output_of_a_single_output": (_inbound(4, [5]), r"picks output 0"),
}


def _refused_before_allocation(blob, pattern):
    """The loader raises its ValueError matching ``pattern`` on ``blob``, within a capped address
    space, quickly, and with no allocation beyond the file's size (tracemalloc)."""
    import time
    import tracemalloc
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with memory_cap():
            with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
                model_from_bytes(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.match(pattern), str(info.value)
    assert peak < 2 << 20, f"{peak} bytes allocated while refusing a {len(blob)}-byte file"
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("name", list(HOSTILE_LAYERS))
def test_the_loader_refuses_hostile_conv_and_recurrent_configs(conv_rnn, name):
    """Each forged config raises the loader's ValueError naming the problem (see
    _refused_before_allocation)."""
    change, pattern = HOSTILE_LAYERS[name]
    _refused_before_allocation(_forge(conv_rnn, change), pattern)


def test_the_conv_rnn_file_loads_and_its_layers_are_where_the_refusals_expect(conv_rnn):
    layers = conv_rnn["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "Conv2D", "MaxPooling2D", "Flatten", "LSTM", "OutputOf", "OutputOf", "Conv1D",
        "Bidirectional", "Concatenate", "Dense"]
    assert layers[3]["inbound"] == [1, 2, 3] and layers[4]["inbound"] == [7]
    model = model_from_bytes(conv_rnn["blob"])
    xs = [np.zeros((2, 6, 6, 1)), np.zeros((2, 5, 2)), np.zeros((2, 3)), np.zeros((2, 3))]
    assert model.predict(xs).shape == (2, 2)


# ---------------------------------------------------------------- attention
def _attention(backend="numpy"):
    """Layer 0: MultiHeadAttention(2 heads of 3, values 4, output 7) of query 0 over value 1
    with the key padding mask 2, causal; layer 1: self-attention (4 heads of 2) of input 3."""
    q, v, mask, x = fnn.Input((4, 8)), fnn.Input((6, 5)), fnn.Input((6,)), fnn.Input((5, 8))
    h = fnn.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=7)(
        q, v, attention_mask=mask, use_causal_mask=True)
    s = fnn.MultiHeadAttention(num_heads=4, key_dim=2)(x, x)
    return fnn.Model([q, v, mask, x], [h, s], seed=0, backend=backend)


@pytest.fixture(scope="module")
def attention():
    blob = fio.model_to_bytes(_attention())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


def _call(i, **values):
    return _nested(i, "call", **values)


HOSTILE_ATTENTION = {
    "num_heads_zero": (_layer(0, num_heads=0), r"num_heads=0\b"),
    "num_heads_negative": (_layer(1, num_heads=-1), r"num_heads=-1\b"),
    "num_heads_float": (_layer(0, num_heads=1.5), r"num_heads=1\.5"),
    "num_heads_bool": (_layer(0, num_heads=True), r"num_heads=True"),
    "num_heads_string": (_layer(0, num_heads="4"), r"num_heads='4'"),
    "num_heads_null": (_layer(0, num_heads=None), r"num_heads=None"),
    "num_heads_2_30": (_layer(0, num_heads=2**30), WEIGHT_BOUND),
    "num_heads_2_62": (_layer(0, num_heads=2**62), r"num_heads=4611686018427387904"),
    "key_dim_2_31": (_layer(1, key_dim=2**31), r"key_dim=2147483648"),
    "key_dim_2_30": (_layer(1, key_dim=2**30), WEIGHT_BOUND),
    "heads_times_key_dim": (_layer(0, num_heads=2**20, key_dim=2**20), WEIGHT_BOUND),
    "value_dim_2_28": (_layer(0, value_dim=2**28), WEIGHT_BOUND),
    "output_shape_2_40": (_layer(0, output_shape=2**40), r"output_shape=1099511627776"),
    "output_shape_list": (_layer(0, output_shape=[7]), r"output_shape=\[7\]"),
    "dropout_one": (_layer(0, dropout=1.0), r"dropout=1\.0"),
    "dropout_seed_negative": (_layer(0, dropout=0.5, seed=-1), r"seed=-1\b"),
    "dropout_state_calls_negative": (_replace_nested(0, "state", {"mask_seed": 1, "calls": -2}),
                                     r"calls=-2"),
    "dropout_state_not_a_dict": (_replace_nested(0, "state", [1, 2]),
                                 r"MultiHeadAttention's state"),
    "use_bias_int": (_layer(0, use_bias=1), r"use_bias=1\b"),
    "key_dim_one_more": (_layer(0, key_dim=4), r"query_kernel.*needs .*\[8, 2, 4\]"),
    "value_dim_one_more": (_layer(0, value_dim=5), r"value_kernel.*needs .*\[5, 2, 5\]"),
    "output_shape_one_more": (_layer(0, output_shape=8), r"output_kernel.*needs .*\[2, 4, 8\]"),
    "num_heads_one_more": (_layer(1, num_heads=5), r"more than the file|needs"),
    "no_biases": (_layer(0, use_bias=False), r"arrays .*query_bias"),
    "roles_key_without_value": (_call(0, input_roles=["q", "k", "m"]),
                                r"input_roles=\['q', 'k', 'm'\]"),
    "roles_query_twice": (_call(0, input_roles=["qq", "kv", "m"]), r"input_roles"),
    "roles_mask_first": (_call(0, input_roles=["m", "q", "kv"]), r"input_roles"),
    "roles_two_masks": (_call(0, input_roles=["q", "kv", "m", "m"]), r"input_roles"),
    "roles_string": (_call(0, input_roles="qkvm"), r"input_roles='qkvm'"),
    "roles_empty": (_call(0, input_roles=[]), r"input_roles=\[\]"),
    "roles_numbers": (_call(0, input_roles=[1, 2, 3]), r"input_roles=\[1, 2, 3\]"),
    "roles_fewer_than_inputs": (_call(0, input_roles=["qkv", "m"]),
                                r"takes 2 input\(s\).*Received: 3 inputs"),
    "roles_more_than_inputs": (_call(1, input_roles=["q", "kv"]),
                               r"takes 2 input\(s\).*Received: 1 inputs"),
    "roles_query_and_value_swapped": (_call(0, input_roles=["kv", "q", "m"]),
                                      r"attention_mask must have shape .* or be a key padding mask"),
    "causal_string": (_call(0, use_causal_mask="yes"), r"use_causal_mask='yes'"),
    "causal_int": (_call(0, use_causal_mask=1), r"use_causal_mask=1\b"),
    "call_missing": (lambda m: m["layers"][0]["config"].pop("call"),
                     r"takes 1 input\(s\).*Received: 3 inputs"),
    "call_not_a_dict": (_replace_nested(0, "call", "self"), r"'call' must be a dict"),
    "call_unknown_key": (_call(0, bogus=1), r"bogus"),
    "call_without_roles": (_replace_nested(0, "call", {}), r"input_roles"),
    "unknown_argument": (_layer(0, bogus=1), r"bogus"),
    "mask_inbound_is_the_query": (_inbound(0, [0, 1, 0]), r"attention_mask"),
}


@pytest.mark.parametrize("name", list(HOSTILE_ATTENTION))
def test_the_loader_refuses_hostile_attention_configs(attention, name):
    change, pattern = HOSTILE_ATTENTION[name]
    _refused_before_allocation(_forge(attention, change), pattern)


def test_the_attention_file_loads_and_its_layers_are_where_the_refusals_expect(attention):
    layers = attention["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == ["MultiHeadAttention"] * 2
    assert layers[0]["inbound"] == [0, 1, 2] and layers[1]["inbound"] == [3]
    assert layers[0]["config"]["call"] == {"input_roles": ["q", "kv", "m"],
                                           "use_causal_mask": True}
    model = model_from_bytes(attention["blob"])
    xs = [np.zeros((2, 4, 8)), np.zeros((2, 6, 5)), np.ones((2, 6)), np.zeros((2, 5, 8))]
    assert [y.shape for y in model.predict(xs)] == [(2, 4, 7), (2, 5, 8)]


@pytest.mark.parametrize("cut", [4, 64])
def test_the_loader_refuses_truncated_attention_weights(attention, cut):
    header = attention["header"]
    blob = build(header, attention["data"][:-cut], version=attention["version"])
    _refused_before_allocation(blob, r"truncated|beyond the file")


# ---------------------------------------------------------------- transformer layers
def _transformer(backend="numpy"):
    """Layer 0: SinePositionEncoding of input 0 (6, 8); layer 1: PositionalEmbedding(8);
    layer 2: TransformerBlock(2 heads of 4, ff 16, causal, dropout 0.1) with the padding mask
    input 1; layer 3: TransformerBlock(1 head of 8, ff 12, post-norm, LeakyReLU(0.2)).
    Nodes: inputs 0-1, layer i is node 2 + i."""
    x, m = fnn.Input((6, 8)), fnn.Input((6,))
    h = fnn.PositionalEmbedding(8)(fnn.SinePositionEncoding()(x))
    h = fnn.TransformerBlock(2, 4, 16, causal=True, dropout=0.1)(h, padding_mask=m)
    h = fnn.TransformerBlock(1, 8, 12, norm_first=False, activation=fnn.LeakyReLU(0.2))(h)
    return fnn.Model([x, m], h, seed=0, backend=backend)


@pytest.fixture(scope="module")
def transformer():
    blob = fio.model_to_bytes(_transformer())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


def _state(i, value):
    def change(model):
        model["layers"][i]["config"]["state"] = value
    return change


def _dropout_state(k, **values):
    def change(model):
        model["layers"][2]["config"]["state"]["dropouts"][k].update(values)
    return change


def _step(i, threshold):
    """Layer i's feed-forward activation made Step(threshold) (its alpha dropped)."""
    def change(model):
        config = model["layers"][i]["config"]
        config.pop("alpha", None)
        config.update(activation="step", threshold=threshold)
    return change


def _array_shape(name_end, shape):
    """The arrays entry whose name ends with ``name_end`` given ``shape`` (the data unchanged)."""
    def change(header):
        entry = next(e for e in header["arrays"] if e["name"].endswith(name_end))
        entry["shape"] = shape
    return change


HOSTILE_TRANSFORMER = {
    # SinePositionEncoding (layer 0)
    "sine_max_wavelength_below_one": (_layer(0, max_wavelength=0.5), r"max_wavelength=0\.5"),
    "sine_max_wavelength_negative": (_layer(0, max_wavelength=-1.0), r"max_wavelength=-1\.0"),
    "sine_max_wavelength_string": (_layer(0, max_wavelength="1e4"), r"max_wavelength='1e4'"),
    "sine_max_wavelength_null": (_layer(0, max_wavelength=None), r"max_wavelength=None"),
    "sine_max_wavelength_bool": (_layer(0, max_wavelength=True), r"max_wavelength=True"),
    "sine_unknown_argument": (_layer(0, sequence_length=8), r"sequence_length"),
    "sine_state": (_state(0, {"calls": 1}), r"SinePositionEncoding keeps no state"),
    "sine_table_2_30": (lambda m: m.update(inputs=[[2**15, 2**15], [6]]),
                        r"length \* width must be at most 2\*\*28"),
    "sine_on_the_mask": (_inbound(0, [1]), r"sine_position_encoding takes sequences"),
    # PositionalEmbedding (layer 1)
    "pos_length_zero": (_layer(1, sequence_length=0), r"sequence_length=0\b"),
    "pos_length_negative": (_layer(1, sequence_length=-8), r"sequence_length=-8\b"),
    "pos_length_string": (_layer(1, sequence_length="8"), r"sequence_length='8'"),
    "pos_length_float": (_layer(1, sequence_length=8.0), r"sequence_length=8\.0"),
    "pos_length_bool": (_layer(1, sequence_length=True), r"sequence_length=True"),
    "pos_length_null": (_layer(1, sequence_length=None), r"sequence_length=None"),
    "pos_length_2_31": (_layer(1, sequence_length=2**31), r"sequence_length=2147483648"),
    "pos_length_2_28": (_layer(1, sequence_length=2**28), WEIGHT_BOUND),
    "pos_length_shorter_than_the_input": (_layer(1, sequence_length=5),
                                          r"holds 5 positions.*sequences of 6 steps"),
    "pos_length_one_more": (_layer(1, sequence_length=9),
                            r"positional_embedding/embeddings.*<f4\[8, 8\].*needs <f4\[9, 8\]"),
    "pos_initializer_unknown": (_layer(1, initializer={"class_name": "Bogus", "config": {}}),
                                r"initializer"),
    "pos_regularizer_unknown": (_layer(1, regularizer="l7"), r"regularizer.*'l7'"),
    "pos_unknown_argument": (_layer(1, max_wavelength=1e4), r"max_wavelength"),
    "pos_state": (_state(1, [1]), r"PositionalEmbedding keeps no state"),
    "pos_two_inbound": (_inbound(1, [2, 1]), r"PositionalEmbedding takes one input, 2 given"),
    "pos_weights_transposed": (_array_shape("positional_embedding/embeddings", [4, 16]),
                               r"positional_embedding/embeddings.*<f4\[4, 16\].*needs "
                               r"<f4\[8, 8\]"),
    # TransformerBlock (layers 2 and 3)
    "tb_num_heads_zero": (_layer(2, num_heads=0), r"num_heads=0\b"),
    "tb_num_heads_negative": (_layer(3, num_heads=-1), r"num_heads=-1\b"),
    "tb_num_heads_float": (_layer(2, num_heads=2.0), r"num_heads=2\.0"),
    "tb_num_heads_bool": (_layer(3, num_heads=True), r"num_heads=True"),
    "tb_num_heads_string": (_layer(2, num_heads="2"), r"num_heads='2'"),
    "tb_num_heads_null": (_layer(2, num_heads=None), r"num_heads=None"),
    "tb_num_heads_2_31": (_layer(2, num_heads=2**31), r"num_heads=2147483648"),
    "tb_num_heads_2_62": (_layer(2, num_heads=2**62), r"num_heads=4611686018427387904"),
    "tb_num_heads_2_24": (_layer(2, num_heads=2**24), r"more than the file"),
    "tb_num_heads_one_more": (_layer(2, num_heads=3),
                              r"query_kernel.*<f4\[8, 2, 4\].*needs <f4\[8, 3, 4\]"),
    "tb_key_dim_zero": (_layer(2, key_dim=0), r"key_dim=0\b"),
    "tb_key_dim_string": (_layer(3, key_dim="8"), r"key_dim='8'"),
    "tb_key_dim_2_31": (_layer(2, key_dim=2**31), r"key_dim=2147483648"),
    "tb_key_dim_2_30": (_layer(2, key_dim=2**30), WEIGHT_BOUND),
    "tb_key_dim_one_more": (_layer(2, key_dim=5), r"query_kernel.*needs <f4\[8, 2, 5\]"),
    # 8 * 2**30 * 2**30 = 2**63 values per kernel: a count that wrapped in int64 would be
    # negative and pass the size check
    "tb_heads_times_key_dim_2_60": (_layer(2, num_heads=2**30, key_dim=2**30),
                                    WEIGHT_BOUND),
    "tb_value_dim_zero": (_layer(2, value_dim=0), r"value_dim=0\b"),
    "tb_value_dim_float": (_layer(2, value_dim=4.5), r"value_dim=4\.5"),
    "tb_value_dim_one_more": (_layer(2, value_dim=5), r"value_kernel.*needs <f4\[8, 2, 5\]"),
    "tb_ff_dim_zero": (_layer(2, ff_dim=0), r"ff_dim=0\b"),
    "tb_ff_dim_negative": (_layer(3, ff_dim=-12), r"ff_dim=-12\b"),
    "tb_ff_dim_string": (_layer(2, ff_dim="16"), r"ff_dim='16'"),
    "tb_ff_dim_float": (_layer(2, ff_dim=16.0), r"ff_dim=16\.0"),
    "tb_ff_dim_bool": (_layer(2, ff_dim=True), r"ff_dim=True"),
    "tb_ff_dim_null": (_layer(2, ff_dim=None), r"ff_dim=None"),
    "tb_ff_dim_2_31": (_layer(2, ff_dim=2**31), r"ff_dim=2147483648"),
    "tb_ff_dim_2_40": (_layer(3, ff_dim=2**40), r"ff_dim=1099511627776"),
    "tb_ff_dim_2_28": (_layer(2, ff_dim=2**28), WEIGHT_BOUND),
    "tb_ff_dim_one_more": (_layer(2, ff_dim=17),
                           r"feedforward_intermediate_dense/kernel.*needs <f4\[8, 17\]"),
    "tb_dropout_negative": (_layer(2, dropout=-0.1), r"dropout=-0\.1"),
    "tb_dropout_one": (_layer(2, dropout=1.0), r"dropout=1\.0"),
    "tb_dropout_two": (_layer(3, dropout=2), r"dropout=2\.0"),
    "tb_dropout_string": (_layer(2, dropout="0.1"), r"dropout='0\.1'"),
    "tb_dropout_null": (_layer(2, dropout=None), r"dropout=None"),
    "tb_dropout_bool": (_layer(2, dropout=True), r"dropout=True"),
    "tb_dropout_zero_with_state": (_layer(2, dropout=0.0),
                                   r"state must be \{'dropouts': \[one state per dropout \(0\)"),
    "tb_state_two_dropouts": (lambda m: m["layers"][2]["config"]["state"]["dropouts"].pop(),
                              r"one state per dropout \(3\)"),
    "tb_state_not_a_dict": (_state(2, [1, 2, 3]), r"TransformerBlock's state must be"),
    "tb_state_unknown_key": (_state(2, {"dropouts": [None] * 3, "calls": 0}),
                             r"TransformerBlock's state must be"),
    "tb_state_without_dropout": (_state(3, {"dropouts": [{"mask_seed": 1, "calls": 0}]}),
                                 r"one state per dropout \(0\)"),
    "tb_dropout_seed_negative": (_dropout_state(0, mask_seed=-1), r"mask_seed.*-1\b"),
    "tb_dropout_seed_2_64": (_dropout_state(1, mask_seed=2**64), r"out of range"),
    "tb_dropout_calls_string": (_dropout_state(2, calls="0"), r"calls='0'"),
    "tb_dropout_state_extra_key": (_dropout_state(0, rate=0.5),
                                   r"Dropout's state must be \{'mask_seed': int, 'calls': int\}"),
    "tb_activation_unknown": (_layer(2, activation="swishy"), r"activation='swishy'"),
    "tb_activation_int": (_layer(2, activation=3), r"activation=3\b"),
    "tb_activation_list": (_layer(2, activation=[]), r"activation=\[\]"),
    "tb_leaky_relu_alpha_beyond_float32": (_layer(3, alpha=1e39),
                                           r"alpha=1e\+39, which in float32 overflows"),
    "tb_leaky_relu_alpha_negative": (_layer(3, alpha=-0.5), r"alpha=-0\.5"),
    "tb_leaky_relu_alpha_string": (_layer(3, alpha="0.2"), r"alpha='0\.2'"),
    "tb_step_threshold_string": (_step(3, "0"), r"threshold='0'"),
    "tb_step_threshold_subnormal": (_step(3, 1e-40), r"threshold=1e-40, which in float32 is "
                                                     r"subnormal"),
    "tb_epsilon_zero": (_layer(2, layer_norm_epsilon=0.0), r"layer_norm_epsilon=0\.0"),
    "tb_epsilon_negative": (_layer(3, layer_norm_epsilon=-1e-5), r"layer_norm_epsilon=-1e-05"),
    "tb_epsilon_string": (_layer(2, layer_norm_epsilon="1e-5"), r"layer_norm_epsilon='1e-5'"),
    "tb_epsilon_null": (_layer(2, layer_norm_epsilon=None), r"layer_norm_epsilon=None"),
    "tb_epsilon_bool": (_layer(2, layer_norm_epsilon=True), r"layer_norm_epsilon=True"),
    "tb_causal_int": (_layer(2, causal=1), r"causal=1\b"),
    "tb_causal_string": (_layer(3, causal="yes"), r"causal='yes'"),
    "tb_causal_null": (_layer(2, causal=None), r"causal=None"),
    "tb_norm_first_int": (_layer(2, norm_first=0), r"norm_first=0\b"),
    "tb_use_bias_int": (_layer(2, use_bias=1), r"use_bias=1\b"),
    "tb_no_biases": (_layer(2, use_bias=False), r"arrays .*query_bias.*do not match"),
    "tb_kernel_initializer_unknown": (_layer(2, kernel_initializer={"class_name": "Bogus",
                                                                   "config": {}}),
                                      r"unknown initializer class 'Bogus'"),
    "tb_unknown_argument": (_layer(2, bogus=1), r"bogus"),
    "tb_call_of_attention": (_layer(3, call={"input_roles": ["qkv"]}), r"call"),
    "tb_three_inbound": (_inbound(2, [3, 1, 1]),
                         r"a sequence and optionally its padding mask.*Received: 3 inputs"),
    "tb_mask_is_the_sequence": (_inbound(2, [3, 3]), r"padding_mask must be a key padding "
                                                      r"mask of shape \(batch, 6\)"),
    "tb_sequence_is_the_mask": (_inbound(3, [1]), r"transformer_block\w* takes sequences "
                                                   r"\(batch, steps, features\).*\(6,\)"),
    "tb_kernel_transposed": (_array_shape("transformer_block/feedforward_output_dense/kernel",
                                          [8, 16]),
                             r"feedforward_output_dense/kernel.*<f4\[8, 16\].*needs "
                             r"<f4\[16, 8\]"),
    "tb_kernel_heads_swapped": (_array_shape("transformer_block/self_attention/query_kernel",
                                             [8, 4, 2]),
                                r"query_kernel.*<f4\[8, 4, 2\].*needs <f4\[8, 2, 4\]"),
}


def _forge_any(files, change):
    """``change`` of the model description (a function of it) or, for ``_array_shape``, of the
    whole header."""
    header = copy.deepcopy(files["header"])
    if change.__qualname__.startswith("_array_shape"):
        change(header)
    else:
        change(header["model"])
    return build(header, files["data"], version=2)


@pytest.mark.parametrize("name", list(HOSTILE_TRANSFORMER))
def test_the_loader_refuses_hostile_transformer_configs(transformer, name):
    change, pattern = HOSTILE_TRANSFORMER[name]
    _refused_before_allocation(_forge_any(transformer, change), pattern)


def test_the_transformer_file_loads_and_its_layers_are_where_the_refusals_expect(transformer):
    layers = transformer["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "SinePositionEncoding", "PositionalEmbedding", "TransformerBlock", "TransformerBlock"]
    assert [entry["inbound"] for entry in layers] == [[0], [2], [3, 1], [4]]
    assert len(layers[2]["config"]["state"]["dropouts"]) == 3
    assert layers[3]["config"]["activation"] == "leaky_relu" and layers[3]["config"]["alpha"] == 0.2
    model = model_from_bytes(transformer["blob"])
    original = _transformer()
    xs = [np.random.default_rng(0).standard_normal((2, 6, 8)), np.ones((2, 6))]
    np.testing.assert_array_equal(model.predict(xs), original.predict(xs))


# ---------------------------------------------------------------- reshaping, merge, preprocessing
def _reshape_merge(backend="numpy"):
    """Layers 0-16: ZeroPadding2D, Cropping2D (of the padding), Cropping2D, UpSampling2D,
    Multiply, Subtract, Rescaling, Normalization(mean, variance), Maximum (3 inputs), Minimum,
    Average (4 inputs), RepeatVector(4), TimeDistributed(Dense(2)), ZeroPadding1D,
    Cropping1D, UpSampling1D, TimeDistributed(Conv2D(2, 2)). Nodes: inputs 0-2 (image
    (6, 4, 2), vector (3,), video (4, 3, 3, 1)), layer i is node 3 + i."""
    img, vec, video = fnn.Input((6, 4, 2)), fnn.Input((3,)), fnn.Input((4, 3, 3, 1))
    a = fnn.Cropping2D(((1, 0), (0, 1)))(fnn.ZeroPadding2D(((0, 1), (1, 0)))(img))
    b = fnn.UpSampling2D((1, 2))(fnn.Cropping2D(((0, 0), (1, 1)))(img))
    h = fnn.Normalization(mean=[0.5, -1.0], variance=[2.0, 0.5])(
        fnn.Rescaling(0.5, offset=-1.0)(a))
    m = fnn.Average()([fnn.Multiply()([a, b]), fnn.Subtract()([a, b]),
                       fnn.Maximum()([a, b, h]), fnn.Minimum()([a, h])])
    r = fnn.TimeDistributed(fnn.Dense(2))(fnn.RepeatVector(4)(vec))
    r = fnn.UpSampling1D(2)(fnn.Cropping1D((1, 1))(fnn.ZeroPadding1D(1)(r)))
    t = fnn.TimeDistributed(fnn.Conv2D(2, 2))(video)
    return fnn.Model([img, vec, video], [m, r, t], seed=0, backend=backend)


@pytest.fixture(scope="module")
def reshape_merge():
    blob = fio.model_to_bytes(_reshape_merge())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


def _pop(i, key):
    def change(model):
        model["layers"][i]["config"].pop(key)
    return change


def _both(*changes):
    def change(model):
        for c in changes:
            c(model)
    return change


_TD_DENSE = {"class": "TimeDistributed", "layer": dict(_DENSE)}

HOSTILE_RESHAPE_MERGE = {
    # ZeroPadding2D (layer 0) on the (6, 4, 2) image
    "zero_padding_negative": (_layer(0, padding=-1), r"padding must be an integer >= 0.*"
                                                      r"padding=-1\b"),
    "zero_padding_pair_negative": (_layer(0, padding=[[0, -1], [1, 0]]), r"padding=-1\b"),
    "zero_padding_2_31": (_layer(0, padding=2**31), r"below 2\*\*31.*padding=2147483648"),
    "zero_padding_2_40": (_layer(0, padding=[[2**40, 0], [1, 0]]),
                          r"below 2\*\*31.*padding=\[\[1099511627776, 0\], \[1, 0\]\]"),
    "zero_padding_2_30": (_layer(0, padding=[[2**30, 0], [1, 0]]),
                          r"multiply needs inputs of one shape.*\(1073741829, 4, 2\)"),
    "zero_padding_string": (_layer(0, padding="1"), r"padding='1'"),
    "zero_padding_three": (_layer(0, padding=[1, 2, 3]), r"padding=\[1, 2, 3\]"),
    "zero_padding_null": (_layer(0, padding=None), r"padding=None"),
    "zero_padding_bool": (_layer(0, padding=True), r"padding=True"),
    "zero_padding_float": (_layer(0, padding=1.5), r"padding=1\.5"),
    "zero_padding_channels_first": (_layer(0, data_format="channels_first"),
                                    r"data_format='channels_first'"),
    "zero_padding_unknown_argument": (_layer(0, bogus=1), r"bogus"),
    # Cropping2D (layers 1 and 2)
    "cropping_larger_than_the_input": (_layer(1, cropping=[[7, 0], [0, 1]]),
                                       r"cropping \[\[7, 0\], \[0, 1\]\] leaves nothing of an "
                                       r"input of shape \(7, 5, 2\)"),
    "cropping_both_sides_meet": (_layer(1, cropping=[[4, 4], [0, 1]]), r"leaves nothing"),
    "cropping_every_column": (_layer(2, cropping=[[0, 0], [2, 2]]),
                              r"cropping \[\[0, 0\], \[2, 2\]\] leaves nothing .*\(6, 4, 2\)"),
    "cropping_negative": (_layer(1, cropping=[[-1, 0], [0, 1]]), r"cropping=-1\b"),
    "cropping_2_31": (_layer(1, cropping=2**31), r"below 2\*\*31.*cropping=2147483648"),
    "cropping_2_40": (_layer(2, cropping=[[2**40, 0], [0, 0]]), r"cropping=\[\[1099511627776"),
    "cropping_string": (_layer(1, cropping="x"), r"cropping='x'"),
    # UpSampling2D (layer 3) on (6, 2, 2)
    "upsampling_zero": (_layer(3, size=0), r"size must be an integer >= 1.*size=0\b"),
    "upsampling_zero_in_pair": (_layer(3, size=[0, 2]), r"size=0\b"),
    "upsampling_negative": (_layer(3, size=[1, -2]), r"size=-2\b"),
    "upsampling_2_40": (_layer(3, size=2**40), r"below 2\*\*31.*size=1099511627776"),
    "upsampling_2_30": (_layer(3, size=[1, 2**30]),
                        r"upsampled by \[1, 1073741824\] has \(6, 2147483648\) positions: each "
                        r"must be below 2\*\*31"),
    "upsampling_2_20": (_layer(3, size=[2**20, 2]), r"multiply needs inputs of one shape"),
    "upsampling_float": (_layer(3, size=[1, 2.0]), r"size=2\.0"),
    "upsampling_string": (_layer(3, size="2"), r"size='2'"),
    "upsampling_three": (_layer(3, size=[1, 2, 3]), r"size=\[1, 2, 3\]"),
    "upsampling_bilinear": (_layer(3, interpolation="bilinear"), r"interpolation='bilinear'"),
    # merges (layers 4, 5, 8, 9, 10)
    "multiply_one_input": (_inbound(4, [4]), r"multiply takes a list of at least two inputs"),
    "multiply_image_and_vector": (_inbound(4, [4, 1]),
                                  r"multiply needs inputs of one shape.*\(6, 4, 2\), \(3,\)"),
    "multiply_unknown_argument": (_layer(4, axis=1), r"axis"),
    "subtract_three_inputs": (_inbound(5, [4, 6, 4]), r"subtract takes exactly 2 inputs. "
                                                       r"Received: 3"),
    "subtract_one_input": (_inbound(5, [6]), r"subtract takes a list of at least two inputs"),
    "maximum_of_the_video": (_inbound(8, [4, 6, 2]),
                             r"maximum needs inputs of one shape.*\(4, 3, 3, 1\)"),
    "maximum_no_inputs": (_inbound(8, []), r"'inbound' must list earlier nodes"),
    "minimum_of_the_vector": (_inbound(9, [1, 1]),       # legal; the Average after it is not
                              r"average needs inputs of one shape.*\(3,\)"),
    "average_of_a_later_node": (_inbound(10, [7, 8, 11, 18]),
                                r"'inbound' must list earlier nodes"),
    "average_unknown_argument": (_layer(10, bogus=2), r"bogus"),
    # Rescaling (layer 6)
    "rescaling_scale_inf": (_layer(6, scale=float("inf")), r"Infinity, which is not a JSON number"),
    "rescaling_offset_nan": (_layer(6, offset=float("nan")), r"NaN, which is not a JSON number"),
    "rescaling_scale_string": (_layer(6, scale="0.5"), r"scale must be a finite number.*"
                                                        r"scale='0\.5'"),
    "rescaling_scale_null": (_layer(6, scale=None), r"scale=None"),
    "rescaling_scale_bool": (_layer(6, scale=True), r"scale=True"),
    "rescaling_scale_list": (_layer(6, scale=[0.5]), r"scale=\[0\.5\]"),
    "rescaling_scale_beyond_float32": (_layer(6, scale=1e300),
                                       r"scale=1e\+300, which in float32 overflows"),
    "rescaling_offset_beyond_float32": (_layer(6, offset=1e39),
                                        r"offset=1e\+39, which in float32 overflows"),
    "rescaling_scale_missing": (_pop(6, "scale"), r"missing .*'scale'"),
    "rescaling_unknown_argument": (_layer(6, bogus=1), r"bogus"),
    # Normalization (layer 7) of 2 channels
    "normalization_three_features": (_layer(7, mean=[0.5, 1.0, 2.0], variance=[1.0] * 3),
                                     r"statistics for 3 features; its input has 2"),
    "normalization_no_features": (_layer(7, mean=[], variance=[]),
                                  r"statistics for 0 features; its input has 2"),
    "normalization_variance_negative": (_layer(7, variance=[2.0, -0.5]),
                                        r"variance must be >= 0. Received: -0\.5"),
    "normalization_variance_inf": (_layer(7, variance=[float("inf"), 1.0]),
                                   r"Infinity, which is not a JSON number"),
    "normalization_mean_2d": (_layer(7, mean=[[0.5, -1.0]]),
                              r"mean must be a number or a 1-D array .*shape \(1, 2\)"),
    "normalization_mean_3d": (_layer(7, mean=[[[0.5]]], variance=[[[1.0]]]),
                              r"shape \(1, 1, 1\)"),
    "normalization_mean_without_variance": (_pop(7, "variance"), r"both mean and variance"),
    "normalization_mean_null": (_layer(7, mean=None), r"both mean and variance"),
    "normalization_mean_string": (_layer(7, mean="0.5"), r"mean must hold real numbers"),
    "normalization_variance_strings": (_layer(7, variance=["a", "b"]),
                                       r"variance must hold real numbers"),
    "normalization_mean_dict": (_layer(7, mean={"a": 1}), r"mean must hold real numbers"),
    "normalization_mean_beyond_float32": (_layer(7, mean=[1e39, 0.0]),
                                          r"mean or variance overflows float32"),
    "normalization_invert_string": (_layer(7, invert="yes"), r"invert='yes'"),
    "normalization_axis_0": (_layer(7, axis=0), r"axis must be -1. Received: axis=0"),
    # RepeatVector (layer 11) of the (3,) vector; then TimeDistributed(Dense), padding,
    # cropping and UpSampling1D(2)
    "repeat_zero": (_layer(11, n=0), r"n must be an integer >= 1. Received: n=0\b"),
    "repeat_negative": (_layer(11, n=-1), r"n=-1\b"),
    "repeat_2_31": (_layer(11, n=2**31), r"n must be below 2\*\*31. Received: n=2147483648"),
    "repeat_2_40": (_layer(11, n=2**40), r"n=1099511627776"),
    "repeat_2_30": (_layer(11, n=2**30), r"up_sampling1d: an input of shape \(1073741824, 2\) "
                                         r"upsampled by \[2\] has \(2147483648,\) positions"),
    "repeat_string": (_layer(11, n="4"), r"n='4'"),
    "repeat_float": (_layer(11, n=4.0), r"n=4\.0"),
    "repeat_bool": (_layer(11, n=True), r"n=True"),
    "repeat_null": (_layer(11, n=None), r"n=None"),
    "repeat_missing": (_pop(11, "n"), r"missing .*'n'"),
    "repeat_of_the_image": (_inbound(11, [0]), r"repeat_vector takes samples of one dimension "
                                               r"\(features,\). Received: input shape \(6, 4, 2\)"),
    # TimeDistributed (layers 12 and 16)
    "td_of_dropout": (_replace_nested(12, "layer", {"class": "Dropout", "rate": 0.5}),
                      r"TimeDistributed does not wrap Dropout"),
    "td_of_seeded_dropout": (_replace_nested(12, "layer", {"class": "Dropout", "rate": 0.5,
                                                           "seed": 1}),
                             r"does not wrap Dropout"),
    "td_of_an_unknown_kind": (_replace_nested(12, "layer", {"class": "Conv7D"}),
                              r"unknown layer class .*'Conv7D'"),
    "td_of_a_string": (_replace_nested(12, "layer", "Dense"),
                       r"'layer' must be a layer config. Received: 'Dense'"),
    "td_of_null": (_replace_nested(12, "layer", None), r"'layer' must be a layer config"),
    "td_of_a_list": (_replace_nested(12, "layer", [_DENSE]), r"'layer' must be a layer config"),
    "td_layer_missing": (_pop(12, "layer"), r"'layer' must be a layer config. Received: None"),
    "td_of_add": (_replace_nested(12, "layer", {"class": "Add"}), r"a layer of one input"),
    "td_of_td": (_replace_nested(12, "layer", _TD_DENSE),
                 r"time_distributed takes sequences \(steps, \*sample\). Received: input "
                 r"shape \(3,\)"),
    "td_of_lstm": (_replace_nested(12, "layer", {"class": "LSTM", "units": 2}),
                   r"lstm takes sequences"),
    "td_of_a_sequential": (_replace_nested(12, "layer", {"class": "Sequential",
                                                         "layers": [_DENSE]}),
                           r"unknown layer class .*'Sequential'"),
    "td_of_batch_normalization": (_replace_nested(12, "layer", {"class": "BatchNormalization"}),
                                  r"do not match the architecture"),
    "td_of_output_of": (_replace_nested(12, "layer", {"class": "OutputOf", "index": 0}),
                        r"output_of"),
    "td_units_2_40": (_nested(12, "layer", units=2**40), r"units=1099511627776"),
    "td_units_one_more": (_nested(12, "layer", units=3),
                          r"time_distributed/kernel' is <f4\[3, 2\], the model needs "
                          r"<f4\[3, 3\]"),
    "td_trainable_string": (_nested(12, "layer", trainable="no"), r"trainable='no'"),
    "td_unknown_argument": (_layer(12, bogus=1), r"bogus"),
    "td_on_the_vector": (_inbound(12, [1]), r"time_distributed takes sequences .*\(3,\)"),
    "td_conv_kernel_2_30": (_nested(16, "layer", kernel_size=[2**30, 2**30]),
                            r"1073741824x1073741824 kernel .*does not fit .*\(3, 3, 1\)"),
    "td_conv_filters_2_31": (_nested(16, "layer", filters=2**31), r"filters=2147483648"),
    "td_conv_on_vectors": (_inbound(16, [14]), r"conv2d takes one input of shape \(height, "
                                               r"width, channels\). Received: input shape \(3,\)"),
    # ZeroPadding1D, Cropping1D, UpSampling1D (layers 13-15) on (4, 2) -> (6, 2) -> (4, 2)
    "zero_padding1d_2_40": (_layer(13, padding=2**40), r"padding=1099511627776"),
    "zero_padding1d_sum_2_31": (_layer(13, padding=[2**31 - 1, 0]),
                                r"padded sizes \(2147483651,\) must be below 2\*\*31"),
    "cropping1d_everything": (_layer(14, cropping=[3, 3]),
                              r"cropping \[3, 3\] leaves nothing of an input of shape \(6, 2\)"),
    "cropping1d_negative": (_layer(14, cropping=-1), r"cropping=-1\b"),
    "cropping1d_three": (_layer(14, cropping=[1, 1, 1]), r"cropping=\[1, 1, 1\]"),
    "upsampling1d_zero": (_layer(15, size=0), r"size=0\b"),
    "upsampling1d_2_40": (_layer(15, size=2**40), r"size=1099511627776"),
    "upsampling1d_2_30": (_layer(15, size=2**30), r"\(4294967296,\) positions"),
    "padding_and_cropping_cancel_to_a_mismatch": (
        _both(_layer(0, padding=[[2**30, 1], [1, 0]]), _layer(1, cropping=[[2**30, 0], [0, 1]])),
        r"multiply needs inputs of one shape.*\(7, 4, 2\)"),
}


@pytest.mark.parametrize("name", list(HOSTILE_RESHAPE_MERGE))
def test_the_loader_refuses_hostile_reshape_merge_configs(reshape_merge, name):
    change, pattern = HOSTILE_RESHAPE_MERGE[name]
    _refused_before_allocation(_forge(reshape_merge, change), pattern)


def test_the_reshape_merge_file_loads_and_its_layers_are_where_the_refusals_expect(
        reshape_merge):
    layers = reshape_merge["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "ZeroPadding2D", "Cropping2D", "Cropping2D", "UpSampling2D", "Multiply", "Subtract",
        "Rescaling", "Normalization", "Maximum", "Minimum", "Average", "RepeatVector",
        "TimeDistributed", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "TimeDistributed"]
    assert [entry["inbound"] for entry in layers] == [
        [0], [3], [0], [5], [4, 6], [4, 6], [4], [9], [4, 6, 10], [4, 10], [7, 8, 11, 12], [1],
        [14], [15], [16], [17], [2]]
    model = model_from_bytes(reshape_merge["blob"])
    original = _reshape_merge()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 6, 4, 2)), rng.standard_normal((2, 3)),
          rng.standard_normal((2, 4, 3, 3, 1))]
    assert [y.shape for y in model.predict(xs)] == [(2, 6, 4, 2), (2, 8, 2), (2, 4, 2, 2, 2)]
    for a, b in zip(model.predict(xs), original.predict(xs)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("change", [_layer(11, n=2**26), _layer(15, size=2**25)])
def test_huge_but_legal_activations_load_without_allocating_them(reshape_merge, change):
    """A RepeatVector or UpSampling1D whose outputs would take up to a gigabyte per sample is
    a legal architecture (no weights, within MAX_SAMPLE_VALUES = 2**28 values a sample; larger
    ones are refused, see test_model_files_v3): the loader builds it without allocating any
    activation; only predict would need the memory."""
    import tracemalloc
    blob = _forge(reshape_merge, change)
    tracemalloc.start()
    try:
        with memory_cap():
            model = model_from_bytes(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20
    assert model.output_shape[1][0] >= 2**26


# ---------------------------------------------------------------- depthwise and separable
def _depthwise_model(backend="numpy"):
    """Layers 0-5: DepthwiseConv2D (depth_multiplier 2), SeparableConv2D, Reshape to steps,
    DepthwiseConv1D, SeparableConv1D, Flatten; then the Dense head (layer 6)."""
    return fnn.Sequential([
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.SeparableConv2D(4, 3, strides=2, activation="relu"), fnn.Reshape((-1, 4)),
        fnn.DepthwiseConv1D(2), fnn.SeparableConv1D(3, 2, padding="same"), fnn.Flatten(),
        fnn.Dense(2, activation="softmax")], input_shape=(8, 8, 3), seed=0, backend=backend)


@pytest.fixture(scope="module")
def depthwise_file():
    blob = fio.model_to_bytes(_depthwise_model())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


# ---------------------------------------------------------------- transposed convolutions
def _conv_transpose(backend="numpy"):
    """Layers 0-2: Conv1DTranspose(3, 4, strides 2, output_padding 1) and Conv1DTranspose(2, 3,
    "same", dilation 2) on the sequence (5, 2); Conv2DTranspose(2, 3, strides 2) on the image
    (3, 3, 2). Nodes: inputs 0-1, layer i is node 2 + i."""
    seq, img = fnn.Input((5, 2)), fnn.Input((3, 3, 2))
    s = fnn.Conv1DTranspose(3, 4, strides=2, output_padding=1, activation="relu")(seq)
    s = fnn.Conv1DTranspose(2, 3, padding="same", dilation_rate=2)(s)
    t = fnn.Conv2DTranspose(2, 3, strides=2)(img)
    return fnn.Model([seq, img], [s, t], seed=0, backend=backend)


@pytest.fixture(scope="module")
def conv_transpose():
    blob = fio.model_to_bytes(_conv_transpose())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


def _seq_layer(i, **values):
    def change(model):
        model["layers"][i].update(values)
    return change


HOSTILE_DEPTHWISE = {
    "depth_multiplier_2_28": (_seq_layer(0, depth_multiplier=2**28), WEIGHT_BOUND),
    "depth_multiplier_2_30": (_seq_layer(0, depth_multiplier=2**30),
                              r"3 channels times depth_multiplier=1073741824 must be below"),
    "depth_multiplier_2_31": (_seq_layer(0, depth_multiplier=2**31),
                              r"depth_multiplier=2147483648"),
    "depth_multiplier_zero": (_seq_layer(0, depth_multiplier=0), r"depth_multiplier=0\b"),
    "depth_multiplier_float": (_seq_layer(0, depth_multiplier=2.0), r"depth_multiplier=2\.0"),
    "depth_multiplier_string": (_seq_layer(1, depth_multiplier="2"), r"depth_multiplier='2'"),
    "depthwise_kernel_2_30": (_seq_layer(0, kernel_size=[2**30, 2**30], padding="valid"),
                              r"does not fit"),
    "depthwise_kernel_2_30_same": (_seq_layer(0, kernel_size=[2**30, 3]),
                                   r"kernel_size=\[1073741824, 3\].*window spanning"),
    "depthwise_strides_zero": (_seq_layer(0, strides=[0, 1]), r"strides=0\b"),
    "depthwise_dilation_negative": (_seq_layer(0, dilation_rate=[1, -1]), r"dilation_rate=-1\b"),
    "depthwise_padding_causal": (_seq_layer(0, padding="causal"), r"padding='causal'"),
    "depthwise_channels_first": (_seq_layer(0, data_format="channels_first"), r"data_format"),
    "depthwise_activation_unknown": (_seq_layer(0, activation="swishy"), r"activation='swishy'"),
    "depthwise_initializer_unknown": (_seq_layer(0, depthwise_initializer="magic"),
                                      r"depthwise_initializer"),
    "separable_filters_2_30": (_seq_layer(1, filters=2**30), WEIGHT_BOUND),
    "separable_filters_zero": (_seq_layer(1, filters=0), r"filters=0\b"),
    "separable_filters_missing": (lambda m: m["layers"][1].pop("filters"), r"filters"),
    "separable_unknown_argument": (_seq_layer(1, groups=2), r"groups"),
    "separable_pointwise_regularizer": (_seq_layer(1, pointwise_regularizer={"class_name": "L9",
                                                                            "config": {}}),
                                        r"pointwise_regularizer|L9"),
    "separable1d_kernel_two_axes": (_seq_layer(4, kernel_size=[2, 2]), r"kernel_size"),
    "depthwise1d_kernel_2_30": (_seq_layer(3, kernel_size=[2**30]), r"does not fit"),
    "depthwise1d_strides_2_31": (_seq_layer(3, strides=[2**31]), r"strides"),
    "separable_more_weights": (_seq_layer(1, depth_multiplier=3), r"more than the file"),
    "head_parameter_shape": (_seq_layer(6, units=3), r"needs|do not match"),
}


@pytest.mark.parametrize("name", list(HOSTILE_DEPTHWISE))
def test_the_loader_refuses_hostile_depthwise_and_separable_configs(depthwise_file, name):
    change, pattern = HOSTILE_DEPTHWISE[name]
    _refused_before_allocation(_forge(depthwise_file, change), pattern)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_the_depthwise_file_round_trips_bitwise(depthwise_file, backend, tmp_path):
    layers = depthwise_file["header"]["model"]["layers"]
    assert [entry["class"] for entry in layers] == [
        "DepthwiseConv2D", "SeparableConv2D", "Reshape", "DepthwiseConv1D", "SeparableConv1D",
        "Flatten", "Dense"]
    model = _depthwise_model(backend)
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 3))
    model.compile("cross_entropy", fnn.SGD(learning_rate=0.1, momentum=0.9))
    model.fit(x, np.arange(5) % 2, epochs=2, batch_size=2, verbose=0)
    model.save(tmp_path / "dw.fnn")
    loaded = fnn.load(tmp_path / "dw.fnn")
    assert [w.tobytes() for w in loaded.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.train_on_batch(x, np.arange(5) % 2) == model.train_on_batch(x, np.arange(5) % 2)


# ---------------------------------------------------------------- 3-D convolution and pooling
def _conv3d_model(backend="numpy"):
    """Layers 0-4: Conv3D(3, 3, "same", relu), MaxPooling3D((1, 2, 2)), Conv3D(2, (2, 1, 1),
    strides 2), AveragePooling3D(2, "same"), GlobalMaxPooling3D(keepdims) (1, 1, 1, 2); 5-8:
    UpSampling3D(2), ZeroPadding3D(1), Cropping3D(((0, 1), (1, 0), (0, 0))), SpatialDropout3D;
    then Flatten and the Dense head (layer 10)."""
    return fnn.Sequential([
        fnn.Conv3D(3, 3, padding="same", activation="relu"), fnn.MaxPooling3D((1, 2, 2)),
        fnn.Conv3D(2, (2, 1, 1), strides=2), fnn.AveragePooling3D(2, padding="same"),
        fnn.GlobalMaxPooling3D(keepdims=True), fnn.UpSampling3D(2), fnn.ZeroPadding3D(1),
        fnn.Cropping3D(((0, 1), (1, 0), (0, 0))), fnn.SpatialDropout3D(0.1, seed=1),
        fnn.Flatten(), fnn.Dense(2, activation="softmax")],
        input_shape=(4, 6, 6, 2), seed=0, backend=backend)


@pytest.fixture(scope="module")
def conv3d_file():
    blob = fio.model_to_bytes(_conv3d_model())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


HOSTILE_CONV3D = {
    "conv3d_filters_2_30": (_seq_layer(0, filters=2**30), WEIGHT_BOUND),
    "conv3d_filters_2_31": (_seq_layer(0, filters=2**31), r"filters=2147483648"),
    "conv3d_filters_zero": (_seq_layer(0, filters=0), r"filters=0\b"),
    "conv3d_kernel_two_axes": (_seq_layer(0, kernel_size=[3, 3]),
                               r"kernel_size must be an integer or a tuple of 3 integers"),
    "conv3d_kernel_2_30_valid": (_seq_layer(2, kernel_size=[2**30, 1, 1]), r"does not fit"),
    "conv3d_kernel_2_30_same": (_seq_layer(0, kernel_size=[3, 2**30, 3]),
                                r"kernel_size=\[3, 1073741824, 3\].*window spanning"),
    "conv3d_kernel_2_31": (_seq_layer(0, kernel_size=[3, 3, 2**31]), r"kernel_size"),
    "conv3d_strides_zero": (_seq_layer(2, strides=[2, 0, 2]), r"strides=0\b"),
    "conv3d_dilation_negative": (_seq_layer(0, dilation_rate=[1, -1, 1]),
                                 r"dilation_rate=-1\b"),
    "conv3d_padding_causal": (_seq_layer(0, padding="causal"), r"padding='causal'"),
    "conv3d_channels_first": (_seq_layer(0, data_format="channels_first"), r"data_format"),
    "conv3d_kernel_mismatch": (_seq_layer(0, kernel_size=[3, 3, 4]),
                               r"conv3d/kernel.*the model needs <f4\[3, 3, 4, 2, 3\]"),
    "maxpool3d_pool_2_30_same": (_seq_layer(1, pool_size=[1, 2**30, 2], padding="same"),
                                 r"window spanning"),
    "maxpool3d_pool_two_axes": (_seq_layer(1, pool_size=[2, 2]), r"pool_size"),
    "avgpool3d_pool_too_big_valid": (_seq_layer(3, pool_size=[9, 9, 9], padding="valid"),
                                     r"does not fit"),
    "global3d_keepdims_string": (_seq_layer(4, keepdims="yes"), r"keepdims='yes'"),
    "upsampling3d_size_2_30": (_seq_layer(5, size=[2**30, 2**30, 1]), WEIGHT_BOUND),
    "upsampling3d_size_2_31": (_seq_layer(5, size=[2**31, 1, 1]), r"size"),
    "upsampling3d_size_two_axes": (_seq_layer(5, size=[2, 2]), r"size"),
    "zeropadding3d_2_31": (_seq_layer(6, padding=[[2**31, 0], [0, 0], [0, 0]]),
                           r"below 2\*\*31"),
    "zeropadding3d_2_30": (_seq_layer(6, padding=[[2**30, 0], [0, 0], [0, 0]]),
                           r"more than the file|needs|do not match|over the limit of 2\*\*31 - 1"),
    "zeropadding3d_negative": (_seq_layer(6, padding=-1), r"padding=-1\b"),
    "cropping3d_everything": (_seq_layer(7, cropping=[[2, 2], [0, 0], [0, 0]]),
                              r"leaves nothing"),
    "cropping3d_two_axes": (_seq_layer(7, cropping=[[1, 1], [1, 1]]),
                            r"cropping must be an int, a triple"),
    "spatial_dropout3d_rate_one": (_seq_layer(8, rate=1.0), r"rate"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CONV3D))
def test_the_loader_refuses_hostile_conv3d_and_pooling3d_configs(conv3d_file, name):
    change, pattern = HOSTILE_CONV3D[name]
    _refused_before_allocation(_forge(conv3d_file, change), pattern)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_the_conv3d_file_round_trips_bitwise(conv3d_file, backend, tmp_path):
    layers = conv3d_file["header"]["model"]["layers"]
    assert [entry["class"] for entry in layers] == [
        "Conv3D", "MaxPooling3D", "Conv3D", "AveragePooling3D", "GlobalMaxPooling3D",
        "UpSampling3D", "ZeroPadding3D", "Cropping3D", "SpatialDropout3D", "Flatten", "Dense"]
    model = _conv3d_model(backend)
    x = np.random.default_rng(0).standard_normal((5, 4, 6, 6, 2))
    model.compile("cross_entropy", fnn.SGD(learning_rate=0.1, momentum=0.9))
    model.fit(x, np.arange(5) % 2, epochs=2, batch_size=2, verbose=0)
    model.save(tmp_path / "c3.fnn")
    loaded = fnn.load(tmp_path / "c3.fnn")
    assert [w.tobytes() for w in loaded.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.train_on_batch(x, np.arange(5) % 2) == model.train_on_batch(x, np.arange(5) % 2)


HOSTILE_CONV_TRANSPOSE = {
    "ct1_filters_2_31": (_layer(0, filters=2**31), r"filters=2147483648"),
    "ct1_filters_2_30": (_layer(0, filters=2**30), WEIGHT_BOUND),
    "ct1_filters_zero": (_layer(0, filters=0), r"filters=0\b"),
    "ct1_filters_string": (_layer(0, filters="3"), r"filters='3'"),
    "ct1_kernel_2_31": (_layer(0, kernel_size=[2**31]), r"kernel_size"),
    "ct1_kernel_2_30": (_layer(0, kernel_size=[2**30]), WEIGHT_BOUND),
    "ct1_kernel_two_axes": (_layer(0, kernel_size=[4, 4]), r"kernel_size=\[4, 4\]"),
    "ct1_kernel_zero": (_layer(0, kernel_size=[0]), r"kernel_size=0\b"),
    "ct1_strides_zero": (_layer(0, strides=[0]), r"strides=0\b"),
    "ct1_strides_2_30": (_layer(0, strides=[2**30]), r"2\*\*31 - 1"),
    "ct1_strides_bool": (_layer(0, strides=[True]), r"strides"),
    "ct1_dilation_negative": (_layer(1, dilation_rate=[-2]), r"dilation_rate=-2\b"),
    "ct1_dilation_2_30_valid": (_layer(0, dilation_rate=[2**30]), r"2\*\*31 - 1"),
    "ct1_output_padding_at_the_stride": (_layer(0, output_padding=[2]),
                                         r"output_padding must be below the strides \(2,\)"),
    "ct1_output_padding_with_stride_1": (_layer(1, output_padding=[1]),
                                         r"output_padding must be below the strides \(1,\)"),
    "ct1_output_padding_negative": (_layer(0, output_padding=[-1]), r"output_padding=-1\b"),
    "ct1_output_padding_two_axes": (_layer(0, output_padding=[1, 1]),
                                    r"output_padding must be an integer or a tuple of one integer"),
    "ct1_output_padding_string": (_layer(0, output_padding="1"), r"output_padding='1'"),
    "ct1_output_padding_float": (_layer(0, output_padding=1.0), r"output_padding=1\.0"),
    "ct1_output_padding_2_40": (_layer(0, output_padding=[2**40]), r"output_padding"),
    "ct1_padding_causal": (_layer(0, padding="causal"), r"padding='causal'"),
    "ct1_padding_null": (_layer(0, padding=None), r"padding=None"),
    "ct1_channels_first": (_layer(0, data_format="channels_first"), r"data_format"),
    "ct1_activation_unknown": (_layer(0, activation="swishy"), r"activation='swishy'"),
    "ct1_use_bias_int": (_layer(1, use_bias=1), r"use_bias=1\b"),
    "ct1_no_bias_in_the_config": (_layer(0, use_bias=False), r"do not match|bias"),
    "ct1_unknown_argument": (_layer(1, bogus=1), r"bogus"),
    "ct1_on_the_image": (_inbound(0, [1]), r"\(steps, channels\)"),
    "ct2_on_the_sequence": (_inbound(2, [0]), r"\(height, width, channels\)"),
    "ct2_output_padding_one_axis": (_layer(2, output_padding=[1]),
                                    r"output_padding must be an integer or a tuple of 2"),
    "ct1_kernel_transposed": (_array_shape("conv1d_transpose/kernel", [4, 2, 3]),
                              r"conv1d_transpose/kernel.*<f4\[4, 2, 3\].*needs"),
    "ct1_kernel_as_2d": (_array_shape("conv1d_transpose/kernel", [1, 4, 3, 2]),
                         r"conv1d_transpose/kernel"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CONV_TRANSPOSE))
def test_the_loader_refuses_hostile_conv_transpose_configs(conv_transpose, name):
    change, pattern = HOSTILE_CONV_TRANSPOSE[name]
    _refused_before_allocation(_forge_any(conv_transpose, change), pattern)


def test_the_conv_transpose_file_loads_and_its_layers_are_where_the_refusals_expect(
        conv_transpose):
    layers = conv_transpose["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "Conv1DTranspose", "Conv1DTranspose", "Conv2DTranspose"]
    assert [entry["inbound"] for entry in layers] == [[0], [2], [1]]
    assert layers[0]["config"]["output_padding"] == [1]
    names = [e["name"] for e in conv_transpose["header"]["arrays"]]
    assert any(n.endswith("conv1d_transpose/kernel") for n in names), names
    model = model_from_bytes(conv_transpose["blob"])
    original = _conv_transpose()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 3, 3, 2))]
    assert [y.shape for y in model.predict(xs)] == [(2, 13, 2), (2, 7, 7, 2)]
    for a, b in zip(model.predict(xs), original.predict(xs)):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- categorical preprocessing
def _categorical(backend="numpy"):
    """Layers 0-5: IntegerLookup(multi_hot, adapted), Discretization(bin_boundaries),
    Hashing(5, multi_hot), CategoryEncoding(10, count), Concatenate, Dense(2). Input 0: (3,)."""
    inp = fnn.Input((3,))
    lookup = fnn.IntegerLookup(output_mode="multi_hot")
    lookup.adapt(np.array([4, 4, 2, 9, 9, 9]))
    a = lookup(inp)
    b = fnn.Discretization(bin_boundaries=[0.5, 2.5])(inp)
    c = fnn.Hashing(5, output_mode="multi_hot")(inp)
    d = fnn.CategoryEncoding(10, output_mode="count")(inp)
    out = fnn.Dense(2)(fnn.Concatenate()([a, b, c, d]))
    return fnn.Model(inp, out, seed=0, backend=backend)


@pytest.fixture(scope="module")
def categorical():
    blob = fio.model_to_bytes(_categorical())
    version, header, start = parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version}


HOSTILE_CATEGORICAL = {
    "lookup_vocabulary_repeated": (_layer(0, vocabulary=[-1, 9, 4, 4]), r"repeated"),
    "lookup_vocabulary_longer": (_layer(0, vocabulary=[-1, 9, 4, 2, 7]),
                                 r"the model needs|is <f4"),
    "lookup_vocabulary_strings": (_layer(0, vocabulary=["a", "b", "c"]),
                                  r"vocabulary must hold integers"),
    "lookup_max_tokens_2_40": (_layer(0, max_tokens=2**40), r"max_tokens must be below"),
    "lookup_output_mode": (_layer(0, output_mode="bag"), r"output_mode"),
    "lookup_oov_negative": (_layer(0, num_oov_indices=-1), r"num_oov_indices"),
    "discretization_unsorted": (_layer(1, bin_boundaries=[2.5, 0.5]), r"sorted"),
    "discretization_strings": (_layer(1, bin_boundaries=["a", "b"]), r"bin_boundaries"),
    "discretization_none": (_layer(1, bin_boundaries=None), r"bin_boundaries or num_bins"),
    "hashing_bins_2_40": (_layer(2, num_bins=2**40), r"num_bins must be below 2\*\*31"),
    "hashing_bins_2_30": (_layer(2, num_bins=2**30), WEIGHT_BOUND),
    "hashing_salt_string": (_layer(2, salt="x"), r"salt"),
    "encoding_tokens_zero": (_layer(3, num_tokens=0), r"num_tokens"),
    "encoding_tokens_2_31": (_layer(3, num_tokens=2**31), r"num_tokens must be below"),
    "encoding_mode_int": (_layer(3, output_mode="int"), r"output_mode"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CATEGORICAL))
def test_the_loader_refuses_hostile_categorical_configs(categorical, name):
    change, pattern = HOSTILE_CATEGORICAL[name]
    _refused_before_allocation(_forge(categorical, change), pattern)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_the_categorical_file_round_trips(categorical, backend):
    layers = categorical["header"]["model"]["layers"]
    assert [entry["config"]["class"] for entry in layers] == [
        "IntegerLookup", "Discretization", "Hashing", "CategoryEncoding", "Concatenate",
        "Dense"]
    assert layers[0]["config"]["vocabulary"] == [-1, 9, 4, 2]
    model = model_from_bytes(categorical["blob"], backend=backend) if backend != "numpy" \
        else model_from_bytes(categorical["blob"])
    x = np.array([[4, 2, 0], [9, 1, 5], [3, 3, 3]], float)
    np.testing.assert_allclose(model.predict(x), _categorical(backend).predict(x), rtol=1e-6)
