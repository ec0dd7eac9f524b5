"""Dataset-scale attention statistics in numbers: the table of :func:`crossformer.stats.read_csv` (one row per
image × block × head) summarised per block × head, and what that summary says in sentences (NumPy only).

* :func:`summarise` → :class:`StatsSummary`: per block × head the mean over images and the spread (standard
  deviation over images) of ``entropy``, ``distance_px`` and ``dpb_share``; per block the output RMS.
* :func:`uniform_heads`: the heads whose mean entropy is at least :data:`UNIFORM` × the uniform-attention entropy.
* :func:`summary_sentences`: the numbers of the summary figure (``viz.stats_figures``) in Markdown sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .findings import UNIFORM  # one threshold for the app and the dataset summary

#: The statistics summarised per head, in the order the summary figure draws them.
STATS = ("distance_px", "entropy", "dpb_share")


@dataclass(frozen=True)
class StatsSummary:
    """Per block × head statistics over ``n_images`` images (blocks in forward order).

    Attributes:
        blocks, kinds: ``(nb,)`` names (``"s0_b1"``) and ``"sda"|"lda"``.
        stages: ``(nb,)`` int. heads: ``(nb,)`` heads per block.
        acl: ``(nb,)`` bool, or ``None`` when the CSV has no ``acl`` column.
        mean, spread: ``{stat: (nb, max_heads)}`` mean and standard deviation over images (NaN: no head).
        uniform: ``(nb,)`` entropy of uniform attention (mean ``ln`` real keys), NaN when unknown.
        rms_mean, rms_spread: ``(nb,)`` block output RMS over images.
        n_images: images in the table.
    """

    blocks: tuple[str, ...]
    kinds: tuple[str, ...]
    stages: np.ndarray
    heads: np.ndarray
    acl: np.ndarray | None
    mean: dict[str, np.ndarray]
    spread: dict[str, np.ndarray]
    uniform: np.ndarray
    rms_mean: np.ndarray
    rms_spread: np.ndarray
    n_images: int


def total_heads(s: StatsSummary) -> int:
    """Heads over all blocks of the summary."""
    return int(np.asarray(s.heads).sum())


def _block_order(name: str) -> tuple[int, int]:
    """``"s2_b1"`` → ``(2, 1)``: blocks sort in forward order (other names last)."""
    m = re.fullmatch(r"s(\d+)_b(\d+)", name)
    return (int(m.group(1)), int(m.group(2))) if m else (10**6, 0)


def summarise(columns: dict[str, np.ndarray]) -> StatsSummary:
    """Aggregate the per-row columns (``(rows,)`` arrays) into a :class:`StatsSummary`."""
    names, b_of_row = np.unique(columns["block"], return_inverse=True)
    order = sorted(range(len(names)), key=lambda i: (_block_order(str(names[i])), str(names[i])))
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    b = rank[b_of_row]                                                     # block index per row
    head = np.asarray(columns["head"], dtype=np.int64)
    nb, H = len(names), int(head.max()) + 1
    cell = b * H + head
    count = np.bincount(cell, minlength=nb * H).astype(np.float64)
    have = count > 0
    mean, spread = {}, {}
    for k in STATS:
        v = np.asarray(columns[k], dtype=np.float64)
        s1 = np.bincount(cell, v, minlength=nb * H)
        s2 = np.bincount(cell, v * v, minlength=nb * H)
        m = np.where(have, s1 / np.maximum(count, 1), np.nan)
        var = np.where(have, s2 / np.maximum(count, 1) - np.nan_to_num(m) ** 2, np.nan)
        mean[k] = m.reshape(nb, H)
        spread[k] = np.sqrt(np.clip(var, 0, None)).reshape(nb, H)
    lowest = np.full(nb, H, dtype=np.int64)
    np.minimum.at(lowest, b, head)
    first = head == lowest[b]                                              # one row per image × block
    rms = np.asarray(columns["output_rms"], dtype=np.float64)
    n_b = np.bincount(b[first], minlength=nb).astype(np.float64)
    r1 = np.bincount(b[first], rms[first], minlength=nb) / np.maximum(n_b, 1)
    r2 = np.bincount(b[first], rms[first] ** 2, minlength=nb) / np.maximum(n_b, 1)
    kind_of = {int(i): str(k) for i, k in zip(b, columns["kind"])}
    stage_of = {int(i): int(s) for i, s in zip(b, columns["stage"])}
    acl_col = np.asarray(columns.get("acl", np.full(len(b), -1)), dtype=np.int64)
    acl = None if (acl_col < 0).any() else np.bincount(b, acl_col, minlength=nb) > 0
    ue = np.asarray(columns.get("uniform_entropy", np.full(len(b), np.nan)), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        uniform = np.bincount(b, np.nan_to_num(ue, nan=0.0), minlength=nb) / np.bincount(b, minlength=nb)
    if np.isnan(ue).any():
        uniform = np.full(nb, np.nan)
    return StatsSummary(
        blocks=tuple(str(names[i]) for i in order), kinds=tuple(kind_of[i] for i in range(nb)),
        stages=np.array([stage_of[i] for i in range(nb)]), heads=have.reshape(nb, H).sum(1),
        acl=acl, mean=mean, spread=spread, uniform=uniform, rms_mean=r1,
        rms_spread=np.sqrt(np.clip(r2 - r1 ** 2, 0, None)), n_images=len(np.unique(columns["image"])))


def uniform_heads(s: StatsSummary, threshold: float = UNIFORM) -> list[tuple[str, int, float]]:
    """``(block, head, entropy / uniform)`` of the heads whose mean entropy is ≥ ``threshold`` × the
    uniform-attention entropy (empty when the CSV has no ``uniform_entropy``)."""
    out = []
    for i, name in enumerate(s.blocks):
        if not np.isfinite(s.uniform[i]) or s.uniform[i] <= 0:
            continue
        for h in range(int(s.heads[i])):
            ratio = float(s.mean["entropy"][i, h] / s.uniform[i])
            if ratio >= threshold:
                out.append((name, h, ratio))
    return out


def summary_sentences(s: StatsSummary) -> list[str]:
    """Markdown sentences with the numbers of the figure (uniform heads, reach per stage, DPB, RMS)."""
    out = []
    total = int(s.heads.sum())
    if np.isfinite(s.uniform).any():
        uni = uniform_heads(s)
        listed = ", ".join(f"{b} h{h}" for b, h, _ in uni[:8]) + (" …" if len(uni) > 8 else "")
        out.append(f"**{len(uni)} of {total} heads are uniform** over these {s.n_images} images (mean entropy ≥ "
                   f"{UNIFORM} × ln N: they average their group)" + (f": {listed}." if uni else "."))
    dist = s.mean["distance_px"]
    parts = []
    for st in np.unique(s.stages):
        rows = s.stages == st
        sda = [np.nanmean(dist[i]) for i in np.nonzero(rows)[0] if s.kinds[i] == "sda"]
        lda = [np.nanmean(dist[i]) for i in np.nonzero(rows)[0] if s.kinds[i] == "lda"]
        if sda and lda:
            parts.append(f"stage {st}: SDA {np.mean(sda):.0f} px, LDA {np.mean(lda):.0f} px")
        elif sda or lda:
            parts.append(f"stage {st}: {np.mean(sda or lda):.0f} px")
    if parts:
        out.append("**How far heads look** (mean attention distance, averaged over heads): " + "; ".join(parts) + ".")
    dpb = s.mean["dpb_share"]
    i, h = np.unravel_index(np.nanargmax(dpb), dpb.shape)
    out.append(f"**The position bias moves {np.nanmean(dpb) * 100:.1f} %** of the attention mass on average "
               f"(total variation); most in {s.blocks[i]} head {h}: {dpb[i, h] * 100:.0f} %.")
    j = int(np.argmax(s.rms_mean))
    line = (f"**Block output RMS** ranges from {s.rms_mean.min():.2f} to {s.rms_mean.max():.2f} "
            f"(largest after {s.blocks[j]})")
    if s.acl is not None and s.acl.any():
        acl = [s.blocks[k] for k in np.nonzero(s.acl)[0]]
        line += f"; ACL cooling layers after {', '.join(acl[:6])}{' …' if len(acl) > 6 else ''}"
    out.append(line + ".")
    return out
