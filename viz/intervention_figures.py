"""Figures of interventions: the blocks × heads map of a head-importance scan
(:func:`crossformer.interventions.head_importance`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from . import style


def head_importance_figure(delta: np.ndarray, names: Sequence[str], heads: Sequence[int], *,
                           title: str | None = None, value_label: str = "Δ logit",
                           subtitle: str | None = None) -> go.Figure:
    """Blocks × heads heat map of the change in the followed class when one head is ablated.

    Args:
        delta: ``(blocks, max_heads)`` edited − base (``head_importance(...)["delta_logit"]``); cells beyond a
            block's ``heads`` are drawn empty (NaN).
        names: block names, one per row (``"s2_b1"``).
        heads: number of heads of each block.

    Trace ``"importance"``: ``z[i, h]`` = ``delta[i, h]`` (NaN where block ``i`` has fewer heads), diverging
    colour scale centred at 0 (blue: the class loses, red: it gains); rows in block order, top to bottom.
    """
    z = np.array(delta, dtype=np.float64, copy=True)
    if z.ndim != 2 or z.shape[0] != len(names) or len(heads) != len(names):
        raise ValueError(f"delta {z.shape} does not match {len(names)} block names / {len(heads)} head counts")
    for i, n in enumerate(heads):
        z[i, int(n):] = np.nan
    finite = z[np.isfinite(z)]
    span = float(np.abs(finite).max()) if finite.size else 1.0
    span = span or 1.0
    cols = np.arange(z.shape[1])
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=list(names), name="importance", colorscale=style.SIGNED, zmid=0.0, zmin=-span, zmax=span,
        hoverongaps=False, xgap=1, ygap=1, colorbar=style.colorbar(value_label),
        hovertemplate=f"block %{{y}} · head %{{x}}<br>{value_label}: %{{z:+.3f}}<extra></extra>"))
    fig.update_xaxes(title_text="head", dtick=1 if z.shape[1] <= 16 else 4, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text="block", autorange="reversed", showgrid=False, type="category")
    style.apply_layout(fig, title or "Head importance",
                       subtitle or "each cell: the change when that one head alone is ablated · blue: the class "
                       "loses, red: it gains · empty: the block has fewer heads",
                       width=max(520, 60 * z.shape[1] + 260), height=max(360, 28 * len(names) + 200),
                       legend=False)
    return fig


def with_click_targets(fig: go.Figure, delta: np.ndarray, names: Sequence[str], heads: Sequence[int],
                       value_label: str = "Δ logit") -> go.Figure:
    """``fig`` (a :func:`head_importance_figure`) plus an invisible square marker on every real cell, so that a
    click selects it (plotly heat maps emit no point selections; scatter points do).

    Trace ``"cells"``: ``x`` = head, ``y`` = block name, one point per (block, head) the block has, in row-major
    order; ``customdata`` = ``(row, head, delta)``. Returns a new figure; ``fig`` is not changed.
    """
    z = np.asarray(delta, dtype=np.float64)
    rows = [(i, h) for i, n in enumerate(heads) for h in range(int(n))]
    out = go.Figure(fig)
    out.add_trace(go.Scatter(
        x=[h for _, h in rows], y=[names[i] for i, _ in rows], mode="markers", name="cells", showlegend=False,
        customdata=[(i, h, float(z[i, h])) for i, h in rows],
        marker=dict(symbol="square", size=22, color="rgba(0,0,0,0.01)", line=dict(width=0)),
        selected=dict(marker=dict(color="rgba(0,0,0,0.25)")), unselected=dict(marker=dict(opacity=1.0)),
        hovertemplate=f"block %{{y}} · head %{{x}}<br>{value_label}: %{{customdata[2]:+.3f}}"
                      "<br>click: apply this edit below<extra></extra>"))
    out.update_layout(clickmode="event+select", dragmode=False)
    out.update_xaxes(range=[-0.5, z.shape[1] - 0.5])       # the markers must not widen the heat map's axis
    return out
