"""Attention numbers of one block, read from its :class:`~crossformer.trace.BlockTrace` (NumPy only).

The definitions every view and statistic shares:

* :func:`softmax` (row max subtracted), :func:`entropy` ``−Σ p ln p`` in **nats**, :func:`total_variation`
  ``½ Σ |p − q|``;
* :func:`content_only_attention` ``softmax(scale·q·kᵀ + mask)`` and :func:`bias_only_attention`
  ``softmax(DPB + mask)``: the attention without the position bias, and position alone;
* :func:`member_distances_px`: distances between group members in input pixels (``block.stride`` per token);
* one query's weights over its group (:func:`query_weights`), painted on the padded token grid
  (:func:`attention_grid`), as a deviation from uniform (:func:`uniform_deviation`), the top of its colour
  scale (:func:`attention_scale_max`), a group's ``N × N`` matrix (:func:`group_matrix`) and the
  content / position / actual split of one query (:func:`attention_split`).

Per-block head statistics built from these are in :mod:`crossformer.analysis.heads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crossformer.trace import BlockTrace


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (subtracts the row max), float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def entropy(p: np.ndarray, axis: int = -1, dtype: type = np.float64) -> np.ndarray:
    """``−Σ p ln p`` (with ``0 ln 0 = 0``) along ``axis``, in nats, computed in ``dtype`` (float32 halves the
    cost where a page reruns it on every interaction)."""
    p = np.asarray(p, dtype=dtype)
    pos = p > 0
    return -(np.where(pos, p * np.log(np.where(pos, p, 1.0)), 0.0)).sum(axis=axis)


def total_variation(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """``½ Σ |p − q|`` along ``axis``."""
    return 0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum(axis=axis)


def content_only_attention(block: BlockTrace, batch: int = 0) -> np.ndarray:
    """``(nG, heads, N, N)`` softmax(scale·q·kᵀ + mask): the attention without the position bias."""
    return softmax(block.content[batch] + block.mask[:, None])


def bias_only_attention(block: BlockTrace) -> np.ndarray:
    """``(nG, heads, N, N)`` softmax(DPB bias + mask): where position alone would send the attention."""
    return softmax(block.dpb_bias[None] + block.mask[:, None])


def member_distances_px(block: BlockTrace) -> np.ndarray:
    """``(nG, N, N)`` Euclidean distance between members' token positions, in input pixels."""
    pos = block.layout.positions.astype(np.float64)                  # (nG, N, 2)
    d = np.sqrt(((pos[:, :, None, :] - pos[:, None, :, :]) ** 2).sum(-1))
    return d * block.stride


# ---- one query -----------------------------------------------------------------------------------------
def query_weights(block: BlockTrace, query: Sequence[int], head: int | None = None, batch: int = 0
                  ) -> np.ndarray:
    """``(N,)`` attention of token ``query = (h, w)`` over its group's members (head-mean if ``head`` is None)."""
    g, n = block.layout.locate(query)
    a = np.asarray(block.attention[batch, g, :, n, :], dtype=np.float64)      # (heads, N)
    return a.mean(axis=0) if head is None else a[head]


def attention_grid(block: BlockTrace, group: int, weights: np.ndarray) -> np.ndarray:
    """``(Hp, Wp)`` padded token grid with ``weights[n]`` at real member ``n``'s position, NaN elsewhere."""
    lay = block.layout
    pos = lay.positions[group]
    real = ~lay.key_padding[group]
    z = np.full(lay.padded_hw, np.nan)
    z[pos[real, 0], pos[real, 1]] = np.asarray(weights)[real]
    return z


def real_keys(block: BlockTrace, group: int) -> int:
    """Real (not padded) members of ``group``: the keys its queries attend to."""
    return int((~block.layout.key_padding[group]).sum())


def uniform_deviation(block: BlockTrace, group: int, weights: np.ndarray) -> np.ndarray:
    """``(N,)`` ``weights − 1/N_real`` on the group's real members (``N_real`` = its real keys), 0 on padded
    ones: how far attention departs from looking everywhere equally. Sums to 0 over the real keys."""
    real = ~block.layout.key_padding[group]
    w = np.asarray(weights, dtype=np.float64)
    return np.where(real, w - 1.0 / max(int(real.sum()), 1), 0.0)


def shown_weights(block: BlockTrace, query: Sequence[int], head: int | None = None, *, relative: bool = False,
                  batch: int = 0) -> np.ndarray:
    """``(N,)`` what an attention map of ``query`` paints: its weights, or their :func:`uniform_deviation`."""
    w = query_weights(block, query, head, batch)
    return uniform_deviation(block, block.layout.locate(query)[0], w) if relative else w


def scale_max(z: np.ndarray, relative: bool) -> float:
    """Top of a map's own colour scale: its largest weight (1 when all are 0), or its largest |deviation|."""
    if relative:
        v = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
        return v or 1e-6
    return float(np.nanmax(z)) or 1.0


def attention_scale_max(block: BlockTrace, query: Sequence[int], head: int | None = None, *,
                        relative: bool = False, batch: int = 0) -> float:
    """The top of an attention map's own colour scale for these arguments (the ``cmax`` of
    :func:`viz.attention_figures.query_attention_figure`): the largest of several such values is the
    ``scale_max`` that puts their maps on one scale."""
    return scale_max(shown_weights(block, query, head, relative=relative, batch=batch), relative)


def group_matrix(block: BlockTrace, group: int, head: int | None, batch: int = 0) -> np.ndarray:
    """``(N, N)`` attention of one group (row = query member, column = key member; head-mean if ``head`` is
    None); raises ``ValueError`` for a group that does not exist."""
    lay = block.layout
    if not 0 <= group < lay.num_groups:
        raise ValueError(f"group {group} out of range (0…{lay.num_groups - 1})")
    a = np.asarray(block.attention[batch, group], dtype=np.float64)           # (heads, N, N)
    return a.mean(axis=0) if head is None else a[head]


@dataclass(frozen=True, eq=False)
class AttentionSplit:
    """One query's attention with content only, position only and both (head-mean if no head was given).

    Attributes:
        distributions: ``{"content only", "position only", "actual"}`` → ``(N,)`` weights over the members.
        tv_dpb: total variation between the actual and the content-only attention (mass the DPB moves).
        tv_content: total variation between the actual and the position-only attention.
    """

    distributions: dict[str, np.ndarray]
    tv_dpb: float
    tv_content: float


def attention_split(block: BlockTrace, query: Sequence[int], head: int | None, batch: int = 0) -> AttentionSplit:
    """softmax(q·k + mask), softmax(DPB + mask) and the real attention of token ``query``, with the
    total-variation distances between them."""
    g, n = block.layout.locate(query)
    parts = {
        "content only": content_only_attention(block, batch)[g, :, n],          # (heads, N)
        "position only": bias_only_attention(block)[g, :, n],
        "actual": np.asarray(block.attention[batch, g, :, n], dtype=np.float64),
    }
    dists = {k: (v.mean(axis=0) if head is None else v[head]) for k, v in parts.items()}
    return AttentionSplit(dists, float(total_variation(dists["actual"], dists["content only"])),
                          float(total_variation(dists["actual"], dists["position only"])))
