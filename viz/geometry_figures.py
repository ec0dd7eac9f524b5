"""SDA windows and LDA strided groups drawn on the image, straight from a block's ``GroupLayout``.

Everything here reads the layout's index maps (``group_map``, ``member_map``, ``padding_map``,
``positions``, ``members``, ``slot_of_token``); nothing regroups tokens on its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from crossformer.geometry import GroupLayout

from . import canvas, image_traces, inset, panels, style


def layout_subtitle(layout: GroupLayout, stage: int) -> str:
    """``G=7 · I=8 · 50×66 tokens → padded 56×112 · 128 groups of 49 · 4 px/token`` (+ global note)."""
    s = style.stage_stride(stage)
    txt = (f"G={layout.group_size} · I={layout.interval_text} · "
           f"{style.fmt_hw(layout.feature_hw)} tokens → padded {style.fmt_hw(layout.padded_hw)} · "
           f"{layout.num_groups} groups of {layout.group_tokens} · {s} px per token")
    return txt + global_note(layout)


def global_note(layout: GroupLayout) -> str:
    """A note when the whole map fits one group (an LDA block then attends globally, as SDA)."""
    if not layout.is_global:
        return ""
    if layout.configured_kind == "lda":
        return " · map ≤ G: this LDA block is one global group"
    return " · map ≤ G: one global group"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` of the runs of True in a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _boundary_segments(group_map: np.ndarray, stride: float) -> tuple[list, list]:
    """Line segments (pixel coords, ``None``-separated) between cells of different groups; collinear
    neighbouring edges are merged into one segment (an SDA map's borders are then a few long lines, not one
    segment per cell edge: a 120 × 160 map would otherwise send 10⁴ points)."""
    gm = np.asarray(group_map)
    xs: list = []
    ys: list = []
    for w in range(gm.shape[1] - 1):                           # vertical borders right of column w
        x = (w + 1) * stride
        for a, b in _runs(gm[:, w] != gm[:, w + 1]):
            xs += [x, x, None]
            ys += [a * stride, b * stride, None]
    for h in range(gm.shape[0] - 1):                           # horizontal borders below row h
        y = (h + 1) * stride
        for a, b in _runs(gm[h, :] != gm[h + 1, :]):
            xs += [a * stride, b * stride, None]
            ys += [y, y, None]
    return xs, ys


def _members_trace(layout: GroupLayout, g: int, stride: float, cell: float, name: str,
                   shown_at: float = 1.0) -> go.Scatter:
    """White tiles with the member index ``n`` on every member of group ``g`` (padded ones in grey), in a
    font that fits the cell (:func:`number_font`, at least 6)."""
    pos = layout.positions[g]                                    # (N, 2) on the padded grid
    x, y = canvas.token_centres(pos, stride)
    n = np.arange(layout.group_tokens)
    pad = layout.key_padding[g]
    font = max(MIN_FONT, number_font(cell, len(str(layout.group_tokens - 1)), shown_at))
    return go.Scatter(
        x=x, y=y, mode="markers+text", name=name, text=[str(i) for i in n],
        textfont=dict(size=font, color=np.where(pad, "#777", "#111").tolist()),
        marker=dict(symbol="square", size=max(cell * 0.92, 4),
                    color=np.where(pad, "rgba(230,230,230,0.7)", "rgba(255,255,255,0.82)").tolist(),
                    line=dict(color="#111", width=0.6)),
        customdata=np.stack([n, pos[:, 0], pos[:, 1], layout.members[g]], axis=1),
        hovertemplate=("member %{customdata[0]} · token (h=%{customdata[1]}, w=%{customdata[2]})"
                       " · index %{customdata[3]}<extra></extra>"))


#: Member numbers are written only on cells at least this many screen pixels wide (smaller ones: the zoom
#: inset numbers them).
MIN_NUMBER_CELL = 9.0
#: About how wide the app shows a figure relative to its layout width (Streamlit stretches it to its column;
#: fonts keep their size): the partition figure nearly at size, the SDA-vs-LDA pair — wider than any
#: column — at about 0.8, where 9-px cells at stage 0 / 224 px made two-digit numbers run together.
PARTITION_SHOWN_AT = 0.95
PAIR_SHOWN_AT = 0.8
MIN_FONT, MAX_FONT = 6.0, 14.0
DIGIT_EM = 0.6               # width of one digit in font sizes


def number_font(cell: float, digits: int, shown_at: float) -> float:
    """Font size that fits ``digits`` digits in 80 % of a ``cell``-px cell shown at ``shown_at`` (else half
    the cell, at least :data:`MIN_FONT`, at most :data:`MAX_FONT`); :func:`numbers_fit` says whether the
    fitting size reaches :data:`MIN_FONT`."""
    return float(min(MAX_FONT, max(MIN_FONT, cell * 0.5), 0.8 * cell * shown_at / (DIGIT_EM * digits)))


def numbers_fit(cell: float, digits: int, shown_at: float) -> bool:
    """True when member numbers of ``digits`` digits are legible (≥ :data:`MIN_FONT`) without touching."""
    return number_font(cell, digits, shown_at) >= MIN_FONT
#: The SDA-vs-LDA pair zooms when the query's SDA window would be smaller than this on screen (layout px),
#: for every variant alike (v1 and ++).
ZOOM_BELOW_PX = 32.0
#: In that zoom the whole LDA group is shown when its box is at most this many SDA-window sides; otherwise
#: (v1's map-wide groups) its members within one interval of the query, so both stay visible.
NEAR_GROUP_FACTOR = 4.0


def _veil(layout: GroupLayout, group: int, stride: float) -> go.Heatmap:
    """Trace ``"other groups (dimmed)"``: translucent white on every padded-grid cell not in ``group``."""
    z = np.where(np.asarray(layout.group_map) == group, np.nan, 1.0)
    return canvas.token_heatmap(z, stride, name="other groups (dimmed)", colorscale=[[0, "white"], [1, "white"]],
                                zmin=0, zmax=1, showscale=False, opacity=0.55, hoverinfo="skip")


def group_partition_figure(image: np.ndarray, layout: GroupLayout, stage: int,
                           selected_group: int | None = None, title: str | None = None, *,
                           query: Sequence[int] | None = None, panel: int | None = None) -> go.Figure:
    """The image with the stage's token grid, each SDA window / LDA group in its own colour.

    Args:
        image: ``(H, W, 3)`` the model's input image (uint8, or float in [0, 1]).
        layout: the block's ``GroupLayout`` (from ``trace.block(stage, j).layout`` or ``model.plan``).
        stage: stage index ``i`` (a token covers ``4·2^i`` pixels per side).
        selected_group: group whose members are shown as tiles labelled with their member index ``n``.
        title: overrides the default title.
        query: optional token ``(h, w)``; marked with a star, and selects its group if ``selected_group``
            is None.
        panel: long side of the image panel in layout pixels (default: large enough for ~10 px tokens).

    Traces (inspect ``fig.data``): ``"groups"`` heat map with ``customdata[..., 0] = layout.group_map`` (group
    id per padded position), ``customdata[..., 1] = layout.member_map`` and ``z`` the group's palette index
    (:func:`viz.style.group_colors`: touching groups differ), ``"other groups (dimmed)"`` a white veil
    (``z = 1``) off the selected group, ``"padding"`` ``×`` marks on ``layout.padding_map``, ``"group g"``
    member tiles (only when a cell is at least :data:`MIN_NUMBER_CELL` px on screen), ``"query token"``;
    when the selected group is small on screen a zoom inset (:mod:`viz.inset`) repeats it with numbered
    members.
    """
    s = style.stage_stride(stage)
    Hp, Wp = layout.padded_hw
    H, W = layout.feature_hw
    canvas_hw = (Hp * s, Wp * s)
    if query is not None and selected_group is None:
        selected_group = layout.locate(query)[0]
    if selected_group is not None and not 0 <= selected_group < layout.num_groups:
        raise ValueError(f"group {selected_group} out of range (0…{layout.num_groups - 1})")

    panel = panel or style.auto_panel(s, canvas_hw)
    colors = style.group_colors(layout.group_map, layout.num_groups)

    def groups_trace() -> go.Heatmap:
        # z = palette index (a colour scale of a few stops: one stop per group would be validated and sent
        # for every one of 10³ groups); the group id and member index ride along in customdata
        return canvas.token_heatmap(
            colors[layout.group_map], s, name="groups", colorscale=style.discrete_colorscale(style.GROUP_PALETTE),
            zmin=-0.5, zmax=len(style.GROUP_PALETTE) - 0.5, showscale=False,
            opacity=0.5 if layout.kind == "sda" else 0.38,
            customdata=np.stack([layout.group_map, layout.member_map], axis=-1),
            hovertemplate="group %{customdata[0]} · member %{customdata[1]}<extra></extra>")

    fig = go.Figure()
    fig.add_trace(image_traces.image_trace(image))
    fig.add_trace(groups_trace())
    if layout.kind == "sda":   # window outlines (for LDA every cell borders another group: grid only)
        xs, ys = _boundary_segments(layout.group_map, s)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="white", width=1.6),
                                 hoverinfo="skip", name="window borders", showlegend=False))
    elif s * panel / max(canvas_hw) >= 5:
        fig.add_trace(canvas.grid_lines(layout.padded_hw, s, color="rgba(255,255,255,0.35)", width=0.5))
    if selected_group is not None:    # a white veil over every other group: the selected one stands out
        fig.add_trace(_veil(layout, selected_group, s))
    fig.add_trace(canvas.rectangle(0, 0, H * s, W * s, name=f"real tokens {H}×{W}",
                                   line=dict(color="#111", width=2, dash="dash"), hoverinfo="skip"))
    if layout.is_padded:
        fig.add_trace(canvas.padding_marks(layout.padding_map, s))
    cell = style.cell_px(s, canvas_hw, panel)
    digits = len(str(layout.group_tokens - 1))
    if selected_group is not None and cell >= MIN_NUMBER_CELL and numbers_fit(cell, digits, PARTITION_SHOWN_AT):
        fig.add_trace(_members_trace(layout, selected_group, s, cell, f"group {selected_group}", PARTITION_SHOWN_AT))
    if query is not None:
        fig.add_trace(canvas.query_marker(query, s))

    style.image_axes(fig, canvas_hw)
    if selected_group is not None:
        box = inset.group_view(layout.positions[selected_group], s, canvas_hw)
        if inset.needs_inset(box, canvas_hw):
            centre = canvas.token_centres(np.array([query]), s) if query is not None else (
                [(box[2] + box[3]) / 2], [(box[0] + box[1]) / 2])
            zoom_cell = style.cell_px(s, (box[1] - box[0], box[3] - box[2]), panel * inset.INSET_SIZE)
            parts = [image_traces.image_trace(image, crop=box), groups_trace(), _veil(layout, selected_group, s),
                     _members_trace(layout, selected_group, s, zoom_cell, "zoomed members", PARTITION_SHOWN_AT)]
            if query is not None:
                parts.append(canvas.query_marker(query, s, size=12))
            inset.add_inset(fig, parts, box, canvas_hw, (centre[0][0], centre[1][0]),
                            label=f"zoom: group {selected_group}")
    pw, ph = style.panel_size(canvas_hw, panel)
    kind = layout.kind.upper() + (" windows" if layout.kind == "sda" else " groups")
    default = f"Stage {stage} · {kind}"
    if layout.kind != layout.configured_kind:
        default += f" (configured {layout.configured_kind.upper()})"
    if selected_group is not None:
        default += f" · group {selected_group} with member indices"
    style.apply_layout(fig, title or default, layout_subtitle(layout, stage), width=pw + 110,
                       height=ph + 230)
    return style.bottom_legend(fig)


def _query_panel(grid: panels.PanelGrid, i: int, image: np.ndarray, layout: GroupLayout, stage: int,
                 query: Sequence[int], color: str, cell: float) -> tuple[int, int]:
    """Panel ``i`` of :func:`sda_lda_figure`: the query's group painted on the image."""
    s = style.stage_stride(stage)
    first = i == 0
    g, n = layout.locate(query)
    pos = layout.positions[g]
    real = ~layout.key_padding[g]
    z = np.full(layout.padded_hw, np.nan)
    z[pos[real, 0], pos[real, 1]] = 1.0
    H, W = layout.feature_hw
    grid.add(i, image_traces.image_trace(image, dim=0.25),
             canvas.token_heatmap(z, s, name=f"{layout.kind.upper()} group {g}", colorscale=[[0, color], [1, color]],
                                  zmin=0, zmax=1, showscale=False, opacity=0.72, customdata=layout.member_map,
                                  hovertemplate="member %{customdata}<extra>group " + str(g) + "</extra>"),
             canvas.rectangle(0, 0, H * s, W * s, line=dict(color="#111", width=1.5, dash="dash"),
                              hoverinfo="skip", showlegend=False, name="real tokens"))
    if layout.is_padded:      # the layout's padding, marked as in the partition figure
        tr = canvas.padding_marks(layout.padding_map, s)
        tr.update(name=f"padding ({layout.kind.upper()})", legendgroup="padding", showlegend=first,
                  marker=dict(color="#999", line=dict(color="#999", width=1)))
        grid.add(i, tr)
    if (~real).any():
        pm = np.zeros(layout.padded_hw, dtype=bool)
        pm[pos[~real, 0], pos[~real, 1]] = True
        tr = canvas.padding_marks(pm, s)
        tr.update(name="padded members", showlegend=first)
        grid.add(i, tr)
    # lattice outline: member tiles with their index when they are big enough to read
    if numbers_fit(cell, len(str(layout.group_tokens - 1)), PAIR_SHOWN_AT):
        tr = _members_trace(layout, g, s, cell, f"members of group {g}", PAIR_SHOWN_AT)
        tr.update(marker=dict(color="rgba(0,0,0,0)", line=dict(color="white", width=0.8)), showlegend=False,
                  textfont=dict(color="#111"))
        grid.add(i, tr)
    qm = canvas.query_marker(query, s)
    qm.update(showlegend=first)
    grid.add(i, qm)
    return g, n


def pair_view(sda_layout: GroupLayout, lda_layout: GroupLayout, query: Sequence[int], stride: float,
              canvas_hw: Sequence[float], panel: float) -> tuple[float, float, float, float] | None:
    """The zoom ``(y0, y1, x0, x1)`` (pixels) of :func:`sda_lda_figure`, or ``None`` when the query's SDA
    window is at least :data:`ZOOM_BELOW_PX` on screen. The zoom is the square around the SDA window and
    the LDA group — all of it when its box is at most :data:`NEAR_GROUP_FACTOR` window sides, else its real
    members within one interval of the query (the same rule for v1's map-wide and ++'s compact groups)."""
    gs, _ = sda_layout.locate(query)
    gl, _ = lda_layout.locate(query)
    sda_pos = sda_layout.positions[gs]                                           # (N, 2)
    lda_pos = lda_layout.positions[gl][~lda_layout.key_padding[gl]]              # (N_real, 2)

    def side(pos: np.ndarray) -> float:
        return float(max(np.ptp(pos[:, 0]), np.ptp(pos[:, 1])) + 1) * stride

    if side(sda_pos) * panel / max(float(canvas_hw[0]), float(canvas_hw[1])) >= ZOOM_BELOW_PX:
        return None
    if side(lda_pos) > NEAR_GROUP_FACTOR * side(sda_pos):
        ih, iw = lda_layout.interval
        near = (np.abs(lda_pos[:, 0] - query[0]) <= ih) & (np.abs(lda_pos[:, 1] - query[1]) <= iw)
        lda_pos = lda_pos[near]
    return inset.group_view(np.concatenate([sda_pos, lda_pos]), stride, canvas_hw)


def sda_lda_figure(image: np.ndarray, sda_layout: GroupLayout, lda_layout: GroupLayout, stage: int,
                   query: Sequence[int], *, panel: int = 520) -> go.Figure:
    """Side by side: the query token's SDA window (compact) and its LDA group (a strided lattice).

    Args:
        image: ``(H, W, 3)`` the model's input image.
        sda_layout, lda_layout: layouts of an SDA and an LDA block of the same stage.
        stage: stage index (``4·2^i`` pixels per token).
        query: token ``(h, w)`` on the stage grid.

    Both panels show the same pixel range (the larger padded canvas) at the same size, so distances compare;
    when the SDA window is small on screen that range is :func:`pair_view`'s square around it and the LDA
    members near the query.

    Traces: per panel a heat map named ``"SDA group g"`` / ``"LDA group g"`` with ``z = 1`` on the group's
    real members (padded grid, NaN elsewhere), ``"padding (SDA)"`` / ``"padding (LDA)"`` grey ``×`` on the
    layout's ``padding_map``, the query group's padded members as ``×`` marks, the query star.
    """
    s = style.stage_stride(stage)
    canvases = [(l.padded_hw[0] * s, l.padded_hw[1] * s) for l in (sda_layout, lda_layout)]
    big = (max(c[0] for c in canvases), max(c[1] for c in canvases))
    cell = style.cell_px(s, big, panel)
    gs = [l.locate(query) for l in (sda_layout, lda_layout)]
    titles = []
    for l, (g, n) in zip((sda_layout, lda_layout), gs):
        titles.append(f"{l.kind.upper()}: G={l.group_size}, I={l.interval_text} · "
                      f"group {g} of {l.num_groups} · member {n}{global_note(l)}")
    # the SDA window small on screen (large images, early stages): both panels zoom to the same square around
    # it and the LDA members near the query, so neither vanishes under the star and the panels keep one scale
    view = pair_view(sda_layout, lda_layout, query, s, big, panel)
    if view is not None:
        cell = style.cell_px(s, (view[1] - view[0], view[3] - view[2]), panel)
    grid = panels.PanelGrid(1, 2, titles=titles, horizontal_spacing=0.08, title_size=13)
    for i, (l, color) in enumerate(((sda_layout, style.KERNEL_COLORS[0]), (lda_layout, style.KERNEL_COLORS[1]))):
        _query_panel(grid, i, image, l, stage, query, color, cell)
        grid.image_axes(i, big, view=view, x_title="x (pixels)", y_title="y (pixels)")   # one scale for both
    fig = grid.figure()
    pw, ph = style.panel_size(big if view is None else (view[1] - view[0], view[3] - view[2]), panel)
    zoomed = ("" if view is None else f" · zoomed to the {int(view[1] - view[0])}×{int(view[3] - view[2])} px "
              f"around the SDA window and the nearest LDA members (y {int(view[0])}–{int(view[1])}, "
              f"x {int(view[2])}–{int(view[3])})")
    style.apply_layout(
        fig, f"Stage {stage}: where token (h={query[0]}, w={query[1]}) looks",
        f"short-distance attention (SDA) sees a compact G×G window; long-distance attention (LDA) sees "
        f"members I tokens apart · {s} px per token{zoomed}", width=2 * pw + 170, height=ph + 240)
    return style.bottom_legend(fig)
