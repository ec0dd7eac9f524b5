"""Numbers for debugging attention patterns, computed from a :class:`~crossformer.trace.Trace` (NumPy only).

Per block and head (averaged over the real query tokens of one image; padded query slots are ignored,
so all-padding groups drop out):

* ``entropy`` — attention entropy ``−Σ_k p_k ln p_k`` over the real keys, in nats (``ln N`` = uniform
  over a full group; 0 = one key takes everything).
* ``distance_px`` — mean attention distance ``Σ_k p_k ‖pos_q − pos_k‖₂ · s`` in input-image pixels, with
  token positions from ``layout.positions`` and ``s = 4·2^stage`` pixels per token. LDA heads reach far,
  SDA heads stay within a window.
* ``dpb_share`` — **the fraction of attention mass the dynamic position bias moves**: the total-variation
  distance ``½ Σ_k |softmax(qk + B + M)_k − softmax(qk + M)_k|`` between the real attention and the
  attention the same logits would give without the DPB term ``B`` (``M`` = padding mask). 0: position
  changes nothing; 1: the bias alone decides where the query looks.

Per block:

* ``residual_norm`` — RMS of the block output ``sqrt(mean(x²))`` over tokens and channels: the residual
  stream's magnitude, whose growth with depth CrossFormer++'s activation cooling layers damp.
"""

from __future__ import annotations

import numpy as np

from crossformer.trace import BlockTrace, Trace



def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (subtracts the row max), float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def content_only_attention(block: BlockTrace, batch: int = 0) -> np.ndarray:
    """``(nG, heads, N, N)`` softmax(scale·q·kᵀ + mask): the attention without the position bias."""
    return softmax(block.content[batch] + block.mask[:, None])


def bias_only_attention(block: BlockTrace) -> np.ndarray:
    """``(nG, heads, N, N)`` softmax(DPB bias + mask): where position alone would send the attention."""
    return softmax(block.dpb_bias[None] + block.mask[:, None])


def total_variation(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """``½ Σ |p − q|`` along ``axis``."""
    return 0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum(axis=axis)


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """``−Σ p ln p`` (with ``0 ln 0 = 0``) along ``axis``, in nats."""
    p = np.asarray(p, dtype=np.float64)
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(axis=axis)


def member_distances_px(block: BlockTrace) -> np.ndarray:
    """``(nG, N, N)`` Euclidean distance between members' token positions, in input pixels."""
    pos = block.layout.positions.astype(np.float64)                  # (nG, N, 2)
    d = np.sqrt(((pos[:, :, None, :] - pos[:, None, :, :]) ** 2).sum(-1))
    return d * block.stride


def block_stats(block: BlockTrace, batch: int = 0) -> dict[str, np.ndarray]:
    """``{"entropy", "distance_px", "dpb_share"}`` each ``(heads,)`` for one block (see module doc)."""
    attn = np.asarray(block.attention[batch], dtype=np.float64)       # (nG, h, N, N)
    real = ~block.layout.key_padding                                   # (nG, N)
    weight = real.astype(np.float64)                                   # real queries
    n_q = weight.sum()
    p = np.where(real[:, None, None, :], attn, 0.0)                    # keys: real only (padded are 0)
    ent = entropy(p)                                                   # (nG, h, N)
    dist = (p * member_distances_px(block)[:, None]).sum(-1)           # (nG, h, N)
    tv = total_variation(p, np.where(real[:, None, None, :], content_only_attention(block, batch), 0.0))

    def mean_over_queries(x: np.ndarray) -> np.ndarray:               # (nG, h, N) → (h,)
        return (x * weight[:, None, :]).sum(axis=(0, 2)) / n_q

    return {"entropy": mean_over_queries(ent), "distance_px": mean_over_queries(dist),
            "dpb_share": mean_over_queries(tv)}


def residual_rms(block: BlockTrace, batch: int = 0) -> float:
    """RMS of a block's output tokens ``(H·W, C)``."""
    x = np.asarray(block.output[batch], dtype=np.float64)
    return float(np.sqrt((x * x).mean()))


def block_head_stats(trace: Trace, batch: int = 0) -> dict:
    """Diagnostics of every block, stacked for one compact figure.

    Returns:
        ``entropy``, ``distance_px``, ``dpb_share``: ``(blocks, max_heads)`` float arrays (NaN where a block
        has fewer heads); ``residual_norm``: ``(blocks,)``; ``names``: ``["s0_b0", …]``; ``kinds``:
        ``["sda"|"lda", …]``; ``stages``, ``heads``, ``group_size``: ``(blocks,)`` ints;
        ``max_entropy``: ``(blocks,)`` ``ln N``, the entropy of uniform attention over a full group.
    """
    blocks = list(trace.all_blocks())
    H = max(b.heads for b in blocks)
    out = {k: np.full((len(blocks), H), np.nan) for k in ("entropy", "distance_px", "dpb_share")}
    for i, b in enumerate(blocks):
        st = block_stats(b, batch)
        for k, v in st.items():
            out[k][i, : b.heads] = v
    out["residual_norm"] = np.array([residual_rms(b, batch) for b in blocks])
    out["names"] = [b.name for b in blocks]
    out["kinds"] = [b.kind for b in blocks]
    out["stages"] = np.array([b.stage for b in blocks])
    out["heads"] = np.array([b.heads for b in blocks])
    out["group_size"] = np.array([b.group_size for b in blocks])
    out["max_entropy"] = np.log(np.array([b.layout.group_tokens for b in blocks], dtype=np.float64))
    return out
