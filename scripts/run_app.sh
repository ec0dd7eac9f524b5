#!/usr/bin/env bash
# Set up (first time only) and open CrossFormer Explorer on http://127.0.0.1:8501
# Extra arguments go to the app, e.g.:  bash scripts/run_app.sh --checkpoint path/to/crossformer-s.pth
# --official NAME (crossformer_t/s/b/l) downloads the official ImageNet-1k weights once (network needed the
# first time; cached in $CROSSFORMER_CACHE or ~/.cache/crossformer) and opens the app with them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
args=()
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--official" ] && [ "$#" -ge 2 ]; then
    path=$(.venv/bin/python -m crossformer fetch "$2" | tail -n 1)
    args+=(--checkpoint "$path")
    shift 2
  else
    args+=("$1")
    shift
  fi
done
if [ "${#args[@]}" -gt 0 ]; then
  exec .venv/bin/streamlit run app.py -- "${args[@]}"
fi
exec .venv/bin/streamlit run app.py
