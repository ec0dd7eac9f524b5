"""CrossFormer Explorer — entry point: ``streamlit run app.py`` (optionally ``-- --checkpoint PATH``).

Declares the page config and the navigation, draws the shared sidebar (image, model, preprocessing),
computes — or reads from the cache — the one forward trace every page uses, then runs the selected page
(all in :func:`pages.common.startup.run_app`).
"""

from __future__ import annotations

import logging

from pages.common import startup

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
startup.run_app()
