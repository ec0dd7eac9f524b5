"""Group geometry of CrossFormer's attention: SDA windows, LDA strided groups, padding, DPB offsets.

This module is the single source of truth for "which token sits in which group, at which member slot".
The PyTorch model gathers its groups with these index maps, the trace hands the very same arrays to
the figures, and the tests check them against the official layout (SPEC §4.2):

* SDA (short-distance attention): the (padded) map is cut into ``G × G`` windows.
  Group ``g = a·(Wp/G) + b``, member ``(r, c)`` sits at ``(a·G + r, b·G + c)``.
* LDA (long-distance attention): members are ``I`` apart. The padded map is tiled into
  ``Rh × Rw`` windows of side ``G·I``; inside each window there are ``I²`` groups.
  ``g = ((ρh·Rw + ρw)·I_h + i_h)·I_w + i_w``, member ``(r, c)`` sits at
  ``(ρh·G·I_h + r·I_h + i_h, ρw·G·I_w + c·I_w + i_w)``.
* Member index ``n = r·G + c``; tokens are row-major ``t = h·W + w`` everywhere.
* Padding is added on the bottom/right with zeros; padded keys get ``NEG_INF`` (SPEC §4.3).

NumPy only (no torch), so the NumPy reference and the figures can import it without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np

Kind = Literal["sda", "lda"]
#: When a small map becomes one SDA group of side ``max(H, W)``:
#: ``"fits"``: the map fits in one group (``max(H, W) ≤ G``; the classifier, SPEC §4, generalised to rectangles);
#: ``"short_side"``: its short side does (``min(H, W) ≤ G``; the official detection/segmentation backbone, SPEC §7).
SmallMapRule = Literal["fits", "short_side"]
SMALL_MAP_RULES: tuple[str, ...] = ("fits", "short_side")

#: The additive mask value of the official code: finite, so an all-padding group stays NaN-free.
NEG_INF: float = -1_000_000.0


def block_kind(index_in_stage: int) -> Kind:
    """SDA/LDA alternation (SPEC §4): even blocks of a stage are SDA, odd blocks LDA."""
    return "sda" if index_in_stage % 2 == 0 else "lda"


def readonly(a: np.ndarray) -> np.ndarray:
    """Mark an array read-only and return it (layouts and traces are shared between app sessions)."""
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """How one block cuts its ``H × W`` token map into groups of ``G × G`` members.

    Attributes:
        kind: effective kind, ``"sda"`` or ``"lda"`` (a small map is always one SDA group).
        configured_kind: what the block is by its position in the stage (even → SDA, odd → LDA).
        feature_hw: ``(H, W)``, the real token grid.
        group_size: ``G``, effective group side (``max(H, W)`` when the whole map fits in one group).
        interval: ``(I_h, I_w)`` stride between members; ``(1, 1)`` for SDA.
        padded_hw: ``(Hp, Wp)``, the grid after bottom/right zero padding.
        members: ``(nG, N)`` int64, real token index ``h·W + w`` of member ``n`` of group ``g``;
            ``-1`` where the member is a padded position.
        is_global: the map is small by ``small_map``'s rule, so one group covers it (global attention).
        small_map: the rule that decided :attr:`is_global` (:data:`SmallMapRule`).
    """

    kind: Kind
    configured_kind: Kind
    feature_hw: tuple[int, int]
    group_size: int
    interval: tuple[int, int]
    padded_hw: tuple[int, int]
    members: np.ndarray
    is_global: bool
    small_map: SmallMapRule = "fits"

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        """``nG``, groups per image."""
        return int(self.members.shape[0])

    @property
    def group_tokens(self) -> int:
        """``N = G²``, members per group."""
        return self.group_size * self.group_size

    @property
    def num_tokens(self) -> int:
        """``L = H·W``, real tokens."""
        return self.feature_hw[0] * self.feature_hw[1]

    @property
    def is_padded(self) -> bool:
        return self.padded_hw != self.feature_hw

    @property
    def windows(self) -> tuple[int, int]:
        """``(Rh, Rw)``: LDA tiles of side ``G·I`` (SDA: windows of side G) per axis."""
        G, (Ih, Iw), (Hp, Wp) = self.group_size, self.interval, self.padded_hw
        return Hp // (G * Ih), Wp // (G * Iw)

    # ---- index maps (all derived from ``members``) ---------------------------------------------
    def real_members(self, group: int) -> int:
        """How many of ``group``'s ``N = G²`` slots hold a real token (the rest are padding)."""
        return int((self.members[group] >= 0).sum())

    @cached_property
    def key_padding(self) -> np.ndarray:
        """``(nG, N)`` bool: member is a padded position."""
        return readonly(self.members < 0)

    @cached_property
    def slot_of_token(self) -> np.ndarray:
        """``(L,)`` int64: position ``g·N + n`` of each real token in the grouped order."""
        flat = self.members.reshape(-1)
        slots = np.empty(self.num_tokens, dtype=np.int64)
        real = flat >= 0
        slots[flat[real]] = np.nonzero(real)[0]
        return readonly(slots)

    @cached_property
    def gather_index(self) -> np.ndarray:
        """``(nG·N,)`` int64: token to read for each slot, ``L`` (an appended zero row) for padding."""
        flat = self.members.reshape(-1).copy()
        flat[flat < 0] = self.num_tokens
        return readonly(flat)

    @cached_property
    def positions(self) -> np.ndarray:
        """``(nG, N, 2)`` int64: ``(h, w)`` on the padded grid of every member (padding included)."""
        return readonly(_member_positions(self.kind, self.group_size, self.interval, self.padded_hw))

    @cached_property
    def group_map(self) -> np.ndarray:
        """``(Hp, Wp)`` int64: group id of every position of the padded grid."""
        return self._scatter_to_grid(np.repeat(np.arange(self.num_groups), self.group_tokens))

    @cached_property
    def member_map(self) -> np.ndarray:
        """``(Hp, Wp)`` int64: member index ``n = r·G + c`` of every position of the padded grid."""
        return self._scatter_to_grid(np.tile(np.arange(self.group_tokens), self.num_groups))

    @cached_property
    def padding_map(self) -> np.ndarray:
        """``(Hp, Wp)`` bool: position is padding."""
        H, W = self.feature_hw
        grid = np.ones(self.padded_hw, dtype=bool)
        grid[:H, :W] = False
        return readonly(grid)

    @cached_property
    def attn_mask(self) -> np.ndarray:
        """``(nG, N, N)`` float32 additive mask: ``NEG_INF`` in every padded *key* column, else 0."""
        cols = np.where(self.key_padding, np.float32(NEG_INF), np.float32(0.0))
        return readonly(np.ascontiguousarray(np.broadcast_to(cols[:, None, :], (*cols.shape, cols.shape[1]))))

    @cached_property
    def relative_index(self) -> np.ndarray:
        """``(N, N)`` int64 index into the DPB table for every (query member, key member) pair."""
        return relative_position_index(self.group_size)

    def _scatter_to_grid(self, values: np.ndarray) -> np.ndarray:
        grid = np.empty(self.padded_hw, dtype=np.int64)
        pos = self.positions.reshape(-1, 2)
        grid[pos[:, 0], pos[:, 1]] = values
        return readonly(grid)

    @property
    def interval_text(self) -> str:
        """The interval as people write it: ``"8"``, or ``"8×4"`` when the two axes differ (v1 rule)."""
        ih, iw = self.interval
        return f"{ih}" if ih == iw else f"{ih}×{iw}"

    def locate(self, token: tuple[int, int]) -> tuple[int, int]:
        """``(group, member)`` of the real token ``(h, w)``; ``ValueError`` outside the feature map."""
        h, w = int(token[0]), int(token[1])
        H, W = self.feature_hw
        if not (0 <= h < H and 0 <= w < W):
            raise ValueError(f"token {(h, w)} is outside the {H}×{W} token grid")
        group, member = divmod(int(self.slot_of_token[h * W + w]), self.group_tokens)
        return group, member

    def describe(self) -> str:
        """One line for titles and logs, e.g. ``LDA  G=7  I=8  56×56 → 56×56  64 groups``."""
        H, W = self.feature_hw
        Hp, Wp = self.padded_hw
        i_txt = f"I={self.interval_text}"
        note = ""
        if self.is_global:
            note = ("  (one global group)" if self.small_map == "fits"
                    else "  (one global group: short side ≤ G, the backbone's run-time rule)")
        return (f"{self.kind.upper()}  G={self.group_size}  {i_txt}  {H}×{W} → {Hp}×{Wp}  "
                f"{self.num_groups} groups{note}")


# ---- construction ----------------------------------------------------------------------------
def _member_positions(kind: Kind, G: int, interval: tuple[int, int], padded_hw: tuple[int, int]) -> np.ndarray:
    """``(nG, N, 2)`` padded-grid coordinates of every member, in group-major, member-minor order."""
    Hp, Wp = padded_hw
    hh, ww = np.meshgrid(np.arange(Hp), np.arange(Wp), indexing="ij")  # (Hp, Wp) each
    grid = np.stack([hh, ww], axis=-1)                                    # (Hp, Wp, 2)
    if kind == "sda":
        # (a, r, b, c) -> (a, b, r, c)
        g = grid.reshape(Hp // G, G, Wp // G, G, 2).transpose(0, 2, 1, 3, 4)
    else:
        Ih, Iw = interval
        Rh, Rw = Hp // (G * Ih), Wp // (G * Iw)
        # (ρh, r, ih, ρw, c, iw) -> (ρh, ρw, ih, iw, r, c)
        g = grid.reshape(Rh, G, Ih, Rw, G, Iw, 2).transpose(0, 3, 2, 5, 1, 4, 6)
    return g.reshape(-1, G * G, 2)


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


@lru_cache(maxsize=512)
def plan_layout(configured_kind: Kind, feature_hw: tuple[int, int], group_size: int,
                interval: int | None, small_map: SmallMapRule = "fits") -> GroupLayout:
    """The grouping a block uses on an ``H × W`` map.

    Args:
        configured_kind: ``"sda"`` or ``"lda"`` (block position in its stage).
        feature_hw: ``(H, W)`` of the token map.
        group_size: configured ``G``.
        interval: configured LDA ``I`` (v2 code), or ``None`` for the v1 rule ``I = ⌈H/G⌉`` per axis,
            under which one LDA group spans the whole map.
        small_map: when a small map becomes one global group (:data:`SmallMapRule`): ``"fits"``
            (classifier) or ``"short_side"`` (official detection/segmentation backbone).

    Rules (SPEC §4, §4.2, §4.3, §7): a small map becomes one SDA group of side ``max(H, W)`` — under
    ``"fits"`` when it is not larger than ``G`` in both sides (at square sizes the official classifier's
    ``min(H, W) ≤ G`` rule), under ``"short_side"`` when ``min(H, W) ≤ G`` (the short side is zero-padded
    up to ``max(H, W)`` and masked); otherwise SDA pads to multiples of ``G`` and LDA to multiples of ``G·I``.
    The rule is applied per call, from the map this call sees: nothing about it is remembered.
    """
    if configured_kind not in ("sda", "lda"):
        raise ValueError(f"kind must be 'sda' or 'lda', got {configured_kind!r}")
    H, W = int(feature_hw[0]), int(feature_hw[1])
    if H < 1 or W < 1:
        raise ValueError(f"feature map must be at least 1×1, got {H}×{W}")
    if group_size < 1:
        raise ValueError(f"group size must be ≥ 1, got {group_size}")
    if small_map not in SMALL_MAP_RULES:
        raise ValueError(f"small_map must be one of {SMALL_MAP_RULES}, got {small_map!r}")
    kind: Kind = configured_kind
    G = int(group_size)
    is_global = (max(H, W) if small_map == "fits" else min(H, W)) <= G
    if is_global:
        kind, G = "sda", max(H, W)
    if kind == "sda":
        Ih = Iw = 1
        Hp, Wp = _round_up(H, G), _round_up(W, G)
    else:
        if interval is None:  # v1: the stride follows the map, one group spans it
            Ih, Iw = math.ceil(H / G), math.ceil(W / G)
        else:
            if interval < 1:
                raise ValueError(f"interval must be ≥ 1, got {interval}")
            Ih = Iw = int(interval)
        Hp, Wp = _round_up(H, G * Ih), _round_up(W, G * Iw)
    token = np.full((Hp, Wp), -1, dtype=np.int64)
    token[:H, :W] = np.arange(H * W).reshape(H, W)
    pos = _member_positions(kind, G, (Ih, Iw), (Hp, Wp))      # (nG, N, 2)
    members = token[pos[..., 0], pos[..., 1]]                  # (nG, N)
    return GroupLayout(kind=kind, configured_kind=configured_kind, feature_hw=(H, W), group_size=G,
                       interval=(Ih, Iw), padded_hw=(Hp, Wp), members=readonly(members),
                       is_global=is_global, small_map=small_map)


# ---- dynamic position bias geometry ------------------------------------------------------------
@lru_cache(maxsize=64)
def dpb_offsets(group_size: int) -> np.ndarray:
    """The mother set of offsets ``(Δh, Δw) ∈ [−(G−1), G−1]²``: ``((2G−1)², 2)`` float32, Δh-major."""
    G = group_size
    d = np.arange(1 - G, G, dtype=np.float32)
    dh, dw = np.meshgrid(d, d, indexing="ij")
    return readonly(np.stack([dh.reshape(-1), dw.reshape(-1)], axis=1))


@lru_cache(maxsize=64)
def relative_position_index(group_size: int) -> np.ndarray:
    """``(G², G²)`` int64: ``(r_q − r_k + G − 1)·(2G − 1) + (c_q − c_k + G − 1)`` (SPEC §4.4)."""
    G = group_size
    r, c = np.divmod(np.arange(G * G), G)
    dr = r[:, None] - r[None, :] + G - 1
    dc = c[:, None] - c[None, :] + G - 1
    return readonly((dr * (2 * G - 1) + dc).astype(np.int64))


@dataclass(frozen=True)
class InputPadding:
    """Zero padding added on the bottom/right of an input so every stage map is even (mmdet's ``Pad``).

    Attributes:
        input_hw: ``(H, W)`` before padding.
        padded_hw: ``(Hp, Wp)``, multiples of ``divisor``.
        divisor: the multiple (32 for four stages: the CEL stride 4 times three merges of stride 2).
    """

    input_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    divisor: int

    @property
    def bottom(self) -> int:
        return self.padded_hw[0] - self.input_hw[0]

    @property
    def right(self) -> int:
        return self.padded_hw[1] - self.input_hw[1]

    @property
    def is_padded(self) -> bool:
        return self.padded_hw != self.input_hw

    def describe(self) -> str:
        """``"padded 800×1333 → 800×1344 (bottom 0, right 11 px of zeros, to a multiple of 32)"``."""
        (H, W), (Hp, Wp) = self.input_hw, self.padded_hw
        if not self.is_padded:
            return f"{H}×{W}: no padding needed (a multiple of {self.divisor})"
        return (f"padded {H}×{W} → {Hp}×{Wp} (bottom {self.bottom}, right {self.right} px of zeros, "
                f"to a multiple of {self.divisor})")


def plan_input_padding(input_hw: tuple[int, int], divisor: int = 32) -> InputPadding:
    """The padding mmdet's ``Pad(size_divisor=32)`` adds: each side rounded up to a multiple of ``divisor``."""
    if divisor < 1:
        raise ValueError(f"divisor must be ≥ 1, got {divisor}")
    H, W = int(input_hw[0]), int(input_hw[1])
    if H < 1 or W < 1:
        raise ValueError(f"input must be at least 1×1 pixels, got {H}×{W}")
    return InputPadding((H, W), (_round_up(H, divisor), _round_up(W, divisor)), int(divisor))


def stage_hw(input_hw: tuple[int, int], num_stages: int = 4, stride: int = 4) -> list[tuple[int, int]]:
    """Token grid of every stage: ``⌊H/4⌋`` after the CEL, then ``⌊·/2⌋`` per merge (as the convs give)."""
    h, w = input_hw[0] // stride, input_hw[1] // stride
    out = [(h, w)]
    for _ in range(num_stages - 1):
        h, w = h // 2, w // 2
        out.append((h, w))
    return out
