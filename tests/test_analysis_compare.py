"""crossformer.analysis.compare: the A − B differences, checked against numbers recomputed by hand from two traces."""

from __future__ import annotations

import compare_cases
import numpy as np
import pytest

from crossformer.analysis.compare import difference_rows, dpb_difference, head_stat_difference
from crossformer.analysis.heads import trace_head_stats


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


def test_difference_equals_a_minus_b_by_hand():
    ta, tb, _ = compare_cases.traces()
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


def test_other_model_marks_missing_blocks_and_heads():
    ta, _, tc = compare_cases.traces()
    diff = head_stat_difference(trace_head_stats(ta), trace_head_stats(tc))
    have = {b.name: b.heads for b in tc.all_blocks()}
    for i, b in enumerate(ta.all_blocks()):
        m = min(b.heads, have.get(b.name, 0))
        assert not diff["missing"][i, :m].any() and diff["missing"][i, m:b.heads].all()
        assert np.isnan(diff["d_entropy"][i, m:]).all()
    rows = difference_rows(diff)
    assert len(rows) == sum(b.heads for b in ta.all_blocks())
    assert sum(not r["b_has_head"] for r in rows) == int(diff["missing"].sum())


def test_dpb_difference_at_the_same_group_size():
    ta, tb, other_g = compare_cases.dpb_tables()
    G = compare_cases.G
    h = min(ta.shape[1], tb.shape[1])
    raw = dpb_difference(ta, tb)
    assert raw.shape == ((2 * G - 1) ** 2, h)
    assert np.allclose(raw, ta[:, :h] - tb[:, :h])
    centred = dpb_difference(ta, tb, centred=True)
    assert np.allclose(centred, (ta[:, :h] - ta[:, :h].mean(0)) - (tb[:, :h] - tb[:, :h].mean(0)))
    assert np.allclose(centred.mean(0), 0.0, atol=1e-9)
    assert np.allclose(dpb_difference(ta, ta), 0.0)
    with pytest.raises(ValueError):
        dpb_difference(ta, other_g)


def test_the_note_numbers_are_the_chosen_and_the_largest_head():
    from crossformer.analysis.compare import difference_summary
    nan = np.nan
    d_ent = np.array([[0.1, -0.4], [0.05, nan]])
    diff = {"names": ["s0_b0", "s0_b1"], "heads": [2, 1], "d_entropy": d_ent, "a_entropy": d_ent + 0.5,
            "b_entropy": np.full_like(d_ent, 0.5), "d_distance": d_ent * 10, "a_distance": d_ent * 10 + 3,
            "b_distance": np.full_like(d_ent, 3.0), "missing": np.array([[False, False], [False, True]])}
    s = difference_summary(diff, "s0_b1", None)          # only head 0 compares in s0_b1
    assert (s.chosen.block, s.chosen.head, s.chosen.d_entropy) == ("s0_b1", 0, 0.05)
    assert (s.largest.block, s.largest.head, s.largest.d_entropy) == ("s0_b0", 1, -0.4)
    assert s.n_both == 3 and s.mean_abs_d_entropy == pytest.approx((0.1 + 0.4 + 0.05) / 3) and s.missing == 1
    picked = difference_summary(diff, "s0_b0", 0)
    assert (picked.chosen.head, picked.chosen.d_distance, picked.chosen.a_distance) == (0, 1.0, 4.0)


def test_the_largest_dpb_difference_is_found_per_head():
    from crossformer.analysis.compare import largest_dpb_difference
    diff = np.array([[0.1, -2.0], [-0.3, 0.5], [0.2, 0.0]])
    assert largest_dpb_difference(diff, 0) == (1, -0.3, 2.0)
    assert largest_dpb_difference(diff, 1) == (0, -2.0, 2.0)
    assert largest_dpb_difference(diff, 5) == (1, -0.3, 2.0)      # a head B lacks reads head 0
