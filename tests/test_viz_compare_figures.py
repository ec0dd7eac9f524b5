"""viz.compare_figures: the A − B differences drawn on diverging scales centred at zero."""

from __future__ import annotations

import compare_cases
import numpy as np

from crossformer.analysis.compare import dpb_difference, head_stat_difference
from crossformer.analysis.heads import trace_head_stats
from viz.compare_figures import difference_figure, dpb_difference_figure, symmetric_span


def test_difference_figure_is_diverging_and_symmetric():
    ta, tb, tc = compare_cases.traces()
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


def test_dpb_difference_figure_draws_each_head_on_one_symmetric_scale():
    ta, tb, _ = compare_cases.dpb_tables()
    G = compare_cases.G
    centred = dpb_difference(ta, tb, centred=True)
    fig = dpb_difference_figure(centred, G)
    assert len(fig.data) == centred.shape[1]
    for k, tr in enumerate(fig.data):
        assert np.allclose(np.asarray(tr.z, np.float64), centred[:, k].reshape(2 * G - 1, 2 * G - 1))
    ax = fig.layout.coloraxis
    assert ax.cmin == -ax.cmax and abs(ax.cmax - np.abs(centred).max()) < 1e-12
