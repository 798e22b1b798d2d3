"""Follow-ups to compile/fit with several outputs (tests/test_multi_output_fit.py): what
``train_on_batch`` returns (Keras 3's forms) and an output compiled without a loss leaving the
weights only it reaches alone (no optimizer step: AdamW's decay does not move them), both
against Keras 3 in float64 (a subprocess on its torch backend,
tests/_keras_followups_worker.py)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]
N, D, HIDDEN, CLASSES, TARGETS = 20, 4, 5, 3, 2
LR, WEIGHT_B, ADAM_LR, DECAY, STEPS, L2 = 0.1, 0.5, 0.05, 0.2, 3, 0.01


def _data():
    rng = np.random.default_rng(34)
    d = dict(X=rng.standard_normal((N, D)), ya=rng.integers(0, CLASSES, N),
             yb=rng.standard_normal((N, TARGETS)),
             w0=rng.standard_normal((D, HIDDEN)) * 0.5, w1=rng.standard_normal(HIDDEN) * 0.1,
             w2=rng.standard_normal((HIDDEN, CLASSES)) * 0.5, w3=rng.standard_normal(CLASSES) * 0.1,
             w4=rng.standard_normal((HIDDEN, TARGETS)) * 0.5,
             w5=rng.standard_normal(TARGETS) * 0.1,
             v0=rng.standard_normal((D, CLASSES)) * 0.5, v1=rng.standard_normal(CLASSES) * 0.1)
    V, T, E, C = 9, 6, 4, 3
    lengths = [6, 2, 4, 1, 5, 3, 6, 2, 3, 4]
    ids = rng.integers(1, V, (len(lengths), T)).astype(np.float64)
    for i, length in enumerate(lengths):
        ids[i, length:] = 0
    d.update(ids=ids, tags=rng.integers(0, C, (len(lengths), T)),
             summary=rng.standard_normal((len(lengths), 2)),
             m0=rng.standard_normal((V, E)) * 0.5, m1=rng.standard_normal((E, C)) * 0.5,
             m2=rng.standard_normal(C) * 0.1, m3=rng.standard_normal((E, 2)) * 0.5,
             m4=rng.standard_normal(2) * 0.1)
    return d


def _masked_two_outputs(d, backend):
    """Embedding(mask_zero) -> 'tags' Dense softmax per step (masked) and
    GlobalAveragePooling1D -> 'summary' Dense (unmasked)."""
    inp = fnn.Input((d["ids"].shape[1],))
    emb = fnn.Embedding(d["m0"].shape[0], d["m0"].shape[1], mask_zero=True)(inp)
    per_step = fnn.Dense(d["m1"].shape[1], activation="softmax", name="tags")(emb)
    whole = fnn.Dense(2, name="summary")(fnn.GlobalAveragePooling1D()(emb))
    model = fnn.Model(inp, [per_step, whole], seed=0, dtype="float64", backend=backend)
    model.set_weights([d[f"m{i}"] for i in range(5)])
    return model


def _two_outputs(d, backend, regularized=False):
    inp = fnn.Input((D,))
    h = fnn.Dense(HIDDEN, activation="tanh", name="hid")(inp)
    a = fnn.Dense(CLASSES, activation="softmax", name="out_a")(h)
    b = fnn.Dense(TARGETS, name="out_b",
                  kernel_regularizer=fnn.regularizers.L2(L2) if regularized else None)(h)
    model = fnn.Model(inp, [a, b], seed=0, dtype="float64", backend=backend)
    model.set_weights([d[f"w{i}"] for i in range(6)])
    return model


def _one_output(d, backend):
    inp = fnn.Input((D,))
    out = fnn.Dense(CLASSES, activation="softmax", name="probs")(inp)
    model = fnn.Model(inp, out, seed=0, dtype="float64", backend=backend)
    model.set_weights([d["v0"], d["v1"]])
    return model


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    import importlib.util
    for name in ("keras", "torch"):            # not imported here: the subprocess does
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
    folder = tmp_path_factory.mktemp("keras_followups")
    source, target = folder / "in.npz", folder / "out.npz"
    np.savez(source, lr=LR, weight_b=WEIGHT_B, adam_lr=ADAM_LR, decay=DECAY, steps=STEPS,
             l2=L2, **_data())
    worker = pathlib.Path(__file__).parent / "_keras_followups_worker.py"
    run = subprocess.run([sys.executable, str(worker), str(source), str(target)],
                         env=dict(os.environ, KERAS_BACKEND="torch"), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(str(target) + ".json") as f:
        returns = json.load(f)
    return returns, dict(np.load(target))


def _same(ours, keras_value):
    """ours is Keras' value: the same form (float, list in order, dict with the same keys)
    and the same numbers to ~1e-10."""
    if isinstance(keras_value, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(keras_value)
        for key, value in keras_value.items():
            assert ours[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    elif isinstance(keras_value, list):
        assert isinstance(ours, list) and len(ours) == len(keras_value)
        assert ours == pytest.approx(keras_value, rel=1e-10, abs=1e-12)
    else:
        assert isinstance(ours, float)
        assert ours == pytest.approx(keras_value, rel=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_returns_what_keras_returns(backend, keras_results):
    returns, _ = keras_results
    d = _data()
    X, ya, yb = d["X"], d["ya"], d["yb"]
    sce = "sparse_categorical_crossentropy"

    model = _one_output(d, backend).compile(sce, fnn.SGD(lr=LR), metrics=["accuracy"])
    _same(model.train_on_batch(X, ya), returns["one_metrics"])
    _same(model.train_on_batch(X, ya, return_dict=True), returns["one_metrics_dict"])
    model = _one_output(d, backend).compile(sce, fnn.SGD(lr=LR))
    _same(model.train_on_batch(X, ya), returns["one_plain"])
    _same(model.train_on_batch(X, ya, return_dict=True), returns["one_plain_dict"])

    model = _two_outputs(d, backend).compile([sce, "mse"], fnn.SGD(lr=LR),
                                             loss_weights=[1.0, WEIGHT_B],
                                             metrics=[["accuracy"], ["mae"]])
    _same(model.train_on_batch(X, [ya, yb]), returns["two_metrics"])
    _same(model.train_on_batch(X, [ya, yb], return_dict=True), returns["two_metrics_dict"])
    _same(model.test_on_batch(X, [ya, yb]), returns["two_metrics_test"])
    model = _two_outputs(d, backend).compile([sce, "mse"], fnn.SGD(lr=LR),
                                             loss_weights=[1.0, WEIGHT_B])
    _same(model.train_on_batch(X, [ya, yb]), returns["two_plain"])
    _same(model.train_on_batch(X, [ya, yb], return_dict=True), returns["two_plain_dict"])
    model = _two_outputs(d, backend).compile([sce, None], fnn.SGD(lr=LR))
    _same(model.train_on_batch(X, [ya, yb]), returns["one_trained"])


def _torch_adamw(d, regularized):
    """The weights after STEPS AdamW steps of the loss of out_a (plus out_b's kernel penalty
    when ``regularized``) in PyTorch float64, fastnn's (Keras') layouts."""
    torch = pytest.importorskip("torch")
    params = [torch.tensor(d[f"w{i}"], dtype=torch.float64, requires_grad=True)
              for i in range(6)]
    X = torch.tensor(d["X"])
    ya = torch.tensor(d["ya"], dtype=torch.int64)
    opt = torch.optim.AdamW(params, lr=ADAM_LR, weight_decay=DECAY, eps=1e-7)
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        h = torch.tanh(X @ params[0] + params[1])
        logits = h @ params[2] + params[3]
        loss = torch.nn.functional.cross_entropy(logits, ya)
        _ = h @ params[4] + params[5]                  # out_b: computed, not in the loss
        if regularized:
            loss = loss + L2 * torch.sum(params[4] ** 2)
        loss.backward()
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("regularized", [False, True])
def test_an_output_without_a_loss_gets_no_optimizer_step(backend, regularized, keras_results):
    """Keras 3: a weight no loss reaches has no gradient, and its optimizer skips it (AdamW's
    decoupled decay included); a regularized kernel is reached by its penalty."""
    _, arrays = keras_results
    d = _data()
    X, ya, yb = d["X"], d["ya"], d["yb"]
    model = _two_outputs(d, backend, regularized).compile(
        ["sparse_categorical_crossentropy", None],
        fnn.AdamW(learning_rate=ADAM_LR, weight_decay=DECAY, epsilon=1e-7))
    for _ in range(STEPS):
        model.train_on_batch(X, [ya, yb])
    after = model.get_weights()
    keras_after = [arrays[f"adamw{int(regularized)}_{i}"] for i in range(6)]
    # the weights Keras leaves alone (bitwise), fastnn leaves alone
    assert [np.array_equal(w, d[f"w{i}"]) for i, w in enumerate(after)] == [
        np.array_equal(w, d[f"w{i}"]) for i, w in enumerate(keras_after)]
    # the values: PyTorch's AdamW (fastnn's convention; Keras puts epsilon elsewhere, so it
    # agrees to ~1e-3 only), which skips a parameter without a gradient as Keras does
    expected = _torch_adamw(d, regularized)
    for i, w in enumerate(after):
        np.testing.assert_allclose(w, expected[i], rtol=1e-10, atol=1e-13, err_msg=f"weight {i}")
        np.testing.assert_allclose(w, keras_after[i], rtol=1e-2, atol=1e-3)
    assert np.array_equal(after[5], d["w5"])                 # out_b's bias: untouched
    assert np.array_equal(after[4], d["w4"]) != regularized  # its kernel: only by its penalty
    assert not np.array_equal(after[0], d["w0"])             # the shared layer trains


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_leaves_an_untrained_branch_alone(backend):
    """A longer branch (two layers, and a layer of it shared with nothing trained) stays put
    under fit with AdamW; the trained branch and the shared trunk move."""
    d = _data()
    inp = fnn.Input((D,))
    h = fnn.Dense(HIDDEN, activation="tanh", name="hid")(inp)
    a = fnn.Dense(CLASSES, activation="softmax", name="out_a")(h)
    b = fnn.Dense(TARGETS, name="out_b")(fnn.Dense(3, activation="relu", name="side")(h))
    model = fnn.Model(inp, [a, b], seed=1, dtype="float64", backend=backend)
    model.compile({"out_a": "sparse_categorical_crossentropy", "out_b": None},
                  fnn.AdamW(learning_rate=0.05, weight_decay=0.5))
    before = model.get_weights()
    model.fit(d["X"], [d["ya"]], epochs=2, batch_size=8, verbose=0)
    after = model.get_weights()
    moved = [not np.array_equal(p, q) for p, q in zip(before, after)]
    assert moved == [True] * 4 + [False] * 4
    # compiled again with both losses, every weight trains
    model.compile(["sparse_categorical_crossentropy", "mse"],
                  fnn.AdamW(learning_rate=0.05, weight_decay=0.5))
    model.fit(d["X"], [d["ya"], d["yb"]], epochs=1, batch_size=8, verbose=0)
    assert all(not np.array_equal(p, q) for p, q in zip(after, model.get_weights()))


def test_train_on_batch_return_dict_is_checked():
    d = _data()
    model = _one_output(d, "numpy").compile("sparse_categorical_crossentropy")
    with pytest.raises((TypeError, ValueError), match="return_dict"):
        model.train_on_batch(d["X"], d["ya"], return_dict="yes")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_masked_output_beside_another_fits_as_keras(backend, keras_results):
    """The masked output's padded steps count in neither its loss nor its accuracy (Keras'
    masked mean over the real steps); fit follows Keras 3's weights and History."""
    returns, arrays = keras_results
    d = _data()
    ids, tags, summary = d["ids"], d["tags"], d["summary"]
    model = _masked_two_outputs(d, backend).compile(
        ["sparse_categorical_crossentropy", "mse"], fnn.SGD(lr=LR),
        metrics=[["accuracy"], []])
    # by hand, before training: the loss over the real steps only
    p, o = model.predict(ids)
    real = ids != 0
    ce = -np.log(np.take_along_axis(p, tags[..., None], -1)[..., 0])
    scores = model.evaluate(ids, [tags, summary])
    assert scores["tags_loss"] == pytest.approx(ce[real].mean(), rel=1e-12)
    assert scores["summary_loss"] == pytest.approx(np.mean((o - summary) ** 2), rel=1e-12)
    right = (p.argmax(-1) == tags)[real]
    assert scores["tags_accuracy"] == pytest.approx(right.mean(), rel=1e-12)
    other = np.where(real, tags, (tags + 1) % 3)          # the padded steps' targets: unread
    assert model.evaluate(ids, [other, summary]) == scores
    history = model.fit(ids, [tags, summary], epochs=2, batch_size=4, shuffle=False,
                        verbose=0).history
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, arrays[f"masked_{i}"], rtol=1e-10, atol=1e-13,
                                   err_msg=f"weight {i}")
    want = returns["masked_history"]
    assert sorted(history) == sorted(want)
    # the losses (Keras' float32 trackers: 1e-6); the epoch's accuracy is left out: fastnn
    # weighs each batch's masked accuracy by its rows, Keras by its real steps (as with one
    # output)
    for key in ("loss", "tags_loss", "summary_loss"):
        np.testing.assert_allclose(history[key], want[key], rtol=1e-6, err_msg=key)
