"""Start-up of every run: page config, navigation, the shared sidebar and the run's context.

``app.py`` calls :func:`run_app` once per run. Pages read the context with :func:`page_context`.

Why pages need more than a dictionary lookup: Streamlit's legacy ``pages/``-folder mode. A fresh server
whose very first request names a page URL (``/attention``) runs that page script *without* ``app.py``,
because the folder is called ``pages/`` (the project's fixed layout). :func:`page_context` handles it here,
and only here: once per session it declares the navigation (which switches the process out of the
legacy mode) and reruns through ``app.py``; should a page still run alone, it builds the sidebar and the
context itself, so the page works either way.
"""

from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from . import memory, sidebar, widgets
from .context import AppContext
from .navigation import PAGES

#: One line per script run (server-side seconds); silent unless enabled (``app.py``: ``CROSSFORMER_RUN_TIMES=1``).
RUN_LOG = logging.getLogger("crossformer_explorer.runs")

#: Session-state key of this run's context (set by :func:`run_app`, removed when the run ends).
CONTEXT_KEY = "_ctx"
_LEGACY_RERUN_KEY = "_legacy_rerun"
PAGE_TITLE = "CrossFormer Explorer"


def _navigation(position: str = "sidebar") -> st.navigation:
    return st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0))
                          for i, p in enumerate(PAGES)], position=position)


def _context() -> AppContext:
    """Draw the shared sidebar and the notices above the page → this run's context."""
    ctx = sidebar.render()
    widgets.notices(ctx)
    return ctx


def run_app() -> None:
    """The whole of ``app.py``: page config, navigation, sidebar, then the selected page.

    Each script run's server-side time is logged to :data:`RUN_LOG` (``run session=… page=… seconds=…
    outcome=done|stopped``) when that logger is enabled for INFO (``CROSSFORMER_RUN_TIMES=1``, see ``app.py``):
    what ``benchmarks/bench_many_users.py`` reads to report the server's own time per run.
    """
    t0, title, outcome = time.perf_counter(), "?", "stopped"
    try:
        st.set_page_config(page_title=PAGE_TITLE, page_icon=":material/grid_view:", layout="wide",
                           initial_sidebar_state="expanded")
        memory.memory_policy()          # once per server (cached): malloc arenas shared by the script threads
        page = _navigation()
        title = page.title
        st.session_state[CONTEXT_KEY] = _context()
        try:
            page.run()
            outcome = "done"
        finally:   # the context lives for this run only
            st.session_state.pop(CONTEXT_KEY, None)
            memory.release_memory()
    finally:
        if RUN_LOG.isEnabledFor(logging.INFO):
            ctx = get_script_run_ctx()
            RUN_LOG.info("run session=%s page=%s seconds=%.4f outcome=%s", ctx.session_id if ctx else "-",
                         title.replace(" ", "_"), time.perf_counter() - t0, outcome)


def page_context() -> AppContext:
    """The context :func:`run_app` built for this run (see the module docstring for the legacy case)."""
    ctx = st.session_state.get(CONTEXT_KEY)
    if ctx is not None:
        return ctx
    if not st.session_state.get(_LEGACY_RERUN_KEY):
        st.session_state[_LEGACY_RERUN_KEY] = True
        _navigation(position="hidden")
        st.rerun()
    st.set_page_config(page_title=PAGE_TITLE, layout="wide")
    return _context()
