"""Dynamic position bias figures: surfaces, heat maps and matrices carry the trace's DPB numbers."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import case

from crossformer.analysis.dpb import table_grid
from crossformer.geometry import dpb_offsets, relative_position_index
from viz.dpb_figures import bias_matrix_figure, dpb_heatmap_figure, dpb_sizes_figure, dpb_surface_figure


@pytest.mark.parametrize("name,stage", [("demo224", 0), ("pp", 0), ("pp", 2)])
def test_surface_value_at_an_offset_is_the_table_row_of_that_offset(name, stage):
    b = case(name).trace.block(stage, 0)
    G = b.group_size
    offs = dpb_offsets(G)
    for head in range(b.heads):
        fig = dpb_surface_figure(b.dpb_table, G, head)
        surf = fig.data[0]
        assert surf.type == "surface"
        assert list(surf.x) == list(range(1 - G, G)) and list(surf.y) == list(range(1 - G, G))
        z = np.asarray(surf.z)
        for row in (0, len(offs) // 2, len(offs) - 1, 5):
            dy, dx = offs[row]
            assert z[int(dy) + G - 1, int(dx) + G - 1] == pytest.approx(b.dpb_table[row, head])
        assert surf.cmid == 0 and surf.cmin == -surf.cmax


def test_heatmaps_one_per_head_on_a_shared_symmetric_scale():
    b = case("pp").trace.block(2, 1)            # G = 14, 8 heads
    fig = dpb_heatmap_figure(b.dpb_table, b.group_size)
    maps = [t for t in fig.data if t.type == "heatmap"]
    assert [t.name for t in maps] == [f"head {h}" for h in range(b.heads)]
    for h, t in enumerate(maps):
        assert np.allclose(np.asarray(t.z), table_grid(b.dpb_table, b.group_size, h))
    ca = fig.layout.coloraxis
    assert ca.cmax == pytest.approx(np.abs(b.dpb_table).max()) and ca.cmin == -ca.cmax
    sub = dpb_heatmap_figure(b.dpb_table, b.group_size, heads=[1, 3])
    assert [t.name for t in sub.data] == ["head 1", "head 3"]


def test_bias_matrix_is_the_table_indexed_by_relative_position():
    b = case("demo_pad").trace.block(1, 1)
    G, N = b.group_size, b.group_size ** 2
    fig = bias_matrix_figure(b.dpb_bias, 1, G)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (N, N) and np.allclose(z, b.dpb_bias[1])
    idx = relative_position_index(G)
    for q, k in ((0, 0), (0, N - 1), (N - 1, 0), (G + 2, 3)):
        assert z[q, k] == pytest.approx(b.dpb_table[idx[q, k], 1])
    with pytest.raises(ValueError):
        bias_matrix_figure(b.dpb_bias, 0, G + 1)


def test_dpb_at_other_group_sizes_is_the_same_mlp():
    c = case("pp")
    b = c.trace.block(2, 0)
    tables = {G: c.model.dpb_table(2, 0, G).numpy() for G in (3, 14, 21)}
    # the block's own G reproduces the table the forward pass used
    assert np.allclose(tables[b.group_size], b.dpb_table, atol=1e-6)
    fig = dpb_sizes_figure(tables, head=2, trained_group_size=b.group_size)
    assert [t.name for t in fig.data] == ["G=3", "G=14", "G=21"]
    for t, G in zip(fig.data, (3, 14, 21)):
        assert np.asarray(t.z).shape == (2 * G - 1, 2 * G - 1)
        assert np.allclose(np.asarray(t.z), tables[G][:, 2].reshape(2 * G - 1, 2 * G - 1))
        assert list(t.x) == list(range(1 - G, G))
    assert "G=14 (used by this block)" in [a.text for a in fig.layout.annotations]
