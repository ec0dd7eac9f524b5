"""Deletion / insertion curves of several attribution methods (from :mod:`crossformer.faithfulness`).

Plotting only: the curves arrive as NumPy arrays in the result dicts of
:func:`crossformer.faithfulness.deletion_insertion`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style

RANDOM_COLOR = "#7F7F7F"


def faithfulness_figure(results_by_method: dict[str, dict], title: str = "Deletion and insertion curves",
                        subtitle: str | None = None) -> go.Figure:
    """Two panels (deletion, insertion): the target probability against the fraction of patches removed /
    inserted, one line per method and the random patch order dashed.

    Traces: per method two lines with ``legendgroup = method`` and a legend entry
    ``"<method> (AUC del …, ins …)"``; the random order (from the first result; it does not depend on the
    map) with ``legendgroup = "random"``.
    """
    if not results_by_method:
        raise ValueError("no results to draw")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09, shared_yaxes=False,
                        subplot_titles=["Deletion: patches removed, most attributed first (lower = faithful)",
                                        "Insertion: patches put back, most attributed first (higher = faithful)"])
    hover = "%{x:.0%} of patches<br>p = %{y:.4f}<extra>%{fullData.legendgroup}</extra>"
    for i, (method, r) in enumerate(results_by_method.items()):
        color = style.SERIES_COLORS[i % len(style.SERIES_COLORS)]
        name = f"{method} (AUC del {r['deletion_auc']:.3f}, ins {r['insertion_auc']:.3f})"
        for col, curve in ((1, "deletion"), (2, "insertion")):
            fig.add_trace(go.Scatter(x=np.asarray(r["fractions"], dtype=float),
                                     y=np.asarray(r[curve], dtype=float), mode="lines", name=name,
                                     legendgroup=method, showlegend=col == 1, line=dict(color=color, width=2.5),
                                     hovertemplate=hover), row=1, col=col)
    r = next(iter(results_by_method.values()))
    name = (f"random order (AUC del {r['random_deletion_auc']:.3f}, ins {r['random_insertion_auc']:.3f})")
    for col, curve in ((1, "random_deletion"), (2, "random_insertion")):
        fig.add_trace(go.Scatter(x=np.asarray(r["fractions"], dtype=float), y=np.asarray(r[curve], dtype=float),
                                 mode="lines", name=name, legendgroup="random", showlegend=col == 1,
                                 line=dict(color=RANDOM_COLOR, width=2, dash="dash"), hovertemplate=hover),
                      row=1, col=col)
    if subtitle is None:
        subtitle = (f"baseline “{r.get('baseline', '?')}”, {r.get('patch', '?')} px patches, "
                    f"{r.get('steps', '?')} steps, {r.get('precision', '?')}")
    style.apply_layout(fig, title, subtitle, height=480)
    for col in (1, 2):
        fig.update_xaxes(title_text="fraction of patches " + ("removed" if col == 1 else "inserted"),
                         range=[0, 1], tickformat=".0%", row=1, col=col)
        fig.update_yaxes(title_text="target probability" if col == 1 else "", rangemode="tozero", row=1, col=col)
    fig.update_annotations(font_size=12)
    style.bottom_legend(fig, rows=(len(results_by_method) + 2) // 2)
    return fig
