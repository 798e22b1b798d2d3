"""Model files holding the layers of sessions 31 and 32 (augmentation, resizing and crops, PReLU,
Identity, GroupNormalization, the 3-D family, the categorical preprocessing layers; RNN(cell)
with SimpleRNNCell / LSTMCell / GRUCell / StackedRNNCells, Attention, AdditiveAttention, Dot,
UnitNormalization, MultiHeadAttention(dropout, seed), ConvLSTM2D, Conv3DTranspose) and of
session 33 (RMSNormalization, LayerNormalization over trailing axes, stateful LSTM / GRU /
Bidirectional / ConvLSTM2D with their carried states in the file).

- the JSON-header fuzz of ``test_model_files`` over a saved model of each family: whatever
  loads must predict, anything else must be the loader's ValueError (never a crash, a hang,
  a MemoryError or another exception);
- a table of hand-forged configs (negative, zero or huge sizes, wrong types, NaN factors,
  unknown modes, inconsistent shapes), each refused before allocation with a ValueError that
  names the key;
- the per-sample output bound of a loaded model (``fastnn.models.saving.MAX_SAMPLE_VALUES``):
  weightless layers whose outputs would take gigabytes per sample are refused at load, naming
  the layer and the size; the same architecture still builds in code.
"""

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn as fnn
import fastnn.io as fio
from fastnn.io import model_from_bytes
from fastnn.models.saving import MAX_SAMPLE_VALUES, stateful_layers
from test_model_files import FUZZ, build, memory_cap, mutate_header, parse
from test_model_files_v2 import _refused_before_allocation

# a fuzz run per family, bounded so that the file runs in seconds
FUZZ_V3 = settings(FUZZ, max_examples=150)


def _images(backend="numpy"):
    """Layers 0-12: RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast,
    Resizing(10, 12), CenterCrop(8, 10), RandomCrop(6, 8), PReLU(shared over space),
    Identity, GroupNormalization(2), Flatten, Dense(2). Input (8, 8, 4)."""
    return fnn.Sequential([
        fnn.RandomFlip(seed=1), fnn.RandomRotation(0.1, seed=2), fnn.RandomZoom(0.1, seed=3),
        fnn.RandomTranslation(0.1, 0.2, seed=4), fnn.RandomContrast(0.2, seed=5),
        fnn.Resizing(10, 12), fnn.CenterCrop(8, 10), fnn.RandomCrop(6, 8, seed=6),
        fnn.PReLU(shared_axes=[1, 2]), fnn.Identity(), fnn.GroupNormalization(2),
        fnn.Flatten(), fnn.Dense(2, activation="softmax")],
        input_shape=(8, 8, 4), seed=0, backend=backend)


def _volumes(backend="numpy"):
    """Layers 0-8: Conv3D, MaxPooling3D, AveragePooling3D, UpSampling3D, ZeroPadding3D,
    Cropping3D, SpatialDropout3D, GlobalMaxPooling3D, GlobalAveragePooling3D (both on node 7's
    output, node 8 = layer 6), Concatenate, Dense(2). Input (4, 6, 6, 2), node 0."""
    inp = fnn.Input((4, 6, 6, 2))
    h = fnn.Conv3D(3, 3, padding="same", activation="relu")(inp)
    h = fnn.MaxPooling3D((1, 2, 2))(h)
    h = fnn.AveragePooling3D(2, padding="same")(h)
    h = fnn.UpSampling3D(2)(h)
    h = fnn.ZeroPadding3D(1)(h)
    h = fnn.Cropping3D(((0, 1), (1, 0), (0, 0)))(h)
    h = fnn.SpatialDropout3D(0.1, seed=1)(h)
    out = fnn.Concatenate()([fnn.GlobalMaxPooling3D()(h), fnn.GlobalAveragePooling3D()(h)])
    return fnn.Model(inp, fnn.Dense(2, activation="softmax")(out), seed=0, backend=backend)


def _categorical(backend="numpy"):
    """Layers 0-5: IntegerLookup(multi_hot, adapted), Discretization(bin_boundaries),
    Hashing(5, multi_hot), CategoryEncoding(10, count), Concatenate, Dense(2). Input (3,)."""
    inp = fnn.Input((3,))
    lookup = fnn.IntegerLookup(output_mode="multi_hot")
    lookup.adapt(np.array([4, 4, 2, 9, 9, 9]))
    parts = [lookup(inp), fnn.Discretization(bin_boundaries=[0.5, 2.5])(inp),
             fnn.Hashing(5, output_mode="multi_hot")(inp),
             fnn.CategoryEncoding(10, output_mode="count")(inp)]
    out = fnn.Dense(2)(fnn.Concatenate()(parts))
    return fnn.Model(inp, out, seed=0, backend=backend)


def _recurrent_attention(backend="numpy"):
    """Layers 0-8: RNN(StackedRNNCells([LSTMCell(4), GRUCell(4)])), RNN(SimpleRNNCell(4),
    go_backwards), Attention(concat, use_scale), AdditiveAttention, Dot(axes=2, normalize),
    UnitNormalization, MultiHeadAttention(2, 3, dropout=0.1, seed=5), Flatten, Dense(2).
    Input (6, 4)."""
    x = fnn.Input((6, 4))
    h = fnn.RNN(fnn.StackedRNNCells([fnn.LSTMCell(4), fnn.GRUCell(4)]),
                return_sequences=True)(x)
    g = fnn.RNN(fnn.SimpleRNNCell(4), return_sequences=True, go_backwards=True)(x)
    a = fnn.Attention(score_mode="concat", use_scale=True)([h, g])
    b = fnn.AdditiveAttention()([g, h])
    u = fnn.UnitNormalization()(fnn.Dot(axes=2, normalize=True)([a, b]))
    m = fnn.MultiHeadAttention(2, 3, dropout=0.1, seed=5)(u, u)
    return fnn.Model(x, fnn.Dense(2)(fnn.Flatten()(m)), seed=0, backend=backend)


def _conv_sequences(backend="numpy"):
    """Layers 0-3: ConvLSTM2D(2, 3, same, return_sequences), Conv3DTranspose(3, 2, strides=2),
    Flatten, Dense(2). Input (3, 5, 5, 2)."""
    return fnn.Sequential([fnn.ConvLSTM2D(2, 3, padding="same", return_sequences=True),
                           fnn.Conv3DTranspose(3, 2, strides=2), fnn.Flatten(), fnn.Dense(2)],
                          input_shape=(3, 5, 5, 2), seed=0, backend=backend)


def _norms(backend="numpy"):
    """Layers 0-4: RMSNormalization, LayerNormalization(axis=[1, 2]),
    RMSNormalization(axis=[1, 2], epsilon=1e-3), Flatten, Dense(2). Input (4, 6)."""
    model = fnn.Sequential([fnn.RMSNormalization(), fnn.LayerNormalization(axis=[1, 2]),
                            fnn.RMSNormalization(axis=[1, 2], epsilon=1e-3), fnn.Flatten(),
                            fnn.Dense(2)], input_shape=(4, 6), seed=0, backend=backend)
    rng = np.random.default_rng(1)       # scales and offsets away from their 1 and 0
    model.set_weights([w + rng.normal(0, 0.2, w.shape) for w in model.get_weights()])
    return model


#: the batch size of the stateful families' carried states
STATE_ROWS = 2


def _stateful(backend="numpy"):
    """Layers 0-3: LSTM(4, stateful, sequences), GRU(3, stateful, sequences),
    Bidirectional(LSTM(2, stateful)), Dense(2); input (5, 3), node 0. Carries the states of
    one batch of STATE_ROWS (arrays rnn_state/0/0-1 LSTM, 1/0 GRU, 2/0-1 and 3/0-1 the two
    directions)."""
    inp = fnn.Input((5, 3))
    h = fnn.LSTM(4, stateful=True, return_sequences=True)(inp)
    h = fnn.GRU(3, stateful=True, return_sequences=True)(h)
    h = fnn.Bidirectional(fnn.LSTM(2, stateful=True))(h)
    model = fnn.Model(inp, fnn.Dense(2)(h), seed=0, backend=backend)
    model.predict(np.random.default_rng(2).standard_normal((STATE_ROWS, 5, 3)))
    return model


def _stateful_conv(backend="numpy"):
    """Layers 0-2: ConvLSTM2D(2, 3, same, stateful), Flatten, Dense(2); input (2, 4, 4, 1).
    Carries the states (rnn_state/0/0-1, each (STATE_ROWS, 4, 4, 2)) of one batch."""
    model = fnn.Sequential([fnn.ConvLSTM2D(2, 3, padding="same", stateful=True), fnn.Flatten(),
                            fnn.Dense(2)], input_shape=(2, 4, 4, 1), seed=0, backend=backend)
    model.predict(np.random.default_rng(3).standard_normal((STATE_ROWS, 2, 4, 4, 1)))
    return model


FAMILIES = {"images": _images, "volumes": _volumes, "categorical": _categorical,
            "recurrent_attention": _recurrent_attention, "conv_sequences": _conv_sequences,
            "norms": _norms, "stateful": _stateful, "stateful_conv": _stateful_conv}
STATEFUL_FAMILIES = ("stateful", "stateful_conv")


def _file(make):
    blob = fio.model_to_bytes(make())
    version, header, start = parse(blob)
    assert version == 2
    return {"blob": blob, "header": header, "data": blob[start:]}


@pytest.fixture(scope="module")
def files():
    return {name: _file(make) for name, make in FAMILIES.items()}


def _inputs(model, rows=2):
    """Zeros of the model's input shapes (valid for every family: a category 0, a black
    image)."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    xs = [np.zeros((rows, *s)) for s in shapes]
    return xs if len(xs) > 1 else xs[0]


# a loaded model predicts in the fuzz when its layers' outputs hold at most this many values a
# sample (64 MiB in float32); a larger legal one (a padding of 200 on the volumes: 2 * 10**8
# values a layer) would take gigabytes of a shared machine's memory to run
PREDICT_VALUES = 2**24


def _activation_values(model):
    total = 0
    for layer in model.layers:
        shape = layer.output_shape
        total += sum(math.prod(s) for s in (shape if isinstance(shape, list) else [shape]))
    return total


def _load_or_refuse(blob):
    """Load ``blob`` within a capped address space: a refusal is the loader's ValueError; what
    loads has finite weights, outputs within the bound, and (when small) predicts."""
    try:
        with memory_cap():
            model = model_from_bytes(blob)
    except ValueError as exc:
        assert "not a valid fastnn model file" in str(exc), str(exc)
        return
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(math.prod(layer.output_shape) <= MAX_SAMPLE_VALUES for layer in model.layers
               if isinstance(layer.output_shape, tuple))
    carried = [layer.states for layer in stateful_layers(model)]
    assert all(np.isfinite(s).all() for states in carried if states for s in states)
    rows = {states[0].shape[0] for states in carried if states}
    assert len(rows) <= 1, rows        # one batch size, else predict could not run
    if _activation_values(model) > PREDICT_VALUES:
        return
    with memory_cap(1 << 30):
        try:
            model.predict(_inputs(model, rows=rows.pop() if rows else 1))
        except ValueError as exc:      # a legal model that refuses zeros (ids not in its
            assert "X" in str(exc) or "inputs of" in str(exc), str(exc)    # vocabulary)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_round_trips(files, family, tmp_path):
    original = FAMILIES[family]()
    loaded = model_from_bytes(files[family]["blob"])
    rows = STATE_ROWS if family in STATEFUL_FAMILIES else 3
    x = _inputs(original, rows=rows)
    if family == "categorical":
        x = np.array([[4, 2, 0], [9, 1, 5], [3, 3, 3]], float)
    elif family == "images":
        x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 4))
    else:
        x = np.random.default_rng(0).standard_normal((rows, *original.input_shape))
    for a, b in zip(stateful_layers(loaded), stateful_layers(original)):
        assert a.states is not None and all(np.array_equal(s, t)
                                            for s, t in zip(a.states, b.states))
    assert len(stateful_layers(loaded)) == (4 if family == "stateful" else
                                            1 if family == "stateful_conv" else 0)
    assert loaded.predict(x).tobytes() == original.predict(x).tobytes()
    assert [c["class"] if "class" in c else c["config"]["class"]
            for c in files[family]["header"]["model"]["layers"]] == [
        type(layer).__name__ for layer in original.layers
        if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize("family", list(FAMILIES))
@FUZZ_V3
@given(data=st.data())
def test_fuzz_mutated_json_header(files, family, data):
    try:
        raw = json.dumps(mutate_header(files[family]["header"], data)).encode()
    except (ValueError, TypeError):
        return
    _load_or_refuse(build(None, files[family]["data"], version=2, header_bytes=raw))


# config values the fuzz draws only by chance: each layer's keys set to hostile values
HOSTILE_VALUES = [-1, 0, 2**31, 2**62, 1e308, -1e-300, 0.5, True, None, "x", [], [1], [0, 0],
                  [2**31, 1], [1, 2, 3], {"a": 1}]


def _layer_configs(header):
    """(path to the config dict, config) of every layer config in the header."""
    for i, entry in enumerate(header["model"]["layers"]):
        yield (i,), entry.get("config", entry)


@pytest.mark.parametrize("family", list(FAMILIES))
@FUZZ_V3
@given(data=st.data())
def test_fuzz_hostile_config_values(files, family, data):
    header = copy.deepcopy(files[family]["header"])
    configs = [c for _, c in _layer_configs(header)]
    for _ in range(data.draw(st.integers(1, 2))):
        config = data.draw(st.sampled_from(configs))
        keys = sorted(k for k in config if k not in ("class", "name"))
        if not keys:
            continue
        key = data.draw(st.sampled_from(keys))
        config[key] = data.draw(st.sampled_from(HOSTILE_VALUES))
    _load_or_refuse(build(header, files[family]["data"], version=2))


# values for any key at any depth of the new layers' configs (a cell's config inside RNN's,
# StackedRNNCells' list, initializer configs, the call arguments): also NaN and infinities
# (written as JSON's NaN / Infinity literals), rates at and past their bounds, seeds past 2**64,
# and nested configs of the wrong kind
NESTED_HOSTILE = HOSTILE_VALUES + [
    math.nan, math.inf, -math.inf, 1.0, -0.5, 2**64, 2**70, 1.5, "concat", "LSTMCell",
    {"class_name": "Dense", "config": {"units": 2}}, {"class_name": "LSTMCell"},
    {"class_name": "LSTMCell", "config": {"units": 2**40}},
    {"class_name": "StackedRNNCells", "config": {"cells": []}},
    {"class_name": "StackedRNNCells", "config": {"cells": "x"}},
    [{"class_name": "GRUCell", "config": {"units": -1}}], [None]]


def _nested_slots(value, path=()):
    """(container, key) of every entry at any depth below ``value`` (dicts and lists)."""
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, inner in items:
        yield value, key
        yield from _nested_slots(inner, path + (key,))


@pytest.mark.parametrize("family", ["recurrent_attention", "conv_sequences", "stateful"])
@FUZZ_V3
@given(data=st.data())
def test_fuzz_hostile_nested_config_values(files, family, data):
    header = copy.deepcopy(files[family]["header"])
    configs = [c for _, c in _layer_configs(header)]
    for _ in range(data.draw(st.integers(1, 2))):
        config = data.draw(st.sampled_from(configs))
        slots = [(c, k) for c, k in _nested_slots(config) if k not in ("class", "name")]
        if not slots:
            continue
        container, key = data.draw(st.sampled_from(slots))
        container[key] = copy.deepcopy(data.draw(st.sampled_from(NESTED_HOSTILE)))
    _load_or_refuse(build(header, files[family]["data"], version=2))


# ---------------------------------------------------------------- hand-forged configs
def _set(i, **values):
    """Set keys of layer ``i``'s config (a Sequential's entry or a Model's ``config``)."""
    def change(model):
        entry = model["layers"][i]
        entry.get("config", entry).update(values)
    return change


def _cell(i, path, value):
    """Set the entry at ``path`` inside layer ``i``'s (an RNN's) cell config."""
    def change(model):
        inner = model["layers"][i]["config"]["cell"]
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = value
    return change


# family, change, what the message must hold (the key, and its received value where there is
# one to quote)
FORGED = {
    # images: RandomFlip 0, RandomRotation 1, RandomZoom 2, RandomTranslation 3,
    # RandomContrast 4, Resizing 5, CenterCrop 6, RandomCrop 7, PReLU 8, Identity 9,
    # GroupNormalization 10
    "flip_mode_unknown": ("images", _set(0, mode="diagonal"), r"mode='diagonal'"),
    "flip_seed_negative": ("images", _set(0, seed=-1), r"seed=-1\b"),
    "flip_seed_2_130": ("images", _set(0, seed=2**130), r"seed must be below 2\*\*64"),
    "rotation_factor_2_5": ("images", _set(1, factor=2.5), r"factor=2\.5"),
    "rotation_factor_triple": ("images", _set(1, factor=[0.1, 0.2, 0.3]),
                               r"factor=\[0\.1, 0\.2, 0\.3\]"),
    "rotation_factor_string": ("images", _set(1, factor="0.1"), r"factor='0\.1'"),
    "rotation_fill_mode_unknown": ("images", _set(1, fill_mode="bogus"), r"fill_mode='bogus'"),
    "rotation_interpolation_bicubic": ("images", _set(1, interpolation="bicubic"),
                                       r"interpolation='bicubic'"),
    "rotation_fill_value_1e300": ("images", _set(1, fill_value=1e300),
                                  r"fill_value=1e\+300.*overflows"),
    "zoom_height_factor_minus_1_5": ("images", _set(2, height_factor=-1.5),
                                     r"height_factor=-1\.5"),
    "zoom_width_factor_single": ("images", _set(2, width_factor=[0.1]), r"width_factor=\[0\.1\]"),
    "zoom_height_factor_null": ("images", _set(2, height_factor=None), r"height_factor=None"),
    "translation_height_factor_1_5": ("images", _set(3, height_factor=1.5),
                                      r"height_factor=1\.5"),
    "translation_width_factor_bool": ("images", _set(3, width_factor=True), r"width_factor=True"),
    "contrast_factor_negative": ("images", _set(4, factor=-0.5), r"factor=-0\.5"),
    "contrast_factor_1_5": ("images", _set(4, factor=1.5), r"factor=1\.5"),
    "contrast_value_range_reversed": ("images", _set(4, value_range=[255, 0]),
                                      r"value_range=\[255, 0\]"),
    "contrast_value_range_single": ("images", _set(4, value_range=[0]), r"value_range=\[0\]"),
    "contrast_value_range_1e300": ("images", _set(4, value_range=[0, 1e300]),
                                   r"value_range=1e\+300.*overflows"),
    "resizing_height_zero": ("images", _set(5, height=0), r"height=0\b"),
    "resizing_width_negative": ("images", _set(5, width=-3), r"width=-3\b"),
    "resizing_height_2_31": ("images", _set(5, height=2**31), r"height=2147483648"),
    "resizing_height_float": ("images", _set(5, height=2.5), r"height=2\.5"),
    "resizing_interpolation_unknown": ("images", _set(5, interpolation="lanczos9"),
                                       r"interpolation='lanczos9'"),
    "resizing_crop_flag_int": ("images", _set(5, crop_to_aspect_ratio=1),
                               r"crop_to_aspect_ratio=1\b"),
    "resizing_both_aspect_flags": ("images", _set(5, crop_to_aspect_ratio=True,
                                                  pad_to_aspect_ratio=True),
                                   r"crop_to_aspect_ratio and pad_to_aspect_ratio"),
    "resizing_fill_mode_reflect": ("images", _set(5, fill_mode="reflect"),
                                   r"fill_mode='reflect'"),
    "center_crop_width_zero": ("images", _set(6, width=0), r"width=0\b"),
    "center_crop_channels_first": ("images", _set(6, data_format="channels_first"),
                                   r"data_format='channels_first'"),
    "random_crop_width_string": ("images", _set(7, width="8"), r"width='8'"),
    "random_crop_taller_needs_more_weights": ("images", _set(7, height=11),
                                              r"more than the file"),
    "prelu_shared_axis_4": ("images", _set(8, shared_axes=[4]), r"shared_axes=\[4\]"),
    "prelu_shared_axis_0": ("images", _set(8, shared_axes=[0]), r"shared_axes=0\b"),
    "prelu_shared_axes_repeated": ("images", _set(8, shared_axes=[1, 1]),
                                   r"shared_axes=\[1, 1\]"),
    "prelu_shared_axes_string": ("images", _set(8, shared_axes="1"), r"shared_axes='1'"),
    "prelu_shared_axes_inconsistent_with_alpha": ("images", _set(8, shared_axes=[1]),
                                                  r"p_re_lu/alpha.*<f4\[1, 1, 4\].*needs"),
    "prelu_alpha_initializer_null": ("images", _set(8, alpha_initializer=None),
                                     r"alpha_initializer=None"),
    "prelu_alpha_initializer_unknown": ("images", _set(8, alpha_initializer="bogus"),
                                        r"alpha_initializer: unknown initializer 'bogus'"),
    "prelu_alpha_initializer_bad_dict": ("images", _set(8, alpha_initializer={"a": 1}),
                                         r"alpha_initializer: .*\{'a': 1\}"),
    "prelu_alpha_constraint": ("images", _set(8, alpha_constraint="non_neg"),
                               r"alpha_constraint='non_neg'"),
    "identity_unknown_argument": ("images", _set(9, bogus=1), r"bogus"),
    "group_norm_groups_not_dividing": ("images", _set(10, groups=3), r"groups=3\b"),
    "group_norm_groups_zero": ("images", _set(10, groups=0), r"groups=0\b"),
    "group_norm_groups_minus_2": ("images", _set(10, groups=-2), r"groups=-2\b"),
    "group_norm_groups_2_40": ("images", _set(10, groups=2**40), r"groups=1099511627776"),
    "group_norm_epsilon_negative": ("images", _set(10, epsilon=-1.0), r"epsilon=-1\.0"),
    "group_norm_epsilon_zero": ("images", _set(10, epsilon=0), r"epsilon=0"),
    "group_norm_axis_1": ("images", _set(10, axis=1), r"axis=1\b"),
    "group_norm_center_string": ("images", _set(10, center="yes"), r"center='yes'"),
    # volumes: Conv3D 0, MaxPooling3D 1, AveragePooling3D 2, UpSampling3D 3, ZeroPadding3D 4,
    # Cropping3D 5, SpatialDropout3D 6, GlobalMaxPooling3D 7, GlobalAveragePooling3D 8
    "conv3d_padding_full": ("volumes", _set(0, padding="full"), r"padding='full'"),
    "conv3d_kernel_inconsistent": ("volumes", _set(0, kernel_size=[1, 2, 3]),
                                   r"conv3d/kernel.*needs <f4\[1, 2, 3, 2, 3\]"),
    "maxpool3d_pool_zero": ("volumes", _set(1, pool_size=[0, 2, 2]), r"pool_size=0\b"),
    "maxpool3d_strides_negative": ("volumes", _set(1, strides=[1, -1, 1]), r"strides=-1\b"),
    "avgpool3d_padding_causal": ("volumes", _set(2, padding="causal"), r"padding='causal'"),
    "upsampling3d_size_zero": ("volumes", _set(3, size=[0, 2, 2]), r"size=0\b"),
    "upsampling3d_size_string": ("volumes", _set(3, size="2"), r"size='2'"),
    "zeropadding3d_2_31": ("volumes", _set(4, padding=[[1, 2**31], [0, 0], [0, 0]]),
                           r"padding.*2147483648"),
    "cropping3d_everything": ("volumes", _set(5, cropping=[[0, 9], [0, 0], [0, 0]]),
                              r"cropping \[\[0, 9\], \[0, 0\], \[0, 0\]\] leaves nothing"),
    "cropping3d_negative": ("volumes", _set(5, cropping=[-1, 0, 0]), r"cropping=-1\b"),
    "spatial_dropout3d_rate_negative": ("volumes", _set(6, rate=-0.1), r"rate=-0\.1"),
    "spatial_dropout3d_rate_one": ("volumes", _set(6, rate=1.0), r"rate=1\.0"),
    "spatial_dropout3d_rate_string": ("volumes", _set(6, rate="0.1"), r"rate='0\.1'"),
    "global_max3d_keepdims_int": ("volumes", _set(7, keepdims=1), r"keepdims=1\b"),
    "global_avg3d_channels_first": ("volumes", _set(8, data_format="channels_first"),
                                    r"data_format='channels_first'"),
    # categorical: IntegerLookup 0, Discretization 1, Hashing 2, CategoryEncoding 3
    "lookup_oov_indices_negative": ("categorical", _set(0, num_oov_indices=-1),
                                    r"num_oov_indices=-1\b"),
    "lookup_output_mode_unknown": ("categorical", _set(0, output_mode="bag"),
                                   r"output_mode='bag'"),
    "lookup_max_tokens_one": ("categorical", _set(0, max_tokens=1), r"max_tokens=1\b"),
    "lookup_vocabulary_floats": ("categorical", _set(0, vocabulary=[1.5, 2]),
                                 r"vocabulary must hold integers.*1\.5"),
    "lookup_mask_token_2_40": ("categorical", _set(0, mask_token=2**40),
                               r"mask_token=1099511627776"),
    "lookup_oov_token_string": ("categorical", _set(0, oov_token="x"), r"oov_token='x'"),
    "lookup_oov_indices_2_31": ("categorical", _set(0, num_oov_indices=2**31),
                                r"num_oov_indices=2147483648"),
    "lookup_oov_indices_2_31_minus_1": ("categorical", _set(0, num_oov_indices=2**31 - 1),
                                        r"'kernel' would have shape \(2147483669, 2\), "
                                        r"4294967338 values, over the limit"),
    "discretization_unsorted": ("categorical", _set(1, bin_boundaries=[2.5, 0.5]),
                                r"bin_boundaries=\[2\.5, 0\.5\]"),
    "discretization_bins_zero": ("categorical", _set(1, num_bins=0), r"num_bins=0\b"),
    "discretization_mode_tf_idf": ("categorical", _set(1, output_mode="tf_idf"),
                                   r"output_mode='tf_idf'"),
    "discretization_epsilon_negative": ("categorical", _set(1, epsilon=-1), r"epsilon=-1"),
    "hashing_bins_zero": ("categorical", _set(2, num_bins=0), r"num_bins=0\b"),
    "hashing_bins_2_31": ("categorical", _set(2, num_bins=2**31), r"num_bins=2147483648"),
    "hashing_salt_triple": ("categorical", _set(2, salt=[1, 2, 3]), r"salt=\[1, 2, 3\]"),
    "group_norm_epsilon_inf_in_float32": ("images", _set(10, epsilon=1e308),
                                          r"epsilon=1e\+308"),
    "hashing_mask_value_list": ("categorical", _set(2, mask_value=[1]), r"mask_value=\[1\]"),
    "encoding_tokens_negative": ("categorical", _set(3, num_tokens=-1), r"num_tokens=-1\b"),
    "encoding_mode_int": ("categorical", _set(3, output_mode="int"), r"output_mode='int'"),
    "encoding_tokens_inconsistent_with_dense": ("categorical", _set(3, num_tokens=2),
                                                r"dense/kernel.*<f4\[22, 2\].*needs"),
    # recurrent_attention: RNN(StackedRNNCells([LSTMCell, GRUCell])) 0, RNN(SimpleRNNCell) 1,
    # Attention 2, AdditiveAttention 3, Dot 4, UnitNormalization 5, MultiHeadAttention 6
    "rnn_cell_dense": ("recurrent_attention",
                       _set(0, cell={"class_name": "Dense", "config": {"units": 2}}),
                       r"unknown RNN cell class 'Dense'"),
    "rnn_cell_string": ("recurrent_attention", _set(0, cell="LSTMCell"),
                        r"'cell' must be a cell config.*Received: 'LSTMCell'"),
    "rnn_cell_null": ("recurrent_attention", _set(0, cell=None), r"Received: None"),
    "rnn_stateful_int": ("recurrent_attention", _set(1, stateful=1), r"stateful=1\b"),
    "rnn_go_backwards_int": ("recurrent_attention", _set(1, go_backwards=1),
                             r"go_backwards=1\b"),
    "stacked_cells_empty": ("recurrent_attention", _cell(0, ["config", "cells"], []),
                            r"cells=\[\]"),
    "stacked_cells_string": ("recurrent_attention", _cell(0, ["config", "cells"], "x"),
                             r"'cells' must be a list. Received: 'x'"),
    "stacked_cells_nested_stack": ("recurrent_attention", _cell(0, ["config", "cells"], [
        {"class_name": "StackedRNNCells", "config": {"cells": [
            {"class_name": "GRUCell", "config": {"units": 4}}]}}]),
        r"cannot run a cell written in Python"),
    "stacked_cell_units_negative": ("recurrent_attention",
                                    _cell(0, ["config", "cells", 0, "config", "units"], -1),
                                    r"units=-1\b"),
    "stacked_cell_units_2_40": ("recurrent_attention",
                                _cell(0, ["config", "cells", 1, "config", "units"], 2**40),
                                r"units=1099511627776"),
    "stacked_cell_units_float": ("recurrent_attention",
                                 _cell(0, ["config", "cells", 1, "config", "units"], 4.0),
                                 r"units=4\.0"),
    "stacked_cell_units_inconsistent": ("recurrent_attention",
                                        _cell(0, ["config", "cells", 1, "config", "units"], 5),
                                        r"query shape .*6, 5.*key shape .*6, 4"),
    "stacked_cell_dropout_one": ("recurrent_attention",
                                 _cell(0, ["config", "cells", 0, "config", "dropout"], 1.0),
                                 r"dropout=1\.0"),
    "stacked_cell_seed_string": ("recurrent_attention",
                                 _cell(0, ["config", "cells", 0, "config", "seed"], "1"),
                                 r"seed='1'"),
    "stacked_cell_unknown_argument": ("recurrent_attention",
                                      _cell(0, ["config", "cells", 0, "config", "bogus"], 1),
                                      r"LSTMCell got an unexpected argument 'bogus'"),
    "gru_cell_reset_after_string": ("recurrent_attention",
                                    _cell(0, ["config", "cells", 1, "config", "reset_after"],
                                          "yes"), r"reset_after='yes'"),
    "simple_cell_activation_unknown": ("recurrent_attention",
                                       _cell(1, ["config", "activation"], "bogus"),
                                       r"activation='bogus'"),
    "attention_score_mode_cosine": ("recurrent_attention", _set(2, score_mode="cosine"),
                                    r"score_mode='cosine'"),
    "attention_dropout_one": ("recurrent_attention", _set(2, dropout=1.0), r"dropout=1\.0"),
    "attention_seed_float": ("recurrent_attention", _set(2, seed=1.5), r"seed=1\.5"),
    "attention_use_scale_string": ("recurrent_attention", _set(2, use_scale="yes"),
                                   r"use_scale='yes'"),
    "attention_use_scale_inconsistent": ("recurrent_attention", _set(2, use_scale=False),
                                         r"attention/scale"),
    "attention_call_roles": ("recurrent_attention",
                             _set(2, call={"input_roles": ["q", "q"],
                                           "return_attention_scores": False,
                                           "use_causal_mask": False}),
                             r"input_roles=\['q', 'q'\]"),
    "attention_call_string": ("recurrent_attention", _set(2, call="x"), r"call='x'"),
    "attention_causal_int": ("recurrent_attention",
                             _set(2, call={"input_roles": ["q", "v"],
                                           "return_attention_scores": False,
                                           "use_causal_mask": 1}), r"use_causal_mask=1\b"),
    "additive_attention_dropout_negative": ("recurrent_attention", _set(3, dropout=-0.5),
                                            r"dropout=-0\.5"),
    "dot_axes_3": ("recurrent_attention", _set(4, axes=3), r"axes=3 for input shapes"),
    "dot_axes_string": ("recurrent_attention", _set(4, axes="2"), r"axes='2'"),
    "dot_axes_triple": ("recurrent_attention", _set(4, axes=[1, 2, 2]), r"axes=\[1, 2, 2\]"),
    "dot_axes_inconsistent_with_weights": ("recurrent_attention", _set(4, axes=1),
                                           r"query_kernel.*<f4\[6, 2, 3\].*needs"),
    "dot_normalize_int": ("recurrent_attention", _set(4, normalize=1), r"normalize=1\b"),
    "unit_normalization_axis_0": ("recurrent_attention", _set(5, axis=0), r"axis=\[0\]"),
    "unit_normalization_axis_5": ("recurrent_attention", _set(5, axis=5), r"axis=\[5\]"),
    "unit_normalization_axis_string": ("recurrent_attention", _set(5, axis="x"), r"axis='x'"),
    "mha_dropout_one": ("recurrent_attention", _set(6, dropout=1.0), r"dropout=1\.0"),
    "mha_seed_string": ("recurrent_attention", _set(6, seed="5"), r"seed='5'"),
    "mha_seed_float": ("recurrent_attention", _set(6, seed=5.0), r"seed=5\.0"),
    "mha_seed_negative": ("recurrent_attention", _set(6, seed=-1), r"seed=-1\b"),
    "mha_seed_2_64": ("recurrent_attention", _set(6, seed=2**64), r"seed must be below 2\*\*64"),
    "mha_num_heads_2_40": ("recurrent_attention", _set(6, num_heads=2**40),
                           r"num_heads=1099511627776"),
    "mha_key_dim_2_20": ("recurrent_attention", _set(6, key_dim=2**20, value_dim=2**20),
                         r"more than the file"),
    # conv_sequences: ConvLSTM2D 0, Conv3DTranspose 1
    "conv_lstm2d_filters_negative": ("conv_sequences", _set(0, filters=-1), r"filters=-1\b"),
    "conv_lstm2d_filters_2_40": ("conv_sequences", _set(0, filters=2**40),
                                 r"filters=1099511627776"),
    "conv_lstm2d_filters_2_20": ("conv_sequences", _set(0, filters=2**20),
                                 r"'recurrent_kernel' would have shape \(3, 3, 1048576, 4194304\)"
                                 r".*Received: filters=1048576"),
    "conv_lstm2d_kernel_zero": ("conv_sequences", _set(0, kernel_size=[0, 3]),
                                r"kernel_size=0\b"),
    "conv_lstm2d_kernel_2_20": ("conv_sequences", _set(0, kernel_size=[2**20, 2**20]),
                                r"kernel_size=\[1048576, 1048576\]"),
    "conv_lstm2d_strides_2_31": ("conv_sequences", _set(0, strides=[2**31, 1]),
                                 r"strides=\[2147483648, 1\]"),
    "conv_lstm2d_padding_full": ("conv_sequences", _set(0, padding="full"), r"padding='full'"),
    "conv_lstm2d_dilation_negative": ("conv_sequences", _set(0, dilation_rate=[-1, 1]),
                                      r"dilation_rate=-1\b"),
    "conv_lstm2d_dropout_one": ("conv_sequences", _set(0, dropout=1.0), r"dropout=1\.0"),
    "conv_lstm2d_seed_string": ("conv_sequences", _set(0, seed="x"), r"seed='x'"),
    "conv_lstm2d_stateful_string": ("conv_sequences", _set(0, stateful="yes"),
                                    r"stateful='yes'"),
    "conv_lstm2d_recurrent_activation": ("conv_sequences",
                                         _set(0, recurrent_activation="bogus"),
                                         r"recurrent_activation='bogus'|activation='bogus'"),
    "conv_lstm2d_return_state_inconsistent": ("conv_sequences", _set(0, return_state=True),
                                              r"conv3d_transpose takes one input"),
    "conv3d_transpose_filters_zero": ("conv_sequences", _set(1, filters=0), r"filters=0\b"),
    "conv3d_transpose_filters_2_40": ("conv_sequences", _set(1, filters=2**40),
                                      r"filters=1099511627776"),
    "conv3d_transpose_strides_zero": ("conv_sequences", _set(1, strides=[0, 2, 2]),
                                      r"strides=0\b"),
    "conv3d_transpose_strides_2_20": ("conv_sequences", _set(1, strides=[2**20] * 3),
                                      r"conv3d_transpose: its output would hold "
                                      r"259407338536540569600 values a sample"),
    "conv3d_transpose_kernel_pair": ("conv_sequences", _set(1, kernel_size=[2, 2]),
                                     r"kernel_size=\[2, 2\]"),
    "conv3d_transpose_output_padding_3": ("conv_sequences", _set(1, output_padding=[3, 0, 0]),
                                          r"output_padding=\[3, 0, 0\]"),
    "conv3d_transpose_output_padding_negative": ("conv_sequences",
                                                 _set(1, output_padding=[-1, 0, 0]),
                                                 r"output_padding=-1\b"),
    "conv3d_transpose_padding_causal": ("conv_sequences", _set(1, padding="causal"),
                                        r"padding='causal'"),
    "conv3d_transpose_activation_int": ("conv_sequences", _set(1, activation=7),
                                        r"activation=7\b"),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_the_loader_refuses_forged_configs(files, name):
    family, change, pattern = FORGED[name]
    header = copy.deepcopy(files[family]["header"])
    change(header["model"])
    _refused_before_allocation(build(header, files[family]["data"], version=2), pattern)


def test_a_nan_factor_cannot_reach_a_layer():
    """A NaN (or inf) factor cannot be written in a file (strict JSON, refused by the header
    parser) nor given in code (the constructors' check_float)."""
    with pytest.raises(ValueError, match=r"factor=nan"):
        fnn.RandomRotation(float("nan"))
    with pytest.raises(ValueError, match=r"height_factor=inf"):
        fnn.RandomZoom(float("inf"))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_nan_factor_in_a_file_is_refused(files, literal):
    header = copy.deepcopy(files["images"]["header"])
    header["model"]["layers"][1]["factor"] = "@@"
    raw = json.dumps(header).encode().replace(b'"@@"', literal.encode())
    _refused_before_allocation(build(None, files["images"]["data"], version=2,
                                     header_bytes=raw), r"not a JSON number|not a finite float")


# ---------------------------------------------------------------- the per-sample output bound
def _one_layer_file(layer, input_shape):
    """(header, data) of a saved Sequential holding ``layer`` alone."""
    blob = fio.model_to_bytes(fnn.Sequential([layer], input_shape=input_shape, seed=0,
                                             backend="numpy"))
    _, header, start = parse(blob)
    return header, blob[start:]


# kind, a small layer, its input, the forged keys, the output shape they declare
WEIGHTLESS = {
    "Resizing": (lambda: fnn.Resizing(2, 2), (4, 4, 3), dict(height=2**15, width=2**15),
                 (2**15, 2**15, 3)),
    "CenterCrop": (lambda: fnn.CenterCrop(2, 2), (4, 4, 3), dict(height=2**15, width=2**15),
                   (2**15, 2**15, 3)),
    "RandomCrop": (lambda: fnn.RandomCrop(2, 2, seed=0), (4, 4, 3),
                   dict(height=2**15, width=2**15), (2**15, 2**15, 3)),
    "UpSampling1D": (lambda: fnn.UpSampling1D(2), (4, 2), dict(size=2**28), (2**30, 2)),
    "UpSampling2D": (lambda: fnn.UpSampling2D(2), (4, 4, 3), dict(size=[2**14, 2**14]),
                     (2**16, 2**16, 3)),
    "UpSampling3D": (lambda: fnn.UpSampling3D(2), (2, 2, 2, 1), dict(size=[2**10, 2**10, 2**10]),
                     (2**11, 2**11, 2**11, 1)),
    "ZeroPadding1D": (lambda: fnn.ZeroPadding1D(1), (4, 2), dict(padding=[2**28, 0]),
                      (2**28 + 4, 2)),
    "ZeroPadding2D": (lambda: fnn.ZeroPadding2D(1), (4, 4, 3),
                      dict(padding=[[2**14, 0], [2**14, 0]]), (2**14 + 4, 2**14 + 4, 3)),
    "ZeroPadding3D": (lambda: fnn.ZeroPadding3D(1), (2, 2, 2, 1),
                      dict(padding=[[2**10, 0], [2**10, 0], [2**10, 0]]),
                      (2**10 + 2, 2**10 + 2, 2**10 + 2, 1)),
    "RepeatVector": (lambda: fnn.RepeatVector(2), (3,), dict(n=2**29), (2**29, 3)),
    "CategoryEncoding": (lambda: fnn.CategoryEncoding(4), (3,), dict(num_tokens=2**29),
                         (2**29,)),
    "Hashing": (lambda: fnn.Hashing(4, output_mode="multi_hot"), (3,), dict(num_bins=2**29),
                (2**29,)),
    # (the stored vocabulary [-1, 1, 2] no longer starts with the special tokens: -1 is a
    # token then)
    "IntegerLookup": (lambda: fnn.IntegerLookup(vocabulary=[1, 2], output_mode="multi_hot"),
                      (3,), dict(num_oov_indices=2**29), (2**29 + 3,)),
}


@pytest.mark.parametrize("kind", list(WEIGHTLESS))
def test_a_weightless_layer_over_the_bound_is_refused_at_load(kind):
    make, input_shape, keys, shape = WEIGHTLESS[kind]
    header, data = _one_layer_file(make(), input_shape)
    header["model"]["layers"][0].update(keys)
    values = math.prod(shape)
    assert values > MAX_SAMPLE_VALUES
    pattern = (rf"the output of layer 0 \({kind} '\w+'\) would hold {values} values a sample "
               rf"\(shape \({', '.join(map(str, shape))},?\)\), more than the limit of 2\*\*28")
    _refused_before_allocation(build(header, data, version=2), pattern)


def test_an_input_over_the_bound_is_refused_at_load():
    header, data = _one_layer_file(fnn.Identity(), (4, 4, 3))
    header["model"]["input_shape"] = [2**15, 2**15, 3]
    _refused_before_allocation(build(header, data, version=2),
                               r"input 0 would hold 3221225472 values a sample")


def test_a_nested_model_over_the_bound_is_refused_at_load():
    inner = fnn.Sequential([fnn.UpSampling1D(2)], input_shape=(4, 2), name="inner")
    inp = fnn.Input((4, 2))
    blob = fio.model_to_bytes(fnn.Model(inp, inner(inp), backend="numpy"))
    _, header, start = parse(blob)
    header["model"]["layers"][0]["config"]["model"]["layers"][0]["size"] = 2**28
    _refused_before_allocation(build(header, blob[start:], version=2),
                               r"layer 0 \(UpSampling1D 'up_sampling1d'\) would hold "
                               r"2147483648 values")


def test_the_bound_itself_loads_without_allocating_activations():
    """2**28 values a sample (Resizing to 8192 x 8192 x 4) is legal: the file loads and
    allocates no activation until predict."""
    import tracemalloc
    header, data = _one_layer_file(fnn.Resizing(2, 2), (4, 4, 4))
    header["model"]["layers"][0].update(height=2**13, width=2**13)
    tracemalloc.start()
    try:
        with memory_cap():
            model = model_from_bytes(build(header, data, version=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.output_shape == (2**13, 2**13, 4)
    assert math.prod(model.output_shape) == MAX_SAMPLE_VALUES
    assert peak < 2 << 20


def test_a_model_over_the_bound_builds_in_code_and_says_why_it_cannot_be_saved():
    """The bound is the loader's: in code the architecture builds (no activation is allocated
    before predict); saving it refuses with the same reason, as no file is written that the
    loader would refuse."""
    model = fnn.Sequential([fnn.UpSampling1D(2**28)], input_shape=(4, 2), backend="numpy")
    assert model.output_shape == (2**30, 2)
    with pytest.raises(ValueError, match=r"cannot save this model.*UpSampling1D.*"
                                         r"2147483648 values a sample.*MAX_SAMPLE_VALUES"):
        fio.model_to_bytes(model)


def test_a_large_num_oov_indices_is_not_materialized():
    """The fuzz found it: IntegerLookup(num_oov_indices=2**31 - 1, vocabulary=...) built a
    list of 2**31 OOV tokens to compare the vocabulary's head with (MemoryError)."""
    import tracemalloc
    tracemalloc.start()
    try:
        layer = fnn.IntegerLookup(num_oov_indices=2**31 - 1, vocabulary=[-1, 4, 9])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert layer.vocabulary_size() == 2**31 - 1 + 3


# ---------------------------------------------------------------- carried states in the file
def _state_edit(name=None, drop=False, add=None, **changes):
    """An edit of a stateful family's array entries: entry ``name`` removed (``drop``) or
    changed (``changes``), or a copy of it added under the name ``add``."""
    def edit(arrays, data):
        entry = next(a for a in arrays if a["name"] == name)
        if drop:
            arrays.remove(entry)
        elif add is not None:           # its bytes copied after the data (arrays never overlap)
            size = np.dtype(entry["dtype"]).itemsize * math.prod(entry["shape"])
            data.extend(b"\0" * (-len(data) % 64))
            arrays.append(dict(entry, name=add, offset=len(data)))
            data.extend(data[entry["offset"]:entry["offset"] + size])
            data.extend(b"\0" * (-len(data) % 64))
        else:
            entry.update(changes)
    return edit


def _poke(name, value):
    """An edit writing ``value`` (float32) over the first value of the array ``name``."""
    def edit(arrays, data):
        entry = next(a for a in arrays if a["name"] == name)
        data[entry["offset"]:entry["offset"] + 4] = np.float32(value).tobytes()
    return edit


# family, edit(arrays, data), what the message must say. stateful: LSTM(4) 0, GRU(3) 1, the
# Bidirectional's LSTM(2)s 2 and 3, each (2, units); stateful_conv: ConvLSTM2D 0, (2, 4, 4, 2)
FORGED_STATES = {
    "lstm_c_missing": ("stateful", _state_edit("rnn_state/0/1", drop=True),
                       r"needs all of \['rnn_state/0/0', 'rnn_state/0/1'\] or none"),
    "backward_h_missing": ("stateful", _state_edit("rnn_state/3/0", drop=True),
                           r"needs all of \['rnn_state/3/0', 'rnn_state/3/1'\]"),
    "gru_second_state": ("stateful", _state_edit("rnn_state/1/0", add="rnn_state/1/1"),
                         r"\['rnn_state/1/1'\] are not states of the model's 4 stateful"),
    "a_fifth_layer": ("stateful", _state_edit("rnn_state/1/0", add="rnn_state/4/0"),
                      r"\['rnn_state/4/0'\] are not states"),
    "odd_name": ("stateful", _state_edit("rnn_state/1/0", add="rnn_state/x"),
                 r"\['rnn_state/x'\] are not states"),
    "lstm_h_wider": ("stateful", _state_edit("rnn_state/0/0", shape=[1, 8]),
                     r"'rnn_state/0/0' is <f4\[1, 8\]; layer 'lstm\w*' holds \(batch, 4\)"),
    "lstm_h_3d": ("stateful", _state_edit("rnn_state/0/0", shape=[2, 4, 1]),
                  r"'rnn_state/0/0' is <f4\[2, 4, 1\].*\(batch, 4\)"),
    "lstm_h_1d": ("stateful", _state_edit("rnn_state/0/0", shape=[8]),
                  r"'rnn_state/0/0' is <f4\[8\].*\(batch, 4\)"),
    "lstm_h_empty_batch": ("stateful", _state_edit("rnn_state/0/0", shape=[0, 4]),
                           r"'rnn_state/0/0' is <f4\[0, 4\]"),
    "lstm_two_batch_sizes": ("stateful", _state_edit("rnn_state/0/1", shape=[1, 4]),
                             r"'rnn_state/0/1' is <f4\[1, 4\].*of one batch size"),
    "gru_h_float64": ("stateful", _state_edit("rnn_state/1/0", dtype="<f8", shape=[1, 3]),
                      r"'rnn_state/1/0' is <f8\[1, 3\].*in float32"),
    "bidirectional_c_nan": ("stateful", _poke("rnn_state/2/1", np.nan),
                            r"'rnn_state/2/1' holds NaN or inf"),
    "gru_h_inf": ("stateful", _poke("rnn_state/1/0", -np.inf),
                  r"'rnn_state/1/0' holds NaN or inf"),
    "conv_c_missing": ("stateful_conv", _state_edit("rnn_state/0/1", drop=True),
                       r"needs all of"),
    "conv_third_state": ("stateful_conv", _state_edit("rnn_state/0/1", add="rnn_state/0/2"),
                         r"\['rnn_state/0/2'\] are not states"),
    "conv_h_transposed": ("stateful_conv", _state_edit("rnn_state/0/0", shape=[2, 4, 2, 4]),
                          r"'rnn_state/0/0' is <f4\[2, 4, 2, 4\]; layer 'conv_lstm2d\w*' holds "
                          r"\(batch, 4, 4, 2\)"),
    "conv_h_flat": ("stateful_conv", _state_edit("rnn_state/0/0", shape=[2, 32]),
                    r"<f4\[2, 32\].*\(batch, 4, 4, 2\)"),
    "conv_h_one_image": ("stateful_conv", _state_edit("rnn_state/0/0", shape=[4, 4, 2]),
                         r"<f4\[4, 4, 2\].*\(batch, 4, 4, 2\)"),
    "conv_c_float64": ("stateful_conv",
                       _state_edit("rnn_state/0/1", dtype="<f8", shape=[1, 4, 4, 2]),
                       r"'rnn_state/0/1' is <f8\[1, 4, 4, 2\].*float32"),
    "conv_h_nan": ("stateful_conv", _poke("rnn_state/0/0", np.nan),
                   r"'rnn_state/0/0' holds NaN or inf"),
}


def _edited(files, family, edit):
    header = copy.deepcopy(files[family]["header"])
    data = bytearray(files[family]["data"])
    edit(header["arrays"], data)
    return build(header, bytes(data), version=2)


@pytest.mark.parametrize("name", list(FORGED_STATES))
def test_the_loader_refuses_forged_state_arrays(files, name):
    family, edit, pattern = FORGED_STATES[name]
    _refused_before_allocation(_edited(files, family, edit), pattern)


def test_a_file_without_state_arrays_loads_with_zero_states(files):
    """A stateful model saved before its first batch holds no state arrays: it loads with
    every layer's states None (zeros), as the model was."""
    def no_states(arrays, data):
        arrays[:] = [a for a in arrays if not a["name"].startswith("rnn_state/")]
    for family in STATEFUL_FAMILIES:
        model = model_from_bytes(_edited(files, family, no_states))
        assert stateful_layers(model) and all(
            layer.states is None for layer in stateful_layers(model))


# replacements for a state array's entry, and values written into its data
STATE_NAMES = ["rnn_state/0/0", "rnn_state/0/1", "rnn_state/1/0", "rnn_state/1/1",
               "rnn_state/3/1", "rnn_state/4/0", "rnn_state/0", "rnn_state/-1/0",
               "rnn_state/00/0", "rnn_state/0/0/0", "w0/lstm/kernel", "optimizer/x"]
STATE_SHAPES = [[2, 4], [2, 3], [2, 2], [1, 4], [4, 2], [8], [2, 4, 1], [2, 4, 4, 2],
                [2, 2, 4, 4], [1, 4, 4, 2], [0, 4], [], [2**31, 4], [2**62, 2**62], [-2, 4]]
STATE_DTYPES = ["<f4", ">f4", "<f8", "<f2", "<i4", "|u1", "<c8", "|b1", "f4", "x"]
STATE_VALUES = [np.nan, np.inf, -np.inf, 3.4e38, -0.0, 1e-45, 1.0]


def _described(header, data, name):
    """The array the header's entry ``name`` describes, read from ``data`` (None when the
    entry is not a readable array)."""
    entry = next((a for a in header["arrays"] if a.get("name") == name), None)
    try:
        dtype = np.dtype(entry["dtype"])
        count = math.prod(entry["shape"])
        return np.frombuffer(data, dtype, count, entry["offset"]).reshape(entry["shape"])
    except Exception:
        return None


@pytest.mark.parametrize("family", STATEFUL_FAMILIES)
@FUZZ_V3
@given(data=st.data())
def test_fuzz_state_arrays(files, family, data):
    """State entries renamed, dropped, duplicated, reshaped, retyped or moved, and hostile
    values in their data: the loader refuses with its ValueError, or the model it returns
    holds exactly the states the file describes (never silently other ones)."""
    header = copy.deepcopy(files[family]["header"])
    raw = bytearray(files[family]["data"])
    states = [a for a in header["arrays"] if a["name"].startswith("rnn_state/")]
    for _ in range(data.draw(st.integers(1, 3))):
        entry = data.draw(st.sampled_from(states))
        action = data.draw(st.sampled_from(["name", "drop", "copy", "shape", "dtype", "offset",
                                            "value"]))
        if action == "name":
            entry["name"] = data.draw(st.sampled_from(STATE_NAMES))
        elif action == "drop" and entry in header["arrays"]:
            header["arrays"].remove(entry)
        elif action == "copy":
            header["arrays"].append(dict(entry, name=data.draw(st.sampled_from(STATE_NAMES))))
        elif action == "shape":
            entry["shape"] = data.draw(st.sampled_from(STATE_SHAPES))
        elif action == "dtype":
            entry["dtype"] = data.draw(st.sampled_from(STATE_DTYPES))
        elif action == "offset":
            entry["offset"] = data.draw(st.sampled_from([0, 64, entry["offset"] + 64,
                                                         len(raw), -64, 2**62]))
        else:
            at = entry["offset"] + 4 * data.draw(st.integers(0, 7))
            raw[at:at + 4] = np.float32(data.draw(st.sampled_from(STATE_VALUES))).tobytes()
    blob = build(header, bytes(raw), version=2)
    _load_or_refuse(blob)
    try:
        model = model_from_bytes(blob)
    except ValueError:
        return
    for j, layer in enumerate(stateful_layers(model)):
        held = layer.states
        described = [_described(header, bytes(raw), f"rnn_state/{j}/{i}")
                     for i in range(layer.n_states)]
        if held is None:
            assert all(d is None for d in described), (j, described)
            continue
        for got, want in zip(held, described):
            assert want is not None and got.dtype == model.dtype
            assert np.array_equal(got, want.astype(model.dtype)), (j, want.dtype)
