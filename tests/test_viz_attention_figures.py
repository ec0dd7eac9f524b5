"""Attention figures: the value painted at a member's position is that member's weight in the trace."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import CASES, case

from crossformer.analysis.rollout import attention_rollout
from viz.attention_figures import (bias_content_split_figure, group_matrix_figure, head_grid_figure,
                                   query_attention_figure, rollout_figure)


def np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def queries(b):
    H, W = b.layout.feature_hw
    return [(0, 0), (H // 2, W // 3), (H - 1, W - 1)]


def trace_named(fig, name):
    return next(t for t in fig.data if t.name == name)


@pytest.mark.parametrize("name", CASES)
def test_overlay_value_at_a_members_pixel_is_its_weight(name):
    c = case(name)
    for k, b in enumerate(c.trace.all_blocks()):
        lay = b.layout
        s = 4 * 2 ** b.stage
        q = queries(b)[k % 3]                                 # corners, middle and the last (padded) token
        head = None if k % 2 == 0 else b.heads - 1            # head mean and a single head
        g, n = lay.locate(q)
        fig = query_attention_figure(c.image, b, q, head=head)
        hm = trace_named(fig, "attention")
        z = np.asarray(hm.z, dtype=float)
        w = b.attention[0, g, :, n, :]
        w = w.mean(0) if head is None else w[head]
        for m in range(lay.group_tokens):
            ph, pw = lay.positions[g, m]
            if lay.members[g, m] >= 0:
                assert z[ph, pw] == pytest.approx(float(w[m]), abs=1e-7)
            else:
                assert np.isnan(z[ph, pw]) and w[m] == 0.0     # padded member: no weight at all
        assert np.isfinite(z).sum() == (lay.members[g] >= 0).sum()
        # pixel lookup: the cell covering the pixel at the query's centre holds the query's own weight
        ph, pw = lay.positions[g, n]
        y, x = ph * s + s // 2, pw * s + s // 2
        cell = z[int((y - hm.y0 + hm.dy / 2) // hm.dy), int((x - hm.x0 + hm.dx / 2) // hm.dx)]
        assert cell == pytest.approx(float(w[n]), abs=1e-7)
        # LDA: painted cells form the strided lattice
        if lay.kind == "lda":
            g, _ = lay.locate(queries(b)[1])
            pts = lay.positions[g]
            assert len(set(np.diff(np.unique(pts[:, 0])))) <= 1
            assert set(np.diff(np.unique(pts[:, 1]))) <= {lay.interval[1]}


def test_padded_members_are_marked_and_zoom_crops_the_view():
    c = case("demo_pad")
    b = c.trace.block(0, 1)                                    # LDA on 50×66 tokens, padded
    assert b.layout.is_padded
    g0 = int(np.flatnonzero(b.layout.key_padding.any(1))[-1])  # the last group with padded slots
    q = tuple(int(v) for v in b.layout.positions[g0][~b.layout.key_padding[g0]][-1])   # one of its real members
    g, _ = b.layout.locate(q)
    assert g == g0 and b.layout.key_padding[g].any()
    fig = query_attention_figure(c.image, b, q, zoom=True)
    marks = trace_named(fig, "padded members (weight 0)")
    pad_pos = b.layout.positions[g][b.layout.key_padding[g]]
    assert sorted(map(tuple, np.asarray(marks.customdata))) == sorted(map(tuple, pad_pos))
    x0, x1 = fig.layout.xaxis.range
    assert x1 - x0 <= b.layout.padded_hw[1] * 4


@pytest.mark.parametrize("name", ["demo_pad", "s_v1"])
def test_head_grid_has_one_panel_per_head_with_its_weights(name):
    c = case(name)
    b = c.trace.block(1, 1)
    q = queries(b)[1]
    g, n = b.layout.locate(q)
    fig = head_grid_figure(c.image, b, q, include_mean=True)
    maps = [t for t in fig.data if t.type == "heatmap"]
    assert [t.name for t in maps] == ["mean"] + [f"head {h}" for h in range(b.heads)]
    real = b.layout.members[g] >= 0
    pos = b.layout.positions[g][real]
    for t, h in zip(maps, [None, *range(b.heads)]):
        w = b.attention[0, g, :, n]
        w = w.mean(0) if h is None else w[h]
        assert np.allclose(np.asarray(t.z, float)[pos[:, 0], pos[:, 1]], w[real])
    assert fig.layout.coloraxis.cmax == pytest.approx(b.attention[0, g, :, n][:, real].max())


def test_group_matrix_is_the_groups_attention():
    c = case("pp")
    b = c.trace.block(0, 1)
    g = int(np.nonzero(b.layout.key_padding.any(1) & ~b.layout.key_padding.all(1))[0][0])   # partly padded
    fig = group_matrix_figure(b, g, 1)
    assert np.allclose(np.asarray(fig.data[0].z), b.attention[0, g, 1])
    n_pad = int(b.layout.key_padding[g].sum())
    assert len(fig.layout.shapes) == 2 * n_pad
    mean = group_matrix_figure(b, g, None)
    assert np.allclose(np.asarray(mean.data[0].z), b.attention[0, g].mean(0))
    with pytest.raises(ValueError):
        group_matrix_figure(b, b.layout.num_groups, 0)


@pytest.mark.parametrize("name,stage,index", [("demo_pad", 0, 1), ("pp", 2, 0), ("s_v1", 1, 1)])
def test_bias_content_split_recomputes_the_three_softmaxes(name, stage, index):
    b = case(name).trace.block(stage, index)
    lay = b.layout
    G = lay.group_size
    q = queries(b)[2]
    g, n = lay.locate(q)
    head = 0
    fig = bias_content_split_figure(b, q, head)
    mask = lay.attn_mask[g, n]                                     # (N,) 0 or -1e6
    expect = {
        "content only": np_softmax(b.content[0, g, head, n] + mask),
        "position only": np_softmax(b.dpb_bias[head, n] + mask),
        "actual": b.attention[0, g, head, n],
    }
    pad = lay.key_padding[g]
    for name_, p in expect.items():
        z = np.asarray(trace_named(fig, name_).z, float).reshape(-1)
        assert np.allclose(z[~pad], p[~pad], atol=1e-6)
        assert np.all(np.isnan(z[pad]))
        assert z[~pad].sum() == pytest.approx(1.0, abs=1e-5)
    # actual = softmax(content + bias + mask): the three parts are consistent
    assert np.allclose(np_softmax(b.content[0, g, head, n] + b.dpb_bias[head, n] + mask), expect["actual"],
                       atol=1e-5)
    tv = 0.5 * np.abs(expect["actual"] - expect["content only"]).sum()
    assert fig.layout.meta["tv_dpb"] == pytest.approx(tv, abs=1e-6)
    # tick labels are the members' true token rows / columns (strided for LDA)
    ticks = [int(t) for t in fig.layout.xaxis.ticktext]
    assert ticks == [int(v) for v in lay.positions[g, :G, 1][:: max(1, G // 7)]]


@pytest.mark.parametrize("name", CASES)
def test_rollout_figure_paints_the_rollout(name):
    c = case(name)
    r = attention_rollout(c.trace)
    fig = rollout_figure(c.image, r)
    hm = trace_named(fig, "rollout")
    assert np.allclose(np.asarray(hm.z), r) and hm.dx == 4
    assert "heuristic" in fig.layout.title.text.lower()
