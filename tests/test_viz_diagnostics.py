"""The one-figure summary of every block's attention diagnostics (definitions: tests/test_analysis_heads.py)."""

from __future__ import annotations

import numpy as np
from viz_cases import case

from crossformer.analysis.heads import trace_head_stats
from viz.diagnostics_figures import diagnostics_figure


def test_diagnostics_figure_shows_every_block_and_flags_an_odd_head():
    st = trace_head_stats(case("s_v1").trace)
    st["entropy"] = st["entropy"].copy()
    i = int(np.argmax(st["heads"]))
    st["entropy"][i, 1] = 0.0                                  # one head collapses onto a single key
    fig = diagnostics_figure(st)
    labels = [f"{n} · {k.upper()}" for n, k in zip(st["names"], st["kinds"])]
    for key in ("entropy", "distance_px", "dpb_share"):
        hm = next(t for t in fig.data if t.name == key)
        assert np.allclose(np.asarray(hm.z, float), st[key], equal_nan=True)
        assert list(hm.y) == labels
    bar = next(t for t in fig.data if t.name == "residual_norm")
    assert np.allclose(np.asarray(bar.x), st["residual_norm"]) and list(bar.y) == labels
    odd = [t for t in fig.data if t.name == "odd heads"]
    assert any((labels[i], 1) in zip(t.y, t.x) for t in odd)
