"""Attribution maps (Integrated Gradients, Grad-CAM, Occlusion, rollout) over the image, with a colour bar.

Plotting only: the maps come from :mod:`crossformer.attribution` (captum) as NumPy arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from crossformer.analysis.facts import number

from . import canvas, image_traces, style

#: What the colours of a signed attribution map mean (stated on every signed map).
SIGN_LEGEND = "red: raises the class score · blue: lowers it · white: no effect"


def infer_stride(image_hw: Sequence[int], map_hw: Sequence[int]) -> float:
    """Pixels per map cell: 1 for a pixel map, else the power of two ``s`` with ``⌊H/s⌋, ⌊W/s⌋ = map``
    (stage ``i`` maps have ``s = 4·2^i``), else the plain ratio."""
    H, W = int(image_hw[0]), int(image_hw[1])
    h, w = int(map_hw[0]), int(map_hw[1])
    if (h, w) == (H, W):
        return 1
    for k in range(1, 12):
        s = 2 ** k
        if H // s == h and W // s == w:
            return s
    return H / h


def attribution_overlay_figure(image: np.ndarray, attribution: np.ndarray, title: str, signed: bool = False,
                               colorbar_title: str = "", *, stride: float | None = None,
                               subtitle: str | None = None, opacity: float = style.OVERLAY_OPACITY,
                               name: str = "attribution", clip_percentile: float | None = None,
                               side_by_side: bool = False) -> go.Figure:
    """An attribution map drawn over the image.

    Args:
        image: ``(H, W, 3)`` the model's input image.
        attribution: ``(h, w)`` map: per pixel (IG, Occlusion) or per token (Grad-CAM at stage ``i``:
            ``4·2^i`` pixels per cell, inferred when ``stride`` is None).
        title: figure title (say which method and class).
        signed: diverging colours centred at 0 (e.g. raw IG), with :data:`SIGN_LEGEND` in the subtitle and
            "raises"/"lowers" at the colour bar's ends; otherwise a magnitude map from 0.
        colorbar_title: label of the colour bar.
        clip_percentile: clip the colour range at this percentile of |values| (e.g. 99.5 for noisy IG).
        side_by_side: show the plain image to the left of the overlay.

    Trace named ``name``: heat map with ``z = attribution`` (float), cells of ``stride`` pixels.
    """
    a = np.asarray(attribution, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attribution must be 2-D (h, w), got shape {a.shape}")
    img_hw = np.asarray(image).shape[:2]
    s = stride or infer_stride(img_hw, a.shape)
    finite = a[np.isfinite(a)]
    if clip_percentile is not None and finite.size:
        top = float(np.percentile(np.abs(finite), clip_percentile))
    else:
        top = float(np.abs(finite).max()) if finite.size else 1.0
    top = top or 1.0
    if signed:
        scale = dict(colorscale=style.SIGNED, zmin=-top, zmax=top, zmid=0)
    else:
        lo = float(finite.min()) if finite.size else 0.0
        scale = dict(colorscale=style.MAGNITUDE, zmin=min(0.0, lo), zmax=top if lo >= 0 else float(finite.max()))
    cols = 2 if side_by_side else 1
    if side_by_side:
        from plotly.subplots import make_subplots
        fig = make_subplots(rows=1, cols=2, subplot_titles=["image", "overlay"], horizontal_spacing=0.06)
        fig.add_trace(image_traces.image_trace(image), row=1, col=1)
        style.image_axes(fig, img_hw, row=1, col=1)
        where = dict(row=1, col=2)
    else:
        fig = go.Figure()
        where = {}
    fig.add_trace(image_traces.image_trace(image, dim=0.15), **where)
    bar = style.colorbar(colorbar_title)
    if signed:                       # the sign is the message: say at both ends what it means
        bar.update(tickvals=[-top, 0.0, top],
                   ticktext=[f"−{number(top)}<br>lowers", "0", f"+{number(top)}<br>raises"])
        subtitle = (subtitle + " · " if subtitle else "") + SIGN_LEGEND
    fig.add_trace(canvas.token_heatmap(a, s, name=name, opacity=opacity, colorbar=bar,
                                       hovertemplate="%{z:.4g}<extra></extra>", **scale), **where)
    if side_by_side:
        style.image_axes(fig, img_hw, row=1, col=2, y_title="")
    else:
        style.image_axes(fig, img_hw)
    pw, ph = style.panel_size(img_hw, 520)
    style.apply_layout(fig, title, subtitle, width=cols * pw + 220, height=ph + 200, legend=False)
    return fig
