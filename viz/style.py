"""Shared look of every figure: colours, colour maps, fonts, layout helpers (images inside figures:
:mod:`viz.image_traces`).

One place for the palette so every page, the gallery and exported slides agree:

* magnitudes (attention, energy, attributions ≥ 0): perceptually uniform ``Viridis``;
* signed values (position bias, raw activations, signed attributions): diverging ``RdBu_r`` centred at 0
  (blue negative, red positive);
* group ids: a qualitative cycle (:data:`GROUP_PALETTE`), assigned so that touching groups differ;
* padding: neutral grey with ``×`` marks.

Pure helpers, no global plotly/matplotlib state is changed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from crossformer.config import CrossFormerConfig

_DEFAULT_CONFIG = CrossFormerConfig()

# ---- colours -------------------------------------------------------------------------------------
MAGNITUDE = "Viridis"          # plotly name; matplotlib: MAGNITUDE_MPL
MAGNITUDE_MPL = "viridis"
SIGNED = "RdBu_r"              # diverging, use with zmid=0

#: Qualitative colours for group ids (colour-blind friendly "Safe" set without its grey, plus extras).
GROUP_PALETTE: tuple[str, ...] = (
    "#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499",
    "#44AA99", "#999933", "#882255", "#E69F00", "#6699CC", "#F0E442",
)
PADDING_COLOR = "#9E9E9E"
QUERY_COLOR = "#FF3B30"        # the selected query token
GRID_COLOR = "rgba(255,255,255,0.55)"
TOLERANCE_COLOR = "#D62728"

#: Colour of each kernel of a cross-scale layer, by position (CEL 4/8/16/32, merges 2/4).
KERNEL_COLORS: tuple[str, ...] = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#D55E00", "#0072B2")

#: One colour per parity field / diagnostics series.
SERIES_COLORS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)
#: Marker symbols cycled with :data:`SERIES_COLORS` when there are more series than colours.
SERIES_SYMBOLS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "pentagon")

# ---- fonts and sizes -----------------------------------------------------------------------------
FONT_FAMILY = "Inter, Helvetica Neue, Helvetica, Arial, DejaVu Sans, sans-serif"
FONT_SIZE = 14
TITLE_SIZE = 18
SUBTITLE_SIZE = 13
PANEL_PX = 420                 # default side of one image panel in layout pixels
OVERLAY_OPACITY = 0.6          # heat maps drawn over the image
#: Average width (layout px) of a character at :data:`SUBTITLE_SIZE` / bold :data:`TITLE_SIZE` (measured in
#: chromium: a 105-character subtitle line is 777 px wide).
SUBTITLE_CHAR_PX = 7.6
TITLE_CHAR_PX = 11.2
#: Widest line a title/subtitle may take: the app shows figures stretched to their column (two-thirds of
#: the page is about 600 px on a 1400-px window), whatever their layout width, so text wraps to this.
WRAP_PX = 560


_AXIS = dict(gridcolor="#EBF0F8", linecolor="#C8D4E3", zerolinecolor="#EBF0F8", automargin=True,
             title=dict(standoff=12))
_SCENE_AXIS = dict(backgroundcolor="white", gridcolor="#DFE8F3", linecolor="#C8D4E3", showbackground=True,
                   zerolinecolor="#C8D4E3", gridwidth=2)
#: A small layout-only template in the spirit of ``plotly_white`` (the full one costs ~25 ms per figure).
HOUSE_TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=list(SERIES_COLORS),
    font=dict(family=FONT_FAMILY, size=FONT_SIZE, color="#222"),
    xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left"), hovermode="closest",
    scene=dict(xaxis=_SCENE_AXIS, yaxis=_SCENE_AXIS, zaxis=_SCENE_AXIS),
    coloraxis=dict(colorbar=dict(outlinewidth=0, ticks="")),
))


def stage_stride(stage: int) -> int:
    """Input pixels per token side at ``stage``, for builders given only a layout and its stage.

    The owner is :meth:`crossformer.config.CrossFormerConfig.stage_stride` (every variant here has CEL
    stride 4); builders given a block read ``block.stride``, recorded by the forward pass.
    """
    return _DEFAULT_CONFIG.stage_stride(stage)


def wrap_text(text: str, max_chars: int) -> str:
    """``text`` with ``<br>`` inserted so no line is longer than ``max_chars`` characters where it can be.

    Existing ``<br>`` are kept; lines break preferably at `` · `` separators, else at spaces (a single
    longer word stays whole).
    """
    max_chars = max(int(max_chars), 12)
    out: list[str] = []
    for line in text.split("<br>"):
        pieces = line.split(" · ")
        words: list[str] = []
        for i, piece in enumerate(pieces):
            chunk = piece + (" ·" if i < len(pieces) - 1 else "")
            words += chunk.split(" ") if len(chunk) > max_chars else [chunk]
        cur = ""
        for w in words:
            if cur and len(cur) + 1 + len(w) > max_chars:
                out.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}" if cur else w
        out.append(cur)
    return "<br>".join(out)


def split_title(title: str, max_chars: int) -> tuple[str, str]:
    """``(head, tail)``: the title cut at the last `` · `` that keeps ``head`` within ``max_chars`` (tail
    empty when it fits or has no separator to cut at)."""
    if len(title) <= max_chars or " · " not in title:
        return title, ""
    parts = title.split(" · ")
    k = 1
    while k < len(parts) and len(" · ".join(parts[:k + 1])) <= max_chars:
        k += 1
    return " · ".join(parts[:k]), " · ".join(parts[k:])


def wrap_chars(width: int | None, char_px: float, wrap_px: int | None = None) -> int:
    """Characters per line for text of ``char_px`` per character in a figure ``width`` px wide."""
    px = min(int(width) if width else WRAP_PX, wrap_px or WRAP_PX) - 30
    return int(px / char_px)


def _merged(old: dict, new: dict) -> dict:
    """``old`` updated by ``new``, nested dicts merged (as ``update_layout`` merges them)."""
    out = dict(old)
    for k, v in new.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_layout(fig: go.Figure, **props) -> go.Figure:
    """``fig.update_layout(**props)`` (nested dicts merged into what is there), by assigning each top-level
    property once: ``update_layout``'s path parsing and relayout bookkeeping cost ~4× more (~15 ms a call),
    which every figure paid several times. Returns ``fig``."""
    with fig.batch_update():
        for k, v in props.items():
            if isinstance(v, dict) and k in fig.layout:      # (a new subplot axis "xaxis2" is not yet in)
                cur = fig.layout[k]
                if cur is not None and hasattr(cur, "to_plotly_json"):
                    v = _merged(cur.to_plotly_json(), v)
            fig.layout[k] = v
    return fig


def apply_layout(fig: go.Figure, title: str, subtitle: str | None = None, *, width: int | None = None,
                 height: int | None = None, legend: bool = True, wrap_px: int | None = None,
                 margin_top: int | None = None) -> go.Figure:
    """House layout: white template, readable fonts, title (with an optional smaller second line).

    The subtitle is wrapped (:func:`wrap_text`) to fit ``min(width, wrap_px or WRAP_PX)`` pixels and a too
    long title hands its tail (after a `` · ``) to the subtitle (:func:`split_title`), so neither is cut
    when the app shows the figure stretched to a narrower column; the top margin grows with the lines.
    ``margin_top``: a larger top margin (e.g. room for panel titles of two lines). Returns the same figure
    (mutated) for chaining.
    """
    before = subtitle.count("<br>") if subtitle else 0
    title, rest = split_title(title, wrap_chars(width, TITLE_CHAR_PX, wrap_px))
    if rest:      # a multi-line plotly title grows upwards out of the figure: its tail opens the subtitle
        subtitle = f"{rest} · {subtitle}" if subtitle else rest
    title = f"<b>{title}</b>"
    if subtitle:
        subtitle = wrap_text(subtitle, wrap_chars(width, SUBTITLE_CHAR_PX, wrap_px))
    if height is not None:      # the plot area keeps its size: added lines make the figure taller
        height = height + 17 * ((subtitle.count("<br>") if subtitle else 0) - before)
    title_spec: dict = dict(text=title, x=0.01, xanchor="left", yref="container", y=0.985,
                            yanchor="top", font=dict(size=TITLE_SIZE, family=FONT_FAMILY, color="#111"))
    if subtitle:
        title_spec["subtitle"] = dict(text=subtitle, font=dict(size=SUBTITLE_SIZE, color="#555"))
    size = {k: int(v) for k, v in (("width", width), ("height", height)) if v is not None}
    set_layout(   # one call: every layout update costs several ms
        fig,
        template=HOUSE_TEMPLATE,
        title=title_spec,
        font=dict(family=FONT_FAMILY, size=FONT_SIZE, color="#222"),
        margin=dict(l=70, r=30, t=max(95 + 17 * subtitle.count("<br>") if subtitle else 70, margin_top or 0), b=60),
        showlegend=legend,
        legend=dict(bgcolor="rgba(255,255,255,0.85)", bordercolor="#ccc", borderwidth=1),
        hoverlabel=dict(font=dict(family=FONT_FAMILY)),
        **size,
    )
    return fig


def image_axis_specs(extent_hw: tuple[float, float], *, x_title: str = "x (pixels)", y_title: str = "y (pixels)",
                     view: tuple[float, float, float, float] | None = None, anchor: str = "x"
                     ) -> tuple[dict, dict]:
    """``(xaxis, yaxis)`` layout entries of an image panel in pixel coordinates: y downwards, equal aspect
    (the y axis scale-anchored to x-axis ``anchor``), no grid. ``extent_hw`` is the drawn canvas ``(H, W)``
    in pixels; ``view`` an optional ``(y0, y1, x0, x1)`` zoom.

    The image is pinned to the top left of its plot area: the app shows figures at their column's width
    with their layout height, and a centred image then sat under a tall white band; spare room now falls
    below and right of it (and a zoom inset in a top corner cannot slide onto its tick labels)."""
    H, W = extent_hw
    y0, y1, x0, x1 = view if view is not None else (0.0, float(H), 0.0, float(W))
    return (dict(range=[x0, x1], showgrid=False, zeroline=False, title=dict(text=x_title), constrain="domain",
                 constraintoward="left", ticks="outside"),
            dict(range=[y1, y0], showgrid=False, zeroline=False, title=dict(text=y_title), scaleanchor=anchor,
                 scaleratio=1, constrain="domain", constraintoward="top", ticks="outside"))


def image_axes(fig: go.Figure, extent_hw: tuple[float, float], row: int | None = None, col: int | None = None,
               *, x_title: str = "x (pixels)", y_title: str = "y (pixels)",
               view: tuple[float, float, float, float] | None = None) -> None:
    """:func:`image_axis_specs` applied to subplot ``(row, col)`` of ``fig`` (or its only axes)."""
    xs, ys = image_axis_specs(extent_hw, x_title=x_title, y_title=y_title, view=view,
                              anchor=subplot_anchor(fig, row, col))
    if row is None:
        set_layout(fig, xaxis=xs, yaxis=ys)
    else:
        fig.update_xaxes(**xs, row=row, col=col)
        fig.update_yaxes(**ys, row=row, col=col)


def subplot_anchor(fig: go.Figure, row: int | None, col: int | None) -> str:
    """The x-axis id (``"x"``, ``"x2"``…) of a subplot, for ``scaleanchor``."""
    if row is None:
        return "x"
    try:
        ref = fig.get_subplot(row, col)
    except Exception:  # figure not made with make_subplots
        return "x"
    name = ref.xaxis.plotly_name  # "xaxis", "xaxis2", …
    return "x" + name[len("xaxis"):]


def colorbar(title: str = "", *, x: float | None = None, y: float | None = None, length: float | None = None,
             horizontal: bool = False) -> dict:
    """A colour bar spec; horizontal bars sit under their panel (``x`` = panel centre, ``length`` = width)."""
    cb: dict = dict(title=dict(text=title, side="right" if not horizontal else "top"),
                    thickness=14, outlinewidth=0, tickfont=dict(size=12))
    if horizontal:
        cb.update(orientation="h", x=0.5 if x is None else x, xanchor="center",
                  y=-0.12 if y is None else y, yanchor="top", len=0.9 if length is None else length)
    else:
        if x is not None:
            cb["x"] = x
        if y is not None:
            cb.update(y=y, yanchor="middle")
        if length is not None:
            cb["len"] = length
    return cb


def panel_colorbar(fig: go.Figure, row: int, col: int, title: str = "", offset: float = 0.07) -> dict:
    """A horizontal colour bar under subplot ``(row, col)`` of a ``make_subplots`` figure, ``offset`` (paper
    units) below its plot area."""
    ref = fig.get_subplot(row, col)
    return colorbar_under(ref.xaxis.domain, ref.yaxis.domain, title, offset)


def colorbar_under(x_domain: Sequence[float], y_domain: Sequence[float], title: str = "",
                   offset: float = 0.07) -> dict:
    """A horizontal colour bar under the panel with these axis domains (paper units), ``offset`` below it."""
    x0, x1 = x_domain
    return colorbar(title, x=(x0 + x1) / 2, y=y_domain[0] - offset, length=(x1 - x0) * 0.9, horizontal=True)


def discrete_colorscale(color_of_value: Sequence[str]) -> list[list]:
    """Piecewise-constant colour scale: value ``v`` (integer in ``[0, n)``) gets ``color_of_value[v]``.

    Use with ``zmin=-0.5, zmax=n-0.5``.
    """
    n = max(len(color_of_value), 1)
    scale: list[list] = []
    for v, c in enumerate(color_of_value):
        scale.append([v / n, c])
        scale.append([(v + 1) / n, c])
    return scale


def group_colors(group_map: np.ndarray, num_groups: int, palette: Sequence[str] = GROUP_PALETTE) -> np.ndarray:
    """``(num_groups,)`` palette index per group, chosen so groups that touch on ``group_map`` differ.

    Greedy colouring of the adjacency graph read off the ``(Hp, Wp)`` group map (8-neighbourhood); when
    every palette colour is taken by a neighbour, the least-used one among neighbours is picked.
    """
    gm = np.asarray(group_map).astype(np.int64)
    codes = []
    for a, b in ((gm[:, :-1], gm[:, 1:]), (gm[:-1, :], gm[1:, :]),
                 (gm[:-1, :-1], gm[1:, 1:]), (gm[:-1, 1:], gm[1:, :-1])):
        diff = a != b
        codes += [a[diff] * num_groups + b[diff], b[diff] * num_groups + a[diff]]     # both directions
    edges = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)     # sorted by source group
    src, dst = np.divmod(edges, num_groups)
    starts = np.searchsorted(src, np.arange(num_groups + 1))
    neighbours = [dst[starts[g]:starts[g + 1]].tolist() for g in range(num_groups)]
    k = len(palette)
    color = [-1] * num_groups                        # a list: numpy scalar indexing in this loop is slow
    for g in range(num_groups):
        used = [color[n] for n in neighbours[g] if color[n] >= 0]
        free = [c for c in range(k) if c not in used]
        # rotate the start so large maps do not lean on the first colours
        color[g] = free[g % len(free)] if free else int(np.argmin(np.bincount(used, minlength=k)))
    return np.asarray(color, dtype=np.int64)


def fmt_hw(hw: Sequence[int]) -> str:
    return f"{hw[0]}×{hw[1]}"


def panel_size(canvas_hw: Sequence[float], panel: int = PANEL_PX) -> tuple[int, int]:
    """Plot-area ``(width, height)`` in layout pixels of one image panel whose long side is ``panel``."""
    H, W = float(canvas_hw[0]), float(canvas_hw[1])
    if W >= H:
        return int(panel), int(round(panel * H / W))
    return int(round(panel * W / H)), int(panel)


def cell_px(stride: float, canvas_hw: Sequence[float], panel: int = PANEL_PX) -> float:
    """Screen size (layout pixels) of one ``stride``-pixel token cell in a panel of long side ``panel``."""
    return float(stride) * panel / max(float(canvas_hw[0]), float(canvas_hw[1]))


def auto_panel(stride: float, canvas_hw: Sequence[float], min_cell: float = 10.0, lo: int = 520,
               hi: int = 820) -> int:
    """Panel long side (layout px) so one token cell is at least ``min_cell`` px, within ``[lo, hi]``."""
    need = min_cell * max(float(canvas_hw[0]), float(canvas_hw[1])) / float(stride)
    return int(np.clip(need, lo, hi))


def bottom_legend(fig: go.Figure, rows: int = 1) -> go.Figure:
    """A horizontal legend pinned to the bottom of the figure, below the x-axis title."""
    set_layout(fig, legend=dict(orientation="h", yref="container", y=0.005, yanchor="bottom", x=0.01,
                                xanchor="left", font=dict(size=12)),
               margin=dict(b=80 + 22 * rows))
    return fig
