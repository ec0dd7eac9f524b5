"""Heavy actions: announced, confirmed above a threshold, shown with a real progress bar, cancellable.

Before an expensive run the page shows an estimate for *this* model, input size and method, computed by a
cost model: a FLOP-ish count of one forward pass from the config and the input size (:func:`forward_flops`)
times what the method runs (:class:`Cost`: image passes, batches, progress steps), priced by per-machine
:class:`Timings` (one-image passes timed at a ladder of sizes, giving seconds per call + seconds per FLOP at the
action's size) that :class:`Calibrations` measures once per server, model and engine in a background thread: no
script run waits for it; until they are ready an estimate is a cautious :data:`ROUGH` figure and says so. No
seconds are hard-coded per model.

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
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, TypeVar

import streamlit as st

from crossformer.analysis.facts import plural

log = logging.getLogger(__name__)
T = TypeVar("T")
THRESHOLD_S = 10.0          # estimates above this ask for a confirmation first
BACKWARD_FACTOR = 3.0       # forward + backward ≈ 3 forward passes


# ---- the cost model -----------------------------------------------------------------------------------------
def forward_flops(cfg: Any, hw: tuple[int, int]) -> float:
    """Multiply-adds of one forward pass of a CrossFormer ``cfg`` on one ``hw = (H, W)`` image.

    Counts the cross-scale embedding convolutions, per block the linear layers (q, k, v, projection: 4C²,
    MLP: 2·ratio·C² per token) and the attention inside groups of G² tokens (2·G²·C per token), the
    cross-scale merges and the classifier. Padding to whole groups is ignored (a few per cent).
    """
    H, W = (math.ceil(d / cfg.patch_kernels[0]) for d in hw)
    D = cfg.embed_dim
    flops = H * W * sum(k * k * 3 * D / len(cfg.patch_kernels) for k in cfg.patch_kernels)
    for i, depth in enumerate(cfg.depths):
        C, G = D * 2 ** i, cfg.group_size[i]
        T_ = H * W
        flops += depth * T_ * (C * C * (4 + 2 * cfg.mlp_ratio[i]) + 2 * G * G * C)
        if i < len(cfg.depths) - 1:
            H, W = math.ceil(H / 2), math.ceil(W / 2)
            ks = cfg.merge_kernels[i]
            flops += H * W * sum(k * k * C * 2 * C / len(ks) for k in ks)
    return float(flops + D * 2 ** (len(cfg.depths) - 1) * cfg.num_classes)


@dataclass(frozen=True)
class Cost:
    """What a method runs: ``images`` forward-pass equivalents (a backward counts 2), in ``calls`` batches,
    reported as ``steps`` progress steps of ``unit``."""

    images: float
    calls: int
    steps: int
    unit: str = "steps"


@dataclass(frozen=True)
class Calibration:
    """Seconds of one call (``overhead_s``) and of one FLOP (``per_flop_s``) on this machine, for one
    engine (torch in a precision, or the NumPy reference)."""

    overhead_s: float
    per_flop_s: float
    label: str = "this CPU"

    def seconds(self, cost: Cost, flops: float) -> float:
        """Estimated wall time of ``cost`` where one image pass is ``flops``."""
        return cost.calls * self.overhead_s + cost.images * flops * self.per_flop_s


def fit_calibration(t_small: float, t_large: float, f_small: float, f_large: float,
                    label: str = "this CPU") -> Calibration:
    """Two timed passes (``t`` seconds for ``f`` FLOPs) → overhead + seconds per FLOP (both ≥ 0)."""
    per_flop = max((t_large - t_small) / max(f_large - f_small, 1.0), t_large / max(f_large, 1.0) * 0.25)
    overhead = max(0.0, t_small - per_flop * f_small)
    return Calibration(overhead, per_flop, label)


def ig_cost(steps: int, batch: int) -> Cost:
    """Integrated gradients: ``steps`` forward + backward along the path, in batches, + the delta's 2."""
    return Cost(BACKWARD_FACTOR * steps + 2, math.ceil(steps / max(1, batch)) + 1, int(steps) + 2, "images")


def gradcam_cost() -> Cost:
    """Grad-CAM: one forward and one backward."""
    return Cost(BACKWARD_FACTOR, 1, 1, "passes")


def occlusion_cost(images: int, batch: int) -> Cost:
    """Occlusion: ``images`` forward passes (one per window + the input) in batches of ``batch``."""
    return Cost(float(images), math.ceil(images / max(1, batch)), int(images), "images")


def forward_cost(images: int, batch: int, unit: str = "images") -> Cost:
    """``images`` plain forward passes in batches (deletion / insertion curves, head scans)."""
    return Cost(float(images), math.ceil(images / max(1, batch)), int(images), unit)


def reference_cost(n_blocks: int) -> Cost:
    """The NumPy reference: one traced forward pass, reported block by block."""
    return Cost(1.0, 1, int(n_blocks), "blocks")


def scan_cost(n_heads: int, batch: int) -> Cost:
    """Head-importance scan: the base pass, then one edited pass per head from its block on (about half a
    forward pass on average), in batches."""
    return Cost(1.0 + 0.5 * n_heads, math.ceil(n_heads / max(1, batch)) + 1, int(n_heads), "heads")


def add(*costs: Cost, unit: str = "steps") -> Cost:
    """Several costs run one after the other (priced by the same calibration)."""
    return Cost(sum(c.images for c in costs), sum(c.calls for c in costs), sum(c.steps for c in costs), unit)


def describe(seconds: float) -> str:
    """``"about 2 min"``, ``"about 40 s"``, ``"under a second"``."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(1, round(seconds, -1 if seconds >= 20 else 0)):.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds < 5400 else f"about {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Estimate:
    """An estimate to announce: ``seconds`` for ``cost`` on ``where`` (e.g. "this CPU"); ``rough``: priced by
    :data:`ROUGH` because this machine is still being timed."""

    seconds: float
    cost: Cost
    where: str = "this CPU"
    rough: bool = False

    @property
    def text(self) -> str:
        return f"{describe(self.seconds)}" + (", a rough figure while this machine is being timed" if self.rough
                                              else f" on {self.where}")


#: The price of a FLOP until this machine's :class:`Timings` are measured (a few seconds after a page first needs
#: them): a cautious figure, slower than the measured rates of torch (15–160 ps per FLOP) and of the NumPy
#: reference (~210 ps) on the 2-core CPU of docs/performance.md, so an early estimate errs towards asking first.
ROUGH = Calibration(overhead_s=0.05, per_flop_s=5e-10, label="this machine")


def estimate(cost: Cost, flops: float, calibration: Calibration | Timings | None) -> Estimate:
    """The estimate of ``cost`` for one-image passes of ``flops`` on this machine; a :data:`ROUGH` one while
    ``calibration`` is ``None`` (not measured yet)."""
    if calibration is None:
        return Estimate(ROUGH.seconds(cost, flops), cost, ROUGH.label, rough=True)
    return Estimate(calibration.seconds(cost, flops), cost, calibration.label)


#: The calibration ladder (H, W): a tiny pass (its time is mostly the per-call overhead), 128², the default 224² and
#: 256×384 (:data:`MAX_CALIBRATION_PIXELS`). A pass between two rungs is priced by interpolating their times; above
#: the largest, seconds per FLOP are taken as levelled off.
CALIBRATION_SIZES = ((64, 64), (128, 128), (224, 224), (256, 384))
#: The largest calibration pass, in pixels (256×384): seconds per FLOP have levelled off by then, and a pass at a
#: detector's 800×1344 would cost seconds.
MAX_CALIBRATION_PIXELS = 256 * 384


@dataclass(frozen=True)
class Timings:
    """One model's and engine's measured one-image passes on this machine: ``points`` ``((FLOPs, seconds), …)`` in
    ascending FLOPs (the :data:`CALIBRATION_SIZES` ladder), and where they were measured (``label``).

    Seconds per FLOP fall several-fold from tiny inputs to large ones (fixed per-call costs, small matrices;
    measured on the demo model: ~160 ps per FLOP at 64², ~15–60 at 512×768), so one straight line through all
    sizes is wrong somewhere. :meth:`at` prices passes of a given size by a line through the smallest pass (the
    per-call overhead) and the pass time interpolated at that size; :meth:`seconds` is :class:`Calibration`'s."""

    points: tuple[tuple[float, float], ...]
    label: str = "this CPU"

    def at(self, flops: float) -> Calibration:
        """The :class:`Calibration` for passes of ``flops`` (clamped to the measured range)."""
        (f0, t0), pts = self.points[0], self.points
        if len(pts) == 1:
            return Calibration(0.0, t0 / max(f0, 1.0), self.label)
        f = min(max(float(flops), pts[1][0]), pts[-1][0])
        (fa, ta), (fb, tb) = next((a, b) for a, b in zip(pts, pts[1:]) if f <= b[0])
        t = ta + (tb - ta) * (f - fa) / max(fb - fa, 1.0)
        return fit_calibration(t0, t, f0, f, self.label)

    def seconds(self, cost: Cost, flops: float) -> float:
        """Estimated wall time of ``cost`` where one image pass is ``flops``."""
        return self.at(flops).seconds(cost, flops)


def _time_pass(fn: Callable[[], Any], runs: int) -> float:
    """Best of ``runs`` timed calls of ``fn`` after one untimed call (the first pass of a shape warms up)."""
    fn()
    best = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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
    ``calibration_size(hw)`` when ``hw`` is given): best of two after a warm-up pass each.

    ``engine`` ``"fp32"``/``"bf16"``: the torch forward under that precision, each pass under ``bundle.lock`` (the
    model is shared; nothing is stored on it). ``"numpy"``: the NumPy reference (with its trace, as the page runs
    it) on ``weights`` (converted once when not given). Takes a few seconds for CrossFormer-S on 2 cores: the app
    runs it in the background (:class:`Calibrations`), never in a script run.
    """
    import numpy as np
    import torch

    from crossformer import precision
    device = torch.device(bundle.device)
    where = "this GPU" if device.type == "cuda" else "this CPU"
    sizes = sorted({*CALIBRATION_SIZES, *([calibration_size(hw)] if hw is not None else [])},
                   key=lambda s: forward_flops(bundle.cfg, s))

    def torch_pass(size: tuple[int, int]) -> Callable[[], Any]:
        x = torch.zeros(1, 3, *size, device=device)

        def run() -> None:
            with bundle.lock, torch.inference_mode(), precision.autocast(device, engine):
                bundle.model(x)
        return run

    if engine == "numpy":
        from crossformer import reference
        if weights is None:
            weights = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in bundle.model.state_dict().items()}

        def numpy_pass(size: tuple[int, int]) -> Callable[[], Any]:
            x = np.zeros((1, 3, *size), np.float32)
            return lambda: reference.forward(weights, x, bundle.cfg)
        make = numpy_pass
    else:
        make = torch_pass
    times = [_time_pass(make(s), 2) for s in sizes]
    for i in reversed(range(len(times) - 1)):      # a busy CPU only slows passes down: a smaller pass that
        times[i] = min(times[i], times[i + 1])       # took longer than a larger one was disturbed
    timings = Timings(tuple(zip((forward_flops(bundle.cfg, s) for s in sizes), times)), where)
    log.info("calibration %s: %s", engine, ", ".join(f"{'×'.join(map(str, s))} {t * 1e3:.0f} ms"
                                                    for s, t in zip(sizes, times)))
    return timings


class Calibrations:
    """The server's :class:`Timings`, one per key (model, engine), measured one at a time in one background thread.

    :meth:`get` never waits: it answers ``None`` until the key's timings are ready (the estimate is then a
    :data:`ROUGH` one and says so). One instance is shared by every session (:func:`calibrations`); it keeps only
    the finished timings, under its own lock. A failed measurement is logged and not retried (the estimate stays
    rough for that key)."""

    def __init__(self) -> None:
        import queue

        self._lock = threading.Lock()
        self._ready: dict[Hashable, Timings | None] = {}
        self._queued: set[Hashable] = set()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def get(self, key: Hashable, measure_fn: Callable[[], Timings]) -> Timings | None:
        """The timings of ``key``, or ``None`` (``measure_fn`` is queued, once, for the background thread)."""
        with self._lock:
            if key in self._ready:
                return self._ready[key]
            if key not in self._queued:
                self._queued.add(key)
                self._jobs.put((key, measure_fn))
                if self._worker is None:      # a daemon: a server shutting down never waits for a calibration
                    self._worker = threading.Thread(target=self._work, name="calibration", daemon=True)
                    self._worker.start()
        return None

    def _work(self) -> None:
        while True:
            key, measure_fn = self._jobs.get()
            try:
                timings = measure_fn()
            except Exception:  # noqa: BLE001 — logged; the estimate stays rough, the pages keep working
                log.exception("calibration %s failed", key)
                timings = None
            with self._lock:
                self._ready[key] = timings
                self._queued.discard(key)


@st.cache_resource(show_spinner=False)
def calibrations() -> Calibrations:
    """The :class:`Calibrations` of this server (one, shared by every session)."""
    return Calibrations()


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
