"""Attention inside SDA windows / LDA groups, painted back at the members' true image positions.

Inputs are :class:`crossformer.trace.BlockTrace` objects: ``attention`` ``(B, nG, heads, N, N)`` (row =
query member, column = key member), ``content``, ``dpb_bias``, ``mask`` and the block's ``layout`` whose
``positions`` ``(nG, N, 2)`` say where every member sits on the (padded) token grid. The numbers drawn
(weights, deviations from uniform, splits, rollout) come from :mod:`crossformer.analysis`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crossformer.analysis.attention import (attention_grid, attention_split, group_matrix, real_keys,
                                            scale_max as own_scale_max, shown_weights)
from crossformer.analysis.rollout import attention_rollout
from crossformer.trace import BlockTrace, Trace

from . import canvas, image_traces, inset, panels, style
from .geometry_figures import global_note

__all__ = ["query_attention_figure", "head_grid_figure", "group_matrix_figure", "bias_content_split_figure",
           "rollout_figure", "trace_rollout_figure"]


def _head_label(block: BlockTrace, head: int | None) -> str:
    return f"mean of {block.heads} heads" if head is None else f"head {head} of {block.heads}"


def _block_label(block: BlockTrace) -> str:
    lay = block.layout
    return (f"stage {block.stage} · block {block.index} · {lay.kind.upper()} · G={lay.group_size} · "
            f"I={lay.interval_text}")


def _padded_member_marks(block: BlockTrace, group: int, stride: float) -> go.Scatter | None:
    lay = block.layout
    pad = lay.key_padding[group]
    if not pad.any():
        return None
    pm = np.zeros(lay.padded_hw, dtype=bool)
    pos = lay.positions[group][pad]
    pm[pos[:, 0], pos[:, 1]] = True
    tr = canvas.padding_marks(pm, stride)
    tr.update(name="padded members (weight 0)")
    return tr


def _scale(z: np.ndarray, relative: bool, scale_max: float | None = None) -> dict:
    """Colour scale of an attention map: magnitudes from 0, or deviations centred at 0 (symmetric); up to
    ``scale_max`` when given (maps meant to be compared share it), else up to the map's own maximum."""
    if scale_max is None:
        scale_max = own_scale_max(z, relative)
    if relative:
        return dict(colorscale=style.SIGNED, cmin=-scale_max, cmax=scale_max, cmid=0.0)
    return dict(colorscale=style.MAGNITUDE, cmin=0.0, cmax=scale_max)


def _heat(scale: dict) -> dict:
    """:func:`_scale` spelled for a ``go.Heatmap`` (``zmin``/``zmax``/``zmid``)."""
    return {("z" + k[1:] if k.startswith("c") and k != "colorscale" else k): v for k, v in scale.items()}


def _value_label(relative: bool, n_real: int) -> str:
    return f"weight − 1/{n_real}" if relative else "attention weight"


def query_attention_figure(image: np.ndarray, block: BlockTrace, query: Sequence[int], head: int | None = None,
                           batch: int = 0, *, zoom: bool = False, panel: int = 620, relative: bool = False,
                           zoom_inset: bool = True, title: str | None = None,
                           wrap_px: int | None = None, scale_max: float | None = None) -> go.Figure:
    """Where one query token looks: its attention weights painted on its group members' image positions.

    SDA shows a compact window, LDA a strided lattice. ``head=None`` averages the heads.

    Args:
        image: ``(H, W, 3)`` the model's input image.
        block: a ``BlockTrace``.
        query: token ``(h, w)`` on the block's stage grid.
        head: head index, or None for the mean over heads.
        zoom: restrict the view to the group's members (plus one token).
        relative: paint the deviation from uniform ``a − 1/N`` (``N`` = real keys of the query's group) on a
            diverging scale centred at 0, instead of the raw weight from 0.
        zoom_inset: add a magnified inset of the group when it is small on screen (:func:`viz.inset.needs_inset`).
        wrap_px: width the title and subtitle must fit (e.g. 420 in half a page; ``None``: the figure's width).
        scale_max: top of the colour scale (``±scale_max`` when ``relative``); ``None``: this map's own
            maximum. Side-by-side maps pass the largest
            :func:`crossformer.analysis.attention.attention_scale_max` of both.

    Trace ``"attention"``: heat map on the padded token grid, ``z[h, w]`` = the weight (or its deviation) of
    the member at ``(h, w)`` (NaN where no real member sits), ``block.stride`` pixels per cell.
    """
    lay = block.layout
    s = block.stride
    g, n = lay.locate(query)
    n_real = real_keys(block, g)
    shown_w = shown_weights(block, query, head, relative=relative, batch=batch)
    z = attention_grid(block, g, shown_w)
    sc = _scale(z, relative, scale_max)
    canvas_hw = (lay.padded_hw[0] * s, lay.padded_hw[1] * s)
    view = canvas.view_around(lay.positions[g], s, canvas_hw, 1.0) if zoom else None
    hover = "member %{customdata}: " + ("weight − 1/N %{z:+.4f}" if relative else "weight %{z:.4f}")

    def heat() -> go.Heatmap:
        return canvas.token_heatmap(z, s, name="attention", opacity=0.85, customdata=lay.member_map,
                                    colorbar=style.colorbar(_value_label(relative, n_real)),
                                    hovertemplate=hover + "<extra></extra>", **_heat(sc))

    fig = go.Figure()
    fig.add_trace(image_traces.image_trace(image, dim=0.35, crop=view))
    fig.add_trace(heat())
    H, W = lay.feature_hw
    fig.add_trace(canvas.rectangle(0, 0, H * s, W * s, name=f"real tokens {H}×{W}", hoverinfo="skip",
                                   line=dict(color="#111", width=1.5, dash="dash")))
    shown_hw = canvas_hw if view is None else (view[1] - view[0], view[3] - view[2])
    if style.cell_px(s, shown_hw, panel) < 10:    # tiny cells: repeat each member as a visible marker
        real = ~lay.key_padding[g]
        x, y = canvas.token_centres(lay.positions[g][real], s)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name="members (enlarged marks)", showlegend=False,
            marker=dict(symbol="square", size=10, color=shown_w[real], line=dict(color="white", width=1), **sc),
            customdata=np.nonzero(real)[0], hovertemplate="member %{customdata}: %{marker.color:.4f}"
                                                          "<extra></extra>"))
    pm = _padded_member_marks(block, g, s)
    if pm is not None:
        fig.add_trace(pm)
    fig.add_trace(canvas.query_marker(query, s))
    style.image_axes(fig, canvas_hw, view=view)
    box = inset.group_view(lay.positions[g], s, canvas_hw)
    if zoom_inset and view is None and inset.needs_inset(box, canvas_hw):
        qx, qy = canvas.token_centres(np.array([query]), s)
        parts = [image_traces.image_trace(image, dim=0.35, crop=box), heat()]
        if pm is not None:
            parts.append(go.Scatter(pm))
        parts.append(canvas.query_marker(query, s, size=12))
        inset.add_inset(fig, parts, box, canvas_hw, (qx[0], qy[0]), label=f"zoom: group {g}")
    pw, ph = style.panel_size(shown_hw, panel)
    what = (f"colour = weight − 1/{n_real} (uniform), blue below, red above" if relative else
            f"weights over its {n_real} real members sum to 1")
    style.apply_layout(
        fig, title or f"Attention of token (h={query[0]}, w={query[1]}) · {_head_label(block, head)}",
        f"{_block_label(block)} · group {g}, member {n} · {what}{global_note(lay)} · {s} px per token",
        width=pw + 200, height=ph + 230, wrap_px=wrap_px)
    return style.bottom_legend(fig)


def head_grid_figure(image: np.ndarray, block: BlockTrace, query: Sequence[int], batch: int = 0, *,
                     max_cols: int = 4, zoom: bool = True, include_mean: bool = False, relative: bool = False,
                     title: str | None = None) -> go.Figure:
    """One panel per head (plus the mean if asked): the query's attention at its members, one colour scale.

    ``relative`` paints ``a − 1/N`` (deviation from uniform, ``N`` = real keys) on a diverging scale centred
    at 0, symmetric over all panels.

    Traces: per panel an image and a heat map named ``"head h"`` (or ``"mean"``) with ``z`` as in
    :func:`attention_grid`.
    """
    lay = block.layout
    s = block.stride
    g, n = lay.locate(query)
    n_real = real_keys(block, g)
    heads: list[int | None] = ([None] if include_mean else []) + list(range(block.heads))
    cols = min(max_cols, len(heads))
    rows = math.ceil(len(heads) / cols)
    canvas_hw = (lay.padded_hw[0] * s, lay.padded_hw[1] * s)
    view = canvas.view_around(lay.positions[g], s, canvas_hw, 1.0) if zoom else (0, canvas_hw[0], 0,
                                                                                  canvas_hw[1])
    names = ["mean" if h is None else f"head {h}" for h in heads]
    grid = panels.PanelGrid(rows, cols, len(heads), titles=names, horizontal_spacing=0.03,
                            vertical_spacing=min(0.1, 0.25 / rows))
    ws = [shown_weights(block, query, h, relative=relative, batch=batch) for h in heads]
    grids = [attention_grid(block, g, w) for w in ws]
    sc = _scale(np.stack(grids), relative)
    pm = _padded_member_marks(block, g, s)
    real = ~lay.key_padding[g]
    mx, my = canvas.token_centres(lay.positions[g][real], s)
    tiny = style.cell_px(s, (view[1] - view[0], view[3] - view[2]), 230) < 6
    for i, (h, z) in enumerate(zip(heads, grids)):
        grid.add(i, image_traces.image_trace(image, dim=0.35, crop=view),
                 canvas.token_heatmap(z, s, name=names[i], coloraxis="coloraxis", opacity=0.85,
                                      customdata=lay.member_map,
                                      hovertemplate="member %{customdata}: %{z:.4f}<extra>" + names[i] + "</extra>"))
        if tiny:      # members too small to see: repeat them as markers on the same colour axis
            grid.add(i, go.Scatter(x=mx, y=my, mode="markers", name=f"{names[i]} (enlarged marks)",
                                   showlegend=False, marker=dict(symbol="square", size=7, color=ws[i][real],
                                                                 coloraxis="coloraxis",
                                                                 line=dict(color="white", width=0.5)),
                                   hoverinfo="skip"))
        if pm is not None:
            tr = go.Scatter(pm)
            tr.update(showlegend=i == 0)
            grid.add(i, tr)
        q = canvas.query_marker(query, s, size=11)
        q.update(showlegend=i == 0)
        grid.add(i, q)
        grid.image_axes(i, canvas_hw, view=view, ticklabels=False)
    fig = grid.figure(coloraxis=dict(colorbar=style.colorbar(_value_label(relative, n_real)), **sc))
    pw, ph = style.panel_size((view[1] - view[0], view[3] - view[2]), 230)
    scale_note = f"colour = weight − 1/{n_real} (uniform), centred at 0" if relative else "one colour scale"
    style.apply_layout(fig, title or f"Every head of {block.name} for token (h={query[0]}, w={query[1]})",
                       f"{_block_label(block)} · group {g}, member {n} · {scale_note} for all heads"
                       f"{global_note(lay)}", width=cols * (pw + 14) + 180, height=rows * (ph + 36) + 190)
    return style.bottom_legend(fig)


def group_matrix_figure(block: BlockTrace, group: int, head: int | None, batch: int = 0, *,
                        title: str | None = None) -> go.Figure:
    """The ``N × N`` attention matrix of one group (row = query member, column = key member).

    Padded keys (columns) receive exactly 0; padded query rows are computed but discarded by the model —
    both are shaded. Trace 0: heat map with ``z = attention[batch, group, head]`` (head-mean if None).
    """
    lay = block.layout
    z = group_matrix(block, group, head, batch)                               # (N, N)
    N, G = lay.group_tokens, lay.group_size
    fig = go.Figure(go.Heatmap(z=z, colorscale=style.MAGNITUDE, zmin=0, zmax=float(z.max()) or 1.0,
                               name="attention",
                               colorbar=style.colorbar("attention weight"),
                               hovertemplate="query %{y} → key %{x}: %{z:.4f}<extra></extra>"))
    pad = np.nonzero(lay.key_padding[group])[0]
    for k in pad:   # shade padded key columns and query rows
        fig.add_shape(type="rect", x0=k - 0.5, x1=k + 0.5, y0=-0.5, y1=N - 0.5, line_width=0,
                      fillcolor="rgba(158,158,158,0.45)")
        fig.add_shape(type="rect", y0=k - 0.5, y1=k + 0.5, x0=-0.5, x1=N - 0.5, line_width=0,
                      fillcolor="rgba(158,158,158,0.25)")
    ticks = list(range(0, N, G))
    fig.update_xaxes(title_text="key member n = r·G + c", tickvals=ticks, constrain="domain", showgrid=False,
                     zeroline=False)
    fig.update_yaxes(title_text="query member n", tickvals=ticks, autorange="reversed", scaleanchor="x",
                     constrain="domain", showgrid=False, zeroline=False)
    n_pad = len(pad)
    note = (f"<br>{n_pad} padded members shaded: their key columns are exactly 0, their query rows are "
            f"discarded" if n_pad else "")
    style.apply_layout(fig, title or f"Attention matrix of group {group} · {_head_label(block, head)}",
                       f"{_block_label(block)} · {N}×{N}, each row sums to 1{note}", width=720, height=700,
                       legend=False)
    return fig


def bias_content_split_figure(block: BlockTrace, query: Sequence[int], head: int | None, batch: int = 0, *,
                              title: str | None = None) -> go.Figure:
    """What position contributes: softmax(q·k + mask) vs softmax(DPB + mask) vs the real attention.

    Drawn on the group's ``G × G`` member grid (``r, c`` with ``n = r·G + c``) whose tick labels are the
    members' true token rows/columns, so LDA's strided lattice reads as such. Padded members are blank
    (all three give them 0). ``head=None`` averages each distribution over the heads.

    Traces ``"content only"``, ``"position only"``, ``"actual"``: heat maps ``(G, G)`` with
    ``z[r, c]`` = the weight of member ``r·G + c``.
    """
    lay = block.layout
    g, n = lay.locate(query)
    G = lay.group_size
    split = attention_split(block, query, head, batch)
    pad = lay.key_padding[g]
    grids = {k: np.where(pad, np.nan, v).reshape(G, G) for k, v in split.distributions.items()}
    tv_dpb, tv_content = split.tv_dpb, split.tv_content
    titles = ["content only: softmax(q·kᵀ/√d + mask)", "position only: softmax(DPB + mask)",
              "actual: softmax(q·kᵀ/√d + DPB + mask)"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.07)
    pos = lay.positions[g].reshape(G, G, 2)
    rows_lbl = [str(int(v)) for v in pos[:, 0, 0]]
    cols_lbl = [str(int(v)) for v in pos[0, :, 1]]
    vmax = float(max(np.nanmax(v) for v in grids.values())) or 1.0
    qr, qc = divmod(n, G)
    for i, (name, z) in enumerate(grids.items()):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", name=name, customdata=np.arange(G * G).reshape(G, G),
                                 hovertemplate=("member %{customdata}: %{z:.4f}<extra>" + name + "</extra>")),
                      row=1, col=i + 1)
        fig.add_trace(go.Scatter(x=[qc], y=[qr], mode="markers", name="query", showlegend=i == 0,
                                 marker=dict(symbol="star", size=14, color=style.QUERY_COLOR,
                                             line=dict(color="white", width=1.5)), hoverinfo="skip"),
                      row=1, col=i + 1)
        step = max(1, G // 7)
        fig.update_xaxes(tickvals=list(range(0, G, step)), ticktext=cols_lbl[::step], title_text="token column w",
                         row=1, col=i + 1, constrain="domain", showgrid=False, zeroline=False)
        fig.update_yaxes(tickvals=list(range(0, G, step)), ticktext=rows_lbl[::step],
                         title_text="token row h" if i == 0 else "", autorange="reversed", row=1, col=i + 1,
                         scaleanchor=style.subplot_anchor(fig, 1, i + 1), constrain="domain", showgrid=False,
                         zeroline=False)
    fig.update_layout(coloraxis=dict(colorscale=style.MAGNITUDE, cmin=0, cmax=vmax,
                                     colorbar=style.colorbar("attention weight")))
    style.apply_layout(
        fig, title or f"Content vs position for token (h={query[0]}, w={query[1]}) · {_head_label(block, head)}",
        f"{_block_label(block)} · the DPB moves {100 * tv_dpb:.1f}% of the attention mass; content moves "
        f"{100 * tv_content:.1f}% (total-variation distances to the actual attention)", width=1250, height=520)
    for a in fig.layout.annotations:
        a.font = dict(size=13)
    fig.update_layout(meta=dict(tv_dpb=tv_dpb, tv_content=tv_content))
    return style.bottom_legend(fig)


def rollout_figure(image: np.ndarray, rollout: np.ndarray, *, stride: int = 4, title: str | None = None
                   ) -> go.Figure:
    """The (heuristic) rollout map over the image, clearly labelled as such.

    Trace ``"rollout"``: heat map ``z = rollout`` ``(H_0, W_0)`` drawn with ``stride`` pixels per token.
    """
    from .attribution_figures import attribution_overlay_figure

    fig = attribution_overlay_figure(
        image, rollout, title or "Attention rollout (heuristic)", signed=False, colorbar_title="share of flow",
        stride=stride, name="rollout",
        subtitle="HEURISTIC — not an attribution: head-mean attention of every block, routed through its real "
                 "SDA/LDA groups,<br>mixed with the residual path, split evenly over 2×2 tokens at each merge; "
                 "MLPs and value vectors are ignored")
    fig.update_traces(colorbar_tickformat=".2%", selector=dict(name="rollout"))
    return fig


def trace_rollout_figure(image: np.ndarray, trace: Trace, stride: int) -> go.Figure:
    """:func:`rollout_figure` of :func:`attention_rollout` of a whole trace (one call, so a figure cache keyed
    by its arguments computes the rollout only when the figure is built)."""
    return rollout_figure(image, attention_rollout(trace), stride=stride)
