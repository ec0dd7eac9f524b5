"""The cost model of the heavy actions: what one run costs, in seconds on this machine, before it runs.

A FLOP-ish count of one forward pass from the config and the input size (:func:`forward_flops`) times what the
method runs (:class:`Cost`: image passes, batches, progress steps), priced by per-machine :class:`Timings`
(one-image passes timed at a ladder of sizes, giving seconds per call + seconds per FLOP at the action's size;
measured by :mod:`pages.common.calibrate`). Until a machine's timings are ready an estimate is a cautious
:data:`ROUGH` figure and says so. No seconds are hard-coded per model. Pure arithmetic: no streamlit, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BACKWARD_FACTOR = 3.0       # forward + backward ≈ 3 forward passes


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

    def fastest(self, other: Timings) -> Timings:
        """Pass by pass the faster of two measurements of the same ladder (a busy CPU only slows passes down);
        ``other`` alone when the ladders differ."""
        if [f for f, _ in self.points] != [f for f, _ in other.points]:
            return other
        return Timings(tuple((f, min(a, b)) for (f, a), (_, b) in zip(self.points, other.points)), other.label)
