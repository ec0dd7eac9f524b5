"""A least-recently-used store bounded in bytes, shared by every session of one server.

Traces and figures are large and read-only (a CrossFormer++-S trace of a 480×640 input is ~485 MiB), so
they are kept as they are — no pickling on every read as ``st.cache_data`` would do — and evicted, oldest
use first, when the total of their sizes passes the budget. The budgets come from the environment:
``CROSSFORMER_TRACE_CACHE_MB`` (default 768) and ``CROSSFORMER_FIGURE_CACHE_MB`` (default 256). An entry
larger than the whole budget is returned to its caller but not kept.

Each store is created once per server by ``st.cache_resource`` (:mod:`pages.common.traces`,
:mod:`pages.common.figure_cache`, :mod:`pages.common.heavy_runs`); entries are never mutated after insertion
(traces are frozen dataclasses of read-only arrays, figures are only read by ``st.plotly_chart`` and the
exporters).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

log = logging.getLogger(__name__)


def budget_bytes(env: str, default_mb: int) -> int:
    """The byte budget named by the environment variable ``env`` (MiB), else ``default_mb``."""
    try:
        mb = float(os.environ.get(env, default_mb))
    except ValueError:
        log.warning("%s=%r is not a number; using %d MiB", env, os.environ.get(env), default_mb)
        mb = default_mb
    return int(max(mb, 0) * 2**20)


def nbytes(obj: Any) -> int:
    """Approximate memory of ``obj``: NumPy arrays counted exactly, containers, dataclasses and plotly /
    matplotlib figures walked (a matplotlib figure counts its canvas, 4 bytes per pixel)."""
    seen: set[int] = set()

    def walk(o: Any) -> int:
        if id(o) in seen:
            return 0
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            return int(o.nbytes)
        if isinstance(o, (bytes, bytearray, str)):
            return len(o)
        if isinstance(o, dict):
            return sum(walk(v) for v in o.values())
        if isinstance(o, (list, tuple, set, frozenset)):
            return sum(walk(v) for v in o)
        if hasattr(o, "to_plotly_json"):                     # plotly figure: its traces' data
            return sum(walk(t.to_plotly_json()) for t in getattr(o, "data", ()))
        if hasattr(o, "get_size_inches") and hasattr(o, "dpi"):
            w, h = o.get_size_inches()
            return int(w * h * o.dpi * o.dpi * 4)
        if hasattr(o, "__dataclass_fields__"):
            return sum(walk(getattr(o, f)) for f in o.__dataclass_fields__)
        return 64
    return walk(obj)


class ByteLRU:
    """``get_or_build(key, build)`` with least-recently-used eviction past ``max_bytes`` (thread-safe)."""

    def __init__(self, max_bytes: int, size: Callable[[Any], int] = nbytes, name: str = "cache",
                 keep_oversize: bool = False) -> None:
        """``keep_oversize``: an entry larger than the whole budget is kept alone (every other entry evicted)
        instead of not at all, so a page's reruns reuse it rather than rebuild it on every run (a detector
        backbone's trace at 800×1333 is larger than the default trace budget)."""
        self.max_bytes, self.size, self.name = int(max_bytes), size, name
        self.keep_oversize = bool(keep_oversize)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self.evicted_bytes = 0        # total ever evicted (grows only): when to hand freed memory back

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return default
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any) -> Any:
        n = self.size(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if n > self.max_bytes and not self.keep_oversize:
                log.info("%s: an entry of %.1f MiB exceeds the %.0f MiB budget; not kept", self.name, n / 2**20,
                         self.max_bytes / 2**20)
                return value
            if n > self.max_bytes:
                log.info("%s: an entry of %.1f MiB exceeds the %.0f MiB budget; kept alone", self.name, n / 2**20,
                         self.max_bytes / 2**20)
            self._items[key] = (value, n)
            self._bytes += n
            while self._bytes > max(self.max_bytes, n) and len(self._items) > 1:
                _, (_, m) = self._items.popitem(last=False)
                self._bytes -= m
                self.evicted_bytes += m
        return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def find_key(self, match: Callable[[Any], bool]) -> Hashable | None:
        """The key of the first cached value for which ``match(value)`` holds (no LRU update), else None."""
        with self._lock:
            items = [(k, v) for k, (v, _) in self._items.items()]
        return next((k for k, v in items if match(v)), None)

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached value, or ``build()`` once (concurrent callers for the same key wait for it)."""
        missing = object()
        value = self.get(key, missing)
        if value is not missing:
            return value
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            value = self.get(key, missing)
            if value is missing:
                value = self.put(key, build())
        with self._lock:
            self._building.pop(key, None)
        return value
