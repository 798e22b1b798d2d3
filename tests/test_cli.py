"""The command line (`fastnn ...` / `python -m fastnn ...`): version, each subcommand's own usage
on a bad argument, and `demo --epochs 0`."""

import subprocess
import sys

import pytest

import fastnn
from fastnn.__main__ import main


def run_cli(*args):
    """(exit status, stdout, stderr) of ``python -m fastnn *args`` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_version_prints_the_package_version():
    status, out, _ = run_cli("--version")
    assert status == 0
    assert out.strip() == f"fastnn {fastnn.__version__}"
    assert fastnn.__version__.count(".") >= 1       # a real version string, not empty


@pytest.mark.parametrize("args, usage, message", [
    (["demo", "--bogus"], "usage: fastnn demo", "unrecognized arguments: --bogus"),
    (["demo", "--epochs", "-1"], "usage: fastnn demo", "--epochs must be >= 0. Received: -1"),
    (["demo", "--epochs", "two"], "usage: fastnn demo", "invalid int value: 'two'"),
    (["demo", "--seed"], "usage: fastnn demo", "expected one argument"),
    (["bench", "--threads", "x"], "usage: fastnn bench", "invalid int value: 'x'"),
    (["bench", "--nope"], "usage: fastnn bench", "unrecognized arguments: --nope"),
    (["info", "extra"], "usage: fastnn info", "unrecognized arguments: extra"),
    (["--bogus"], "usage: fastnn [-h]", "unrecognized arguments: --bogus"),
    (["train"], "usage: fastnn [-h]", "invalid choice: 'train'"),
])
def test_a_bad_argument_shows_its_own_subcommands_usage(capsys, args, usage, message):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert message in err
    if args[0] in ("demo", "bench", "info"):
        # the subcommand's own options, not only the list of subcommands
        assert "{demo,bench,info}" not in err.splitlines()[0]


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "demo" in out and "bench" in out and "info" in out


def test_demo_with_zero_epochs_explains_itself():
    status, out, err = run_cli("demo", "--epochs", "0", "--no-progress")
    assert status == 0, err
    assert "--epochs 0: no training" in out
    assert "time per epoch" not in out          # nothing was trained, no time to report
    line = next(line for line in out.splitlines() if "initial random weights" in line)
    accuracy = float(line.split("weights: ")[1].split("%")[0])
    assert 0.0 <= accuracy <= 40.0               # untrained: near chance
    assert "Confusion matrix" in out
