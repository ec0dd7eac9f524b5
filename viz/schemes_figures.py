"""Attention schemes compared: visible keys on the image, reach after several blocks, cost vs image size.

Pure builders: boolean token masks (from :mod:`crossformer.schemes`) and numbers in, a plotly figure out.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from . import canvas, image_traces, inset, panels, style

#: One colour per scheme family (panels and cost lines agree).
SCHEME_COLORS: dict[str, str] = {"full": "#D55E00", "swin": "#0072B2", "swin_shifted": "#56B4E9",
                                 "pvt": "#CC79A7", "sda": "#009E73", "lda": "#E69F00"}
REACH_COLOR = "#332288"
MAX_IMAGE_SIDE = 160           # panels embed the image at most this large (pixel coordinates are kept)


def _image(image: np.ndarray, dim: float = 0.3) -> go.Image:
    """The image, subsampled to at most :data:`MAX_IMAGE_SIDE` px per side, in full-size pixel coordinates."""
    a = image_traces.as_uint8(image)
    f = max(1, math.ceil(max(a.shape[:2]) / MAX_IMAGE_SIDE))
    small = np.ascontiguousarray(a[::f, ::f])
    return go.Image(source=image_traces.image_data_uri(small, dim=dim), x0=f / 2, y0=f / 2, dx=f, dy=f, name="image",
                    hoverinfo="skip")


def _mask_heatmap(mask: np.ndarray, stride: float, color: str, **kwargs) -> go.Heatmap:
    """``(H, W)`` bool as ``stride``-pixel cells: ``z = 1`` (``color``) where set, ``0`` transparent.

    ``z`` is uint8 so the figure ships 1 byte per token (plotly ≥ 6 sends typed arrays).
    """
    z = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    return go.Heatmap(z=z, x0=stride / 2, dx=stride, y0=stride / 2, dy=stride, zmin=0, zmax=1,
                      colorscale=[[0, "rgba(0,0,0,0)"], [0.5, "rgba(0,0,0,0)"], [0.5, color], [1, color]],
                      showscale=False, **kwargs)


def visible_keys_figure(image: np.ndarray, masks: Sequence[np.ndarray], titles: Sequence[str],
                        schemes: Sequence[str], stride: int, query: Sequence[int], *,
                        grid_every: Sequence[int | None] | None = None, cols: int = 4,
                        panel: int = 260) -> go.Figure:
    """One panel per scheme: the query's visible keys painted on the image.

    Args:
        image: ``(Hi, Wi, 3)`` model input (uint8, or float in [0, 1]).
        masks: per scheme ``(H, W)`` bool, the real tokens whose keys the query scores in one block.
        titles: per scheme panel title (with its pair count).
        schemes: per scheme its name (``"full"``, ``"sda"`` …), for the colour.
        stride: input pixels per token side.
        query: token ``(h, w)``.
        grid_every: per scheme, draw token-grid lines every ``n`` tokens (PVT's pooled cells) or ``None``.

    Traces per panel: the image, a heat map named ``"visible: <title>"`` (uint8 ``z = 1`` on visible tokens,
    0 elsewhere), optional ``"pooled cells"`` lines, and the ``"query token"`` star. A panel whose visible
    keys are small on screen (a Swin or SDA window on a large image) zooms to them as the groups page does
    (:func:`keys_view`; its title ends in "· zoomed").
    """
    n = len(masks)
    if not (len(titles) == len(schemes) == n):
        raise ValueError("masks, titles and schemes need one entry per scheme")
    rows = math.ceil(n / cols)
    H, W = np.asarray(masks[0]).shape
    extent = (max(H * stride, image.shape[0]), max(W * stride, image.shape[1]))
    views = [keys_view(mask, stride, extent, query) for mask in masks]
    titles = [t + (" · zoomed" if v is not None else "") for t, v in zip(titles, views)]
    grid = panels.PanelGrid(rows, cols, n, titles=list(titles), horizontal_spacing=0.03,
                            vertical_spacing=0.12 / rows, title_size=12)
    for i, (mask, title, scheme) in enumerate(zip(masks, titles, schemes)):
        color = SCHEME_COLORS.get(scheme, style.QUERY_COLOR)
        grid.add(i, _image(image), _mask_heatmap(mask, stride, color, name=f"visible: {title}", opacity=0.7,
                                                 hovertemplate="visible key: %{z}<extra></extra>"))
        every = grid_every[i] if grid_every is not None else None
        if every and every > 1:
            grid.add(i, canvas.grid_lines((H, W), stride, every, color="rgba(0,0,0,0.45)", width=0.8,
                                          name="pooled cells"))
        qm = canvas.query_marker(query, stride, size=11)
        qm.update(showlegend=i == 0)
        grid.add(i, qm)
        grid.image_axes(i, extent, view=views[i])
        grid.axes(i, dict(showticklabels=False), dict(showticklabels=False))
    fig = grid.figure()
    pw, ph = style.panel_size(extent, panel)
    style.apply_layout(fig, f"Which keys token (h={query[0]}, w={query[1]}) scores in one block",
                       f"coloured: the visible keys · {H}×{W} tokens, {stride} px per token",
                       width=cols * (pw + 20) + 60, height=rows * (ph + 70) + 160, legend=False, margin_top=140)
    return fig


def keys_view(mask: np.ndarray, stride: float, extent_hw: Sequence[float], query: Sequence[int]
              ) -> tuple[float, float, float, float] | None:
    """The region ``(y0, y1, x0, x1)`` around a panel's visible keys and the query (one token of margin, grown
    to the panel's aspect ratio) when they are small on screen by the groups page's rule
    (:func:`viz.inset.needs_inset`), else ``None``."""
    pos = np.concatenate([np.argwhere(np.asarray(mask, dtype=bool)), np.asarray([query]).reshape(1, 2)])
    box = inset.group_view(pos, stride, extent_hw)
    return inset.aspect_view(box, extent_hw) if inset.needs_inset(box, extent_hw) else None


def reach_figure(masks: Sequence[Sequence[np.ndarray]], counts: np.ndarray, architectures: Sequence[str],
                 depths: Sequence[int], query: Sequence[int], *, panel: int = 170) -> go.Figure:
    """Grid of reach maps: row = architecture, column = number of blocks.

    Args:
        masks: ``masks[a][d]`` is ``(H, W)`` bool, the tokens that can reach the query after ``depths[d]``
            blocks of architecture ``a`` (attention only).
        counts: ``(A, D)`` the tokens each mask holds (:class:`crossformer.schemes.ReachGrid`), shown in the titles.
        architectures: row labels.
        depths: column block counts.
        query: token ``(h, w)``.

    Traces: per panel a heat map named ``"<architecture> · <d> blocks"`` with uint8 ``z = 1`` on reaching
    tokens (0 elsewhere, on the token grid) and the query star. Titles carry the count.
    """
    rows, cols = len(architectures), len(depths)
    H, W = np.asarray(masks[0][0]).shape
    L = H * W
    titles = [f"{a} · {d} block{'s' if d > 1 else ''}: {int(counts[i][j]):,}/{L:,}"
              for i, a in enumerate(architectures) for j, d in enumerate(depths)]
    grid = panels.PanelGrid(rows, cols, titles=titles, horizontal_spacing=0.04, vertical_spacing=0.18 / rows,
                            title_size=11)
    for i, a in enumerate(architectures):
        for j, d in enumerate(depths):
            hm = _mask_heatmap(masks[i][j], 1, REACH_COLOR, name=f"{a} · {d} blocks",
                               hovertemplate="reaches the query: %{z}<extra></extra>")
            hm.update(colorscale=[[0, "#EEF1F6"], [0.5, "#EEF1F6"], [0.5, REACH_COLOR], [1, REACH_COLOR]])
            qm = canvas.query_marker(query, 1, size=9)
            qm.update(showlegend=False)
            grid.add(i * cols + j, hm, qm)
            grid.image_axes(i * cols + j, (H, W), ticklabels=False)
    fig = grid.figure()
    pw, ph = style.panel_size((H, W), panel)
    style.apply_layout(fig, "Reach: which tokens can have informed the query",
                       "attention blocks only (no MLP/conv mixing) · dark = reaches the query",
                       width=cols * (pw + 40) + 80, height=rows * (ph + 50) + 130, legend=False)
    return fig


def cost_figure(sizes_px: Sequence[int], curves: Mapping[str, Sequence[float]], schemes: Mapping[str, str], *,
                marker_px: int | None = None) -> go.Figure:
    """Log–log pair count per block against image side (square images, stage 0).

    Args:
        sizes_px: ``(n,)`` image sides in pixels.
        curves: label → ``(n,)`` query–key pairs per head of one block.
        schemes: label → scheme name (for the colour; LDA/SDA of CrossFormer++ are dashed by label).
        marker_px: an image side to mark with a vertical line (the current image).

    Traces: one line per label, named by it; the marker line ``"this image (… px)"``.
    """
    x = np.asarray(sizes_px, dtype=float)
    fig = go.Figure()
    for label, y in curves.items():
        scheme = schemes.get(label, "")
        dash = "dash" if "++" in label else "solid"
        fig.add_trace(go.Scatter(x=x, y=np.asarray(y, dtype=float), mode="lines+markers", name=label,
                                 line=dict(color=SCHEME_COLORS.get(scheme), dash=dash, width=2),
                                 marker=dict(size=5),
                                 hovertemplate=f"{label}<br>%{{x:.0f}} px: %{{y:.3s}} pairs<extra></extra>"))
    if marker_px:   # a trace, not add_vline: its annotation would be placed in log units on a log axis
        ys = [float(np.min([np.min(v) for v in curves.values()])), float(np.max([np.max(v) for v in curves.values()]))]
        fig.add_trace(go.Scatter(x=[float(marker_px)] * 2, y=ys, mode="lines", name=f"this image ({marker_px} px)",
                                 line=dict(color="#888", dash="dot", width=1.5), hoverinfo="skip"))
    fig.update_xaxes(type="log", title_text="image side (pixels, square image)",
                     range=[math.log10(x.min()), math.log10(x.max())] if len(x) else None)
    fig.update_yaxes(type="log", title_text="query–key pairs per head, one block")
    style.apply_layout(fig, "Cost against image size (stage 0: image/4 tokens per side)",
                       "full attention and PVT grow with the square of the token count; windows and groups "
                       "grow linearly", height=520)
    return style.bottom_legend(fig, rows=2)
