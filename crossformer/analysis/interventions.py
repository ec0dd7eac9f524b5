"""What an intervention did, in numbers: the head-importance scan's summary and one edit's effect (NumPy only).

The edited forward passes run in :mod:`crossformer.interventions` (torch); this module reads what they return
(the scan's ``(blocks, heads)`` tables, the logits and traces of the base and the edited pass) and says what
the Interventions page states about them. Thresholds:

* a head *changes the pyramid* when its ablation moves the stage maps by more than :data:`PYRAMID_CHANGE_PCT`
  per cent (mean relative L2 change over the stages);
* a head *lowers the class* when its ablation lowers the followed class's logit by more than :data:`HURT_LOGIT`.

    peak = class_scan_peak(res["delta_logit"])       # the most important head and how many heads matter
    change = prediction_change(base_logits, edited_logits)
    attention_shift(block_before, block_after, query)  # total variation of the query's attention
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crossformer.analysis.attention import query_weights, softmax, total_variation
from crossformer.trace import BlockTrace

#: Per cent of relative L2 change of the stage maps above which a head counts as changing the pyramid.
PYRAMID_CHANGE_PCT = 1.0
#: Logits by which an ablated head must lower the followed class to count as one the class needs.
HURT_LOGIT = 0.1


@dataclass(frozen=True)
class ScanPeak:
    """The head whose ablation matters most in a scan, and how many heads pass the scan's threshold.

    Attributes:
        row: the scan's row (one block, in forward order).
        head: head within that block.
        value: the scan's value there (change in per cent, or Δ logit).
        count: heads past the threshold (:data:`PYRAMID_CHANGE_PCT` or :data:`HURT_LOGIT`).
    """

    row: int
    head: int
    value: float
    count: int


def _table(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"expected a non-empty (blocks, heads) scan table, got shape {v.shape}")
    return v


def _peak(magnitude: np.ndarray) -> tuple[int, int]:
    """``(row, head)`` of the largest entry (the first one on a tie)."""
    i, h = np.unravel_index(int(np.argmax(magnitude)), magnitude.shape)
    return int(i), int(h)


def pyramid_scan_peak(change_pct: np.ndarray) -> ScanPeak:
    """``(blocks, heads)`` mean change of the stage maps in per cent (NaN where a block has fewer heads) → the
    head that changes the pyramid most, and how many change it by more than :data:`PYRAMID_CHANGE_PCT`."""
    c = _table(change_pct)
    i, h = _peak(np.where(np.isfinite(c), c, -1.0))
    return ScanPeak(row=i, head=h, value=float(c[i, h]), count=int(np.sum(np.nan_to_num(c) > PYRAMID_CHANGE_PCT)))


def class_scan_peak(delta_logit: np.ndarray) -> ScanPeak:
    """``(blocks, heads)`` Δ logit of the followed class per ablated head (NaN where a block has fewer heads) →
    the head with the largest |Δ logit|, and how many lower the logit by more than :data:`HURT_LOGIT`."""
    d = _table(delta_logit)
    i, h = _peak(np.where(np.isfinite(d), np.abs(d), -1.0))
    return ScanPeak(row=i, head=h, value=float(d[i, h]), count=int(np.sum(np.nan_to_num(d, nan=0.0) < -HURT_LOGIT)))


@dataclass(frozen=True, eq=False)
class PredictionChange:
    """A classifier's prediction before and after an edit.

    Attributes:
        before, after: ``(C,)`` class probabilities of the base and the edited pass.
        delta_logit: ``(C,)`` edited − base logits.
        new_top: the edited pass's top class.
    """

    before: np.ndarray
    after: np.ndarray
    delta_logit: np.ndarray
    new_top: int


def prediction_change(base_logits: np.ndarray, after_logits: np.ndarray) -> PredictionChange:
    """``(C,)`` logits of the base and the edited pass → their probabilities and differences."""
    base, after = np.asarray(base_logits, np.float64), np.asarray(after_logits, np.float64)
    if base.ndim != 1 or base.shape != after.shape or base.size == 0:
        raise ValueError(f"expected two (C,) logit vectors of one model, got shapes {base.shape} and {after.shape}")
    return PredictionChange(before=softmax(base), after=softmax(after), delta_logit=after - base,
                            new_top=int(np.argmax(after)))


def attention_shift(before: BlockTrace, after: BlockTrace, query: Sequence[int]) -> float | None:
    """Total variation between the head-mean attention of token ``query`` in the same block of two passes, or
    ``None`` when its group has a different size in the two (an edit changed the grouping)."""
    w0, w1 = query_weights(before, query), query_weights(after, query)
    return float(total_variation(w0, w1)) if w0.shape == w1.shape else None
