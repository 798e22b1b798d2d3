"""The examples in the public API's docstrings run and print what they say (doctest)."""

import doctest
import importlib

import numpy as np
import pytest

import fastnn as fnn

MODULES = ["fastnn.models.sequential", "fastnn.models.functional", "fastnn.models.training",
           "fastnn.models.fit_loop", "fastnn.models.low_level", "fastnn.models.weights",
           "fastnn.models.history", "fastnn.layers", "fastnn.layers.core",
           "fastnn.layers.activation", "fastnn.layers.merge", "fastnn.layers.regularization",
           "fastnn.layers.normalization", "fastnn.layers.pooling", "fastnn.layers.convolutional",
           "fastnn.layers.recurrent", "fastnn.layers.bidirectional",
           "fastnn.layers.embedding", "fastnn.layers.attention",
           "fastnn.layers.transformer", "fastnn.layers.reshaping", "fastnn.utils",
           "fastnn.layers.preprocessing", "fastnn.layers.wrappers", "fastnn.layers.noise",
           "fastnn.layers.permute", "fastnn.layers.masking", "fastnn.tensorboard",
           "fastnn.layers.lambda_layer", "fastnn.layers.depthwise", "fastnn.model_plot",
           "fastnn.layers.augmentation", "fastnn.layers.image_resizing",
           "fastnn.layers.prelu", "fastnn.layers.group_normalization",
           "fastnn.layers.convolutional3d", "fastnn.layers.pooling3d", "fastnn.layers.reshaping3d",
           "fastnn.layers.rnn_cells",
           "fastnn.layers.categorical", "fastnn.layers.adapted", "fastnn.preprocessing_text",
           "fastnn.activations", "fastnn.losses",
           "fastnn.optimizers", "fastnn.callbacks", "fastnn.schedules", "fastnn.metrics",
           "fastnn.io", "fastnn.ops", "fastnn.sklearn", "fastnn.dask", "fastnn._threads",
           "fastnn.datasets", "fastnn.datasets.time_series", "fastnn.datasets.words",
           "fastnn.layers.dot", "fastnn.layers.score_attention",
           "fastnn.layers.conv_lstm"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)              # examples that save files write here
    import fastnn.utils                      # set_random_seed's example seeds the process:
    monkeypatch.setattr(fastnn.utils, "_global_seeds", None)    # undone after the test
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
    assert result.attempted > 0, f"{name} has no docstring examples"


def test_readme_recurrent_dropout_example_runs(capsys):
    blocks = _readme_section("Dropout in recurrent layers")
    exec(compile(blocks[0], "README.md", "exec"), {})
    scores = eval(capsys.readouterr().out)
    assert scores["accuracy"] > 0.85


def test_readme_masks_example_runs(capsys):
    blocks = _readme_section("Padded sequences: masks")
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    scores = eval(capsys.readouterr().out)
    assert scores["accuracy"] == 1.0 and scores["loss"] < 0.1


def _readme_section(title):
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_custom_loop_runs_and_learns_xor(capsys):
    blocks = _readme_section("Custom training loops")
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (namespace["model"](namespace["x"]) > 0.5).ravel().tolist() == [False, True, True,
                                                                          False]
    assert "[False  True  True False]" in capsys.readouterr().out


def test_the_readme_training_snippets_run(tmp_path, monkeypatch, capsys):
    """"Training: callbacks, schedules and progress": a cosine schedule per step with four
    callbacks and History.plot, then ReduceLROnPlateau; each writes what it says."""
    pytest.importorskip("matplotlib")
    import csv

    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = _readme_section("Training: callbacks, schedules and progress")
    assert len(blocks) == 2
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    history, model = namespace["history"], namespace["model"]
    epochs = len(history.epoch)
    assert [line.split("  ")[0] for line in out[:-1]] == [f"Epoch {e}/10"
                                                          for e in range(1, epochs + 1)]
    assert out[-1].startswith("done: ") and history.history["val_accuracy"][-1] > 0.9
    assert model.optimizer.iterations == epochs * 43 and model.optimizer.get_config()["lr"][
        "class_name"] == "CosineDecay"
    saved = sorted(p.name for p in tmp_path.glob("ckpt-*.fnn"))
    best = min(history.history["val_loss"])
    assert saved[-1].startswith(f"ckpt-{history.history['val_loss'].index(best) + 1:02d}-")
    rows = list(csv.reader(open("training.csv")))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(rows) == epochs + 1
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    rates = namespace["history"].history["lr"]
    assert str(rates) in capsys.readouterr().out and rates[0] == 0.01
    assert all(b in (a, a / 2) for a, b in zip(rates, rates[1:]))
    for name in ("curves.png", "lr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_three_ways_run(capsys, tmp_path, monkeypatch):
    """The snippets of "Three ways to build a model" run in order and learn the digits; the
    graph's picture is an SVG with a box per layer (4)."""
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in _readme_section("Three ways to build a model"):
        exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "path=general" in out and "\n4\n" in out
    assert "\n2113\n" in out               # the Siamese model: its shared layer's weights once
    assert (tmp_path / "net.svg").read_text().count("<rect") == 4
    model = namespace["model"]
    assert model.evaluate(namespace["X"] / 16, namespace["y"])["accuracy"] > 0.9


def test_the_readme_transformer_reverses_digits(capsys):
    """The first snippet of "Transformers" runs and reverses every held-out sequence; the
    second (the GPT and model.generate) needs data and is examples/tiny_gpt.py."""
    blocks = _readme_section("Transformers")
    assert len(blocks) == 2 and "generate(" in blocks[1]
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert float(capsys.readouterr().out.split()[-1]) >= 0.99


def test_the_readme_attention_lookup_runs_and_learns(capsys):
    """The snippet of "Attention without projections" learns its key-value lookup."""
    blocks = _readme_section("Attention without projections")
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert float(capsys.readouterr().out.split()[-1]) < 0.05


def test_the_readme_thread_control_runs():
    blocks = _readme_section("Threads and determinism")
    assert len(blocks) == 1 and "threadpool_limits" in blocks[0]
    import fastnn as fnn
    before = fnn.get_num_threads()
    try:
        exec(compile(blocks[0], "README.md", "exec"), {})
        assert fnn.get_num_threads() == 2
    finally:
        fnn.set_num_threads(before)


def test_the_readme_pickle_and_joblib_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _readme_section("Model files")
    assert len(blocks) == 1 and "joblib.dump" in blocks[0]
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (tmp_path / "model.joblib").stat().st_size > 0
    assert namespace["restored"] is not namespace["model"]
    assert namespace["restored"].optimizer.iterations == 6     # it went on training


def test_the_readme_scikit_learn_snippet_runs(capsys):
    pytest.importorskip("sklearn")
    blocks = _readme_section("scikit-learn")
    assert len(blocks) == 1 and "sample_weight" in blocks[0] and "warm_start" in blocks[0]
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0].split()[-1]) > 0.95 and lines[1] == "(2, 10)"
    assert lines[2] == "5 45"                  # 40 epochs, then 5 warm-started ones
    mlp = namespace["mlp"]
    assert mlp.class_weight == "balanced" and mlp.model_.dtype.name == "float32"
    assert float(lines[-1].split()[-1]) > 0.9


def test_the_readme_3d_example_learns_the_bars(capsys):
    blocks = _readme_section("Volumes and video: 3-D convolutions")
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert float(capsys.readouterr().out) >= 0.9


def test_the_readme_augmentation_snippet_runs(capsys):
    """"Image augmentation": the shifted held-out digits, with random shifts in training."""
    blocks = _readme_section("Image augmentation")
    assert "RandomTranslation" in blocks[0]
    namespace = {"np": np, "fnn": fnn}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert float(capsys.readouterr().out) > 0.8


def test_the_readme_preprocessing_snippets_run(capsys):
    """"Text and categorical preprocessing": word endings from character n-grams (tf-idf), and
    the numeric layers in a model."""
    blocks = _readme_section("Text and categorical preprocessing")
    assert len(blocks) == 2 and "TextVectorization" in blocks[0]
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert float(capsys.readouterr().out) > 0.9
    exec(compile(blocks[1], "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["(2, 1)", "[[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]"]
