"""Running a test script under one instruction-set flavour of the compiled kernels
(FASTNN_KERNEL), in a fresh interpreter: the flavour is picked once, at import."""

import os
import subprocess
import sys

import pytest


def run_in_flavour(script: str, flavour: str, **env: str) -> list[str]:
    """The words ``script`` prints, run from the repository root with FASTNN_KERNEL=flavour (and
    ``env``); its first printed word must be the kernel name it ran. Fails on a non-zero exit,
    skips when this CPU runs another flavour."""
    here = os.path.dirname(os.path.abspath(__file__))
    # the tests' helper modules importable there too (the scripts import test modules)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-c", script],
                          env=dict(os.environ, FASTNN_KERNEL=flavour, PYTHONPATH=path, **env),
                          cwd=os.path.dirname(here), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    if words[0] != flavour:
        pytest.skip(f"this CPU runs {words[0]!r}, not {flavour!r}")
    return words
