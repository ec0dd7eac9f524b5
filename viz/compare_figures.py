"""A/B comparison: the difference between two forward passes (two images, two models, two input sizes).

Pure builders, arrays in, figures out. Blocks are matched by name (``s1_b0``: same stage, same index) and
heads by index; where B has no such block or head the difference is NaN (drawn empty), never guessed.

* :func:`head_stat_difference` — per block × head of A: normalised entropy ``H / ln N`` (0: one key takes
  everything, 1: uniform over a full group of ``N`` members) and mean attended distance in input pixels,
  for A, for B, and A − B.
* :func:`dpb_difference` — A's DPB table minus B's at the same group size ``G``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style
from .dpb_figures import dpb_heatmap_figure

PANELS = (
    ("d_entropy", "Δ entropy / ln N (A − B)"),
    ("d_distance", "Δ mean distance, px (A − B)"),
)


def symmetric_span(values: np.ndarray) -> float:
    """Half-range of a diverging colour scale centred at 0: ``max |finite value|`` (1 when all are 0/NaN)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.abs(v[np.isfinite(v)])
    span = float(finite.max()) if finite.size else 0.0
    return span if span > 0 else 1.0


def head_stat_difference(stats_a: Mapping, stats_b: Mapping) -> dict:
    """A − B of the per-head diagnostics, on A's blocks × heads.

    Args:
        stats_a, stats_b: :func:`viz.diagnostics.block_head_stats` of the two traces (``entropy``,
            ``distance_px``: ``(blocks, max_heads)``; ``names``; ``heads``; ``max_entropy`` = ``ln N``).

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


def difference_figure(diff: Mapping, *, title: str | None = None, label_a: str = "A",
                      label_b: str = "B") -> go.Figure:
    """Two diverging blocks × heads heat maps: entropy / ln N change and mean-distance change, A − B.

    Traces ``"d_entropy"`` and ``"d_distance"``: ``z = diff[key]`` (rows = A's blocks in trace order, columns
    = heads; NaN where A has no such head or B lacks the block/head), each on its own symmetric scale
    ``[−m, m]`` with ``m = max |z|`` (red: larger on A, blue: larger on B); trace ``"B lacks"``: ``×`` on the
    cells where only A has the head.
    """
    names = list(diff["names"])
    nb, H = np.asarray(diff["d_entropy"]).shape
    heads = np.arange(H)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.12,
                        subplot_titles=[t for _, t in PANELS])
    for col, (key, label) in enumerate(PANELS, start=1):
        z = np.asarray(diff[key], dtype=np.float64)
        span = symmetric_span(z)
        src = "entropy" if key == "d_entropy" else "distance"
        custom = np.stack([np.asarray(diff[f"a_{src}"]), np.asarray(diff[f"b_{src}"])], axis=-1)
        fmt = ".3f" if key == "d_entropy" else ".1f"
        fig.add_trace(go.Heatmap(
            z=z, x=heads, y=names, name=key, colorscale=style.SIGNED, zmid=0.0, zmin=-span, zmax=span,
            customdata=custom, hoverongaps=False, xgap=1, ygap=1,
            colorbar=style.panel_colorbar(fig, 1, col, "A − B", offset=0.16),
            hovertemplate=(f"%{{y}} · head %{{x}}<br>{label_a}: %{{customdata[0]:{fmt}}} · {label_b}: "
                           f"%{{customdata[1]:{fmt}}}<br>A − B: %{{z:+{fmt}}}<extra></extra>")), row=1, col=col)
        miss = np.asarray(diff["missing"], dtype=bool)
        if miss.any():
            r, c = np.nonzero(miss)
            fig.add_trace(go.Scatter(x=heads[c], y=[names[i] for i in r], mode="markers", name="B lacks",
                                     showlegend=False, marker=dict(symbol="x-thin", size=10,
                                                                   line=dict(width=1.5, color="#777")),
                                     hovertemplate="%{y} · head %{x}: B has no such head<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text="head", dtick=1 if H <= 16 else 4, row=1, col=col, showgrid=False,
                         zeroline=False)
    fig.update_yaxes(autorange="reversed", showgrid=False, type="category")
    fig.update_yaxes(title_text="block", row=1, col=1)
    style.apply_layout(fig, title or f"What changes from {label_b} to {label_a}: every block and head",
                       "red: larger on A, blue: larger on B · entropy / ln N: 0 = one key, 1 = uniform over "
                       "a full group · × : B has no such block or head", width=1100,
                       height=max(420, 28 * nb + 300), legend=False)
    fig.update_layout(margin=dict(b=130))
    return fig


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


def dpb_difference_figure(diff: np.ndarray, group_size: int, *, title: str | None = None,
                          heads: Sequence[int] | None = None) -> go.Figure:
    """One (Δy, Δx) heat map of A − B per head, on one symmetric diverging scale (red: A's bias higher).

    Traces ``"head h"`` with ``z = table_grid(diff, G, h)`` (see :func:`viz.dpb_figures.dpb_heatmap_figure`,
    which draws them; the colour axis is ``[−m, m]``, ``m = max |diff|``).
    """
    fig = dpb_heatmap_figure(diff, group_size, heads, centred=False,
                             title=title or f"DPB difference A − B · G={group_size}")
    span = symmetric_span(diff)
    fig.update_layout(coloraxis=dict(cmin=-span, cmax=span, cmid=0, colorbar=style.colorbar("A − B")),
                      title_subtitle_text="A's bias minus B's at each offset (Δy, Δx) = query − key · red: A "
                                          "favours the offset more · one symmetric scale for all heads")
    return fig
