"""Built figures, shared read-only by every session: the cache key comes from the builder's own arguments
(:func:`figure_key`), the figures live in a byte-bounded store (:func:`figure_store`)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any, Callable, Hashable

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import crossformer
from crossformer.geometry import GroupLayout
from viz import export

from .bytecache import ByteLRU, budget_bytes
from .traces import trace_store

log = logging.getLogger(__name__)

_ARRAY_HASH_LIMIT = 64 << 20     # larger arrays are not hashed for a figure key (pass their block instead)


@st.cache_resource(show_spinner=False)
def figure_store() -> ByteLRU:
    """The server's built figures, bounded in bytes (``CROSSFORMER_FIGURE_CACHE_MB``, default 256)."""
    return ByteLRU(budget_bytes("CROSSFORMER_FIGURE_CACHE_MB", 256), name="figures")


def _trace_part(obj: Any) -> tuple | None:
    """``(trace key, where)`` of a trace, or of one of its blocks / embeddings, held by the trace store."""
    def holds(t: crossformer.Trace) -> bool:
        return obj is t or obj is t.embedding or any(obj is m for m in t.merges) or any(
            obj is b for b in t.all_blocks())
    key = trace_store().find_key(holds)
    if key is None:
        return None
    if isinstance(obj, crossformer.BlockTrace):
        return key, ("block", obj.stage, obj.index)
    if isinstance(obj, crossformer.EmbeddingTrace):
        return key, ("embedding", obj.input_stride)
    return key, ("trace",)


def figure_key(value: Any) -> Hashable:
    """A hashable fingerprint of a figure builder's argument, or ``None`` when it cannot have one.

    Numbers, strings, ``None`` and tuples, lists, dicts and dataclasses of them stand for themselves; a NumPy
    array for its shape, dtype and a hash of its bytes; a :class:`~crossformer.geometry.GroupLayout` for what
    defines it (kind, map size, G, I); a trace, block or embedding for the trace-store key of the trace it
    belongs to (so the same block of two different images never shares a figure).
    """
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (tuple, list)):
        parts = tuple(figure_key(v) for v in value)
        return None if any(p is None and v is not None for p, v in zip(parts, value)) else ("seq", parts)
    if isinstance(value, np.ndarray):
        if value.nbytes > _ARRAY_HASH_LIMIT:
            return None
        digest = hashlib.blake2b(np.ascontiguousarray(value).view(np.uint8).data, digest_size=16).hexdigest()
        return ("array", value.shape, value.dtype.str, digest)
    if isinstance(value, GroupLayout):
        return ("layout", value.kind, value.feature_hw, value.group_size, value.interval)
    if isinstance(value, (crossformer.Trace, crossformer.BlockTrace, crossformer.EmbeddingTrace)):
        return _trace_part(value)
    if isinstance(value, dict):
        items = sorted(((figure_key(k), figure_key(v)) for k, v in value.items()), key=repr)
        return None if any(kk is None or vk is None for kk, vk in items) else ("dict", tuple(items))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = tuple((f.name, figure_key(getattr(value, f.name))) for f in dataclasses.fields(value))
        return None if any(k is None and getattr(value, n) is not None for n, k in fields) else (
            type(value).__qualname__, fields)
    return None


def built_figure(builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``builder(*args, **kwargs)``, built once per builder and arguments and shared read-only by every
    session; the cache key comes from the arguments themselves (:func:`figure_key`). Arguments without a
    fingerprint (a trace that is no longer cached, a huge array) make the figure build uncached."""
    parts = [figure_key(a) for a in args] + [(k, figure_key(v)) for k, v in sorted(kwargs.items())]
    unkeyed = [a for a, p in zip(args, parts) if p is None and a is not None] + [
        k for k, v in kwargs.items() if v is not None and figure_key(v) is None]
    if unkeyed:
        log.debug("figure %s built uncached (no key for %d argument(s))", builder.__qualname__, len(unkeyed))
        return export.responsive(builder(*args, **kwargs))
    key = (f"{builder.__module__}.{builder.__qualname__}", *parts)
    return figure_store().get_or_build(key, lambda: export.responsive(builder(*args, **kwargs)))


def display_figure(fig: Any) -> Any:
    """The plotly figure that ``st.plotly_chart`` is given: one without a layout pixel width, so the chart
    always takes its column's width (with it, the browser sometimes kept the figure's own width: a 1210-px
    SDA-vs-LDA figure overflowed its 940-px column on 2 of 4 loads).

    Figures from :func:`built_figure` are already so (:func:`viz.export.responsive`, applied once when
    built; the exports still find the width) and are shown as they are. Any other figure with a width is
    shown through a width-less copy, made once per figure (unvalidated) and kept in the figure store."""
    if getattr(getattr(fig, "layout", None), "width", None) is None:
        return fig

    def copy() -> tuple[Any, Any]:
        return fig, export.responsive(go.Figure(fig.to_dict(), _validate=False))

    key = ("display", id(fig))
    store = figure_store()
    kept = store.get_or_build(key, copy)
    if kept[0] is not fig:          # the id of an evicted figure, reused by this one
        kept = store.put(key, copy())
    return kept[1]
