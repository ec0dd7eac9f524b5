"""A/B comparison in numbers: the difference between two forward passes (two images, two models, two input
sizes), NumPy only.

Blocks are matched by name (``s1_b0``: same stage, same index) and heads by index; where B has no such block or
head the difference is NaN, never guessed. ``viz.compare_figures`` draws these numbers.

* :func:`head_stat_difference` — per block × head of A: normalised entropy ``H / ln N`` (0: one key takes
  everything, 1: uniform over a full group of ``N`` members) and mean attended distance in input pixels,
  for A, for B, and A − B; :func:`difference_rows` — the same as table rows.
* :func:`dpb_difference` — A's DPB table minus B's at the same group size ``G``.
* :func:`difference_summary`, :func:`largest_dpb_difference` — the numbers the compare notes state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


def head_stat_difference(stats_a: Mapping, stats_b: Mapping) -> dict:
    """A − B of the per-head diagnostics, on A's blocks × heads.

    Args:
        stats_a, stats_b: the per-block head statistics of the two traces
            (:func:`crossformer.analysis.heads.trace_head_stats`: ``entropy``, ``distance_px``: ``(blocks, max_heads)``; ``names``; ``heads``; ``max_entropy`` = ``ln N``).

    Returns:
        ``names`` (A's block names), ``heads`` (A's head counts), and ``(blocks_A, max_heads_A)`` float arrays
        ``a_entropy``, ``b_entropy`` (entropy / ln N of A and of B), ``d_entropy`` (their difference),
        ``a_distance``, ``b_distance``, ``d_distance`` (px); ``missing``: bool, True where A has the head
        but B has no block of that name or fewer heads. Blocks with ``ln N = 0`` (one-token groups) get NaN
        entropies.
    """
    names = list(stats_a["names"])
    heads_a = np.asarray(stats_a["heads"], dtype=int)
    H = int(np.asarray(stats_a["entropy"]).shape[1])
    row_b = {n: i for i, n in enumerate(stats_b["names"])}
    heads_b = np.asarray(stats_b["heads"], dtype=int)

    def norm(stats: Mapping) -> np.ndarray:
        ln_n = np.asarray(stats["max_entropy"], dtype=np.float64)[:, None]
        ent = np.asarray(stats["entropy"], dtype=np.float64)
        return np.where(ln_n > 0, ent / np.where(ln_n > 0, ln_n, 1.0), np.nan)

    ent_a, ent_b = norm(stats_a), norm(stats_b)
    out = {k: np.full((len(names), H), np.nan) for k in ("a_entropy", "b_entropy", "a_distance", "b_distance")}
    missing = np.zeros((len(names), H), dtype=bool)
    dist_a = np.asarray(stats_a["distance_px"], dtype=np.float64)
    dist_b = np.asarray(stats_b["distance_px"], dtype=np.float64)
    for i, name in enumerate(names):
        n = int(heads_a[i])
        out["a_entropy"][i, :n] = ent_a[i, :n]
        out["a_distance"][i, :n] = dist_a[i, :n]
        j = row_b.get(name)
        m = 0 if j is None else min(n, int(heads_b[j]))
        missing[i, m:n] = True
        if m:
            out["b_entropy"][i, :m] = ent_b[j, :m]
            out["b_distance"][i, :m] = dist_b[j, :m]
    out["d_entropy"] = out["a_entropy"] - out["b_entropy"]
    out["d_distance"] = out["a_distance"] - out["b_distance"]
    out.update(names=names, heads=heads_a, missing=missing)
    return out


def difference_rows(diff: Mapping) -> list[dict]:
    """The difference table, one row per (block, head) of A: for a CSV download."""
    rows = []
    for i, name in enumerate(diff["names"]):
        for h in range(int(diff["heads"][i])):
            rows.append({"block": name, "head": h, "b_has_head": not bool(diff["missing"][i, h]),
                         **{k: float(diff[k][i, h]) for k in ("a_entropy", "b_entropy", "d_entropy",
                                                              "a_distance", "b_distance", "d_distance")}})
    return rows


def dpb_difference(table_a: np.ndarray, table_b: np.ndarray, *, centred: bool = False) -> np.ndarray:
    """``((2G−1)², h)`` A − B of two DPB tables at the same ``G``, over the ``h = min(heads_A, heads_B)``
    heads both have. ``centred``: each head's table minus its mean over the offsets first (a constant
    shift of every logit moves no attention, so the centred difference is the part that matters)."""
    a = np.asarray(table_a, dtype=np.float64)
    b = np.asarray(table_b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"tables at different G: {a.shape[0]} vs {b.shape[0]} offsets")
    h = min(a.shape[1], b.shape[1])
    a, b = a[:, :h], b[:, :h]
    if centred:
        a, b = a - a.mean(axis=0, keepdims=True), b - b.mean(axis=0, keepdims=True)
    return a - b


@dataclass(frozen=True)
class HeadChange:
    """One head of one block, A against B: normalised entropies and mean distances (px) and their A − B
    (``d_entropy`` NaN: B has no such head)."""

    block: str
    head: int
    a_entropy: float
    b_entropy: float
    d_entropy: float
    a_distance: float
    b_distance: float
    d_distance: float


@dataclass(frozen=True)
class DifferenceSummary:
    """What the A/B note says: the chosen head, the head of all blocks whose focus changes most (``None``
    when no head compares), how many heads both have, their mean ``|Δ entropy|`` and A's heads without a
    counterpart in B."""

    chosen: HeadChange
    largest: HeadChange | None
    n_both: int
    mean_abs_d_entropy: float
    missing: int


def _head_change(diff: Mapping, i: int, head: int) -> HeadChange:
    return HeadChange(str(diff["names"][i]), head, *(float(diff[k][i, head]) for k in (
        "a_entropy", "b_entropy", "d_entropy", "a_distance", "b_distance", "d_distance")))


def difference_summary(diff: Mapping, block_name: str, head: int | None) -> DifferenceSummary:
    """The numbers of :func:`head_stat_difference`'s ``diff`` for block ``block_name`` and ``head``
    (``None`` or a head the block lacks: the head of that block whose entropy changes most)."""
    names = list(diff["names"])
    i = names.index(block_name)
    n = int(diff["heads"][i])
    d_ent = np.asarray(diff["d_entropy"], dtype=np.float64)
    if head is None or head >= n:
        head = int(np.argmax(np.where(np.isfinite(d_ent[i, :n]), np.abs(d_ent[i, :n]), -1.0)))
    mag = np.where(np.isfinite(d_ent), np.abs(d_ent), -1.0)
    largest = None
    if mag.size and mag.max() >= 0:
        r, c = np.unravel_index(int(np.argmax(mag)), mag.shape)
        largest = _head_change(diff, int(r), int(c))
    both = np.isfinite(d_ent)
    mean_abs = float(np.abs(d_ent[both]).mean()) if both.any() else float("nan")
    return DifferenceSummary(_head_change(diff, i, head), largest, int(both.sum()), mean_abs,
                             int(np.asarray(diff["missing"]).sum()))


def largest_dpb_difference(diff: np.ndarray, head: int) -> tuple[int, float, float]:
    """``((2G−1)², h)`` A − B of :func:`dpb_difference` → ``(offset row, its A − B, largest |A − B| of all
    heads)`` for ``head`` (a head B lacks reads head 0)."""
    d = np.asarray(diff, dtype=np.float64)
    h = head if head < d.shape[1] else 0
    r = int(np.argmax(np.abs(d[:, h])))
    return r, float(d[r, h]), float(np.abs(d).max())
