"""Dataset-scale attention statistics: one summary figure, drawn by the CLI (through
:mod:`viz.stats_report`) and by the app alike.

Input: a :class:`crossformer.analysis.dataset.StatsSummary` (``summarise`` of the columns of
:func:`crossformer.stats.read_csv`; its sentences are ``summary_sentences`` there). Pure: numbers in, a plotly
figure out.

* :func:`stats_summary_figure`: mean attention distance vs block (one dot per head, SDA/LDA coloured, bars =
  spread over images), entropy per head (with the uniform-attention level), DPB share, per-block output RMS
  (CrossFormer++ ACL blocks marked).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crossformer.analysis.dataset import STATS, StatsSummary

from . import style

TITLES = {"distance_px": "mean attention distance (px)", "entropy": "entropy (nats)",
          "dpb_share": "DPB share (TV)"}
KIND_COLORS = {"sda": style.SERIES_COLORS[0], "lda": style.SERIES_COLORS[1]}
ACL_COLOR = style.SERIES_COLORS[5]


def stats_summary_figure(s: StatsSummary, title: str | None = None) -> go.Figure:
    """Four panels over the blocks: distance, entropy and DPB share per head (dots, SDA/LDA coloured, bars =
    standard deviation over images; heads spread left to right within a block), and the block output RMS.

    Traces carry ``meta = {"stat": …, "kind": …}`` (``stat`` one of :data:`STATS`, ``"uniform"``, ``"rms"``,
    ``"acl"``); a dot's ``customdata`` is ``[block, head, spread]``.
    """
    nb = len(s.blocks)
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.045,
                        subplot_titles=[TITLES[k] for k in STATS] + ["block output RMS"])
    H = max(int(s.heads.max()), 1)
    traces, rows = [], []
    for row, k in enumerate(STATS, start=1):
        for kind in ("sda", "lda"):
            blocks = np.nonzero(np.asarray(s.kinds) == kind)[0]
            if not len(blocks):
                continue
            n = s.heads[blocks]
            i = np.repeat(blocks, n)                                      # one entry per head of these blocks
            h = np.concatenate([np.arange(c) for c in n]) if len(i) else np.zeros(0, np.int64)
            err = s.spread[k][i, h]
            cd = [[s.blocks[a], int(c), float(e)] for a, c, e in zip(i, h, err)]
            traces.append(go.Scatter(
                x=i + (h + 0.5) / np.repeat(n, n) * 0.7 - 0.35, y=s.mean[k][i, h], mode="markers",
                name=f"{kind.upper()} head", legendgroup=kind, showlegend=row == 1,
                marker=dict(size=6 if H <= 16 else 4, color=KIND_COLORS[kind]), meta={"stat": k, "kind": kind},
                error_y=dict(type="data", array=err, visible=True, thickness=1, width=0, color=KIND_COLORS[kind]),
                customdata=cd, hovertemplate=f"%{{customdata[0]}} · head %{{customdata[1]}}<br>{TITLES[k]}: "
                                             "%{y:.3g} ± %{customdata[2]:.2g} over images<extra></extra>"))
            rows.append(row)
    if np.isfinite(s.uniform).any():
        traces.append(go.Scatter(x=np.arange(nb), y=s.uniform, mode="markers", name="uniform attention (ln N)",
                                 meta={"stat": "uniform"}, marker=dict(symbol="line-ew-open", size=22, color="#777",
                                                                       line=dict(width=2)),
                                 hovertemplate="%{x}: uniform attention = %{y:.2f} nats<extra></extra>"))
        rows.append(2)
    traces.append(go.Scatter(x=np.arange(nb), y=s.rms_mean, mode="lines+markers", name="output RMS",
                             meta={"stat": "rms"}, line=dict(color="#222"), marker=dict(size=6, color="#222"),
                             error_y=dict(type="data", array=s.rms_spread, visible=True, thickness=1, width=3),
                             showlegend=False, customdata=list(s.blocks),
                             hovertemplate="%{customdata}: RMS %{y:.3g}<extra></extra>"))
    rows.append(4)
    if s.acl is not None and s.acl.any():
        idx = np.nonzero(s.acl)[0]
        traces.append(go.Scatter(x=idx, y=s.rms_mean[idx], mode="markers", name="ACL block (cooling layer)",
                                 meta={"stat": "acl"}, marker=dict(symbol="diamond-open", size=13, color=ACL_COLOR,
                                                                   line=dict(width=2)),
                                 customdata=[s.blocks[i] for i in idx],
                                 hovertemplate="%{customdata}: ACL block, RMS %{y:.3g}<extra></extra>"))
        rows.append(4)
    fig.add_traces(traces, rows=rows, cols=[1] * len(rows))              # one call, whatever the size
    boundaries = np.nonzero(np.diff(s.stages))[0] + 0.5                  # between the last and first block of stages
    fig.update_layout(shapes=[dict(type="line", xref=f"x{p if p > 1 else ''}", yref=f"y{p if p > 1 else ''} domain",
                                   x0=float(x), x1=float(x), y0=0, y1=1, line=dict(color="#bbb", width=1, dash="dot"))
                              for p in range(1, 5) for x in boundaries])  # one call: each panel, each boundary
    fig.update_xaxes(tickmode="array", tickvals=list(range(nb)), ticktext=[
        f"{b} {k.upper()}" for b, k in zip(s.blocks, s.kinds)], tickangle=-60, row=4, col=1)
    fig.update_xaxes(range=[-0.6, nb - 0.4], showgrid=False)
    fig.update_yaxes(rangemode="tozero")
    style.apply_layout(fig, title or f"Per-head attention statistics over {s.n_images} images",
                       "dots: one head (mean over images), bars: standard deviation over images · "
                       "blue SDA, orange LDA · dotted lines: stage boundaries",
                       width=1100, height=1000)
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.035, x=1, xanchor="right"))
    return fig
