"""The dynamic position bias (DPB): an MLP from an offset (Δy, Δx) to one bias per head.

Offsets are query − key (SPEC §4.4: ``r_q − r_k``, ``c_q − c_k``).

Inputs: a DPB table ``((2G−1)², heads)`` over the mother set of offsets, Δy-major (row ``(Δy+G−1)·(2G−1)
+ (Δx+G−1)``), as in ``BlockTrace.dpb_table`` or ``model.dpb_table(stage, block, G)``; the expanded bias
``(heads, G², G²)`` as in ``BlockTrace.dpb_bias``. Signed values: diverging colours centred at 0.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from crossformer.analysis.dpb import centred_table, table_grid

from . import panels, style


def offsets(group_size: int) -> np.ndarray:
    """``(2G−1,)`` offsets ``−(G−1) … G−1``: the coordinates of a (Δy, Δx) axis."""
    return np.arange(1 - group_size, group_size)


#: Smallest colour half-range of a centred bias map: a bias difference of 0.05 changes the attention ratio of
#: two keys by ~5 %; below that, rounding noise would otherwise be stretched into a saturated pattern.
MIN_VISIBLE_BIAS = 0.05


def _sym(values: np.ndarray) -> float:
    v = float(np.nanmax(np.abs(values))) if np.size(values) else 1.0
    return v if v > 0 else 1.0


#: Camera of the 3-D surface: far enough that the whole box, its tick labels and the three axis titles stay
#: inside the scene in half a page (~460 px wide). Checked on WebGL screenshots in chromium (SwiftShader):
#: the earlier (1.5, −1.5, 1.0) cut the box at both sides and lost every axis title.
SURFACE_EYE = dict(x=2.6, y=-2.6, z=1.7)


def dpb_surface_figure(table: np.ndarray, group_size: int, head: int, *, title: str | None = None
                       ) -> go.Figure:
    """Interactive 3-D surface of one head's bias over (Δy, Δx) ∈ [−(G−1), G−1]².

    Trace 0: ``go.Surface`` with ``x = Δx``, ``y = Δy``, ``z = table_grid(table, G, head)``. The height axis
    spans at least ±:data:`MIN_VISIBLE_BIAS` around the table's mean, so a table that varies only by rounding
    noise is drawn flat instead of auto-scaled into a peak.
    """
    z = table_grid(table, group_size, head)
    d = offsets(group_size)
    vmax = _sym(z)
    mid = float(np.mean(z))
    half = max(1.1 * float(np.max(np.abs(z - mid))), MIN_VISIBLE_BIAS)
    axis = dict(title_font=dict(size=13), tickfont=dict(size=11))
    fig = go.Figure(
        data=[go.Surface(x=d, y=d, z=z, colorscale=style.SIGNED, cmin=-vmax, cmax=vmax, cmid=0, name=f"head {head}",
                         # below the scene: at the side it takes the width the height axis title needs
                         colorbar=style.colorbar("bias", horizontal=True, y=-0.02, length=0.8),
                         contours=dict(z=dict(show=True, usecolormap=True, project_z=True, width=1)),
                         hovertemplate="Δy=%{y}, Δx=%{x}: bias %{z:.3f}<extra></extra>")],
        layout=dict(scene=dict(
            xaxis=dict(title="Δx", tickvals=offset_ticks(group_size), **axis),
            yaxis=dict(title="Δy", tickvals=offset_ticks(group_size), **axis),
            zaxis=dict(title="bias", range=[mid - half, mid + half], **axis),
            camera=dict(eye=SURFACE_EYE), aspectmode="manual", aspectratio=dict(x=1, y=1, z=0.6))))
    style.apply_layout(fig, title or f"Dynamic position bias · head {head} · G={group_size}",
                       f"the DPB MLP's output over all {(2 * group_size - 1) ** 2} offsets "
                       f"(Δy, Δx) ∈ [−{group_size - 1}, {group_size - 1}]² · Δy = query row − key row, "
                       f"Δx = query column − key column (in tokens) · height axis at least "
                       f"±{MIN_VISIBLE_BIAS:g} around the mean", width=760, height=560, legend=False,
                       wrap_px=420)   # shown in half a page
    return fig


def offset_ticks(group_size: int) -> list[int]:
    """Integer offsets labelled on a (Δy, Δx) axis: both ends and 0 (never fractional, never crowded)."""
    g = int(group_size) - 1
    return [-g, 0, g] if g > 0 else [0]


def _grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """``(rows, cols)`` for ``n`` panels: near-square (8 heads → 3×3, not 2×4) so panels stay wide."""
    cols = min(max_cols, n, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _panel_grid(grids: Sequence[tuple[str, np.ndarray, np.ndarray]], titles: Sequence[str], cols: int,
                vertical_spacing: float, coloraxis: dict) -> go.Figure:
    """``(name, offsets, z)`` (Δy, Δx) heat-map panels on one shared signed colour axis, built in one call
    (:class:`viz.panels.PanelGrid`)."""
    rows = math.ceil(len(grids) / cols)
    grid = panels.PanelGrid(rows, cols, len(grids), titles=titles, horizontal_spacing=0.06,
                            vertical_spacing=vertical_spacing)
    for i, (name, d, z) in enumerate(grids):
        ticks = offset_ticks((len(d) + 1) // 2)
        first_col, last_row = i % cols == 0, i + cols >= len(grids)    # nothing drawn below this panel
        grid.add(i, go.Heatmap(x=d, y=d, z=z, coloraxis="coloraxis", name=name,
                               hovertemplate="Δy=%{y}, Δx=%{x}: %{z:.3f}<extra>" + name + "</extra>"))
        # y labels only on the first column: a neighbour's labels would run into this panel
        grid.axes(i, dict(title=dict(text="Δx" if last_row else ""), constrain="domain", showgrid=False,
                          zeroline=False, tickvals=ticks),
                  dict(title=dict(text="Δy" if first_col else ""), autorange="reversed", tickvals=ticks,
                       showticklabels=first_col, scaleanchor=grid.refs[i][0], constrain="domain", showgrid=False,
                       zeroline=False))
    return grid.figure(coloraxis=coloraxis)


def dpb_heatmap_figure(table: np.ndarray, group_size: int, heads: Sequence[int] | None = None, *,
                       title: str | None = None, max_cols: int = 3, centred: bool = False) -> go.Figure:
    """One (Δy, Δx) heat map per head, on one symmetric colour scale (so heads compare).

    Traces: one ``go.Heatmap`` per head named ``"head h"`` with ``x = y = −(G−1)…G−1`` and
    ``z = table_grid(table, G, h)`` — minus that head's mean over the offsets when ``centred``: a constant
    shift of every logit moves no attention (softmax ignores it), so the centred map shows exactly the part
    of the bias that changes attention, and a constant table is drawn as zero everywhere.
    """
    t = centred_table(table) if centred else np.asarray(table)
    heads = list(range(t.shape[1])) if heads is None else [int(h) for h in heads]
    rows, cols = _grid_shape(len(heads), max_cols)
    d = offsets(group_size)
    grids = [table_grid(t, group_size, h) for h in heads]
    vmax = _sym(np.stack(grids))
    if centred:
        vmax = max(vmax, MIN_VISIBLE_BIAS)
    fig = _panel_grid([(f"head {h}", d, z) for h, z in zip(heads, grids)], [f"head {h}" for h in heads], cols,
                      min(0.12, 0.3 / rows), dict(colorscale=style.SIGNED, cmin=-vmax, cmax=vmax, cmid=0,
                                                  colorbar=style.colorbar("bias − mean" if centred else "bias")))
    what = ("bias minus its mean over the offsets (the part that changes attention)" if centred
            else "bias added to the logit of a (query, key) pair")
    style.apply_layout(fig, title or f"Dynamic position bias per head · G={group_size}",
                       f"{what} at offset (Δy, Δx) = query − key "
                       "(centre: a token and itself) · one colour scale for all heads", width=cols * 250 + 190,
                       # shown in half a page (~420 px): rows sized for the panels' width there, not 250 px
                       height=rows * (300 // cols + 60) + 150, legend=False, wrap_px=420)
    return fig


def bias_matrix_figure(bias: np.ndarray, head: int, group_size: int, *, title: str | None = None
                       ) -> go.Figure:
    """The expanded ``G² × G²`` bias of one head: row = query member, column = key member.

    Trace 0: ``go.Heatmap`` with ``z = bias[head]`` ``(N, N)``; lines every ``G`` members mark the rows of
    the group.
    """
    b = np.asarray(bias[head], dtype=np.float64)
    N = b.shape[0]
    G = group_size
    if N != G * G:
        raise ValueError(f"bias is {N}×{N}, expected G²={G * G}")
    vmax = _sym(b)
    line = dict(type="line", line=dict(color="rgba(0,0,0,0.25)", width=0.7))
    ticks = list(range(0, N, G))
    fig = go.Figure(   # one call (per-shape add_shape and axis updates each cost a few ms)
        data=[go.Heatmap(z=b, colorscale=style.SIGNED, zmin=-vmax, zmax=vmax, zmid=0, name=f"head {head}",
                         colorbar=style.colorbar("bias"),
                         hovertemplate="query member %{y}, key member %{x}: %{z:.3f}<extra></extra>")],
        layout=dict(
            shapes=[dict(line, **kw) for k in range(G, N, G)
                    for kw in (dict(x0=k - 0.5, x1=k - 0.5, y0=-0.5, y1=N - 0.5),
                               dict(y0=k - 0.5, y1=k - 0.5, x0=-0.5, x1=N - 0.5))],
            xaxis=dict(title=dict(text="key member n = r·G + c"), tickvals=ticks, constrain="domain",
                       showgrid=False, zeroline=False),
            yaxis=dict(title=dict(text="query member n"), tickvals=ticks, autorange="reversed", scaleanchor="x",
                       constrain="domain", showgrid=False, zeroline=False)))
    style.apply_layout(fig, title or f"Position bias matrix of a group · head {head} · G={G}",
                       f"the DPB table indexed by each pair's offset; every group of the block adds this "
                       f"{N}×{N} matrix (lines every G={G} members)", width=700, height=680, legend=False)
    return fig


def dpb_sizes_figure(tables: Mapping[int, np.ndarray], head: int, *, trained_group_size: int | None = None,
                     title: str | None = None, max_cols: int = 4) -> go.Figure:
    """The same DPB MLP evaluated at several group sizes (what makes it *dynamic*), one colour scale.

    Args:
        tables: ``{G: table ((2G−1)², heads)}`` e.g. from ``model.dpb_table(stage, block, G)``.
        head: which head to draw.
        trained_group_size: the G the block runs at (marked in its panel title).

    Traces: one heat map per G named ``"G=…"`` with ``x = y = −(G−1)…G−1`` and ``z = table_grid``.
    """
    sizes = sorted(int(g) for g in tables)
    rows, cols = _grid_shape(len(sizes), max_cols)
    grids = {G: table_grid(np.asarray(tables[G]), G, head) for G in sizes}
    titles = [f"G={G}" + (" (used by this block)" if G == trained_group_size else "") for G in sizes]
    vmax = _sym(np.concatenate([g.ravel() for g in grids.values()]))
    fig = _panel_grid([(f"G={G}", offsets(G), grids[G]) for G in sizes], titles, cols, min(0.14, 0.3 / rows),
                      dict(colorscale=style.SIGNED, cmin=-vmax, cmax=vmax, cmid=0, colorbar=style.colorbar("bias")))
    style.apply_layout(fig, title or f"One DPB MLP, any group size · head {head}",
                       "the same weights evaluated on the offsets of G×G groups, including sizes never seen in "
                       "training", width=cols * 250 + 190, height=rows * 260 + 140, legend=False)
    return fig
