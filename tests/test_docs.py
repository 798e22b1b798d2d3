"""The examples in the public API's docstrings run and print what they say (doctest)."""

import doctest
import importlib

import pytest

MODULES = ["fastnn.model", "fastnn.layers", "fastnn.activations", "fastnn.losses",
           "fastnn.optimizers", "fastnn.callbacks", "fastnn.schedules", "fastnn.metrics",
           "fastnn.io", "fastnn.ops", "fastnn.sklearn", "fastnn._threads", "fastnn.datasets"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)              # examples that save files write here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
    assert result.attempted > 0, f"{name} has no docstring examples"
