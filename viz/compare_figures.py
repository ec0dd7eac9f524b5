"""A/B comparison: the difference between two forward passes (two images, two models, two input sizes), drawn.

Pure builders, numbers in, figures out; the numbers come from :mod:`crossformer.analysis.compare`. Blocks
are matched by name and heads by index; where B has no such block or head the difference is NaN (drawn empty).

* :func:`difference_figure` — blocks × heads heat maps of :func:`~crossformer.analysis.compare.head_stat_difference`.
* :func:`dpb_difference_figure` — :func:`~crossformer.analysis.compare.dpb_difference` per head over (Δy, Δx).
* :func:`symmetric_span` — the half-range of their diverging colour scales.
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
