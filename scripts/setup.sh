#!/usr/bin/env bash
# Create .venv with pinned dependencies and the project installed into it, editable (idempotent).
# Needs only python3 (3.11), pip and venv. After it, `.venv/bin/crossformer` and `.venv/bin/python -m
# crossformer.stats` work from any folder, and the checkout stays the code that runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REQ=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$REQ")"
if [ ! -f "$stamp" ] || [ "$REQ" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$REQ"
  touch "$stamp"
fi
# the package itself (pyproject.toml): editable, its dependencies already pinned above; the pinned setuptools
# builds it, so nothing else is downloaded
if [ ! -f .venv/.installed-project ] || [ pyproject.toml -nt .venv/.installed-project ] \
    || [ requirements.txt -nt .venv/.installed-project ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
  touch .venv/.installed-project
fi
