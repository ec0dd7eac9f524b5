"""The cross-scale embedding (CEL, kernels 4/8/16/32) and the cross-scale merges (kernels 2/4).

Inputs are :class:`crossformer.trace.EmbeddingTrace` objects (``trace.embedding``, ``trace.merges[i]``):
each kernel's raw conv output ``per_kernel[i]`` ``(B, c_k, Ho, Wo)``, the kernels, stride and paddings the
convs used.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from crossformer.analysis.embedding import kernel_energy, kernel_map, top_channels
from crossformer.trace import EmbeddingTrace

from . import canvas, image_traces, panels, style


def layer_name(emb: EmbeddingTrace, input_stride: int) -> str:
    """``"Cross-scale embedding (CEL)"`` or ``"Cross-scale merge after stage i"``."""
    if input_stride == 1:
        return "Cross-scale embedding (CEL)"
    return f"Cross-scale merge after stage {int(round(math.log2(input_stride / 4)))}"


def kernel_energy_figure(emb: EmbeddingTrace, image: np.ndarray | None = None, batch: int = 0, *,
                         input_stride: int | None = None, title: str | None = None) -> go.Figure:
    """Per kernel, the channel-mean activation energy as a map over the image.

    Args:
        emb: ``trace.embedding`` (CEL) or ``trace.merges[i]``.
        image: ``(H, W, 3)`` the model's input image, drawn under the maps (optional).
        batch: which image of the batch.
        input_stride: input pixels per position the layer reads (1 for the CEL, ``4·2^i`` for the merge
            after stage ``i``); ``emb.input_stride`` (what the forward pass recorded) when omitted.

    Traces: one heat map per kernel named ``"k=K energy"`` with ``z = mean_c per_kernel[i][batch]²``
    ``(Ho, Wo)``, drawn with ``input_stride · stride`` pixels per cell.
    """
    known = input_stride is not None or image is not None
    s_in = input_stride or emb.input_stride
    s = s_in * emb.stride
    unit = "pixels" if known or emb.stride == 4 else "input positions"   # a merge without scale: its own grid
    Ho, Wo = emb.output_hw
    canvas_hw = (Ho * s, Wo * s) if image is None else np.asarray(image).shape[:2]
    n = len(emb.kernels)
    titles = [f"{k}×{k} kernel · {c} channels" for k, c in zip(emb.kernels, emb.channels)]
    grid = panels.PanelGrid(1, n, titles=titles, horizontal_spacing=0.05)
    for i, k in enumerate(emb.kernels):
        if image is not None:
            grid.add(i, image_traces.image_trace(image, dim=0.3))
        e = kernel_energy(emb, i, batch)
        grid.add(i, canvas.token_heatmap(
            e, s, name=f"k={k} energy", colorscale=style.MAGNITUDE, opacity=0.78 if image is not None else 1,
            colorbar=grid.colorbar_below(i, "mean energy"),
            hovertemplate="token (%{y:.0f}, %{x:.0f}) px · energy %{z:.3g}<extra></extra>"))
        grid.image_axes(i, canvas_hw, x_title="", y_title=f"y ({unit})" if i == 0 else "")
    fig = grid.figure()
    pw, ph = style.panel_size(canvas_hw, 300)
    name = layer_name(emb, s_in) if unit == "pixels" else "Cross-scale merge"
    style.apply_layout(
        fig, title or f"{name}: activation energy per kernel",
        f"mean over each kernel's channels of its conv output², before concatenation · stride {emb.stride}"
        f" · {style.fmt_hw(emb.input_hw)} → {style.fmt_hw(emb.output_hw)} · axes in {unit}",
        width=n * (pw + 40) + 100,
        height=ph + 230, legend=False)
    return fig


def top_channels_figure(emb: EmbeddingTrace, kernel_index: int, k: int = 8, batch: int = 0, *,
                        cols: int = 4, title: str | None = None) -> go.Figure:
    """A grid of one kernel's most active channels (largest mean energy), signed, on a shared scale.

    Traces: one heat map per shown channel named ``"ch c"`` (``c`` = channel within the kernel's slice)
    with ``z = per_kernel[kernel_index][batch, c]`` ``(Ho, Wo)``; ``meta`` holds the channel order.
    """
    a = kernel_map(emb, kernel_index, batch)                                    # (c_k, Ho, Wo)
    top = top_channels(emb, kernel_index, k, batch)
    order = top.channels
    n = len(order)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    offset = emb.channel_slice(kernel_index).start
    titles = [f"ch {c} (#{offset + c}) · rms {r:.2g}" for c, r in zip(order, top.rms)]
    grid = panels.PanelGrid(rows, cols, n, titles=titles, horizontal_spacing=0.03,
                            vertical_spacing=0.12 / max(rows, 1) + 0.05)
    vmax = float(np.abs(a[order]).max()) or 1.0                                # the shared colour scale
    Ho, Wo = emb.output_hw
    for j, c in enumerate(order):
        grid.add(j, go.Heatmap(z=a[c].astype(np.float32), coloraxis="coloraxis", name=f"ch {c}",   # the fp32 values
                               hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"))
        grid.axes(j, dict(showticklabels=False, showgrid=False, zeroline=False, constrain="domain"),
                  dict(showticklabels=False, autorange="reversed", showgrid=False, zeroline=False,
                       scaleanchor=grid.refs[j][0], constrain="domain"))
    kk = emb.kernels[kernel_index]
    fig = grid.figure(coloraxis=dict(colorscale=style.SIGNED, cmin=-vmax, cmax=vmax, cmid=0,
                                     colorbar=style.colorbar("activation")), meta=dict(channels=order.tolist()))
    pw, ph = style.panel_size((Ho, Wo), 210)
    style.apply_layout(fig, title or f"{kk}×{kk} kernel: its {n} most active channels",
                       f"raw conv output (signed), ranked by mean energy · {emb.channels[kernel_index]} channels "
                       f"in this kernel's slice · {style.fmt_hw(emb.output_hw)} tokens",
                       width=cols * (pw + 20) + 200, height=rows * (ph + 45) + 140, legend=False)
    return fig


def kernel_footprints_figure(image: np.ndarray | None, kernels: Sequence[int], stride: int,
                             paddings: Sequence[int], patch: Sequence[int], scale: int = 1, *,
                             input_hw: Sequence[int] | None = None, title: str | None = None) -> go.Figure:
    """The ``k×k`` receptive field of every kernel around output token ``patch``, to scale, on the image.

    Args:
        image: ``(H, W, 3)`` the model's input image (or None with ``input_hw``).
        kernels, stride, paddings: from the ``EmbeddingTrace`` (CEL: 4/8/16/32, 4, 0/2/6/14).
        patch: output token ``(h, w)`` of the layer.
        scale: image pixels per input position (1 for the CEL; ``4·2^i`` for the merge after stage ``i``).

    Kernel ``k`` reads input rows ``[h·stride − pad, h·stride − pad + k)`` (same for columns), i.e. a
    ``k·scale``-pixel square. Left: the whole image; right: zoom on the largest footprint.
    Traces: closed rectangles named ``"K×K kernel"`` (5 points each) in both panels; ``"token"``, the output
    token's own ``stride·scale`` cell.
    """
    if image is not None:
        H, W = np.asarray(image).shape[:2]
    elif input_hw is not None:
        H, W = int(input_hw[0]) * scale, int(input_hw[1]) * scale
    else:
        raise ValueError("give an image or input_hw")
    h, w = int(patch[0]), int(patch[1])
    rects = []
    for k, p in zip(kernels, paddings):
        y0 = (h * stride - p) * scale
        x0 = (w * stride - p) * scale
        rects.append((k, y0, x0, y0 + k * scale, x0 + k * scale))
    big = max(rects, key=lambda r: r[0])
    margin = 0.3 * big[0] * scale
    view = (big[1] - margin, big[3] + margin, big[2] - margin, big[4] + margin)
    grid = panels.PanelGrid(1, 2, titles=["whole image", "zoom on the footprints"], horizontal_spacing=0.1)
    tok = (h * stride * scale, w * stride * scale, (h + 1) * stride * scale, (w + 1) * stride * scale)
    for i in (0, 1):
        if image is not None:
            grid.add(i, image_traces.image_trace(image))
        if i == 1 and (view[1] - view[0]) / scale <= 80:   # input grid (pixels or tokens) when readable
            rows_ = range(int(math.floor(view[0] / scale)), int(math.ceil(view[1] / scale)) + 1)
            cols_ = range(int(math.floor(view[2] / scale)), int(math.ceil(view[3] / scale)) + 1)
            xs: list = []
            ys: list = []
            for r in rows_:
                xs += [view[2], view[3], None]
                ys += [r * scale, r * scale, None]
            for c in cols_:
                xs += [c * scale, c * scale, None]
                ys += [view[0], view[1], None]
            grid.add(i, go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(255,255,255,0.35)", width=0.5),
                                   hoverinfo="skip", showlegend=False, name="input grid"))
        grid.add(i, canvas.rectangle(*tok, name="token", legendgroup="token", showlegend=i == 0,
                                     line=dict(color=style.QUERY_COLOR, width=0), fill="toself",
                                     fillcolor=_rgba(style.QUERY_COLOR, 0.45),
                                     hovertemplate=f"output token ({h}, {w})<extra></extra>"))
        for j, (k, y0, x0, y1, x1) in enumerate(rects):
            color = style.KERNEL_COLORS[j % len(style.KERNEL_COLORS)]
            grid.add(i, canvas.rectangle(
                y0, x0, y1, x1, name=f"{k}×{k} kernel", legendgroup=f"k{k}", showlegend=i == 0,
                line=dict(color=color, width=3), fill="toself", fillcolor=_rgba(color, 0.08),
                hovertemplate=(f"{k}×{k} kernel: {k * scale}×{k * scale} px, "
                               f"rows {y0}…{y1}, cols {x0}…{x1}<extra></extra>")))
    grid.image_axes(0, (H, W), x_title="x (pixels)", y_title="y (pixels)")
    # the zoom may leave the image (the convs' zero padding)
    grid.image_axes(1, (H, W), view=view, x_title="x (pixels)")
    fig = grid.figure()
    what = "pixels" if scale == 1 else f"input tokens of {scale} px"
    ks = ", ".join(f"{k}×{k}" for k in kernels)
    style.apply_layout(fig, title or f"Receptive fields of the {ks} kernels around token ({h}, {w})",
                       f"stride {stride} ({what}) · paddings {', '.join(map(str, paddings))} · outside the "
                       f"image the convs read zero padding", width=1100, height=620)
    return style.bottom_legend(fig)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
