"""Timing this machine for the cost model (:mod:`pages.common.estimates`): one ladder of one-image passes per
model and engine, measured once per server in one background thread (:class:`Calibrations`), so that no script
run ever waits for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Hashable

import streamlit as st

from .estimates import Timings, forward_flops

log = logging.getLogger(__name__)


#: The calibration ladder (H, W): a tiny pass (its time is mostly the per-call overhead), 128², the default 224² and
#: 256×384 (:data:`MAX_CALIBRATION_PIXELS`). A pass between two rungs is priced by interpolating their times; above
#: the largest, seconds per FLOP are taken as levelled off.
CALIBRATION_SIZES = ((64, 64), (128, 128), (224, 224), (256, 384))
#: The largest calibration pass, in pixels (256×384): seconds per FLOP have levelled off by then, and a pass at a
#: detector's 800×1344 would cost seconds.
MAX_CALIBRATION_PIXELS = 256 * 384
#: The NumPy reference's ladder: :data:`CALIBRATION_SIZES` and 512×768. Its seconds per FLOP keep growing above
#: 256×384 for wide models (CrossFormer-S: 1.4× from 256×384 to 512×768 on the 2-core CPU of docs/performance.md),
#: and a pass costs a fraction of a second there (demo) to ~2.6 s (CrossFormer-S), in the background.
NUMPY_SIZES = CALIBRATION_SIZES + ((512, 768),)
#: Seconds after which a model's timings are measured again when a page next asks (:class:`Calibrations`).
REFRESH_S = 600.0


def _time_first(fn: Callable[[], Any]) -> float:
    """One timed call of ``fn``, not warmed up: the page runs the NumPy reference once per input, and a first pass
    at a new size pays for fresh memory (at 512×768 ~1.3–1.6× a repeated pass here)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def calibration_size(hw: tuple[int, int]) -> tuple[int, int]:
    """``hw`` itself, or — above :data:`MAX_CALIBRATION_PIXELS` — the same aspect ratio at that area, each side a
    multiple of 32 (so a backbone's stage maps stay even)."""
    h, w = (int(v) for v in hw)
    if h * w <= MAX_CALIBRATION_PIXELS:
        return h, w
    k = math.sqrt(MAX_CALIBRATION_PIXELS / (h * w))
    return max(32, int(h * k) // 32 * 32), max(32, int(w * k) // 32 * 32)


def measure(bundle: Any, engine: str, hw: tuple[int, int] | None = None,
            weights: dict | None = None) -> Timings:
    """Time one-image passes of ``bundle.model`` under ``engine`` at every :data:`CALIBRATION_SIZES` rung (and at
    ``calibration_size(hw)`` when ``hw`` is given): best of two after a warm-up pass each for torch; for the NumPy
    reference at every :data:`NUMPY_SIZES` rung, the first pass of each size (as the page runs it: once per input).

    ``engine`` ``"fp32"``/``"bf16"``: the torch forward under that precision, each pass under ``bundle.lock`` (the
    model is shared; nothing is stored on it), timed from inside the lock. ``"numpy"``: the NumPy reference (with
    its trace, as the page runs it) on ``weights`` (converted once when not given). Takes a few seconds for
    CrossFormer-S on 2 cores: the app runs it in the background (:class:`Calibrations`), never in a script run.
    """
    import numpy as np
    import torch

    from crossformer import precision
    device = torch.device(bundle.device)
    where = "this GPU" if device.type == "cuda" else "this CPU"
    ladder = NUMPY_SIZES if engine == "numpy" else CALIBRATION_SIZES
    sizes = sorted({*ladder, *([calibration_size(hw)] if hw is not None else [])},
                   key=lambda s: forward_flops(bundle.cfg, s))

    def torch_time(size: tuple[int, int]) -> float:
        """Best of two passes after a warm-up, each under the model's lock with the clock started inside it: time
        spent waiting for another session's pass is not this machine's speed (in a class, timing the wait measured
        6 s for a 35 ms pass), and the lock is held for one pass at a time."""
        x = torch.zeros(1, 3, *size, device=device)
        times = []
        for _ in range(3):
            with bundle.lock, torch.inference_mode(), precision.autocast(device, engine):
                t0 = time.perf_counter()
                bundle.model(x)
                times.append(time.perf_counter() - t0)
        return min(times[1:])

    if engine == "numpy":
        from crossformer import reference
        if weights is None:
            weights = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in bundle.model.state_dict().items()}

        def numpy_pass(size: tuple[int, int]) -> Callable[[], Any]:
            x = np.zeros((1, 3, *size), np.float32)
            return lambda: reference.forward(weights, x, bundle.cfg)
        times = [_time_first(numpy_pass(s)) for s in sizes]
    else:
        times = [torch_time(s) for s in sizes]
    for i in reversed(range(len(times) - 1)):      # a busy CPU only slows passes down: a smaller pass that
        times[i] = min(times[i], times[i + 1])       # took longer than a larger one was disturbed
    timings = Timings(tuple(zip((forward_flops(bundle.cfg, s) for s in sizes), times)), where)
    log.info("calibration %s: %s", engine, ", ".join(f"{'×'.join(map(str, s))} {t * 1e3:.0f} ms"
                                                    for s, t in zip(sizes, times)))
    return timings


class Calibrations:
    """The server's :class:`Timings`, one per key (model, engine), measured one at a time in one background thread.

    :meth:`get` never waits: it answers ``None`` until the key's timings are ready (the estimate is then a
    :data:`ROUGH` one and says so). Timings older than ``refresh_s`` are measured again when next asked for (the
    old ones answer meanwhile) and each pass keeps the fastest time seen (:meth:`Timings.fastest`): a busy CPU only
    slows passes down, so timings taken while a class's thirty sessions arrive (several times too slow here) are
    corrected by a later, quieter measurement. One instance is shared by every session (:func:`calibrations`); it
    keeps only the finished timings, under its own lock. A failed measurement is logged; the key keeps its earlier
    timings (or stays rough) until the next refresh."""

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        import queue

        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._ready: dict[Hashable, tuple[Timings | None, float]] = {}     # key → (timings, when measured)
        self._queued: set[Hashable] = set()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def get(self, key: Hashable, measure_fn: Callable[[], Timings]) -> Timings | None:
        """The timings of ``key``, or ``None`` (``measure_fn`` is queued, once, for the background thread; again
        once the timings are older than ``refresh_s``)."""
        with self._lock:
            timings, when = self._ready.get(key, (None, None))
            stale = when is None or time.monotonic() - when >= self.refresh_s
            if stale and key not in self._queued:
                self._queued.add(key)
                self._jobs.put((key, measure_fn))
                if self._worker is None:      # a daemon: a server shutting down never waits for a calibration
                    self._worker = threading.Thread(target=self._work, name="calibration", daemon=True)
                    self._worker.start()
        return timings

    def _work(self) -> None:
        while True:
            key, measure_fn = self._jobs.get()
            try:
                timings = measure_fn()
            except Exception:  # noqa: BLE001 — logged; the estimate stays as it was, the pages keep working
                log.exception("calibration %s failed", key)
                timings = None
            with self._lock:
                old = self._ready.get(key, (None, 0.0))[0]
                best = old if timings is None else timings if old is None else old.fastest(timings)
                self._ready[key] = (best, time.monotonic())
                self._queued.discard(key)


@st.cache_resource(show_spinner=False)
def calibrations() -> Calibrations:
    """The :class:`Calibrations` of this server (one, shared by every session)."""
    return Calibrations()
