"""CrossFormer Explorer — entry point: ``streamlit run app.py`` (optionally ``-- --checkpoint PATH``).

Declares the page config and the navigation, draws the shared sidebar (image, model, preprocessing),
computes — or reads from the cache — the one forward trace every page uses, then runs the selected page
(all in :func:`pages.common.startup.run_app`).
"""

from __future__ import annotations

import logging
import os

from pages.common import startup

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
# CROSSFORMER_RUN_TIMES=1: one log line per script run with its server-side seconds (benchmarks/bench_many_users.py)
startup.RUN_LOG.setLevel(logging.INFO if os.environ.get("CROSSFORMER_RUN_TIMES") else logging.WARNING)
startup.run_app()
