"""Group-aware attention rollout of a :class:`~crossformer.trace.Trace` (a HEURISTIC; NumPy only)."""

from __future__ import annotations

import numpy as np

from crossformer.trace import BlockTrace, Trace


def attend_back(block: BlockTrace, v: np.ndarray, batch: int = 0) -> np.ndarray:
    """``(L,)`` ``v @ A`` for the block's token-to-token head-mean attention ``A`` (L×L, block-sparse by group)."""
    lay = block.layout
    A = np.asarray(block.attention[batch], dtype=np.float64).mean(axis=1)       # (nG, N, N)
    real = ~lay.key_padding
    vq = np.where(real, v[np.where(real, lay.members, 0)], 0.0)                 # (nG, N)
    contrib = np.einsum("gq,gqk->gk", vq, A)                                    # (nG, N)
    out = np.zeros_like(v)
    np.add.at(out, lay.members[real], contrib[real])
    return out


def attention_rollout(trace: Trace, batch: int = 0, *, residual: float = 0.5) -> np.ndarray:
    """HEURISTIC group-aware attention rollout → ``(H_0, W_0)`` map over stage-0 tokens (sums to 1).

    Starts from the uniform weight the mean-pooled head gives the last stage's tokens and walks back
    through every block, ``v ← residual·v + (1 − residual)·v·A`` with ``A`` the head-mean attention
    scattered through the block's real groups (so SDA windows and LDA lattices route mass where the
    model really attended), and through each merge by splitting a token's mass evenly over the ``2×2``
    tokens its stride-2 conv is centred on. It ignores MLPs, value vectors, the merge's 4×4 kernel and the
    CrossFormer++ cooling layers: a picture of attention flow, not an attribution.
    """
    blocks = trace.blocks
    hw_last = trace.stage_hw[-1]
    v = np.full(hw_last[0] * hw_last[1], 1.0 / (hw_last[0] * hw_last[1]))
    for stage in range(len(blocks) - 1, -1, -1):
        for block in reversed(blocks[stage]):
            v = residual * v + (1.0 - residual) * attend_back(block, v, batch)
        if stage > 0:
            (h1, w1), (h0, w0) = trace.stage_hw[stage], trace.stage_hw[stage - 1]
            up = np.zeros((h0, w0))
            up[: 2 * h1, : 2 * w1] = np.repeat(np.repeat(v.reshape(h1, w1), 2, axis=0), 2, axis=1) / 4.0
            v = up.reshape(-1)
    return v.reshape(trace.stage_hw[0])
