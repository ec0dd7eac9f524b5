"""Numbers of the dynamic position bias (DPB), read from its table (NumPy only).

A DPB table is ``((2G−1)², heads)`` over the mother set of offsets, Δy-major (row ``(Δy+G−1)·(2G−1) + (Δx+G−1)``),
as in ``BlockTrace.dpb_table`` or ``model.dpb_table(stage, block, G)``; offsets are query − key (SPEC §4.4).

    table_grid(block.dpb_table, block.group_size, head)     # (2G−1, 2G−1): [Δy + G−1, Δx + G−1]
    table_grid(centred_table(block.dpb_table), G, head)    # minus its mean: the part that changes attention
"""

from __future__ import annotations

import numpy as np


def table_grid(table: np.ndarray, group_size: int, head: int) -> np.ndarray:
    """One head of a DPB table as a ``(2G−1, 2G−1)`` float64 grid: ``[Δy + G−1, Δx + G−1]``."""
    t = np.asarray(table)
    side = 2 * group_size - 1
    if t.ndim != 2 or t.shape[0] != side * side:
        raise ValueError(f"table has shape {t.shape}, expected ((2G-1)^2 = {side * side}, heads) for G={group_size}")
    if not 0 <= head < t.shape[1]:
        raise ValueError(f"head {head} is outside the table's {t.shape[1]} heads")
    return np.asarray(t[:, head], dtype=np.float64).reshape(side, side)


def centred_table(table: np.ndarray) -> np.ndarray:
    """``((2G−1)², heads)`` float64: each head's table minus its mean over the offsets.

    A constant shift of every logit moves no attention (softmax ignores it), so the centred bias is exactly
    the part that changes attention; a constant table is zero everywhere.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"expected a ((2G-1)^2, heads) DPB table, got shape {t.shape}")
    return t - t.mean(axis=0, keepdims=True)
