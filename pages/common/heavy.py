"""Heavy actions: announced, confirmed above a threshold, shown with a real progress bar, cancellable.

Before an expensive run the page shows an estimate for *this* model, input size and method
(:mod:`pages.common.estimates`, priced by this machine's timings from :mod:`pages.common.calibrate`, measured in
the background: no script run waits for them).

:func:`action` draws the button. Above :data:`THRESHOLD_S` the first click only asks "about 2 min on this
CPU — continue?"; below it the button just runs. While it runs, a progress bar counts steps done / total
and a Cancel button is shown. In Streamlit any widget interaction during a run asks for a rerun, which
stops the script at its next ``st`` call: the progress callback (an ``st`` call after every step) is that
interruption point. A run writes ``session_state[f"{key}::running"]`` (request, steps done, total) as it
goes and removes it when it finishes; a marker still there on the next run means the run was stopped,
and the page says "cancelled at 12 / 32 steps". Results enter the shared store only when complete.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Hashable, TypeVar

import streamlit as st

from crossformer.analysis.facts import plural

from .estimates import Cost, Estimate

log = logging.getLogger(__name__)
T = TypeVar("T")
THRESHOLD_S = 10.0          # estimates above this ask for a confirmation first
BACKWARD_FACTOR = 3.0       # forward + backward ≈ 3 forward passes


# ---- the action ---------------------------------------------------------------------------------------------
class Progress:
    """The callback handed to a heavy computation: ``progress(done, total)`` records the steps done in
    the session (for the "cancelled at" message) and moves the bar — the run's interruption point."""

    def __init__(self, key: str, request: Hashable, bar: Any, total: int, unit: str, label: str) -> None:
        self.key, self.bar, self.unit, self.label = key, bar, unit, label
        self.marker = {"request": request, "done": 0, "total": int(total), "unit": unit}
        st.session_state[key] = self.marker

    def __call__(self, done: int, total: int | None = None) -> None:
        total = int(total or self.marker["total"])
        self.marker.update(done=int(done), total=total)
        st.session_state[self.key] = dict(self.marker)
        self.bar.progress(min(1.0, done / max(total, 1)), text=f"{self.label}: {done} / {total} {self.unit}")


def running_key(key: str) -> str:
    """Where a run of action ``key`` keeps its progress while it runs."""
    return f"{key}::running"


def report_cancelled(key: str) -> dict | None:
    """Pop the marker of a run of ``key`` that did not finish and say where it stopped (or ``None``)."""
    marker = st.session_state.pop(running_key(key), None)
    if marker:
        st.warning(f"Cancelled at {marker['done']} / {marker['total']} {marker['unit']}; nothing was kept.",
                   icon=":material/cancel:")
    return marker


#: Singular of the cost units (``Cost.unit`` is written in the plural).
_SINGULAR = {"passes": "pass", "images": "image", "heads": "head", "blocks": "block", "steps": "step"}


def steps_text(cost: Cost) -> str:
    """``"1 pass"``, ``"770 images"``, ``"1,200 images"`` (number agreement and thousands separators)."""
    return plural(cost.steps, _SINGULAR.get(cost.unit, cost.unit), cost.unit)


def action(key: str, label: str, request: Hashable, est: Estimate, compute: Callable[[Progress], T],
           store: Any, *, threshold_s: float | None = None, progress_label: str | None = None,
           help: str | None = None, primary: bool = True) -> tuple[T | None, bool]:
    """A heavy action's button (widget key ``key``), confirmation, progress bar and Cancel; returns
    ``(result, just_ran)``.

    ``result`` is ``store.get(request)`` (a :class:`~pages.common.bytecache.ByteLRU` shared by every
    session, or a plain dict in ``session_state`` for results kept per session), computed now by
    ``compute(progress)`` if the user asked (and confirmed when ``est.seconds > threshold_s``, default
    :data:`THRESHOLD_S`); ``None``
    when not computed (yet). ``compute`` must call ``progress(done, total)`` after every step; only a
    complete result is stored. An exception of ``compute`` is shown and the page goes on.
    """
    threshold_s = THRESHOLD_S if threshold_s is None else threshold_s
    report_cancelled(key)
    result = store.get(request)
    if result is not None:
        return result, False
    confirm_key = f"{key}::confirm"
    big = est.seconds > threshold_s
    clicked = st.button(label, key=key, type="primary" if primary else "secondary",
                        icon=":material/play_arrow:", help=help)
    st.caption(f"Estimated {est.text} ({steps_text(est.cost)})"
               + (" — it asks before it starts." if big else "."))
    go = clicked and not big
    if clicked and big:
        st.session_state[confirm_key] = request
    if not go and st.session_state.get(confirm_key) == request:
        slot = st.empty()
        box = slot.container()
        box.warning(f"This takes {est.text} ({steps_text(est.cost)}) — continue?",
                    icon=":material/schedule:")
        c1, c2 = box.columns(2)
        go = c1.button("Continue", key=f"{key}_confirm", type="primary", icon=":material/check:")
        if c2.button("Not now", key=f"{key}_decline", icon=":material/close:") or go:
            st.session_state.pop(confirm_key, None)
            slot.empty()
    if not go:
        return None, False
    bar = st.progress(0.0, text=f"{progress_label or label}: starting…")
    cancel = st.empty()
    cancel.button("Cancel", key=f"{key}_cancel", icon=":material/cancel:")
    progress = Progress(running_key(key), request, bar, est.cost.steps, est.cost.unit, progress_label or label)
    t0 = time.perf_counter()
    try:
        result = compute(progress)
    except Exception as err:  # shown, the app keeps working (a stop / rerun is not an Exception)
        log.exception("%s failed", key)
        st.session_state.pop(running_key(key), None)
        st.error(f"{label} failed: {type(err).__name__}: {err}")
        result = None
    else:
        log.info("%s: %.2f s (estimated %.2f s)", key, time.perf_counter() - t0, est.seconds)
        if hasattr(store, "put"):
            store.put(request, result)
        else:
            store[request] = result
        st.session_state.pop(running_key(key), None)
    bar.empty()
    cancel.empty()
    return result, result is not None
