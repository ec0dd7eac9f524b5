"""Invariants of the trace the figures are drawn from, on the shared cases of :mod:`viz_cases`."""

from __future__ import annotations

import numpy as np
import pytest

from viz_cases import CASES, Case, case


# ---- invariants of the trace the figures draw ------------------------------------------------------------
@pytest.fixture(params=CASES)
def traced(request) -> Case:
    return case(request.param)


def test_every_real_token_in_exactly_one_group(traced):
    for b in traced.trace.all_blocks():
        H, W = b.layout.feature_hw
        members = b.layout.members
        real = members[members >= 0]
        assert np.array_equal(np.sort(real), np.arange(H * W)), b.name
        assert members.shape[1] == b.group_size ** 2, b.name                    # each group has G² slots
        assert b.attention.shape[1:] == (b.layout.num_groups, b.heads, b.group_size ** 2, b.group_size ** 2)


def test_attention_rows_sum_to_one_and_padded_keys_get_zero(traced):
    for b in traced.trace.all_blocks():
        pad = b.layout.key_padding                                               # (nG, N)
        live = ~pad.all(axis=1)                                                  # skip all-padding groups
        a = b.attention[0]                                                       # (nG, h, N, N)
        sums = np.where(~pad[:, None, None, :], a, 0).sum(-1)                    # over real keys
        assert np.allclose(sums[live], 1.0, atol=1e-5), b.name
        padded_keys = np.broadcast_to(pad[:, None, None, :], a.shape)
        live_b = np.broadcast_to(live[:, None, None, None], a.shape)
        assert np.all(a[padded_keys & live_b] == 0.0), b.name


def test_member_positions_agree_with_member_indices(traced):
    for b in traced.trace.all_blocks():
        lay = b.layout
        H, W = lay.feature_hw
        pos = lay.positions
        inside = (pos[..., 0] < H) & (pos[..., 1] < W)
        assert np.array_equal(lay.members >= 0, inside), b.name
        assert np.array_equal(lay.members[inside], pos[inside][:, 0] * W + pos[inside][:, 1]), b.name
        assert np.array_equal(lay.padding_map, ~np.pad(np.ones((H, W), bool),
                                                       ((0, lay.padded_hw[0] - H), (0, lay.padded_hw[1] - W))))


def test_lda_members_are_exactly_interval_apart_and_sda_windows_contiguous(traced):
    seen = set()
    for b in traced.trace.all_blocks():
        lay = b.layout
        G, (Ih, Iw) = lay.group_size, lay.interval
        p = lay.positions.reshape(lay.num_groups, G, G, 2)
        dr = np.diff(p, axis=1)      # next member row
        dc = np.diff(p, axis=2)      # next member column
        if lay.kind == "lda":
            assert np.all(dr == np.array([Ih, 0])) and np.all(dc == np.array([0, Iw])), b.name
        else:
            assert (Ih, Iw) == (1, 1)
            assert np.all(dr == np.array([1, 0])) and np.all(dc == np.array([0, 1])), b.name
            assert np.all(p[:, 0, 0] % G == 0), b.name                            # windows on the G-grid
        seen.add(lay.kind)
    assert seen == {"sda", "lda"}


def test_cases_cover_the_geometry_we_promise():
    """The cases exercise padding, all-padding groups, G = 4/14, non-square intervals and a global group."""
    blocks = {n: list(case(n).trace.all_blocks()) for n in CASES}
    assert any(b.layout.is_global for b in blocks["demo224"])
    assert any(b.layout.is_padded for b in blocks["demo_pad"])
    assert any(b.layout.key_padding.all(axis=1).any() for b in blocks["pp"])     # all-padding LDA groups
    assert {4, 14} <= {b.group_size for b in blocks["pp"]}
    assert any(b.interval[0] != b.interval[1] for b in blocks["s_v1"])
    assert any(b.has_acl for b in blocks["pp"])                  # CrossFormer++ cooling layers are traced


def test_token_heatmaps_send_fp32_values_as_float32_and_derived_values_unrounded():
    from viz import canvas

    a = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    a[0, 0] = np.nan                                                       # padding cells stay NaN
    z = canvas.token_heatmap(a, 4).z
    assert z.dtype == np.float32 and np.array_equal(z, a, equal_nan=True)
    b = a.astype(np.float64) / 3                                           # not exact in float32
    z = canvas.token_heatmap(b, 4).z
    assert z.dtype == np.float64 and np.array_equal(z, b, equal_nan=True)


def test_image_encodings_are_remembered_within_a_byte_budget():
    from viz import image_traces

    memo = image_traces._UriMemo(budget=100)
    memo.put(("a",), "x" * 60)
    memo.put(("b",), "y" * 30)
    assert memo.get(("a",)) and memo.get(("b",))
    memo.put(("c",), "z" * 30)                               # 120 > 100: the oldest goes
    assert memo.get(("a",)) is None and memo.get(("b",)) and memo.get(("c",)) and memo._size == 60
    memo.put(("d",), "w" * 101)                              # larger than the budget: not kept
    assert memo.get(("d",)) is None and memo._size == 60
    img = np.zeros((4, 6, 3), np.uint8)
    assert image_traces.image_data_uri(img) == image_traces.image_data_uri(img.copy())
    assert image_traces.image_data_uri(img).startswith("data:image/png;base64,")
