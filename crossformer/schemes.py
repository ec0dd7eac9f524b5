"""Which keys a query scores, and what it can have heard of, under five attention schemes (NumPy only).

Every scheme here splits the real tokens of an ``H × W`` map into classes of tokens that see each other
(a partition), so one helper, :func:`partition`, answers everything: the visible keys of a query are its
class, and the reach through several blocks is the union of the classes touched on the way back.

Schemes (``scheme`` names and their parameters):

* ``"full"`` — ViT (Dosovitskiy et al., ICLR 2021): every query scores every key. No parameters.
* ``"sda"`` — CrossFormer short-distance attention (Wang et al., ICLR 2022; CrossFormer++, TPAMI 2023):
  ``G × G`` windows. ``group_size`` (G).
* ``"lda"`` — CrossFormer long-distance attention: members ``I`` apart. ``group_size`` (G), ``interval``
  (``None``: the v1 rule ``I = ⌈H/G⌉`` per axis; an int: the v2 explicit ``I``). Both CrossFormer schemes
  take their groups from :func:`crossformer.geometry.plan_layout`, exactly as ``CrossFormerBlock.layout``
  does (padding and the small-map rule included).
* ``"swin"`` / ``"swin_shifted"`` — Swin Transformer (Liu et al., ICCV 2021): ``window × window`` windows
  (W-MSA); the shifted block (SW-MSA) rolls the padded map by ``−⌊window/2⌋`` and masks key regions that
  the roll brought together, as the official attention mask does. ``window`` (M). As in the official
  code, a map with ``min(H, W) ≤ M`` uses ``M = min(H, W)`` and no shift; otherwise the map is padded
  bottom/right to multiples of ``M``.
* ``"pvt"`` — Pyramid Vision Transformer (Wang et al., ICCV 2021) spatial-reduction attention: keys are
  ``R × R``-pooled, so every query sees every region, coarsely. ``reduction`` (R). Counted on
  ``⌈H/R⌉ × ⌈W/R⌉`` pooled keys (the map padded to multiples of ``R``).

Attention only: MLPs, convolutions (CrossFormer++'s ACL, PVT's patch embedding) and the cross-scale
embedding layers are left out, so "reach" is the receptive field of the attention blocks alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .geometry import plan_layout

HW = tuple[int, int]
Block = tuple[str, dict[str, Any]]

SCHEMES: tuple[str, ...] = ("full", "sda", "lda", "swin", "swin_shifted", "pvt")

#: Swin-T/S/B window at 224 px (Liu et al. 2021).
SWIN_WINDOW = 7
#: PVT spatial-reduction ratio per stage (Wang et al. 2021, all PVT variants).
PVT_REDUCTION: tuple[int, ...] = (8, 4, 2, 1)
#: CrossFormer (ICLR 2022, v1 code): G = 7 in every stage, LDA interval implicit.
CROSSFORMER_GROUP: tuple[int, ...] = (7, 7, 7, 7)
#: CrossFormer++ (TPAMI 2023, v2 code): progressive group size and explicit interval per stage.
CROSSFORMER_PP_GROUP: tuple[int, ...] = (4, 4, 14, 7)
CROSSFORMER_PP_INTERVAL: tuple[int, ...] = (4, 2, 1, 1)


# ---- Swin geometry ---------------------------------------------------------------------------------
def swin_window(hw: HW, window: int) -> tuple[int, int]:
    """``(M, shift)`` a Swin block really uses on an ``H × W`` map (official: ``min(H, W) ≤ M`` → ``M =
    min(H, W)``, shift 0; else shift ``⌊M/2⌋``)."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    m = min(int(hw[0]), int(hw[1]))
    if m <= window:
        return m, 0
    return int(window), int(window) // 2


def _swin_labels(hw: HW, window: int, shifted: bool) -> np.ndarray:
    """``(H, W)`` int64: Swin window id (× 9 + region id when shifted) of every real token."""
    H, W = hw
    M, shift = swin_window(hw, window)
    shift = shift if shifted else 0
    Hp, Wp = _round_up(H, M), _round_up(W, M)
    # position of each original token in the rolled map: x'[i] = x[(i + shift) mod Hp]  →  i = h − shift
    rh = (np.arange(H) - shift) % Hp                                       # (H,)
    rw = (np.arange(W) - shift) % Wp                                       # (W,)
    win = (rh[:, None] // M) * (Wp // M) + (rw[None, :] // M)             # (H, W)
    if shift == 0:
        return win.astype(np.int64)

    def region(r: np.ndarray, n: int) -> np.ndarray:   # official slices (0, −M), (−M, −shift), (−shift, None)
        return np.where(r < n - M, 0, np.where(r < n - shift, 1, 2))

    reg = region(rh, Hp)[:, None] * 3 + region(rw, Wp)[None, :]           # (H, W)
    return (win * 9 + reg).astype(np.int64)


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


# ---- one block -------------------------------------------------------------------------------------
def _check_hw(hw: Sequence[int]) -> HW:
    H, W = int(hw[0]), int(hw[1])
    if H < 1 or W < 1:
        raise ValueError(f"token map must be at least 1×1, got {H}×{W}")
    return H, W


def partition(scheme: str, hw: Sequence[int], **params: Any) -> np.ndarray:
    """``(H, W)`` int64 class label of every real token: a query scores exactly the keys of its class.

    ``"full"`` and ``"pvt"`` put every token in one class (PVT through pooled keys); ``"sda"``/``"lda"``
    use the group id of :func:`crossformer.geometry.plan_layout`; Swin the (shifted) window and region.
    """
    H, W = _check_hw(hw)
    if scheme in ("full", "pvt"):
        if scheme == "pvt" and int(params.get("reduction", 1)) < 1:
            raise ValueError("reduction must be ≥ 1")
        return np.zeros((H, W), dtype=np.int64)
    if scheme in ("sda", "lda"):
        layout = plan_layout(scheme, (H, W), int(params["group_size"]), _interval(params))
        return np.asarray(layout.group_map[:H, :W], dtype=np.int64)
    if scheme in ("swin", "swin_shifted"):
        return _swin_labels((H, W), int(params.get("window", SWIN_WINDOW)), scheme == "swin_shifted")
    raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")


def _interval(params: dict[str, Any]) -> int | None:
    i = params.get("interval")
    return None if i is None else int(i)


def visible_keys(scheme: str, hw: Sequence[int], token: Sequence[int], **params: Any) -> np.ndarray:
    """``(H, W)`` bool: the real tokens whose keys the query ``token = (h, w)`` scores in one block."""
    labels = partition(scheme, hw, **params)
    h, w = int(token[0]), int(token[1])
    if not (0 <= h < labels.shape[0] and 0 <= w < labels.shape[1]):
        raise ValueError(f"token {(h, w)} is outside the {labels.shape[0]}×{labels.shape[1]} map")
    return labels == labels[h, w]


def pair_count(scheme: str, hw: Sequence[int], **params: Any) -> int:
    """Query–key scores one head computes in one block, padding included (computed, then masked).

    full ``(HW)²``; SDA/LDA ``Hp·Wp·G²`` (the block's padded map and group side); Swin ``Hp·Wp·M²``
    (map padded to multiples of the effective ``M``; the shift mask removes no computation); PVT
    ``HW·⌈H/R⌉·⌈W/R⌉``.
    """
    H, W = _check_hw(hw)
    if scheme == "full":
        return (H * W) ** 2
    if scheme in ("sda", "lda"):
        layout = plan_layout(scheme, (H, W), int(params["group_size"]), _interval(params))
        Hp, Wp = layout.padded_hw
        return Hp * Wp * layout.group_tokens
    if scheme in ("swin", "swin_shifted"):
        M, _ = swin_window((H, W), int(params.get("window", SWIN_WINDOW)))
        return _round_up(H, M) * _round_up(W, M) * M * M
    if scheme == "pvt":
        R = int(params.get("reduction", 1))
        if R < 1:
            raise ValueError("reduction must be ≥ 1")
        return H * W * math.ceil(H / R) * math.ceil(W / R)
    raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")


# ---- several blocks --------------------------------------------------------------------------------
def reach(blocks: Sequence[Block], hw: Sequence[int], token: Sequence[int]) -> np.ndarray:
    """``(H, W)`` bool: tokens whose information can reach ``token`` through ``blocks`` (first → last).

    Walks backwards: the set starts as ``{token}``; each block, last first, replaces it by every token
    visible to any member (the union of the classes it touches). ``O(len(blocks)·H·W)``.
    """
    H, W = _check_hw(hw)
    h, w = int(token[0]), int(token[1])
    if not (0 <= h < H and 0 <= w < W):
        raise ValueError(f"token {(h, w)} is outside the {H}×{W} map")
    seen = np.zeros((H, W), dtype=bool)
    seen[h, w] = True
    for scheme, params in reversed(list(blocks)):
        labels = partition(scheme, (H, W), **params)
        seen = np.isin(labels, np.unique(labels[seen]))
    return seen


# ---- the architectures the page compares -------------------------------------------------------------
@dataclass(frozen=True)
class SchemeSpec:
    """One attention block of a published architecture at one stage."""

    short: str                 # "Swin SW": a column name that does not change with the parameters
    label: str                 # "Swin SW-MSA (M=7)"
    scheme: str                # a name of :data:`SCHEMES`
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def block(self) -> Block:
        return self.scheme, dict(self.params)


@dataclass(frozen=True)
class Settings:
    """Parameters of the compared schemes at one stage (defaults: the papers')."""

    swin_window: int = SWIN_WINDOW
    pvt_reduction: int = PVT_REDUCTION[0]
    crossformer_group: int = CROSSFORMER_GROUP[0]
    pp_group: int = CROSSFORMER_PP_GROUP[0]
    pp_interval: int = CROSSFORMER_PP_INTERVAL[0]

    @classmethod
    def for_stage(cls, stage: int, **overrides: Any) -> "Settings":
        s = min(max(int(stage), 0), 3)
        base = dict(pvt_reduction=PVT_REDUCTION[s], crossformer_group=CROSSFORMER_GROUP[s],
                    pp_group=CROSSFORMER_PP_GROUP[s], pp_interval=CROSSFORMER_PP_INTERVAL[s])
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def panel_specs(settings: Settings) -> list[SchemeSpec]:
    """The blocks compared one by one: ViT, Swin W/SW, PVT, CrossFormer SDA/LDA, CrossFormer++ SDA/LDA."""
    s = settings
    return [
        SchemeSpec("ViT", "ViT (full)", "full"),
        SchemeSpec("Swin W", f"Swin W-MSA (M={s.swin_window})", "swin", {"window": s.swin_window}),
        SchemeSpec("Swin SW", f"Swin SW-MSA (M={s.swin_window})", "swin_shifted", {"window": s.swin_window}),
        SchemeSpec("PVT", f"PVT SRA (R={s.pvt_reduction})", "pvt", {"reduction": s.pvt_reduction}),
        SchemeSpec("CrossFormer SDA", f"CrossFormer SDA (G={s.crossformer_group})", "sda",
                   {"group_size": s.crossformer_group}),
        SchemeSpec("CrossFormer LDA", f"CrossFormer LDA (G={s.crossformer_group}, I=⌈H/G⌉)", "lda",
                   {"group_size": s.crossformer_group, "interval": None}),
        SchemeSpec("CrossFormer++ SDA", f"CrossFormer++ SDA (G={s.pp_group})", "sda", {"group_size": s.pp_group}),
        SchemeSpec("CrossFormer++ LDA", f"CrossFormer++ LDA (G={s.pp_group}, I={s.pp_interval})", "lda",
                   {"group_size": s.pp_group, "interval": s.pp_interval}),
    ]


def architectures(settings: Settings) -> dict[str, tuple[SchemeSpec, ...]]:
    """Architecture name → its repeating cycle of blocks (ViT/PVT one block; Swin W, SW; CrossFormer
    SDA, LDA)."""
    p = panel_specs(settings)
    return {"ViT": (p[0],), "Swin": (p[1], p[2]), "PVT": (p[3],), "CrossFormer": (p[4], p[5]),
            "CrossFormer++": (p[6], p[7])}


def stack(cycle: Sequence[SchemeSpec], depth: int) -> list[Block]:
    """The first ``depth`` blocks of a stage that repeats ``cycle`` (``[SDA, LDA]`` → SDA, LDA, SDA …)."""
    return [cycle[i % len(cycle)].block for i in range(depth)]


@dataclass(frozen=True, eq=False)
class ReachGrid:
    """Which tokens can have informed one query, per architecture and number of blocks.

    Attributes:
        architectures: row names (the keys of :func:`architectures`).
        depths: numbers of blocks, one per column.
        masks: ``masks[a][d]`` ``(H, W)`` bool, :func:`reach` through the first ``depths[d]`` blocks of
            architecture ``a``.
        counts: ``(len(architectures), len(depths))`` int64, the tokens each mask holds.
    """

    architectures: tuple[str, ...]
    depths: tuple[int, ...]
    masks: tuple[tuple[np.ndarray, ...], ...]
    counts: np.ndarray

    def count(self, architecture: str, depth: int) -> int:
        """Tokens that reach the query after ``depth`` blocks of ``architecture``."""
        return int(self.counts[self.architectures.index(architecture), self.depths.index(depth)])


def reach_grid(cycles: Mapping[str, Sequence[SchemeSpec]], depths: Sequence[int], hw: Sequence[int],
               token: Sequence[int]) -> ReachGrid:
    """:func:`reach` of ``token`` on an ``hw`` map for each architecture's repeating cycle (as from
    :func:`architectures`) after each of ``depths`` blocks."""
    masks = tuple(tuple(reach(stack(cycle, int(d)), hw, token) for d in depths) for cycle in cycles.values())
    counts = np.array([[int(m.sum()) for m in row] for row in masks], dtype=np.int64).reshape(len(masks), len(depths))
    return ReachGrid(architectures=tuple(cycles), depths=tuple(int(d) for d in depths), masks=masks, counts=counts)


def cost_curves(sizes_px: Sequence[int], settings: Settings, stride: int = 4) -> dict[str, np.ndarray]:
    """Pair count per block at stage 0 of square ``s × s`` images (``s // stride`` tokens per side).

    Returns label → ``(len(sizes_px),)`` int64; one entry per :func:`panel_specs` block except Swin SW (same
    cost as W).
    """
    out: dict[str, np.ndarray] = {}
    for spec in panel_specs(settings):
        if spec.scheme == "swin_shifted":
            continue
        out[spec.label] = np.array([pair_count(spec.scheme, (s // stride, s // stride), **spec.params)
                                    for s in sizes_px], dtype=np.int64)
    return out


def equal_area_side(hw: Sequence[int]) -> int:
    """The side in pixels of the square image with the area of an ``H × W`` one (rounded): where an image of that
    size sits on the square-image cost curves of :func:`cost_curves`."""
    return int(round((int(hw[0]) * int(hw[1])) ** 0.5))


def pair_table(stage_hws: Sequence[Sequence[int]], **overrides: Any) -> list[dict[str, Any]]:
    """One row per stage: its token grid and the pair count of one block of every scheme (the papers'
    per-stage parameters, ``overrides`` as in :meth:`Settings.for_stage`)."""
    rows: list[dict[str, Any]] = []
    for stage, hw in enumerate(stage_hws):
        H, W = int(hw[0]), int(hw[1])
        row: dict[str, Any] = {"stage": stage, "tokens": f"{H}×{W}"}
        for spec in panel_specs(Settings.for_stage(stage, **overrides)):
            row[spec.short] = pair_count(spec.scheme, (H, W), **spec.params)
        rows.append(row)
    return rows
