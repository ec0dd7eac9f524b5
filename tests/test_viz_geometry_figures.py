"""SDA/LDA group figures: the drawn colours, labels and marks are the trace's own index maps."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import CASES, case

from viz import style
from viz.geometry_figures import group_partition_figure, sda_lda_figure


def trace_named(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace named {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def centres(pos, s):
    return (pos[:, 1] + 0.5) * s, (pos[:, 0] + 0.5) * s


@pytest.mark.parametrize("name", CASES)
def test_group_partition_colours_are_group_ids_for_every_block(name):
    c = case(name)
    for b in c.trace.all_blocks():
        lay = b.layout
        s = 4 * 2 ** b.stage
        H, W = lay.feature_hw
        q = (H - 1, W - 1)                                        # the last real token (near the padding)
        fig = group_partition_figure(c.image, lay, b.stage, query=q)
        hm = trace_named(fig, "groups")
        data = np.asarray(hm.customdata)                         # (Hp, Wp, 2): group id, member index
        assert np.array_equal(data[..., 0], lay.group_map) and np.array_equal(data[..., 1], lay.member_map)
        colours = style.group_colors(lay.group_map, lay.num_groups)
        assert np.array_equal(np.asarray(hm.z), colours[lay.group_map])   # colour index = its group's colour
        gm = lay.group_map                                        # touching groups get different colours
        if lay.num_groups <= len(style.GROUP_PALETTE):
            for a, b in ((gm[:, 1:], gm[:, :-1]), (gm[1:, :], gm[:-1, :])):
                assert (colours[a] != colours[b])[a != b].all()
        assert (hm.x0, hm.dx, hm.y0, hm.dy) == (s / 2, s, s / 2, s)
        assert hm.zmin == -0.5 and hm.zmax == len(style.GROUP_PALETTE) - 0.5
        # hovering a cell names its group and member (from customdata, not from the colour)
        assert "customdata[0]" in hm.hovertemplate and "customdata[1]" in hm.hovertemplate
        # the query's group is labelled with member indices at the members' true positions
        g, n = lay.locate(q)
        assert lay.members[g, n] == q[0] * W + q[1]
        tiles = trace_named(fig, f"group {g}")
        x, y = centres(lay.positions[g], s)
        assert np.allclose(tiles.x, x) and np.allclose(tiles.y, y)
        assert list(tiles.text) == [str(i) for i in range(lay.group_tokens)]
        # padding marks sit exactly on the padded positions
        if lay.is_padded:
            marks = trace_named(fig, "padding (zeros, masked keys)")
            assert np.array_equal(np.asarray(marks.customdata), np.argwhere(lay.padding_map))
        else:
            assert not [t for t in fig.data if t.name and t.name.startswith("padding")]
        title = fig.layout.title.subtitle.text
        Hp, Wp = lay.padded_hw
        assert f"G={lay.group_size}" in title and f"I={lay.interval_text}" in title
        assert f"padded {Hp}×{Wp}" in title and f"{lay.num_groups} groups" in title
        assert ("global group" in title) == lay.is_global


def test_global_lda_block_is_noted():
    b = case("demo224").trace.block(3, 1)          # 7×7 map, G=7: the LDA block is one global group
    assert b.layout.configured_kind == "lda" and b.layout.is_global
    fig = group_partition_figure(case("demo224").image, b.layout, 3, selected_group=0)
    assert "this LDA block is one global group" in fig.layout.title.subtitle.text
    assert "configured LDA" in fig.layout.title.text


def test_touching_groups_get_different_colours():
    for name in ("demo_pad", "pp"):
        for b in case(name).trace.all_blocks():
            lay = b.layout
            if lay.kind == "lda" and max(lay.interval) > 2:
                continue          # dense lattices may need more colours than the palette has
            col = style.group_colors(lay.group_map, lay.num_groups)
            gm = lay.group_map
            for a, c in ((gm[:, :-1], gm[:, 1:]), (gm[:-1], gm[1:])):
                diff = a != c
                assert np.all(col[a[diff]] != col[c[diff]]), b.name


def test_selected_group_out_of_range_is_refused():
    lay = case("demo224").trace.block(0, 0).layout
    with pytest.raises(ValueError):
        group_partition_figure(case("demo224").image, lay, 0, selected_group=lay.num_groups)
    with pytest.raises(ValueError):
        lay.locate((56, 0))


@pytest.mark.parametrize("name", CASES)
def test_sda_lda_side_by_side_paints_the_query_groups(name):
    c = case(name)
    for i, blocks in enumerate(c.trace.blocks):
        sda, lda = blocks[0].layout, blocks[1].layout
        H, W = sda.feature_hw
        q = (H // 3, W // 2)
        fig = sda_lda_figure(c.image, sda, lda, i, q)
        s = 4 * 2 ** i
        for lay in (sda, lda):
            g, _ = lay.locate(q)
            hm = trace_named(fig, f"{lay.kind.upper()} group {g}")
            z = np.asarray(hm.z, dtype=float)
            real = lay.positions[g][~lay.key_padding[g]]
            painted = np.argwhere(np.isfinite(z))
            assert sorted(map(tuple, painted)) == sorted(map(tuple, real))
            assert hm.dx == s
        stars = [t for t in fig.data if t.name == "query token"]
        assert len(stars) == 2 and all(np.allclose([t.x[0], t.y[0]], [(q[1] + .5) * s, (q[0] + .5) * s])
                                       for t in stars)


@pytest.mark.parametrize("hw", [(14, 21), (10, 16), (56, 56), (50, 66)])
def test_window_borders_lie_on_the_layouts_window_boundaries(hw):
    """The SDA window-border segments cover exactly the inner boundaries between the layout's G×G windows
    (over the padded map), none missing, none twice and none elsewhere; each boundary is one line."""
    from crossformer.geometry import plan_layout
    L = plan_layout("sda", hw, 7, None)
    s, G = 4, L.group_size
    Hp, Wp = L.padded_hw
    fig = group_partition_figure(np.zeros((hw[0] * s, hw[1] * s, 3), np.uint8), L, 0)
    t = next(d for d in fig.data if d.name == "window borders")
    pts = list(zip(t.x, t.y))
    units = []                                  # each merged segment cut back into one-token edges
    for i in range(0, len(pts), 3):
        (x0, y0), (x1, y1) = sorted((pts[i], pts[i + 1]))
        assert x0 == x1 or y0 == y1             # axis-parallel
        steps = int(round(max(x1 - x0, y1 - y0) / s))
        dx, dy = (x1 - x0) // steps, (y1 - y0) // steps
        units += [((x0 + k * dx, y0 + k * dy), (x0 + (k + 1) * dx, y0 + (k + 1) * dy)) for k in range(steps)]
    segs = set(units)
    assert len(segs) == len(units)              # no edge drawn twice
    # collinear edges are merged: one segment per boundary line (the windows tile the padded map)
    assert len(pts) // 3 == (Wp // G - 1) + (Hp // G - 1)
    want = set()
    for c in range(G, Wp, G):                 # vertical boundaries between window columns
        want |= {((c * s, r * s), (c * s, (r + 1) * s)) for r in range(Hp)}
    for r in range(G, Hp, G):                 # horizontal boundaries between window rows
        want |= {((c * s, r * s), ((c + 1) * s, r * s)) for c in range(Wp)}
    assert segs == want
