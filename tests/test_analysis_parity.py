"""crossformer.analysis.parity: the verdict the parity figure states, counted from the errors themselves."""

from __future__ import annotations

import math

from crossformer.analysis.parity import parity_verdict
from viz.parity_figures import parity_figure


def test_verdict_counts_values_above_the_tolerance_and_broken_ones():
    errors = {"s0_b0": {"attention": 3e-7, "output": 2e-4}, "s0_b1": {"attention": float("nan")},
              "head": {"logits": 0.0, "pooled": 1e-4}}
    v = parity_verdict(errors, tol=1e-4)
    assert (v.values, v.bad, v.broken) == (5, 2, 1)                  # 2e-4 and NaN; 1e-4 is not above 1e-4
    assert v.largest == 2e-4 and v.worst == math.inf
    ok = parity_verdict({"s0_b0": {"attention": 3e-7, "output": 1e-6}}, tol=1e-4)
    assert (ok.bad, ok.broken, ok.worst) == (0, 0, 1e-6)
    empty = parity_verdict({}, tol=1e-4)
    assert (empty.values, empty.bad, empty.worst) == (0, 0, 0.0)


def test_figure_subtitle_states_the_verdict():
    bad = parity_figure({"s0_b0": {"attention": 3e-7, "output": 2e-4}, "head": {"logits": float("inf")}}, tol=1e-4)
    sub = bad.layout.title.subtitle.text
    assert "2 value(s) above 0.0001" in sub and "worst inf" in sub
    good = parity_figure({"s0_b0": {"attention": 3e-7, "output": 2e-6}}, tol=1e-4)
    assert "all 2 values below 0.0001 (worst 2e-06)" in good.layout.title.subtitle.text
