"""Training output and callbacks (#20): progress output to a pipe, a terminal and a notebook;
verbose's forms; ModelCheckpoint's templates, save_best_only and save_weights_only;
ReduceLROnPlateau, CSVLogger and LambdaCallback against Keras' rules; learning-rate schedules
(Keras' signatures) per step on every training path; History.plot."""

import csv
import math
import os
import pty
import re
import select
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import progress
from fastnn.schedules import (CosineDecay, ExponentialDecay, LearningRateSchedule,
                              PiecewiseConstantDecay, StepDecay, deserialize, serialize)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def classifier(backend="fast", optimizer=None, metrics=("accuracy",)):
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(2, activation="softmax")],
                           input_dim=4, seed=0, backend=backend)
    return model.compile("cross_entropy", optimizer or fnn.SGD(lr=0.1), metrics=list(metrics))


# ---------------------------------------------------------------- verbose and progress output

@pytest.mark.parametrize("given, expected", [(0, 0), (1, 1), (2, 2), (True, 1), (False, 0),
                                             ("auto", 1), (np.int64(2), 2), (np.bool_(1), 1)])
def test_verbose_takes_keras_forms(given, expected):
    assert progress.check_verbose(given) == expected


@pytest.mark.parametrize("given, exc", [(3, ValueError), (-1, ValueError), ("yes", ValueError),
                                        (1.5, ValueError), (None, TypeError), ([1], TypeError)])
def test_verbose_refuses_other_values_naming_them(given, exc):
    with pytest.raises(exc, match=r"verbose.*Received: verbose=" + repr(given).replace(
            "[", r"\[").replace("]", r"\]")):
        classifier().fit(X, Y, epochs=1, verbose=given)


SCRIPT = """
import sys
import numpy as np
import fastnn as fnn
rng = np.random.default_rng(0)
X = rng.normal(size=(512, 4))
y = (X[:, 0] > 0).astype(np.int64)
model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(2, activation="softmax")],
                       input_dim=4, seed=0)
model.compile("cross_entropy", fnn.SGD(lr=0.1), metrics=["accuracy"])
model.fit(X, y, epochs=3, batch_size=8, verbose={verbose})
"""

LINE = r"Epoch {k}/3  loss=\d+\.\d{{4}}  accuracy=\d\.\d{{4}}  \(\d+\.\d\ds\)"


@pytest.mark.parametrize("verbose", ["1", "2", "True", "'auto'"])
def test_a_pipe_gets_one_clean_line_per_epoch(verbose):
    import re
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(verbose=verbose)],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 3, out
    for k, line in enumerate(lines, 1):
        assert re.fullmatch(LINE.format(k=k), line), line
    assert proc.stderr == b""


def _run_in_a_terminal(code, columns=100):
    """stdout of ``python -c code`` run on a pseudo-terminal (what a user's terminal is) of
    ``columns`` columns (0: one that reports no size)."""
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=subprocess.PIPE,
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output from the terminal for 60 s")
        try:
            data = os.read(master, 4096)
        except OSError:              # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("columns", [100, 0], ids=["100_columns", "no_size"])
def test_a_terminal_gets_a_live_bar_per_epoch(columns):
    out = _run_in_a_terminal(SCRIPT.format(verbose=1), columns)
    assert "\r" in out                          # the bar redraws in place
    for k in (1, 2, 3):
        # drawn at 0% and redrawn up to 100% with the epoch's logs
        assert out.count(f"Epoch {k}/3") >= 2
    assert "512/512" in out and "100%" in out and "loss=" in out
    widest = max(len(line) for part in out.split("\n") for line in part.split("\r"))
    assert widest <= (columns or 80)


def test_verbose_2_in_a_terminal_is_lines():
    out = _run_in_a_terminal(SCRIPT.format(verbose=2))
    assert "\r" not in out.replace("\r\n", "\n")     # the terminal's own line ends aside
    assert [line.split("  ")[0] for line in out.splitlines()] == ["Epoch 1/3", "Epoch 2/3",
                                                                 "Epoch 3/3"]


class _TerminalLike:
    """A stdout that says it is a terminal."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_a_tty_stdout_in_process_gets_the_bar(monkeypatch):
    fake = _TerminalLike()
    monkeypatch.setattr(sys, "stdout", fake)
    classifier().fit(X, Y, epochs=2, batch_size=16, verbose=1)
    out = "".join(fake.parts)
    assert "\r" in out and "Epoch 2/2" in out and "64/64" in out


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_predict_and_evaluate_take_keras_verbose_and_are_silent_by_default(backend, capsys):
    model = classifier(backend)
    model.fit(X, Y, epochs=1, verbose=0)
    quiet_p, quiet_s = model.predict(X), model.evaluate(X, Y)
    assert model.predict(X, verbose=0).tobytes() == quiet_p.tobytes()
    assert model.evaluate(X, Y, verbose=False) == quiet_s
    assert capsys.readouterr().out == ""
    for verbose in (1, 2, True, "auto"):      # a pipe (captured): one line for each
        assert model.predict(X, batch_size=16, verbose=verbose).tobytes() == quiet_p.tobytes()
        assert model.evaluate(X, Y, batch_size=16, verbose=verbose) == quiet_s
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2, lines
        assert re.fullmatch(r"Predict  64 samples  \(\d+\.\d\ds\)", lines[0]), lines[0]
        assert re.fullmatch(r"Evaluate  loss=%.4f  accuracy=%.4f  \(\d+\.\d\ds\)"
                            % (quiet_s["loss"], quiet_s["accuracy"]), lines[1]), lines[1]
    for bad, exc in ((3, ValueError), ("yes", ValueError), (None, TypeError)):
        with pytest.raises(exc, match="verbose"):
            model.predict(X, verbose=bad)
        with pytest.raises(exc, match="verbose"):
            model.evaluate(X, Y, verbose=bad)


def test_predict_verbose_in_a_terminal_draws_a_bar_over_its_batches(monkeypatch):
    model = classifier()
    quiet = model.predict(X)
    fake = _TerminalLike()
    monkeypatch.setattr(sys, "stdout", fake)
    got = model.predict(X, batch_size=16, verbose=1)
    out = "".join(fake.parts)
    assert got.tobytes() == quiet.tobytes()
    assert "\r" in out and "Predict" in out and "64/64" in out and "100%" in out


def test_predict_on_batch_is_predict_in_one_pass():
    model = classifier()
    assert model.predict_on_batch(X).tobytes() == model.predict(X).tobytes()
    a, b = fnn.Input((3,)), fnn.Input((2,))
    both = fnn.Model([a, b], fnn.Dense(2)(fnn.Concatenate()([a, b])), seed=0)
    xa, xb = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 2))
    assert both.predict_on_batch([xa, xb]).tobytes() == both.predict([xa, xb]).tobytes()
    with pytest.raises(ValueError, match="predict_on_batch"):
        fnn.Sequential([fnn.Dense(2)]).predict_on_batch(X[0])     # nothing to build from


def _fake_kernel(monkeypatch):
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell))


def test_a_notebook_without_ipywidgets_gets_lines_and_no_warning(monkeypatch, capsys):
    _fake_kernel(monkeypatch)
    monkeypatch.setattr(progress, "_has_widgets", lambda: False)
    assert progress.in_notebook()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classifier().fit(X, Y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.splitlines()) == 2


def test_a_notebook_with_widgets_gets_one_notebook_bar_per_epoch(monkeypatch, capsys):
    import tqdm.notebook
    _fake_kernel(monkeypatch)
    monkeypatch.setattr(progress, "_has_widgets", lambda: True)
    bars = []

    class NotebookBar:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.closed, self.postfix = kwargs, 0, False, None
            bars.append(self)

        def update(self, rows):
            self.n += rows

        def set_postfix(self, *args, **kwargs):
            pass

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.notebook, "tqdm", NotebookBar)
    classifier().fit(X, Y, epochs=2, batch_size=16, verbose=1)
    assert [b.kwargs["desc"] for b in bars] == ["Epoch 1/2", "Epoch 2/2"]
    assert all(b.n == 64 and b.closed and "loss=" in b.postfix for b in bars)
    assert capsys.readouterr().out == ""


def test_notebook_widgets_that_fail_fall_back_to_lines_silently(monkeypatch, capsys):
    import tqdm.notebook
    _fake_kernel(monkeypatch)
    monkeypatch.setattr(progress, "_has_widgets", lambda: True)

    def broken(**kwargs):
        warnings.warn("IProgress not found", UserWarning)
        raise ImportError("IProgress not found. Please update jupyter and ipywidgets.")

    monkeypatch.setattr(tqdm.notebook, "tqdm", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classifier().fit(X, Y, epochs=2, batch_size=16, verbose=1)
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_outside_a_kernel_ipython_is_not_a_notebook(monkeypatch):
    shell = types.SimpleNamespace(config={"TerminalIPythonApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert not progress.in_notebook()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress.in_notebook()


# ---------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_fills_keras_templates(tmp_path):
    model = classifier()
    template = str(tmp_path / "run" / "ckpt-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}.fnn")
    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0, validation_split=0.25,
                        callbacks=[fnn.ModelCheckpoint(template)])
    h = history.history
    expected = sorted(f"ckpt-{e + 1:02d}-{h['val_loss'][e]:.3f}-{h['accuracy'][e]:.2f}.fnn"
                      for e in range(3))
    assert sorted(os.listdir(tmp_path / "run")) == expected      # the folder was made
    last = fnn.load(tmp_path / "run" / expected[-1])
    np.testing.assert_array_equal(last.predict(X), model.predict(X))


def test_a_template_key_the_epoch_does_not_log_names_the_available_ones(tmp_path):
    checkpoint = fnn.ModelCheckpoint(str(tmp_path / "m-{val_acc:.2f}.fnn"))
    with pytest.raises(ValueError, match=r"\{val_acc\}.*epoch 1 does not log.*"
                                         r"\['accuracy', 'epoch', 'loss'\]"):
        classifier().fit(X, Y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("template", ["m-{epoch.fnn", "m-}.fnn"])
def test_a_malformed_template_is_refused_at_once(template):
    import re
    with pytest.raises(ValueError, match=re.escape(f"filepath={template!r}")):
        fnn.ModelCheckpoint(template)


def test_a_bad_format_spec_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"cannot fill filepath .*\{loss:02d\}.*'d'"):
        classifier().fit(X, Y, epochs=1, verbose=0, callbacks=[
            fnn.ModelCheckpoint(str(tmp_path / "m-{loss:02d}.fnn"))])


def _saves(checkpoint, monitor, values):
    """The epochs (from 1) at which ``checkpoint`` saves for the logged ``values``."""
    model = classifier()
    saved = []
    model.save = lambda path: saved.append(path)
    checkpoint.set_model(model)
    for epoch, value in enumerate(values):
        checkpoint.on_epoch_end(epoch, {monitor: value})
    return [int(os.path.basename(p).split(".")[0]) for p in saved]


@pytest.mark.parametrize("mode, monitor, values, expected", [
    ("min", "val_loss", [3.0, 2.0, 2.5, 2.0, 1.0], [1, 2, 5]),
    ("max", "val_loss", [3.0, 2.0, 4.0, 4.0, 1.0], [1, 3]),
    ("auto", "val_loss", [3.0, 2.0, 2.5, 1.0], [1, 2, 4]),        # auto: min for a loss
    ("auto", "val_accuracy", [0.5, 0.7, 0.6, 0.8], [1, 2, 4]),    # auto: max for "acc"
    ("max", "accuracy", [0.5, 0.5, 0.9], [1, 3]),
])
def test_save_best_only_follows_mode(tmp_path, mode, monitor, values, expected):
    checkpoint = fnn.ModelCheckpoint(str(tmp_path / "{epoch}.fnn"), monitor=monitor, mode=mode,
                                     save_best_only=True)
    assert _saves(checkpoint, monitor, values) == expected


def test_initial_value_threshold_is_the_first_value_to_beat(tmp_path):
    checkpoint = fnn.ModelCheckpoint(str(tmp_path / "{epoch}.fnn"), save_best_only=True,
                                     initial_value_threshold=2.0)
    assert _saves(checkpoint, "val_loss", [3.0, 2.5, 1.5, 1.8]) == [3]


def test_save_best_only_in_fit_keeps_the_best_epoch(tmp_path):
    model = classifier()
    path = tmp_path / "best.fnn"
    best = {}

    def remember(epoch, logs):
        if logs["val_loss"] < best.get("loss", math.inf):
            best.update(loss=logs["val_loss"], out=model.predict(X[:8]))

    history = model.fit(X, Y, epochs=6, batch_size=16, verbose=0, validation_split=0.25,
                        callbacks=[fnn.ModelCheckpoint(path, save_best_only=True),
                                   fnn.LambdaCallback(on_epoch_end=remember)])
    assert best["loss"] == min(history.history["val_loss"])
    np.testing.assert_array_equal(fnn.load(path).predict(X[:8]), best["out"])


def test_save_weights_only_writes_a_file_load_weights_reads(tmp_path):
    model = classifier(optimizer=fnn.Adam(lr=0.01))
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0, callbacks=[
        fnn.ModelCheckpoint(str(tmp_path / "w-{epoch}.fnn"), save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["w-1.fnn", "w-2.fnn"]
    fresh = fnn.Sequential([fnn.Dense(8, activation="tanh"),
                            fnn.Dense(2, activation="softmax")], input_dim=4, seed=7)
    fresh.compile("cross_entropy", fnn.SGD(lr=0.1))
    fresh.load_weights(tmp_path / "w-2.fnn")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert fresh.optimizer.iterations == 0 and fresh.optimizer.lr == 0.1     # left as they were
    weights_only = fnn.load(tmp_path / "w-2.fnn")
    assert weights_only.loss is None and weights_only.optimizer is None       # no compile
    assert (tmp_path / "w-2.fnn").stat().st_size < (model.save(tmp_path / "full.fnn")
                                                      or (tmp_path / "full.fnn").stat().st_size)


def test_load_weights_refuses_weights_of_other_shapes(tmp_path):
    classifier().save_weights(tmp_path / "w.fnn")
    other = fnn.Sequential([fnn.Dense(3, activation="tanh"), fnn.Dense(2)], input_dim=4, seed=0)
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"do not fit this model.*\(4, 8\).*\(4, 3\)"):
        other.load_weights(tmp_path / "w.fnn")
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- ReduceLROnPlateau

def _drive(callback, lr, values, monitor="val_loss"):
    """(the "lr" logged at each epoch, the rate after each epoch) for the monitored values."""
    model = classifier(optimizer=fnn.SGD(lr=lr))
    callback.set_model(model)
    callback.on_train_begin({})
    logged, after = [], []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["lr"])
        after.append(model.optimizer.lr)
    return logged, after


def test_reduce_lr_on_plateau_follows_keras_rules_by_hand():
    # factor 0.5, patience 2, min_delta 0.1, cooldown 1, min_lr 0.2; worked by hand:
    # e0 improves (best 1.0); e1, e2 do not (0.95, 0.92 > 0.9): wait 2 -> lr 0.5, cooldown 1;
    # e3: cooldown ends (wait 0), no improvement: wait 1; e4 improves (0.85 < 0.9);
    # e5, e6 do not (> 0.75): lr 0.25; e7: cooldown ends, wait 1; e8: wait 2 -> max(0.125,
    # 0.2) = 0.2; e9: wait 1; e10: wait 2 but lr is min_lr: no change; e11: wait 3, none
    callback = fnn.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.1, cooldown=1,
                                     min_lr=0.2)
    values = [1.0, 0.95, 0.92, 0.91, 0.85, 0.86, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80]
    logged, after = _drive(callback, 1.0, values)
    assert logged == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    assert after == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    assert callback.wait == 3


def test_reduce_lr_on_plateau_cooldown_and_max_mode():
    # patience 1, cooldown 2, a flat curve: a reduction, then every other epoch
    callback = fnn.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1,
                                     cooldown=2, min_delta=0.0)
    assert callback.mode == "max"
    logged, after = _drive(callback, 1.0, [0.5] * 6, monitor="val_accuracy")
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert after == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_reduce_lr_on_plateau_in_fit_changes_the_rate_used():
    model = classifier(optimizer=fnn.SGD(lr=1.0), metrics=())
    callback = fnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    history = model.fit(X, Y, epochs=4, batch_size=16, verbose=0, callbacks=[callback])
    assert history.history["lr"] == [1.0, 1.0, 0.5, 0.25]
    assert model.optimizer.lr == 0.125


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"factor": 1.0}, ValueError, r"factor=1\.0"), ({"factor": -0.1}, ValueError, r"factor"),
    ({"patience": -1}, ValueError, r"patience=-1"), ({"cooldown": 1.5}, TypeError, r"cooldown"),
    ({"min_lr": -1.0}, ValueError, r"min_lr=-1\.0"), ({"mode": "up"}, ValueError, r"mode='up'"),
    ({"monitor": 3}, TypeError, r"monitor=3"),
])
def test_reduce_lr_on_plateau_refuses_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.ReduceLROnPlateau(**kwargs)


# ---------------------------------------------------------------- CSVLogger

def test_csv_logger_writes_a_header_and_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    model = classifier()
    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0, validation_split=0.25,
                        callbacks=[fnn.CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for epoch, row in enumerate(rows[1:]):
        assert [float(v) for v in row[1:]] == [history.history[k][epoch] for k in rows[0][1:]]
    # append=True continues the file (one header); append=False starts it again
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0, validation_split=0.25,
              callbacks=[fnn.CSVLogger(path, append=True)])
    rows = list(csv.reader(path.open()))
    assert len(rows) == 6 and rows.count(rows[0]) == 1
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "0", "1"]
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[
        fnn.CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss"
    assert len(path.read_text().splitlines()) == 2


def test_csv_logger_append_to_a_new_file_writes_the_header(tmp_path):
    path = tmp_path / "new.csv"
    classifier().fit(X, Y, epochs=1, verbose=0, callbacks=[fnn.CSVLogger(path, append=True)])
    assert path.read_text().splitlines()[0] == "epoch,accuracy,loss"


def test_csv_logger_logs_the_rate_other_callbacks_add(tmp_path):
    path = tmp_path / "lr.csv"
    classifier(metrics=()).fit(X, Y, epochs=2, verbose=0, callbacks=[
        fnn.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)), fnn.CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "loss", "lr"] and [float(r[2]) for r in rows[1:]] == [0.1, 0.05]


# ---------------------------------------------------------------- hooks: LambdaCallback

def test_lambda_callback_hooks_run_in_keras_order_with_their_arguments():
    calls = []
    log = fnn.LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin", logs)),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch, logs)),
        on_train_batch_begin=lambda batch, logs: calls.append(("batch_begin", batch, logs)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch,
                                                            sorted(logs))),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        on_train_end=lambda logs: calls.append(("train_end", logs)))
    model = classifier()
    history = model.fit(X[:32], Y[:32], epochs=2, batch_size=16, verbose=0,
                        validation_data=(X[32:], Y[32:]), callbacks=[log])
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = [("train_begin", {})]
    for epoch in range(2):
        expected += [("epoch_begin", epoch, {})]
        for batch in range(2):
            expected += [("batch_begin", batch, {}), ("batch_end", batch, ["loss"])]
        expected += [("epoch_end", epoch, keys)]
    assert calls[:-1] == expected
    assert calls[-1][0] == "train_end"
    assert calls[-1][1] == {k: history.history[k][-1] for k in keys}     # the last epoch's


def test_on_batch_hooks_are_aliases_of_the_train_batch_hooks():
    seen = []
    by_keyword = fnn.LambdaCallback(on_batch_begin=lambda b, logs: seen.append(("begin", b)),
                                    on_batch_end=lambda b, logs: seen.append(("end", b)))

    class OldStyle(fnn.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(("old", batch, logs["loss"] > 0))

    classifier().fit(X[:32], Y[:32], epochs=1, batch_size=16, verbose=0,
                     callbacks=[by_keyword, OldStyle()])
    assert seen == [("begin", 0), ("end", 0), ("old", 0, True), ("begin", 1), ("end", 1),
                    ("old", 1, True)]


def test_lambda_callback_refuses_unknown_hooks_and_non_functions():
    with pytest.raises(TypeError, match=r"on_epoch_ends"):
        fnn.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match=r"on_train_end=3"):
        fnn.LambdaCallback(on_train_end=3)


def test_stop_training_from_a_batch_hook_ends_the_epoch():
    model = classifier()

    def stop(batch, logs):
        if batch == 1:
            model.stop_training = True

    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0,
                        callbacks=[fnn.LambdaCallback(on_train_batch_end=stop)])
    assert history.epoch == [0] and model.optimizer.iterations == 2


# ---------------------------------------------------------------- schedules: Keras' formulas

def test_exponential_decay_by_hand():
    s = ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    for step in range(12):
        assert s(step) == pytest.approx(0.1 * 0.5 ** (step / 4), rel=1e-15)
    stair = ExponentialDecay(0.1, 4, 0.5, staircase=True)
    assert [stair(t) for t in (0, 3, 4, 7, 8)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert ExponentialDecay(1.0, rate=0.5)(3) == 0.125         # fastnn's earlier names
    assert ExponentialDecay(initial_lr=1.0, rate=0.5).get_config()["decay_steps"] == 1


def test_cosine_decay_by_hand_including_past_its_length():
    s = CosineDecay(0.1, decay_steps=10, alpha=0.2)
    for step in range(15):
        t = min(step, 10)
        cosine = 0.5 * (1 + math.cos(math.pi * t / 10))
        assert s(step) == pytest.approx(0.1 * ((1 - 0.2) * cosine + 0.2), rel=1e-15)
    assert CosineDecay(0.1, 10)(10) == 0.0 and CosineDecay(0.1, 10)(1000) == 0.0
    assert CosineDecay(1.0, epochs=10, min_lr=0.1)(10) == pytest.approx(0.1)   # earlier names


def test_cosine_decay_warmup_by_hand():
    s = CosineDecay(0.01, decay_steps=8, alpha=0.1, warmup_target=0.1, warmup_steps=4)
    for step in range(20):
        if step < 4:
            expected = 0.01 + (0.1 - 0.01) * step / 4
        else:
            t = min(step, 12) - 4
            expected = 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * t / 8)) + 0.1)
        assert s(step) == pytest.approx(expected, rel=1e-15), step


def test_piecewise_constant_decay_boundaries_belong_to_the_earlier_value():
    s = PiecewiseConstantDecay([3, 6], [1.0, 0.5, 0.1])
    assert [s(t) for t in range(9)] == [1.0] * 4 + [0.5] * 3 + [0.1] * 2
    assert PiecewiseConstantDecay([], [0.3])(100) == 0.3


@pytest.mark.parametrize("factory, exc, pattern", [
    (lambda: ExponentialDecay(0.1), TypeError, r"decay_steps and decay_rate"),
    (lambda: ExponentialDecay(0.1, 0, 0.5), ValueError, r"decay_steps=0"),
    (lambda: ExponentialDecay(-0.1, 10, 0.5), ValueError, r"initial_learning_rate=-0\.1"),
    (lambda: ExponentialDecay(0.1, 10, 0.5, staircase=1), TypeError, r"staircase=1"),
    (lambda: CosineDecay(0.1), TypeError, r"decay_steps"),
    (lambda: CosineDecay(0.1, 10, alpha=1.5), ValueError, r"alpha=1\.5"),
    (lambda: CosineDecay(0.1, 10, warmup_steps=-1), ValueError, r"warmup_steps=-1"),
    (lambda: CosineDecay(0.1, 10, alpha=0.1, min_lr=0.01), TypeError, r"alpha or min_lr"),
    (lambda: PiecewiseConstantDecay([1, 2], [0.1, 0.2]), ValueError,
     r"1 less than the length of values.*length 2.*length 2"),
    (lambda: PiecewiseConstantDecay([2, 1], [0.3, 0.2, 0.1]), ValueError, r"increase"),
    (lambda: PiecewiseConstantDecay([1], [0.1, math.nan]), ValueError, r"values\[1\]=nan"),
    (lambda: PiecewiseConstantDecay(5, [0.1]), TypeError, r"boundaries=5"),
])
def test_schedules_refuse_bad_arguments(factory, exc, pattern):
    with pytest.raises(exc, match=pattern):
        factory()


@pytest.mark.parametrize("schedule", [
    ExponentialDecay(0.1, 7, 0.9, staircase=True), CosineDecay(0.1, 30, alpha=0.05),
    CosineDecay(0.0, 30, warmup_target=0.2, warmup_steps=5),
    PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]), StepDecay(0.1, 0.5, 3)])
def test_schedules_round_trip_through_their_config(schedule):
    import json
    config = json.loads(json.dumps(serialize(schedule)))
    assert config["class_name"] == type(schedule).__name__
    again = deserialize(config)
    assert [again(t) for t in range(40)] == [schedule(t) for t in range(40)]


def test_deserialize_names_only_fastnn_schedules():
    with pytest.raises(ValueError, match=r"unknown learning-rate schedule 'os\.system'"):
        deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(TypeError):
        deserialize({"class_name": "CosineDecay", "config": {"bogus": 1}})


# ---------------------------------------------------------------- schedules per step

TARGET = 1000.0      # far above the outputs: the MAE gradient of W and b is -1 at every step


def linear(backend, schedule, optimizer=fnn.SGD):
    """A 1-input Dense(1) under MAE with targets far above its outputs: each step's gradient
    is exactly -1, so the step adds the rate used to the weight (float64)."""
    model = fnn.Sequential([fnn.Dense(1)], input_dim=1, seed=0, dtype="float64",
                           backend=backend)
    return model.compile("mae", optimizer(learning_rate=schedule))


XL, YL = np.ones((8, 1)), np.full(8, TARGET)
SCHEDULES = {
    "cosine_reaches_0": lambda: CosineDecay(0.1, decay_steps=4),     # 0 from step 4 on
    "exponential": lambda: ExponentialDecay(0.2, decay_steps=2, decay_rate=0.5),
    "piecewise": lambda: PiecewiseConstantDecay([1, 4], [0.3, 0.1, 0.0]),
    "warmup": lambda: CosineDecay(0.0, decay_steps=3, warmup_target=0.2, warmup_steps=2),
}
STEPS = 7


def _expected(name):
    schedule = SCHEDULES[name]()
    return [schedule(t) for t in range(STEPS)]


def _weight(model):
    return float(model.get_weights()[0][0, 0])


def _recorder(model, rates, weights):
    return fnn.LambdaCallback(
        on_train_batch_begin=lambda b, logs: (rates.append(model.optimizer.learning_rate),
                                              weights.append(_weight(model))),
        on_train_end=lambda logs: weights.append(_weight(model)))


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_sets_each_steps_rate_on_the_compiled_plan(name, monkeypatch):
    model = linear("fast", SCHEDULES[name]())

    def not_here(*args):
        raise AssertionError("the general path ran: the compiled plan was expected")

    monkeypatch.setattr(model, "_general_step", not_here)
    rates, weights = [], []
    model.fit(XL, YL, epochs=STEPS, batch_size=8, shuffle=False, verbose=0,
              callbacks=[_recorder(model, rates, weights)])
    assert model._train_plan                                  # the plan ran every step
    np.testing.assert_allclose(rates, _expected(name), rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.diff(weights), _expected(name), rtol=1e-9, atol=1e-12)
    assert model.optimizer.iterations == STEPS


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_sets_each_steps_rate_in_a_fit_without_callbacks(name):
    # no callbacks, metrics or output: fit's compiled whole-epoch route, which must give way
    model = linear("fast", SCHEDULES[name]())
    before = _weight(model)
    model.fit(XL, YL, epochs=3, batch_size=2, shuffle=False, verbose=0)   # 4 steps an epoch
    schedule = SCHEDULES[name]()
    expected = sum(schedule(t) for t in range(12))
    assert _weight(model) - before == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_sets_each_steps_rate_in_train_on_batch(name):
    model = linear("fast", SCHEDULES[name]())
    deltas = []
    for _ in range(STEPS):
        before = _weight(model)
        model.train_on_batch(XL, YL)
        deltas.append(_weight(model) - before)
    assert model._train_plan
    np.testing.assert_allclose(deltas, _expected(name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", [fnn.SGD, fnn.RMSprop], ids=["sgd", "rmsprop"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_sets_each_steps_rate_on_the_general_path(name, optimizer):
    model = linear("numpy", SCHEDULES[name](), optimizer)
    rates, weights = [], []
    model.fit(XL, YL, epochs=STEPS, batch_size=8, shuffle=False, verbose=0,
              callbacks=[_recorder(model, rates, weights)])
    np.testing.assert_allclose(rates, _expected(name), rtol=1e-15, atol=0)
    if optimizer is fnn.SGD:
        np.testing.assert_allclose(np.diff(weights), _expected(name), rtol=1e-9, atol=1e-12)
    else:        # RMSprop (rho 0.9, eps 1e-7) with g = -1: a step of lr / sqrt(v_t + eps)
        v, steps = 0.0, []
        for lr in _expected(name):
            v = 0.9 * v + 0.1
            steps.append(lr / math.sqrt(v + 1e-7))
        np.testing.assert_allclose(np.diff(weights), steps, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_sets_each_steps_rate_in_the_low_level_loop(name, backend):
    schedule = SCHEDULES[name]()
    model = fnn.Sequential([fnn.Dense(1)], input_dim=1, seed=0, dtype="float64",
                           backend=backend)
    opt = fnn.SGD(learning_rate=schedule)
    deltas = []
    for _ in range(STEPS):
        before = _weight(model)
        model.zero_grad()
        out = model.forward(XL)
        model.backward(np.sign(out - YL[:, None]) / len(XL))      # MAE's dL/dout
        opt.step(model)
        deltas.append(_weight(model) - before)
    np.testing.assert_allclose(deltas, _expected(name), rtol=1e-9, atol=1e-12)
    assert opt.iterations == STEPS and opt.lr == schedule(STEPS)


def test_optimizer_learning_rate_reads_the_next_steps_rate():
    opt = fnn.Adam(learning_rate=PiecewiseConstantDecay([0], [0.5, 0.25]))
    assert opt.learning_rate == 0.5 and opt.lr == 0.5
    opt.build(3, np.float32)
    opt.iterations = 5
    assert opt.learning_rate == 0.25
    with pytest.raises(TypeError, match=r"learning rate is a schedule.*Received: lr=0\.1"):
        opt.learning_rate = 0.1
    opt.learning_rate = CosineDecay(1.0, 10)                 # another schedule is taken
    assert opt.lr == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


class Misbehaving(LearningRateSchedule):
    def __call__(self, step):
        return 0.1 if step < 2 else -1.0


def test_a_schedule_value_the_optimizer_refuses_stops_before_that_step():
    model = linear("fast", Misbehaving())
    with pytest.raises(ValueError, match=r"Misbehaving\(\) at step 2.*lr=-1\.0"):
        model.fit(XL, YL, epochs=5, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 2


def test_a_subnormal_rate_from_a_schedule_is_refused_in_float32():
    model = fnn.Sequential([fnn.Dense(1)], input_dim=1, seed=0).compile(
        "mae", fnn.SGD(learning_rate=PiecewiseConstantDecay([1], [0.1, 1e-41])))
    with pytest.raises(ValueError, match=r"step 2.*lr=1e-41.*subnormal"):
        model.fit(XL, YL, epochs=3, batch_size=8, verbose=0)


@pytest.mark.parametrize("optimizer", [fnn.SGD, fnn.Adam, fnn.AdamW, fnn.RMSprop])
def test_a_schedule_starting_at_0_builds_and_trains(optimizer):
    model = linear("fast", CosineDecay(0.0, 4, warmup_target=0.1, warmup_steps=2), optimizer)
    model.fit(XL, YL, epochs=8, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 8


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_a_model_saved_mid_training_with_a_schedule_loads_and_resumes(backend, tmp_path):
    model = classifier(backend, fnn.SGD(learning_rate=CosineDecay(0.2, decay_steps=12),
                                        momentum=0.9))
    model.fit(X, Y, epochs=2, batch_size=16, shuffle=False, verbose=0,
              callbacks=[fnn.ModelCheckpoint(tmp_path / "mid.fnn")])
    loaded = fnn.load(tmp_path / "mid.fnn")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 8 and loaded.optimizer.lr == model.optimizer.lr
    for m in (model, loaded):
        m.fit(X, Y, epochs=2, batch_size=16, shuffle=False, verbose=0)     # past its length
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.lr == 0.0


def test_a_custom_schedule_trains_and_saves_without_the_compile_settings(tmp_path):
    model = linear("fast", Misbehaving())
    model.fit(XL, YL, epochs=2, batch_size=8, verbose=0)
    with pytest.warns(UserWarning, match=r"learning-rate schedule"):
        model.save(tmp_path / "m.fnn")
    assert fnn.load(tmp_path / "m.fnn").optimizer is None


# ---------------------------------------------------------------- LearningRateScheduler

def test_a_per_epoch_schedule_that_reaches_0_and_runs_past_its_length_trains_on():
    model = classifier(metrics=())
    history = model.fit(X, Y, epochs=6, batch_size=16, verbose=0, callbacks=[
        fnn.LearningRateScheduler(CosineDecay(0.1, decay_steps=3))])
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.075, 0.025, 0, 0, 0], atol=1e-15)
    frozen = model.get_weights()
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[fnn.LearningRateScheduler(lambda e: 0.0)])
    for a, b in zip(frozen, model.get_weights()):
        np.testing.assert_array_equal(a, b)                 # lr 0: the weights stay


def test_a_model_saved_while_a_callback_holds_the_rate_at_0_loads(tmp_path):
    model = classifier(optimizer=fnn.Adam(lr=0.01))
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[
        fnn.LearningRateScheduler(lambda epoch: 0.0), fnn.ModelCheckpoint(tmp_path / "z.fnn")])
    loaded = fnn.load(tmp_path / "z.fnn")
    assert loaded.optimizer.lr == 0.0 and loaded.optimizer.iterations == model.optimizer.iterations
    with pytest.raises(ValueError, match=r"lr=0\.0"):
        fnn.Adam(lr=0.0)                       # a constructor still wants a rate > 0


def test_learning_rate_scheduler_refuses_an_optimizer_with_a_schedule():
    model = classifier(optimizer=fnn.SGD(learning_rate=CosineDecay(0.1, 10)))
    with pytest.raises(TypeError, match=r"epoch 0.*learning rate is a schedule"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[fnn.LearningRateScheduler(lambda epoch: 0.1)])


# ---------------------------------------------------------------- History.plot

@pytest.fixture
def history():
    h = fnn.History()
    for epoch, loss in enumerate([0.9, 0.5, 0.3, 0.25]):
        h.append(epoch, {"loss": loss, "accuracy": 1 - loss, "val_loss": loss + 0.1,
                         "val_accuracy": 0.9 - loss, "lr": 0.1 / (epoch + 1)})
    return h


def _shown(history, monkeypatch, **kwargs):
    """[(panel title, [curve labels])] of the figure ``plot`` shows (pyplot.show patched)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figures = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: figures.append(plt.gcf()))
    assert history.plot(**kwargs) is None
    assert len(figures) == 1
    panels = [(ax.get_title(), [line.get_label() for line in ax.get_lines()])
              for ax in figures[0].axes]
    plt.close(figures[0])
    return panels


def test_plot_without_a_path_shows_every_key(history, monkeypatch):
    assert _shown(history, monkeypatch) == [("loss", ["training", "validation"]),
                                            ("accuracy", ["training", "validation"]),
                                            ("lr", ["learning rate"])]


@pytest.mark.parametrize("keys, panels", [
    (["loss"], [("loss", ["training", "validation"])]),
    (["lr"], [("lr", ["learning rate"])]),
    (["val_loss"], [("loss", ["validation"])]),
    (["val_accuracy", "lr"], [("accuracy", ["validation"]), ("lr", ["learning rate"])]),
    (["val_loss", "loss"], [("loss", ["training", "validation"])]),
])
def test_plot_draws_any_subset_of_keys(history, monkeypatch, keys, panels):
    assert _shown(history, monkeypatch, keys=keys) == panels


def test_plot_of_validation_only_keys_in_the_history(monkeypatch):
    h = fnn.History()
    for epoch in range(3):
        h.append(epoch, {"val_loss": 1.0 / (epoch + 1)})
    assert _shown(h, monkeypatch) == [("loss", ["validation"])]


def test_plot_to_a_path_writes_a_png(history, tmp_path):
    pytest.importorskip("matplotlib")
    path = history.plot(tmp_path / "lr.png", keys=["lr", "val_loss"])
    assert path == tmp_path / "lr.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_plot_refuses_unknown_keys_and_an_empty_history(history):
    with pytest.raises(ValueError, match=r"\['acc'\] not in this history.*"
                                         r"\['loss', 'accuracy', 'val_loss', 'val_accuracy', "
                                         r"'lr'\]"):
        history.plot(keys=["loss", "acc"])
    with pytest.raises(ValueError, match=r"history is empty"):
        fnn.History().plot()
    with pytest.raises(TypeError, match=r"keys must be a list of strings.*keys='loss'"):
        history.plot(keys="loss")
