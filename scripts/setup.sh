#!/usr/bin/env bash
# Create .venv with pinned dependencies (idempotent). Needs only python3 (3.11), pip and venv.
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
