#!/usr/bin/env bash
# Usage: scripts/new_venv.sh PYTHON DIR
# Creates a virtual environment with pip. If `python -m venv` fails (seen once in CI, after the
# test suite: "ensurepip ... returned non-zero exit status 1", which venv prints without pip's own
# message), it says how much disk is free, then tries once more in two visible steps, so that a
# second failure prints pip's reason instead of only an exit status.
set -uo pipefail
python="$1" dir="$2"
"$python" -m venv "$dir" && exit 0
echo "new_venv: '$python -m venv $dir' failed; free space where it was made:" >&2
df -h "$(dirname "$dir")" >&2 || true
rm -rf "$dir"
sleep 5
"$python" -m venv --without-pip "$dir" || exit 1
"$dir/bin/python" -m ensurepip --upgrade --default-pip
