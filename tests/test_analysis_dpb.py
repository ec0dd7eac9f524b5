"""crossformer.analysis.dpb: a DPB table as a (Δy, Δx) grid per head, and the part of it that moves attention."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import case

from crossformer.analysis.dpb import centred_table, table_grid
from crossformer.geometry import dpb_offsets
from viz.dpb_figures import dpb_heatmap_figure


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("G", [1, 2, 5])
def test_table_grid_puts_each_row_at_its_offset(G):
    offs = dpb_offsets(G).astype(int)                                # ((2G−1)², 2) Δy-major
    table = np.stack([offs[:, 0] * 100 + offs[:, 1], -offs[:, 0]], axis=1).astype(np.float32)
    grid = table_grid(table, G, 0)
    assert grid.shape == (2 * G - 1, 2 * G - 1) and grid.dtype == np.float64
    for dy, dx in offs:
        assert grid[dy + G - 1, dx + G - 1] == dy * 100 + dx
    assert np.array_equal(table_grid(table, G, 1)[:, 0], -np.arange(1 - G, G))


def test_table_grid_rejects_a_table_of_another_size_or_head():
    with pytest.raises(ValueError, match="G=4"):
        table_grid(np.zeros((25, 2)), 4, 0)                          # a G=3 table read as G=4
    with pytest.raises(ValueError, match="heads"):
        table_grid(np.zeros((9, 2)), 2, 2)
    with pytest.raises(ValueError, match="heads"):
        centred_table(np.zeros(9))


def test_centred_table_keeps_exactly_what_changes_attention():
    b = case("pp").trace.block(2, 1)                                 # G = 14, 8 heads
    t = np.asarray(b.dpb_table, np.float64)
    c = centred_table(b.dpb_table)
    assert c.shape == t.shape
    np.testing.assert_allclose(c.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(c[:, 3] - c[0, 3], t[:, 3] - t[0, 3], atol=1e-12)   # differences are kept
    # softmax over any set of offsets is the same with the centred bias: only differences move attention
    rows = np.arange(0, t.shape[0], 7)
    np.testing.assert_allclose(softmax(c[rows].T), softmax(t[rows].T), atol=1e-12)
    np.testing.assert_allclose(centred_table(np.full((9, 2), 0.37)), 0.0, atol=1e-15)   # a constant moves nothing


def test_centred_heat_map_draws_the_centred_table():
    b = case("demo224").trace.block(0, 1)
    fig = dpb_heatmap_figure(b.dpb_table, b.group_size, centred=True)
    c = centred_table(b.dpb_table)
    for h, tr in enumerate(fig.data):
        np.testing.assert_allclose(np.asarray(tr.z), table_grid(c, b.group_size, h))
