"""Drawing primitives shared by the builders: token maps over an image, in input-pixel coordinates.

Coordinates: x = column, y = row, both in input pixels; pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``.
A token ``(h, w)`` of a map with stride ``s`` covers ``[w·s, (w+1)·s) × [h·s, (h+1)·s)``, so its centre
is ``((w + ½)·s, (h + ½)·s)`` (SPEC: a stage-``i`` token covers ``4·2^i`` pixels per side).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from . import style


def token_heatmap(z: np.ndarray, stride: float, **kwargs) -> go.Heatmap:
    """``(h, w)`` values drawn as ``stride × stride`` pixel cells (NaN cells stay transparent).

    Values that float32 holds exactly (the model's own fp32 numbers) are sent as float32: float64 doubled
    a large input's chart payload. Derived values that it would round stay float64 (colour ranges are
    computed from them)."""
    z = np.asarray(z, dtype=np.float64)
    z32 = z.astype(np.float32)
    if np.array_equal(z32, z, equal_nan=True):
        z = z32
    kwargs.setdefault("hoverongaps", False)
    return go.Heatmap(z=z, x0=stride / 2, dx=stride, y0=stride / 2, dy=stride, **kwargs)


def token_centres(hw_positions: np.ndarray, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` token ``(h, w)`` → pixel centres ``(x, y)``."""
    p = np.asarray(hw_positions, dtype=np.float64).reshape(-1, 2)
    return (p[:, 1] + 0.5) * stride, (p[:, 0] + 0.5) * stride


def grid_lines(hw: Sequence[int], stride: float, every: int = 1, *, color: str = style.GRID_COLOR,
               width: float = 0.6, name: str = "token grid") -> go.Scatter:
    """Lines between tokens (every ``every`` tokens) of an ``(h, w)`` grid as one scatter trace."""
    h, w = int(hw[0]), int(hw[1])
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r in range(0, h + 1, every):
        xs += [0, w * stride, None]
        ys += [r * stride, r * stride, None]
    for c in range(0, w + 1, every):
        xs += [c * stride, c * stride, None]
        ys += [0, h * stride, None]
    return go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width), hoverinfo="skip",
                      name=name, showlegend=False)


def rectangle(y0: float, x0: float, y1: float, x1: float, **kwargs) -> go.Scatter:
    """A closed rectangle outline ``[x0, x1] × [y0, y1]`` as a scatter trace (inspectable in ``fig.data``)."""
    kwargs.setdefault("mode", "lines")
    return go.Scatter(x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], **kwargs)


def query_marker(query: Sequence[int], stride: float, *, name: str = "query token",
                 size: int = 16) -> go.Scatter:
    """A star on the query token ``(h, w)``."""
    x, y = token_centres(np.array([query]), stride)
    return go.Scatter(x=x, y=y, mode="markers", name=name,
                      marker=dict(symbol="star", size=size, color=style.QUERY_COLOR,
                                  line=dict(color="white", width=1.5)),
                      hovertemplate=f"query token (h={query[0]}, w={query[1]})<extra></extra>")


def padding_marks(padding_map: np.ndarray, stride: float, *, size: int | None = None) -> go.Scatter:
    """``×`` on every padded position of a padded grid ``(Hp, Wp)``; ``customdata`` = ``(h, w)``."""
    pos = np.argwhere(np.asarray(padding_map))
    x, y = token_centres(pos, stride)
    size = size or int(np.clip(stride * 0.35, 4, 10))
    return go.Scatter(x=x, y=y, mode="markers", name="padding (zeros, masked keys)",
                      marker=dict(symbol="x-thin", size=size, line=dict(color="#555", width=1.2),
                                  color="#555"),
                      customdata=pos, hovertemplate="padding (h=%{customdata[0]}, w=%{customdata[1]})"
                                                    "<extra></extra>")


def view_around(positions_hw: np.ndarray, stride: float, canvas_hw: Sequence[float],
                margin_tokens: float = 1.0, min_side_px: float = 0.0) -> tuple[float, float, float, float]:
    """``(y0, y1, x0, x1)`` pixel window around token positions, with a margin, clipped to the canvas."""
    p = np.asarray(positions_hw).reshape(-1, 2)
    y0 = (p[:, 0].min() - margin_tokens) * stride
    y1 = (p[:, 0].max() + 1 + margin_tokens) * stride
    x0 = (p[:, 1].min() - margin_tokens) * stride
    x1 = (p[:, 1].max() + 1 + margin_tokens) * stride
    if min_side_px:
        if y1 - y0 < min_side_px:
            c = (y0 + y1) / 2
            y0, y1 = c - min_side_px / 2, c + min_side_px / 2
        if x1 - x0 < min_side_px:
            c = (x0 + x1) / 2
            x0, x1 = c - min_side_px / 2, c + min_side_px / 2
    H, W = canvas_hw
    return max(0.0, y0), min(float(H), y1), max(0.0, x0), min(float(W), x1)
