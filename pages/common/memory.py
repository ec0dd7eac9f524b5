"""The server's memory between runs: malloc arenas shared by the script threads, and freed pages handed back
to the OS after the byte-bounded stores (traces, figures, heavy results) evicted enough (:mod:`pages.common.malloc`)."""

from __future__ import annotations

import logging
import threading
import time

import streamlit as st

from .figure_cache import figure_store
from .heavy_runs import heavy_store
from .traces import trace_store

log = logging.getLogger(__name__)


class _Trimmed:
    """How many evicted bytes of the stores had been handed back at the last :func:`release_memory`."""

    def __init__(self) -> None:
        self.evicted = 0
        self.lock = threading.Lock()


@st.cache_resource(show_spinner=False)
def memory_policy() -> _Trimmed:
    """Once per server: malloc arenas shared by the script threads (:func:`pages.common.malloc.limit_arenas`)."""
    from . import malloc
    malloc.limit_arenas(2)
    return _Trimmed()


def release_memory() -> None:
    """At the end of a run: when the trace or figure store evicted a MiB or more since the last time, return
    the freed pages to the OS (:func:`pages.common.malloc.trim`; the run's own references are gone by now)."""
    from . import malloc
    state = memory_policy()
    evicted = trace_store().evicted_bytes + figure_store().evicted_bytes + heavy_store().evicted_bytes
    with state.lock:
        if evicted - state.evicted < 2**20:
            return
        state.evicted = evicted
    t0 = time.perf_counter()
    released = malloc.trim()
    log.info("malloc_trim after %.0f MiB evicted: %s (%.1f ms)", evicted / 2**20,
             "memory returned" if released else "nothing to return", (time.perf_counter() - t0) * 1e3)
