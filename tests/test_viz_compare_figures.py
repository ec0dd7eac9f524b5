"""viz.compare_figures: the A − B differences, checked against numbers recomputed by hand from two traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossformer
from crossformer.analysis.heads import trace_head_stats
from viz.compare_figures import (difference_figure, difference_rows, dpb_difference, dpb_difference_figure,
                                 head_stat_difference, symmetric_span)


@pytest.fixture(scope="module")
def traces():
    """The demo model on two different random images (A, B) and CrossFormer-T on A's image (C)."""
    demo, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    other = crossformer.create_model("crossformer_t").eval()
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(1, 3, 64, 96, generator=g), torch.randn(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        return demo.forward_trace(xa), demo.forward_trace(xb), other.forward_trace(xa)


def by_hand(block, batch=0):
    """Entropy / ln N and mean distance (px) per head of one block, written out from the attention."""
    att = np.asarray(block.attention[batch], np.float64)          # (nG, h, N, N)
    real = ~block.layout.key_padding                               # (nG, N)
    pos = block.layout.positions.astype(np.float64)
    stride = 4 * 2 ** block.stage
    ent, dist = np.zeros(block.heads), np.zeros(block.heads)
    count = 0
    for g in range(att.shape[0]):
        for q in np.nonzero(real[g])[0]:
            count += 1
            for h in range(block.heads):
                p = att[g, h, q][real[g]]
                p_pos = p[p > 0]
                ent[h] += -(p_pos * np.log(p_pos)).sum()
                d = np.sqrt(((pos[g, real[g]] - pos[g, q]) ** 2).sum(-1)) * stride
                dist[h] += (p * d).sum()
    ln_n = np.log(block.layout.group_tokens)
    return ent / count / ln_n, dist / count


def test_difference_equals_a_minus_b_by_hand(traces):
    ta, tb, _ = traces
    diff = head_stat_difference(trace_head_stats(ta), trace_head_stats(tb))
    blocks = list(ta.all_blocks())
    assert diff["names"] == [b.name for b in blocks]
    assert diff["d_entropy"].shape == (len(blocks), max(b.heads for b in blocks))
    for i, (ba, bb) in enumerate(zip(blocks, tb.all_blocks())):
        ea, da = by_hand(ba)
        eb, db = by_hand(bb)
        n = ba.heads
        if ba.layout.group_tokens > 1:
            assert np.allclose(diff["d_entropy"][i, :n], ea - eb, atol=1e-6)
        assert np.allclose(diff["d_distance"][i, :n], da - db, atol=1e-4)
        assert np.all(np.isnan(diff["d_entropy"][i, n:]))
    assert not diff["missing"].any()
    assert np.nanmax(np.abs(diff["d_entropy"])) > 1e-3            # two images do differ


def test_other_model_marks_missing_blocks_and_heads(traces):
    ta, _, tc = traces
    diff = head_stat_difference(trace_head_stats(ta), trace_head_stats(tc))
    have = {b.name: b.heads for b in tc.all_blocks()}
    for i, b in enumerate(ta.all_blocks()):
        m = min(b.heads, have.get(b.name, 0))
        assert not diff["missing"][i, :m].any() and diff["missing"][i, m:b.heads].all()
        assert np.isnan(diff["d_entropy"][i, m:]).all()
    rows = difference_rows(diff)
    assert len(rows) == sum(b.heads for b in ta.all_blocks())
    assert sum(not r["b_has_head"] for r in rows) == int(diff["missing"].sum())


def test_difference_figure_is_diverging_and_symmetric(traces):
    ta, tb, tc = traces
    for other in (tb, tc):
        diff = head_stat_difference(trace_head_stats(ta), trace_head_stats(other))
        fig = difference_figure(diff)
        for key in ("d_entropy", "d_distance"):
            tr = next(t for t in fig.data if t.name == key)
            z = np.asarray(tr.z, dtype=np.float64)
            np.testing.assert_array_equal(np.isnan(z), np.isnan(diff[key]))
            assert np.allclose(z[np.isfinite(z)], diff[key][np.isfinite(diff[key])])
            assert tr.zmin == -tr.zmax == -symmetric_span(z) and tr.zmid == 0
        assert any(t.name == "B lacks" for t in fig.data) == bool(diff["missing"].any())


def test_dpb_difference_at_the_same_group_size():
    demo, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    other = crossformer.create_model("crossformer_t")
    G = 5
    with torch.no_grad():
        ta = demo.dpb_table(1, 0, G).numpy().astype(np.float64)
        tb = other.dpb_table(1, 0, G).numpy().astype(np.float64)
    h = min(ta.shape[1], tb.shape[1])
    raw = dpb_difference(ta, tb)
    assert raw.shape == ((2 * G - 1) ** 2, h)
    assert np.allclose(raw, ta[:, :h] - tb[:, :h])
    centred = dpb_difference(ta, tb, centred=True)
    assert np.allclose(centred, (ta[:, :h] - ta[:, :h].mean(0)) - (tb[:, :h] - tb[:, :h].mean(0)))
    assert np.allclose(centred.mean(0), 0.0, atol=1e-9)
    assert np.allclose(dpb_difference(ta, ta), 0.0)
    fig = dpb_difference_figure(centred, G)
    assert len(fig.data) == h
    for k, tr in enumerate(fig.data):
        assert np.allclose(np.asarray(tr.z, np.float64), centred[:, k].reshape(2 * G - 1, 2 * G - 1))
    ax = fig.layout.coloraxis
    assert ax.cmin == -ax.cmax and abs(ax.cmax - np.abs(centred).max()) < 1e-12
    with pytest.raises(ValueError):
        dpb_difference(ta, demo.dpb_table(1, 0, G + 1).detach().numpy())
