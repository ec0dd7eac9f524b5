"""One compact figure of every block's attention diagnostics (definitions: :mod:`crossformer.analysis.heads`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crossformer.analysis.heads import odd_heads

from . import style

PANELS = (
    ("entropy", "attention entropy (nats)"),
    ("distance_px", "mean attention distance (px)"),
    ("dpb_share", "attention mass moved by the DPB"),
)


#: Smallest on-screen width (px) of one heat-map panel (a 940-px wide chart: 27 % of its plot area) and the
#: width a head label ("15") needs with its gap, at the 14-px tick font.
PANEL_MIN_PX = 200
HEAD_LABEL_PX = 24


def head_dtick(heads: int, panel_px: float = PANEL_MIN_PX, label_px: float = HEAD_LABEL_PX) -> int:
    """Tick step on a head axis (1, 2, 4, …) so labels ``label_px`` wide never collide in ``panel_px``."""
    step = 1
    while heads / step * label_px > panel_px:
        step *= 2
    return step


def diagnostics_figure(stats: dict, *, title: str | None = None) -> go.Figure:
    """Blocks × heads heat maps of entropy, mean distance and DPB share, plus the residual RMS per block.

    Args:
        stats: :func:`crossformer.analysis.heads.trace_head_stats` output.

    Traces: heat maps named after the ``stats`` keys (``z = stats[key]``, rows = blocks in trace order,
    columns = heads; NaN where a block has fewer heads); ``"odd heads"`` rings on robust outliers within
    a block; a bar chart ``"residual_norm"``.
    """
    names = list(stats["names"])
    kinds = list(stats.get("kinds", [""] * len(names)))
    labels = [f"{n} · {k.upper()}" if k else n for n, k in zip(names, kinds)]
    nb = len(names)
    H = int(np.asarray(stats["entropy"]).shape[1])
    fig = make_subplots(rows=1, cols=4, shared_yaxes=True, horizontal_spacing=0.025,
                        column_widths=[0.27, 0.27, 0.27, 0.19],
                        subplot_titles=[t for _, t in PANELS] + ["residual stream RMS"])
    heads = np.arange(H)
    for col, (key, label) in enumerate(PANELS, start=1):
        z = np.asarray(stats[key], dtype=np.float64)
        finite = z[np.isfinite(z)]
        zmax = float(finite.max()) if finite.size else 1.0
        custom = None
        hover = f"%{{y}} · head %{{x}}<br>{label}: %{{z:.3g}}<extra></extra>"
        if key == "entropy" and "max_entropy" in stats:
            custom = np.repeat(np.asarray(stats["max_entropy"])[:, None], H, axis=1)
            hover = "%{y} · head %{x}<br>entropy %{z:.3f} nats (uniform: %{customdata:.2f})<extra></extra>"
        fig.add_trace(go.Heatmap(z=z, x=heads, y=labels, name=key, colorscale=style.MAGNITUDE, zmin=0,
                                 zmax=zmax or 1.0, customdata=custom, hovertemplate=hover, hoverongaps=False,
                                 xgap=1, ygap=1, colorbar=style.panel_colorbar(fig, 1, col, "", offset=0.2)),
                      row=1, col=col)
        odd = odd_heads(z)
        if odd.any():
            r, c = np.nonzero(odd)
            fig.add_trace(go.Scatter(x=heads[c], y=[labels[i] for i in r], mode="markers", name="odd heads",
                                     legendgroup="odd", showlegend=col == 1,
                                     marker=dict(symbol="circle-open", size=13, color=style.QUERY_COLOR,
                                                 line=dict(width=2.5)),
                                     hovertemplate="odd head: %{y} · head %{x}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text="head", dtick=head_dtick(H), tick0=0, row=1, col=col, showgrid=False,
                         zeroline=False)
    rms = np.asarray(stats["residual_norm"], dtype=np.float64)
    stages = np.asarray(stats.get("stages", np.zeros(nb, int)))
    colors = [style.SERIES_COLORS[int(s) % len(style.SERIES_COLORS)] for s in stages]
    fig.add_trace(go.Bar(x=rms, y=labels, orientation="h", name="residual_norm", marker_color=colors,
                         hovertemplate="%{y}: RMS %{x:.3f}<extra></extra>", showlegend=False), row=1, col=4)
    fig.update_xaxes(title_text="RMS of block output", row=1, col=4, zeroline=False)
    fig.update_yaxes(autorange="reversed", row=1, col=1, title_text="block (trace order)")
    fig.update_yaxes(autorange="reversed", showgrid=False)
    style.apply_layout(
        fig, title or "Attention diagnostics: every block and head",
        "entropy: spread of the attention (nats) · distance: how far a head looks, in image pixels · DPB: "
        "total-variation distance between the attention with and without the position bias<br>"
        "residual RMS: size of each block's output · red circles: heads unlike the other heads of their block",
        width=1400, height=max(460, 30 * nb + 330))
    for a in fig.layout.annotations:
        a.font = dict(size=13)
    fig.update_yaxes(ticks="", row=1, col=2)
    fig.update_yaxes(ticks="", row=1, col=3)
    fig.update_layout(margin=dict(b=150), showlegend=False)   # the subtitle explains the circles
    return fig
