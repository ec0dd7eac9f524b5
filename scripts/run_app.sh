#!/usr/bin/env bash
# Set up (first time only) and open CrossFormer Explorer on http://127.0.0.1:8501
# Extra arguments go to the app, e.g.:  bash scripts/run_app.sh --checkpoint path/to/crossformer-s.pth
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
if [ "$#" -gt 0 ]; then
  exec .venv/bin/streamlit run app.py -- "$@"
fi
exec .venv/bin/streamlit run app.py
