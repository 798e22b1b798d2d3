"""fastnn.interop: PyTorch nn.Sequential models (from_torch) against PyTorch itself, and Keras 3
.weights.h5 files (model.load_weights), written by Keras when it is installed and by h5py in
Keras' layout with known values otherwise."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

try:
    import torch
    from torch import nn
except ImportError:                    # the optional oracle
    torch = nn = None
try:
    import h5py
except ImportError:
    h5py = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch")
needs_h5py = pytest.mark.skipif(h5py is None, reason="needs h5py")


@pytest.fixture(autouse=True)
def _torch_on_one_thread():
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _randomized(net, seed=0):
    """Nonzero biases and BatchNorm statistics, so that every parameter shows in the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            for name, p in m.named_parameters(recurse=False):
                if name.startswith("bias") or isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d,
                                                             nn.LayerNorm)):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (name == "weight"))
    return net.eval()


def _check(net, input_shape, x=None, perm_in=None, perm_out=None, dtype=torch and torch.float32,
           tol=1e-5, backend="fast"):
    net = _randomized(net.to(dtype))
    model = fnn.interop.from_torch(net, input_shape, backend=backend)
    assert model.dtype == (np.float64 if dtype == torch.float64 else np.float32)
    if x is None:
        x = torch.randn(4, *input_shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        want = net(x)
    want = (want.permute(*perm_out) if perm_out else want).numpy()
    got = model.predict((x.permute(*perm_in) if perm_in else x).numpy())
    assert got.shape == want.shape
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    assert err < tol, err
    return model


NHWC, NLC = (0, 2, 3, 1), (0, 2, 1)


def _cases():
    """name -> (build the module, input_shape, perm of the input, perm of the output)"""
    return {
        "mlp_softmax": (lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3),
                                              nn.Softmax(dim=-1)), (5,), None, None),
        "activations": (lambda: nn.Sequential(
            nn.Linear(5, 6, bias=False), nn.Sigmoid(), nn.Linear(6, 6), nn.Tanh(),
            nn.LeakyReLU(0.3), nn.Linear(6, 6), nn.GELU(), nn.Dropout(0.2), nn.Identity(),
            nn.Linear(6, 4), nn.GELU(approximate="tanh")), (5,), None, None),
        "linear_on_sequence": (lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4),
                                                     nn.Softmax(dim=2)), (5, 3), None, None),
        "conv2d": (lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(4, 5, 3, padding="same", dilation=2), nn.Conv2d(5, 2, (3, 2), bias=False),
            nn.Softmax(dim=1)), (3, 9, 9), NHWC, NHWC),
        "conv1d_pools": (lambda: nn.Sequential(
            nn.Conv1d(3, 4, 5, padding=2), nn.MaxPool1d(2), nn.Conv1d(4, 4, 3, stride=2),
            nn.AvgPool1d(2), nn.MaxPool1d(3, stride=1, padding=1),
            nn.AvgPool1d(3, 1, 1, count_include_pad=False)), (3, 21), NLC, NLC),
        "pools2d": (lambda: nn.Sequential(
            nn.MaxPool2d(3, stride=2), nn.AvgPool2d(2), nn.MaxPool2d(3, stride=1, padding=1),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)), (2, 11, 11),
            NHWC, NHWC),
        "global_pools": (lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)),
            (2, 6, 6), NHWC, None),
        "global_max2d": (lambda: nn.Sequential(nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten()),
                         (3, 5, 4), NHWC, None),
        "global_pools1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.AdaptiveMaxPool1d(1),
                                                 nn.Flatten(), nn.Linear(3, 2)), (2, 7), NLC,
                           None),
        "global_avg1d": (lambda: nn.Sequential(nn.AdaptiveAvgPool1d(1)), (3, 7), NLC, NLC),
        "flatten_then_norms": (lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.Flatten(), nn.LayerNorm(48), nn.BatchNorm1d(48),
            nn.ReLU(), nn.Linear(48, 5)), (2, 6, 6), NHWC, None),
        "batchnorm": (lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, eps=1e-3, momentum=0.2), nn.Flatten(),
            nn.Linear(36, 6), nn.BatchNorm1d(6, affine=False)), (2, 5, 5), NHWC, None),
        "batchnorm1d_channels": (lambda: nn.Sequential(nn.BatchNorm1d(3), nn.Conv1d(3, 2, 1)),
                                 (3, 6), NLC, NLC),
        "nested_sequential": (lambda: nn.Sequential(
            nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Sequential(nn.Sequential(
                nn.Linear(4, 2)))), (4,), None, None),
    }


@needs_torch
@pytest.mark.parametrize("name", sorted(_cases()))
def test_from_torch_layer_kinds_match_pytorch(name):
    build, shape, perm_in, perm_out = _cases()[name]
    torch.manual_seed(0)
    _check(build(), shape, perm_in=perm_in, perm_out=perm_out)


@needs_torch
@pytest.mark.parametrize("kind", ["RNN", "RNN_relu", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_from_torch_recurrent_match_pytorch(kind, layers, bidirectional, return_sequences):
    torch.manual_seed(0)
    cls = getattr(nn, kind.split("_")[0])
    extra = {"nonlinearity": "relu"} if kind == "RNN_relu" else {}
    rnn = cls(3, 4, num_layers=layers, batch_first=True, bidirectional=bidirectional,
              dropout=0.1 if layers > 1 else 0.0, **extra)
    model = _check(nn.Sequential(rnn, fnn.interop.RecurrentOutput(return_sequences)), (6, 3))
    expected = [cls.__name__.replace("RNN", "SimpleRNN") if not bidirectional
                else "Bidirectional"] * layers
    assert [type(layer).__name__ for layer in model._weight_layers()] == expected


@needs_torch
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_embedding_and_recurrent_without_bias(bias):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(12, 4, padding_idx=0),
                        nn.GRU(4, 5, batch_first=True, bias=bias),
                        fnn.interop.RecurrentOutput(return_sequences=True), nn.LayerNorm(5),
                        nn.Linear(5, 3))
    x = torch.randint(0, 12, (4, 7), generator=torch.Generator().manual_seed(2))
    _check(net, (7,), x=x)


@needs_torch
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_from_torch_lenet5(backend):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    model = _check(net, (1, 28, 28), perm_in=NHWC, backend=backend)
    assert model.input_shape == (28, 28, 1)


@needs_torch
def test_from_torch_lstm_classifier():
    torch.manual_seed(0)
    net = nn.Sequential(nn.LSTM(8, 16, num_layers=2, batch_first=True, dropout=0.1),
                        fnn.interop.RecurrentOutput(), nn.Linear(16, 4), nn.Softmax(dim=-1))
    _check(net, (10, 8))


@needs_torch
@pytest.mark.parametrize("name", ["conv2d", "conv1d_pools", "batchnorm", "flatten_then_norms",
                                  "activations"])
def test_from_torch_float64(name):
    build, shape, perm_in, perm_out = _cases()[name]
    torch.manual_seed(0)
    _check(build(), shape, perm_in=perm_in, perm_out=perm_out, dtype=torch.float64, tol=1e-10)
    net = nn.Sequential(nn.LSTM(3, 4, batch_first=True, bidirectional=True),
                        fnn.interop.RecurrentOutput())
    _check(net, (5, 3), dtype=torch.float64, tol=1e-10)


def _refusals():
    R = lambda rs=False: fnn.interop.RecurrentOutput(rs)     # noqa: E731
    return [
        (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1)), (1, 8, 8),
         r"padding=\(1, 1\) is not Keras' 'same'"),
        (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding_mode="reflect")), (1, 8, 8),
         "padding modes"),
        (lambda: nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 8, 8), "ceil_mode"),
        (lambda: nn.Sequential(nn.AvgPool2d(3, 1, 1)), (1, 8, 8), "count_include_pad"),
        (lambda: nn.Sequential(nn.AdaptiveAvgPool2d(2)), (1, 8, 8), "output size of 1"),
        (lambda: nn.Sequential(nn.LSTM(3, 4, batch_first=True)), (5, 3), "RecurrentOutput"),
        (lambda: nn.Sequential(nn.LSTM(3, 4), R()), (5, 3), "batch_first"),
        (lambda: nn.Sequential(nn.LSTM(3, 4, batch_first=True, proj_size=2), R()), (5, 3),
         "proj_size"),
        (lambda: nn.Sequential(R()), (5, 3), r"'0' \(RecurrentOutput\): RecurrentOutput must follow"),
        (lambda: nn.Sequential(nn.CELU()), (3,), r"'0' \(CELU\) is not supported"),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU6())), (3,),
         r"'1\.0' \(ReLU6\)"),
        (lambda: nn.Sequential(nn.Softmax(dim=0)), (3,), "softmax over the features"),
        (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), (1, 5, 5),
         "ends on a channels-first Flatten"),
        (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(3, 3)), (1, 5, 5), "last axis"),
        (lambda: nn.Sequential(nn.LayerNorm((4, 4))), (4, 4), "last axis"),
        (lambda: nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)), (3,),
         "running statistics"),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Embedding(4, 2)), (3,), "must come first"),
        (lambda: nn.Sequential(nn.Flatten(start_dim=2)), (2, 3, 4), "start_dim"),
        (lambda: nn.Sequential(nn.Linear(4, 3)), (3,), "expects 4 features"),
        (lambda: nn.Sequential(nn.Conv2d(2, 3, 3)), (3, 5, 5), "expects 2 channels"),
        (lambda: nn.Sequential(nn.Linear(3, 3).half()), (3,), "float32 or all float64"),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).double()), (3,),
         "float32 or all float64"),
        (lambda: nn.Sequential(nn.Linear(3, 3)), (0,), "input_shape"),
        (lambda: nn.Sequential(nn.Linear(3, 3)), 3, "input_shape"),
    ]


@needs_torch
@pytest.mark.parametrize("case", range(len(_refusals())))
def test_from_torch_refuses_what_it_cannot_reproduce(case):
    build, shape, message = _refusals()[case]
    with pytest.raises(ValueError, match=message):
        fnn.interop.from_torch(build(), shape)


@needs_torch
def test_from_torch_needs_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fnn.interop.from_torch([nn.Linear(2, 2)], (2,))


def test_fastnn_imports_without_torch_and_h5py_and_says_what_is_missing(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['h5py'] = None\n"
        "import fastnn as fnn\n"
        "try:\n    fnn.interop.from_torch(None, (3,))\nexcept ImportError as e: print(e)\n"
        "m = fnn.Sequential([fnn.Dense(2)], input_dim=3)\n"
        f"try:\n    m.load_weights({str(tmp_path / 'a.weights.h5')!r})\n"
        "except ImportError as e: print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert "needs PyTorch" in out.stdout and 'pip install "fastnn[h5]"' in out.stdout


# ------------------------------------------------------------------------- Keras .weights.h5
def _write_h5(path, groups):
    """groups: {"layers/dense": [array, ...]} written as Keras 3 does (<group>/vars/0, 1, ...)."""
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "sequential"
        for group, arrays in groups.items():
            g = f.require_group(group).require_group("vars")
            for i, a in enumerate(arrays):
                g.create_dataset(str(i), data=a)


def _known(*shapes):
    """Distinct known values per array: arange scaled, offset by the array's place."""
    return [(np.arange(np.prod(s), dtype=np.float32).reshape(s) / 10.0 + k)
            for k, s in enumerate(shapes)]


def _h5_cases():
    """name -> (fastnn layers, input_shape, {group: arrays})"""
    lstm = _known((3, 16), (4, 16), (16,))
    gru = _known((3, 12), (4, 12), (2, 12))
    return {
        "dense": ([fnn.Dense(4), fnn.Dense(2)], (3,),
                  {"layers/dense": _known((3, 4), (4,)), "layers/dense_1": _known((4, 2), (2,))}),
        "conv2d": ([fnn.Conv2D(4, 3), fnn.Flatten(), fnn.Dense(2, use_bias=False)], (5, 5, 2),
                   {"layers/conv2d": _known((3, 3, 2, 4), (4,)),
                    "layers/dense": _known((36, 2))}),
        "conv1d": ([fnn.Conv1D(4, 3)], (6, 2), {"layers/conv1d": _known((3, 2, 4), (4,))}),
        "batch_normalization": ([fnn.BatchNormalization()], (3,),
                                {"layers/batch_normalization": _known((3,), (3,), (3,), (3,))}),
        "layer_normalization": ([fnn.LayerNormalization()], (3,),
                                {"layers/layer_normalization": _known((3,), (3,))}),
        "embedding": ([fnn.Embedding(10, 4)], (5,), {"layers/embedding": _known((10, 4))}),
        "depthwise_conv2d": ([fnn.DepthwiseConv2D(3, depth_multiplier=2)], (5, 5, 3),
                             {"layers/depthwise_conv2d": _known((3, 3, 3, 2), (6,))}),
        "separable_conv1d": ([fnn.SeparableConv1D(4, 3)], (6, 2),
                             {"layers/separable_conv1d": _known((3, 2, 1), (1, 2, 4), (4,))}),
        "simple_rnn": ([fnn.SimpleRNN(4)], (5, 3),
                       {"layers/simple_rnn/cell": _known((3, 4), (4, 4), (4,))}),
        "lstm": ([fnn.LSTM(4)], (5, 3), {"layers/lstm/cell": lstm}),
        "gru": ([fnn.GRU(4)], (5, 3), {"layers/gru/cell": gru}),
        "bidirectional": ([fnn.Bidirectional(fnn.LSTM(4))], (5, 3),
                          {"layers/bidirectional/forward_layer/cell": lstm,
                           "layers/bidirectional/backward_layer/cell": [a + 100 for a in lstm]}),
    }


@needs_h5py
@pytest.mark.parametrize("name", sorted(_h5_cases()))
def test_load_weights_reads_each_keras_layer_kind(tmp_path, name):
    layers, shape, groups = _h5_cases()[name]
    path = tmp_path / "model.weights.h5"
    _write_h5(path, {"layers/flatten": [], **groups})       # weightless groups are ignored
    model = fnn.Sequential(layers, input_shape=shape)
    model.load_weights(path)
    want = [a for arrays in groups.values() for a in arrays]
    got = model.get_weights()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@needs_h5py
def test_load_weights_of_nested_models_and_keras_3_0_names(tmp_path):
    inner = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)], input_dim=4)
    inp = fnn.Input((4,))
    model = fnn.Model(inp, fnn.Dense(1)(inner(fnn.Dense(4)(inp))), dtype="float64")
    groups = {"layers/dense": _known((4, 4), (4,)), "layers/dense_1": _known((2, 1), (1,)),
              "layers/sequential/layers/dense": _known((4, 3), (3,)),
              "layers/sequential/layers/dense_1": _known((3, 2), (2,))}
    order = ["layers/dense", "layers/sequential/layers/dense",
             "layers/sequential/layers/dense_1", "layers/dense_1"]
    path = tmp_path / "nested.weights.h5"
    _write_h5(path, groups)
    model.load_weights(str(path))
    for g, w in zip(model.get_weights(), [a for k in order for a in groups[k]]):
        np.testing.assert_array_equal(g, w)
    old = tmp_path / "old.weights.h5"        # Keras 3.0: _layer_checkpoint_dependencies
    _write_h5(old, {"_layer_checkpoint_dependencies/dense": _known((3, 2), (2,))})
    small = fnn.Sequential([fnn.Dense(2)], input_dim=3)
    small.load_weights(old)
    np.testing.assert_array_equal(small.get_weights()[0], _known((3, 2))[0])


@needs_h5py
@pytest.mark.parametrize("layers,groups,message", [
    ([fnn.Dense(2)], {"layers/dense": _known((4, 2), (2,))},
     r"'dense' \(Dense\) has weights of shapes \[\(3, 2\), \(2,\)\]; the file's "
     r"'layers/dense' holds \[\(4, 2\), \(2,\)\]"),
    ([fnn.Dense(2), fnn.Dense(2)], {"layers/dense": _known((3, 2), (2,))},
     r"Keras' 'layers/dense_1', which the file does not have"),
    ([fnn.Dense(2)], {"layers/dense": _known((3, 2), (2,)), "layers/conv2d": _known((1,))},
     r"layers the model does not have: \['layers/conv2d'\]"),
    ([fnn.GRU(2)], {"layers/gru/cell": _known((3, 6), (2, 6), (6,))},   # reset_after=False
     r"shapes \[\(3, 6\), \(2, 6\), \(2, 6\)\]"),
    ([fnn.MultiHeadAttention(1, 2)], {}, r"\(MultiHeadAttention\) has no Keras"),
])
def test_load_weights_refusals_change_nothing(tmp_path, layers, groups, message):
    shape = (4, 3) if isinstance(layers[0], (fnn.GRU, fnn.MultiHeadAttention)) else (3,)
    model = fnn.Sequential(layers, input_shape=shape, seed=0)
    before = model.get_weights()
    path = tmp_path / "bad.weights.h5"
    _write_h5(path, groups)
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@needs_h5py
def test_load_weights_refuses_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "junk.weights.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        fnn.Sequential([fnn.Dense(2)], input_dim=3).load_weights(path)


def test_load_weights_from_a_fastnn_file(tmp_path):
    a = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)], input_dim=4, seed=1)
    a.save(tmp_path / "a.fnn")
    b = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)], input_dim=4, seed=2)
    b.load_weights(tmp_path / "a.fnn")
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


@needs_h5py
@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # Keras' numpy backend's own
def test_load_weights_written_by_keras(keras, tmp_path):
    L = keras.layers
    rng = np.random.default_rng(0)

    def randomized(m):
        m.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       + (1.5 if "variance" in v.path else 0.0)
                       for w, v in zip(m.get_weights(), m.weights)])
        return m

    km = randomized(keras.Sequential([
        keras.Input((6, 3)), L.Conv1D(4, 3, padding="same"), L.BatchNormalization(),
        L.LSTM(5, return_sequences=True), L.Bidirectional(L.GRU(2, return_sequences=True)),
        L.SimpleRNN(3), L.LayerNormalization(), L.Dense(3)]))
    km.save_weights(tmp_path / "seq.weights.h5")
    fm = fnn.Sequential([fnn.Conv1D(4, 3, padding="same"), fnn.BatchNormalization(),
                         fnn.LSTM(5, return_sequences=True),
                         fnn.Bidirectional(fnn.GRU(2, return_sequences=True)), fnn.SimpleRNN(3),
                         fnn.LayerNormalization(), fnn.Dense(3)], input_shape=(6, 3))
    fm.load_weights(tmp_path / "seq.weights.h5")
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    inp = keras.Input((8, 8, 1))
    h = L.MaxPooling2D()(L.Conv2D(3, 3, activation="relu")(inp))
    km = randomized(keras.Model(inp, L.Dense(2)(L.Flatten()(h))))
    km.save_weights(tmp_path / "cnn.weights.h5")
    fm = fnn.Sequential([fnn.Conv2D(3, 3, activation="relu"), fnn.MaxPooling2D(), fnn.Flatten(),
                         fnn.Dense(2)], input_shape=(8, 8, 1), dtype="float64")
    fm.load_weights(tmp_path / "cnn.weights.h5")
    x = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    km = randomized(keras.Sequential([         # a DCGAN-style generator
        keras.Input((6,)), L.Dense(12), L.Reshape((2, 2, 3)),
        L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        L.UpSampling2D(), L.Conv2DTranspose(1, (2, 3), strides=(1, 2), output_padding=(0, 1))]))
    km.save_weights(tmp_path / "gen.weights.h5")
    fm = fnn.Sequential([fnn.Dense(12), fnn.Reshape((2, 2, 3)),
                         fnn.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
                         fnn.UpSampling2D(),
                         fnn.Conv2DTranspose(1, (2, 3), strides=(1, 2), output_padding=(0, 1))],
                        input_dim=6)
    fm.load_weights(tmp_path / "gen.weights.h5")
    x = rng.normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    inp = keras.Input((5,), dtype="int32")
    km = randomized(keras.Model(inp, L.Dense(2)(L.Flatten()(L.Embedding(10, 4)(inp)))))
    km.save_weights(tmp_path / "emb.weights.h5")
    fm = fnn.Sequential([fnn.Embedding(10, 4), fnn.Flatten(), fnn.Dense(2)], input_shape=(5,))
    fm.load_weights(tmp_path / "emb.weights.h5")
    xi = rng.integers(0, 10, (3, 5))
    np.testing.assert_allclose(fm.predict(xi), km.predict(xi, verbose=0), rtol=1e-5, atol=1e-5)


@needs_h5py
@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # Keras' numpy backend's own
def test_load_weights_of_depthwise_and_separable_layers_written_by_keras(keras, tmp_path):
    L = keras.layers
    rng = np.random.default_rng(1)
    km = keras.Sequential([
        keras.Input((9, 8, 3)),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        L.SeparableConv2D(5, 3, strides=2, depth_multiplier=2),
        L.DepthwiseConv2D((2, 3), use_bias=False), L.SeparableConv2D(4, 1, use_bias=False),
        L.Reshape((-1, 4)), L.DepthwiseConv1D(2, dilation_rate=1),
        L.SeparableConv1D(3, 2, padding="same", activation="tanh"), L.Flatten(), L.Dense(2)])
    km.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in km.get_weights()])
    km.save_weights(tmp_path / "mobile.weights.h5")
    fm = fnn.Sequential([
        fnn.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        fnn.SeparableConv2D(5, 3, strides=2, depth_multiplier=2),
        fnn.DepthwiseConv2D((2, 3), use_bias=False), fnn.SeparableConv2D(4, 1, use_bias=False),
        fnn.Reshape((-1, 4)), fnn.DepthwiseConv1D(2, dilation_rate=1),
        fnn.SeparableConv1D(3, 2, padding="same", activation="tanh"), fnn.Flatten(),
        fnn.Dense(2)], input_shape=(9, 8, 3))
    fm.load_weights(tmp_path / "mobile.weights.h5")
    for got, want in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(got, want)
    x = rng.normal(size=(3, 9, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def _readme_snippets():
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("### PyTorch and Keras weights\n", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@needs_torch
@needs_h5py
def test_the_readme_bring_your_model_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = _readme_snippets()
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.split() == ["True"] * 3
