"""PyTorch vs NumPy-reference agreement: max |difference| per block and field on a log scale."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import plotly.graph_objects as go

from crossformer.analysis.parity import parity_verdict

from . import style

#: Where an exact 0 is drawn on the log axis (hollow marker; the hover says "exactly 0").
ZERO_FLOOR = 1e-12


def group_errors(flat_errors: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Regroup flat per-field errors (``Trace.flat()`` names, e.g. from ``crossformer.reference.compare``)
    into ``{group: {field: error}}`` for :func:`parity_figure`.

    ``blocks.s0_b1.attention`` → ``["s0_b1"]["attention"]``; ``embedding.k4`` → ``["embedding"]["k4"]``;
    ``merges.0.k2`` → ``["merge 0"]["k2"]``; ``stages.2`` → ``["stage 2"]["output"]``; ``pooled`` and
    ``logits`` → ``["head"]``. Fields without a numeric difference (``members``) are kept as they come.
    """
    out: dict[str, dict[str, float]] = {}
    for key, err in flat_errors.items():
        parts = key.split(".")
        if parts[0] == "blocks" and len(parts) >= 3:
            group, field = parts[1], ".".join(parts[2:])
        elif parts[0] == "merges" and len(parts) >= 3:
            group, field = f"merge {parts[1]}", ".".join(parts[2:])
        elif parts[0] == "stages" and len(parts) == 2:
            group, field = f"stage {parts[1]}", "output"
        elif parts[0] in ("pooled", "logits"):
            group, field = "head", parts[0]
        elif len(parts) >= 2:
            group, field = parts[0], ".".join(parts[1:])
        else:
            group, field = key, key
        out.setdefault(group, {})[field] = float(err)
    return out


def parity_figure(errors: Mapping[str, Mapping[str, float]], tol: float = 1e-4, *,
                  title: str | None = None) -> go.Figure:
    """Max absolute difference per group (block, stage, embedding…) and field, with the tolerance line.

    Args:
        errors: ``errors[group][field] = max |torch − numpy|`` (e.g. ``{"s0_b1": {"attention": 3e-7,
            "output": 1e-6}, "logits": {"logits": 2e-6}}``); group order is kept.
        tol: the agreement threshold drawn as a horizontal line.

    Traces: one scatter per field (``x`` = groups that have it, ``y`` = error, exact zeros at
    :data:`ZERO_FLOOR`, missing/mismatched (non-finite) ones as ``×`` above the rest, ``customdata`` = the
    true values), drawn side by side within a group (``layout.scattermode = "group"``) so no field hides
    another; the tolerance is ``layout.shapes[0]`` at ``y = tol``. Points above ``tol`` get a red outline.
    """
    groups = list(errors)
    fields: list[str] = []
    for g in groups:
        for f in errors[g]:
            if f not in fields:
                fields.append(f)
    fig = go.Figure()
    verdict = parity_verdict(errors, tol)
    cap = max(verdict.largest, tol) * 100.0          # where non-finite (missing / mismatched) fields are drawn
    for i, f in enumerate(fields):
        xs = [g for g in groups if f in errors[g]]
        vals = np.array([float(errors[g][f]) for g in xs], dtype=np.float64)
        bad = ~(vals <= tol)           # outlined: NaN and inf count as bad
        zero = vals == 0
        broken = ~np.isfinite(vals)
        y = np.where(zero, ZERO_FLOOR, np.where(broken, cap, vals))
        color = style.SERIES_COLORS[i % len(style.SERIES_COLORS)]
        sym = style.SERIES_SYMBOLS[(i // len(style.SERIES_COLORS)) % len(style.SERIES_SYMBOLS)]
        symbols = ["x" if b else (f"{sym}-open" if z else sym) for z, b in zip(zero, broken)]
        fig.add_trace(go.Scatter(
            x=xs, y=y, mode="markers", name=f, customdata=vals,
            marker=dict(size=11, color=[("white" if z else color) for z in zero], symbol=symbols,
                        line=dict(color=[style.TOLERANCE_COLOR if b else color for b in bad],
                                  width=[3 if b else 1.5 for b in bad])),
            hovertemplate="%{x} · " + f + ": max |Δ| = %{customdata:.3g}<extra></extra>"))
    fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=tol, y1=tol,
                  line=dict(color=style.TOLERANCE_COLOR, width=2, dash="dash"))
    fig.add_annotation(xref="paper", x=1, y=np.log10(tol), yref="y", text=f"tolerance {tol:g}", showarrow=False,
                       xanchor="right", yanchor="bottom", font=dict(color=style.TOLERANCE_COLOR, size=13))
    # fields side by side within a group: equal errors (dpb_bias is dpb_table gathered, so its error is
    # the table's) would otherwise hide one marker under the other while the legend lists both
    fig.update_layout(scattermode="group", scattergap=0.3)
    fig.update_yaxes(type="log", title_text="max |PyTorch − NumPy|", exponentformat="power",
                     gridcolor="#e5e5e5")
    fig.update_xaxes(title_text="", tickangle=-45 if len(groups) > 8 else 0, categoryorder="array",
                     categoryarray=groups)
    summary = (f"all {verdict.values} values below {tol:g} (worst {verdict.worst:.2g})" if verdict.bad == 0
               else f"{verdict.bad} value(s) above {tol:g} (outlined red; worst {verdict.worst:.2g})")
    style.apply_layout(fig, title or "Parity: PyTorch forward vs the NumPy reference",
                       f"max absolute difference per block and field, log scale · {summary}",
                       width=max(760, 60 * len(groups) + 260), height=560)
    return fig
