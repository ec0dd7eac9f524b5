"""A zoom inset for image panels: when the query's window or group is tiny on screen, a magnified copy of it
sits in a corner of the figure (away from the query), and a box on the main panel shows where it comes from.

Coordinates as in :mod:`viz.canvas` (input pixels, y downwards). The inset uses its own axes ``x2``/``y2``
(``layout.xaxis2``/``yaxis2``, names :data:`INSET_X` / :data:`INSET_Y`), so its traces are inspectable in
``fig.data`` like any other (their ``xaxis`` is ``"x2"``).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

from . import canvas, style

#: An inset is added when the shown region's long side is below this fraction of the panel's long side.
INSET_BELOW = 0.15
#: Fraction of the plot area's width and height the inset takes.
INSET_SIZE = 0.4
INSET_X, INSET_Y = "x2", "y2"
INSET_NAME = "zoom inset"


def needs_inset(view: Sequence[float], shown_hw: Sequence[float], below: float = INSET_BELOW) -> bool:
    """True when the region ``view = (y0, y1, x0, x1)`` is smaller than ``below`` of the panel ``shown_hw``
    on its long side."""
    side = max(view[1] - view[0], view[3] - view[2])
    return side < below * max(float(shown_hw[0]), float(shown_hw[1]))


def square_view(view: Sequence[float], canvas_hw: Sequence[float]) -> tuple[float, float, float, float]:
    """``view`` grown to a square (its long side), shifted to stay inside the canvas where it can."""
    y0, y1, x0, x1 = (float(v) for v in view)
    side = max(y1 - y0, x1 - x0)
    H, W = float(canvas_hw[0]), float(canvas_hw[1])

    def fit(a: float, b: float, n: float) -> tuple[float, float]:
        c = (a + b) / 2
        lo = min(max(c - side / 2, 0.0), max(n - side, 0.0))
        return lo, lo + side

    (y0, y1), (x0, x1) = fit(y0, y1, H), fit(x0, x1, W)
    return y0, y1, x0, x1


def aspect_view(view: Sequence[float], canvas_hw: Sequence[float]) -> tuple[float, float, float, float]:
    """``view`` grown along one axis to the canvas's aspect ratio (kept inside the canvas where it can), so
    a zoomed panel fills the same panel shape as an unzoomed one."""
    y0, y1, x0, x1 = (float(v) for v in view)
    H, W = float(canvas_hw[0]), float(canvas_hw[1])
    h, w = y1 - y0, x1 - x0
    if w / h < W / H:
        w = min(h * W / H, W)
    else:
        h = min(w * H / W, H)

    def fit(a: float, b: float, side: float, n: float) -> tuple[float, float]:
        lo = min(max((a + b) / 2 - side / 2, 0.0), max(n - side, 0.0))
        return lo, lo + side

    (y0, y1), (x0, x1) = fit(y0, y1, h, H), fit(x0, x1, w, W)
    return y0, y1, x0, x1


def corner_for(point_xy: Sequence[float], canvas_hw: Sequence[float]) -> tuple[list[float], list[float]]:
    """``(x_domain, y_domain)`` paper fractions of the top corner on the other side from the point (so the
    inset hides neither the query nor its group).

    Always a top corner: the image's tick labels sit left of and below it, and the main image is pinned to
    the top left of the plot area (:func:`viz.style.image_axis_specs`; a column narrower than the figure
    shrinks it there), so a bottom corner could drop below the image onto the x ticks, and the top-left
    corner starts exactly at the image's left edge, right of the y ticks.
    """
    x, _ = point_xy
    _, W = canvas_hw
    xd = [0.0, INSET_SIZE] if x > W / 2 else [1.0 - INSET_SIZE, 1.0]
    return xd, [1.0 - INSET_SIZE, 1.0]


def add_inset(fig: go.Figure, traces: Iterable[go.BaseTraceType], view: Sequence[float],
              canvas_hw: Sequence[float], point_xy: Sequence[float], *, label: str = "zoom") -> None:
    """Draw ``traces`` again on inset axes showing ``view = (y0, y1, x0, x1)`` (pixels), in the corner away
    from ``point_xy``, and outline ``view`` on the main panel (trace ``"zoom inset"``).

    The traces must be fresh objects (they are re-targeted to the inset axes and hidden from the legend).
    """
    y0, y1, x0, x1 = view
    xd, yd = corner_for(point_xy, canvas_hw)
    for tr in traces:
        tr.update(xaxis=INSET_X, yaxis=INSET_Y)
        if not isinstance(tr, go.Image):
            tr.update(showlegend=False)
        if isinstance(tr, go.Heatmap):
            tr.update(showscale=False)
        fig.add_trace(tr)
    fig.add_trace(canvas.rectangle(y0, x0, y1, x1, name=INSET_NAME, hoverinfo="skip", showlegend=False,
                                   line=dict(color="#111", width=1.5)))
    axis = dict(showgrid=False, zeroline=False, showticklabels=False, ticks="", mirror=True, showline=True,
                linecolor="#111", linewidth=2)
    style.set_layout(
        fig,
        xaxis2=dict(domain=xd, range=[x0, x1], anchor=INSET_Y, constrain="domain",
                    constraintoward="left" if xd[0] == 0 else "right", **axis),      # hugs its corner
        yaxis2=dict(domain=yd, range=[y1, y0], anchor=INSET_X, scaleanchor=INSET_X, scaleratio=1,
                    constrain="domain", constraintoward="top", **axis))
    fig.add_annotation(xref=f"{INSET_X} domain", yref=f"{INSET_Y} domain", x=0.0, y=1.0, xanchor="left",
                       yanchor="bottom", text=label, showarrow=False, bgcolor="rgba(255,255,255,0.85)",
                       font=dict(size=11, color="#111"))


def inset_traces(fig: go.Figure) -> list[go.BaseTraceType]:
    """The traces drawn on the inset axes (empty when the figure has no inset)."""
    return [t for t in fig.data if getattr(t, "xaxis", None) == INSET_X]


def inset_view(fig: go.Figure) -> tuple[float, float, float, float] | None:
    """``(y0, y1, x0, x1)`` shown by the inset, or None."""
    ax = getattr(fig.layout, "xaxis2", None)
    if ax is None or ax.range is None or not inset_traces(fig):
        return None
    x0, x1 = ax.range
    y1, y0 = fig.layout.yaxis2.range
    return float(y0), float(y1), float(x0), float(x1)


def group_view(positions_hw: np.ndarray, stride: float, canvas_hw: Sequence[float]
               ) -> tuple[float, float, float, float]:
    """The square region around a group's members (one token of margin) the inset shows."""
    return square_view(canvas.view_around(positions_hw, stride, canvas_hw, 1.0), canvas_hw)
