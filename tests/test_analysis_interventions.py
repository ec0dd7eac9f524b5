"""crossformer.analysis.interventions: the numbers the Interventions page states about a scan and an edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from viz_cases import case

from crossformer.analysis.interventions import (HURT_LOGIT, PYRAMID_CHANGE_PCT, attention_shift, class_scan_peak,
                                                prediction_change, pyramid_scan_peak)
from crossformer.edits import Edit

NAN = np.nan


def test_class_scan_peak_is_the_largest_change_either_way_and_counts_the_heads_that_lower_the_class():
    dl = np.array([[0.05, -0.3, NAN],
                   [0.8, -0.11, -0.1],
                   [-0.9, 0.0, NAN]])
    peak = class_scan_peak(dl)
    assert (peak.row, peak.head, peak.value) == (2, 0, -0.9)       # |−0.9| beats +0.8; NaN cells never win
    assert peak.count == 3 and HURT_LOGIT == 0.1                     # −0.3, −0.11, −0.9 (−0.1 is not below −0.1)
    tie = class_scan_peak(np.array([[0.5, -0.5]]))
    assert (tie.row, tie.head, tie.value) == (0, 0, 0.5)             # the first of equal magnitudes


def test_pyramid_scan_peak_is_the_largest_change_and_counts_heads_above_one_percent():
    mc = np.array([[0.5, 2.0, NAN],
                   [1.0, 7.5, 1.01]])
    peak = pyramid_scan_peak(mc)
    assert (peak.row, peak.head, peak.value) == (1, 1, 7.5)
    assert peak.count == 3 and PYRAMID_CHANGE_PCT == 1.0            # 2.0, 7.5, 1.01 (1.0 is not above 1 %)
    with pytest.raises(ValueError, match="scan table"):
        pyramid_scan_peak(np.zeros(3))


def test_prediction_change_gives_probabilities_differences_and_the_new_top():
    base = np.array([2.0, 1.0, 0.0, -1.0])
    after = np.array([0.0, 3.0, 0.0, -1.0])
    change = prediction_change(base, after)
    np.testing.assert_allclose(change.before, np.exp(base) / np.exp(base).sum())
    np.testing.assert_allclose(change.after.sum(), 1.0)
    np.testing.assert_array_equal(change.delta_logit, [-2.0, 2.0, 0.0, 0.0])
    assert change.new_top == 1
    with pytest.raises(ValueError, match="logit"):
        prediction_change(base, after[:3])


def test_attention_shift_is_the_total_variation_of_the_query_row():
    c = case("demo224")
    block = c.trace.block(1, 0)
    token = (3, 5)
    assert attention_shift(block, block, token) == 0.0
    with torch.no_grad():
        edited = c.model.forward_trace(c.x, edits=[Edit(1, 0, "no_dpb")])
    after = edited.block(1, 0)
    g, n = block.layout.locate(token)
    w0 = block.attention[0, g, :, n, :].astype(np.float64).mean(0)
    w1 = after.attention[0, g, :, n, :].astype(np.float64).mean(0)
    shift = attention_shift(block, after, token)
    assert shift == pytest.approx(0.5 * np.abs(w0 - w1).sum()) and 0 < shift <= 1
