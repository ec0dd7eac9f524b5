"""One owner per shown fact: every number the app's pages state about sizes, intervals, spans and cost,
with the phrase that says what it is compared against (plain Python and NumPy; no torch, no UI).

Conventions, used by every page:

* sizes are written **height × width** (``hw_text((512, 768))`` → ``"512×768"``), also for intervals,
  spans and steps that differ per axis; equal sides may be written once (``"8"``) only for intervals;
* counts of items get thousands separators (:func:`count`), large pair counts a unit (:func:`human`),
  shares one percent format (:func:`percent`) and small floats one number format (:func:`number`);
* the cost of group attention is always stated against full self-attention **over the same blocks**
  (:func:`pair_share_text`), per head and padding included.

Group geometry comes from :class:`crossformer.geometry.GroupLayout` (``members``, ``interval``); nothing
here regroups tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from crossformer.geometry import GroupLayout


# ---- formatting -----------------------------------------------------------------------------------
def hw_text(hw: Sequence[int], unit: str = "") -> str:
    """``(H, W)`` → ``"H×W"`` (+ ``" unit"``): the one way the app writes a size."""
    h, w = (int(v) for v in hw)
    return f"{h}×{w}" + (f" {unit}" if unit else "")


def count(n: int) -> str:
    """``9834496`` → ``"9,834,496"``."""
    return f"{int(n):,}"


def human(n: float) -> str:
    """``12345678`` → ``"12.3 M"`` (three significant digits; below 1000 the number itself)."""
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:g}"


def percent(share: float) -> str:
    """A share as a percentage with two significant digits below 10 % (``0.0021`` → ``"0.21 %"``,
    ``0.016`` → ``"1.6 %"``, ``0.25`` → ``"25 %"``); ``"–"`` for NaN."""
    if share is None or not math.isfinite(share):
        return "–"
    p = 100.0 * share
    if p == 0 or abs(p) >= 10:
        return f"{p:.0f} %"
    digits = max(0, 1 - int(math.floor(math.log10(abs(p)))))
    return f"{p:.{digits}f} %"


def number(x: float, digits: int = 3) -> str:
    """One format for measured floats of any size: ``digits`` significant digits, scientific below 10⁻³ or
    from 10⁵ on (``8.90e-08``, ``1.55e-06``, ``0.0123``, ``42.1``)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


#: The same format for table columns of measured floats (printf style, as Streamlit's NumberColumn takes it):
#: ``8.9000e-08`` beside ``1.5485e-06`` and ``2.3000e+00`` — never ``0.00000154853`` beside ``8.9e-8``.
NUMBER_COLUMN_FORMAT = "%.4e"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 pass"``, ``"3 passes"`` (``many`` defaults to ``one + "s"``), with thousands separators."""
    return f"{count(n)} {one if int(n) == 1 else (many or one + 's')}"


# ---- cost of group attention ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PairShare:
    """Query–key pairs per head of some group-attention blocks against full attention in as many blocks."""

    grouped: int       # Σ nG·N² over the blocks (padded members included: computed, then masked)
    full: int          # blocks · L²
    blocks: int

    @property
    def share(self) -> float:
        return self.grouped / self.full if self.full else math.nan


def pair_share(layouts: Sequence[GroupLayout]) -> PairShare:
    """The pairs the blocks of ``layouts`` score against full attention over the same blocks."""
    grouped = sum(l.num_groups * l.group_tokens ** 2 for l in layouts)
    full = sum(l.num_tokens ** 2 for l in layouts)
    return PairShare(grouped=int(grouped), full=int(full), blocks=len(layouts))


def pair_share_text(share: PairShare) -> str:
    """``"2.55 M query–key pairs per head = 0.21 % of full attention over the same 2 blocks (1.21 G)"``."""
    blocks = "block" if share.blocks == 1 else f"{share.blocks} blocks"
    return (f"{human(share.grouped)} query–key pairs per head = {percent(share.share)} of full attention over "
            f"the same {blocks} ({human(share.full)})")


# ---- where a group lies on the image -------------------------------------------------------------------
def group_span(layout: GroupLayout, group: int, stride: int) -> tuple[int, int]:
    """``(height, width)`` in input pixels of the box around group ``group``'s real members (a token
    covers ``stride × stride`` pixels); ``(0, 0)`` for a group of padding only."""
    m = layout.members[group]
    t = m[m >= 0]
    if t.size == 0:
        return 0, 0
    W = layout.feature_hw[1]
    h, w = t // W, t % W
    return int((h.max() - h.min() + 1) * stride), int((w.max() - w.min() + 1) * stride)


def member_step(layout: GroupLayout, stride: int) -> tuple[int, int]:
    """``(dy, dx)`` pixels between neighbouring members (the interval times the token side)."""
    return int(layout.interval[0] * stride), int(layout.interval[1] * stride)


def step_text(layout: GroupLayout, stride: int) -> str:
    """``"32 px"`` or ``"76×112 px"`` (H × W) between neighbouring members."""
    dy, dx = member_step(layout, stride)
    return f"{dy} px" if dy == dx else hw_text((dy, dx), "px")


def span_sentence(layout: GroupLayout, group: int, stride: int, input_hw: Sequence[int],
                  who: str = "This") -> str:
    """What group ``group`` covers on the ``input_hw`` image, one sentence (``who``: ``"This"`` or
    ``"The query's"``)."""
    if layout.is_global:
        return " The whole map fits in one group here: this block is global attention."
    span = hw_text(group_span(layout, group, stride), "px")
    real = int((layout.members[group] >= 0).sum())
    pad = layout.group_tokens - real
    padding = f"; {pad} of its {layout.group_tokens} slots are padding" if pad else ""
    of_input = f"of the {hw_text(input_hw)} input"
    if layout.kind == "lda" and tuple(layout.interval) == (1, 1):
        return (f" With I = 1 this LDA block groups neighbours exactly as SDA does: {who.lower()} LDA group "
                f"spans {span} {of_input}{padding}.")
    if layout.kind == "lda":
        return (f" {who} LDA group spans {span} {of_input}, with members {step_text(layout, stride)} apart"
                f"{padding}.")
    return f" {who} SDA window spans {span} {of_input}{padding}."
