"""Figures of a backbone's feature pyramid: each stage map as a PCA→RGB image, its token grid, the input padding,
and its channel energy (arrays in, figure out; compute the views with :func:`crossformer.analysis.pyramid.pyramid_views`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crossformer.analysis.pyramid import StageView

from . import image_traces, style

#: Token grids are drawn on stages with at most this many tokens (denser grids would be a grey wash).
GRID_MAX_TOKENS = 1200


def _grid_lines(hw: tuple[int, int], stride: int) -> tuple[list, list]:
    """One polyline (None-separated) through every token border of an ``hw`` grid at ``stride`` px."""
    H, W = hw
    xs: list = []
    ys: list = []
    for i in range(H + 1):
        xs += [0, W * stride, None]
        ys += [i * stride, i * stride, None]
    for j in range(W + 1):
        xs += [j * stride, j * stride, None]
        ys += [0, H * stride, None]
    return xs, ys


def pyramid_figure(views: Sequence[StageView], input_hw: tuple[int, int], *, title: str | None = None,
                   panel_px: int = 300) -> go.Figure:
    """Four columns, one per stage: on top the map's 3 principal components as RGB over its token grid (pixel
    coordinates, so the stages line up), below its channel energy sorted from the largest.

    Args:
        views: :class:`~crossformer.analysis.pyramid.StageView` per stage (``pyramid_views``).
        input_hw: ``(H, W)`` of the real input before padding; the padded band (every stage's grid covers
            ``H_i·stride × W_i·stride`` px) is hatched grey and outlined.

    Traces per stage ``i``: ``"pca s{i}"`` (the ``go.Image``, one cell per token: ``dx = dy = stride``),
    ``"grid s{i}"`` (token borders, when the stage has at most :data:`GRID_MAX_TOKENS` tokens),
    ``"energy s{i}"`` (``y``: the channel energies, sorted descending; ``x``: rank).
    """
    if not views:
        raise ValueError("no stages to draw")
    n = len(views)
    H, W = int(input_hw[0]), int(input_hw[1])
    canvas = (max(v.hw[0] * v.stride for v in views), max(v.hw[1] * v.stride for v in views))
    titles = [f"stage {v.stage} · {style.fmt_hw(v.hw)} · {v.stride} px" for v in views] + [
        "PCs " + "/".join(f"{100 * s:.0f}" for s in v.pca.explained) + " % of var." for v in views]
    image_px = panel_px * canvas[0] / max(canvas[1], 1)            # drawn height of one image panel
    plot_px = image_px + 160 + 90                                   # images, energy plots, the gap between
    fig = make_subplots(rows=2, cols=n, subplot_titles=titles, vertical_spacing=90 / plot_px,
                        horizontal_spacing=0.05, row_heights=[image_px / plot_px, 1 - image_px / plot_px])
    fig.update_annotations(font_size=12)
    for k, v in enumerate(views):
        col = k + 1
        img = image_traces.image_trace(v.pca.rgb, name=f"pca s{v.stage}")
        img.update(x0=v.stride / 2, y0=v.stride / 2, dx=v.stride, dy=v.stride)
        fig.add_trace(img, row=1, col=col)
        if v.hw[0] * v.hw[1] <= GRID_MAX_TOKENS:
            xs, ys = _grid_lines(v.hw, v.stride)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"grid s{v.stage}", hoverinfo="skip",
                                     line=dict(color=style.GRID_COLOR, width=0.6), showlegend=False), row=1, col=col)
        Hc, Wc = v.hw[0] * v.stride, v.hw[1] * v.stride
        for x0, y0, x1, y1 in ((W, 0, Wc, Hc), (0, H, W, Hc)):      # right band, bottom band
            if x1 > x0 and y1 > y0:
                fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, row=1, col=col, line=dict(width=0),
                              fillcolor=style.PADDING_COLOR, opacity=0.55)
        if (Hc, Wc) != (H, W):
            fig.add_shape(type="rect", x0=0, y0=0, x1=W, y1=H, row=1, col=col,
                          line=dict(color=style.PADDING_COLOR, width=1.5, dash="dot"))
        style.image_axes(fig, canvas, row=1, col=col, x_title="x (px)", y_title="y (px)" if k == 0 else "")
        energy = np.sort(np.asarray(v.channel_energy, dtype=np.float64))[::-1]
        fig.add_trace(go.Scatter(x=np.arange(1, len(energy) + 1), y=energy, mode="lines", name=f"energy s{v.stage}",
                                 line=dict(color=style.QUERY_COLOR if k == n - 1 else "#1f77b4", width=1.6),
                                 fill="tozeroy", showlegend=False,
                                 hovertemplate="channel rank %{x}<br>mean square %{y:.3g}<extra></extra>"),
                      row=2, col=col)
        fig.update_xaxes(title_text=f"channel rank (of {len(energy)})", row=2, col=col)
        fig.update_yaxes(type="log", title_text="mean square" if k == 0 else "", row=2, col=col)
    padded = canvas != (H, W)
    style.apply_layout(
        fig, title or "The feature pyramid",
        "top: the 3 principal components of each stage's channels, over its real tokens, as red, green, blue "
        "(similar colours = similar features) · below: each channel's mean square (energy), largest first"
        + (f" · grey: input padding ({style.fmt_hw((H, W))} → {style.fmt_hw(canvas)} px)" if padded else ""),
        width=n * panel_px + 120, height=int(plot_px) + 190, legend=False)
    return fig
