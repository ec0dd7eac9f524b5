"""Per-block, per-head statistics of a :class:`~crossformer.trace.Trace` (NumPy only).

Per block and head (averaged over the real query tokens of one image; padded query slots are ignored,
so all-padding groups drop out):

* ``entropy`` — attention entropy ``−Σ_k p_k ln p_k`` over the real keys, in nats (``ln N`` = uniform
  over a full group; 0 = one key takes everything).
* ``distance_px`` — mean attention distance ``Σ_k p_k ‖pos_q − pos_k‖₂ · s`` in input-image pixels, with
  token positions from ``layout.positions`` and ``s = block.stride`` pixels per token. LDA heads reach far,
  SDA heads stay within a window.
* ``dpb_share`` — **the fraction of attention mass the dynamic position bias moves**: the total-variation
  distance ``½ Σ_k |softmax(qk + B + M)_k − softmax(qk + M)_k|`` between the real attention and the
  attention the same logits would give without the DPB term ``B`` (``M`` = padding mask). 0: position
  changes nothing; 1: the bias alone decides where the query looks.

Per block:

* ``residual_norm`` — RMS of the block output ``sqrt(mean(x²))`` over tokens and channels: the residual
  stream's magnitude, whose growth with depth CrossFormer++'s activation cooling layers damp.

:func:`crossformer.stats_heads.head_stats` reduces the same numbers on the device for a batch (tested equal).
"""

from __future__ import annotations

import numpy as np

from crossformer.trace import BlockTrace, Trace

from .attention import content_only_attention, entropy, member_distances_px, total_variation


def _mean_over_real_queries(x: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``(nG, h, N)`` per-query values → ``(h,)`` their mean over the real queries (``real``: ``(nG, N)``)."""
    w = real.astype(np.float64)
    return (x * w[:, None, :]).sum(axis=(0, 2)) / w.sum()


def block_stats(block: BlockTrace, batch: int = 0) -> dict[str, np.ndarray]:
    """``{"entropy", "distance_px", "dpb_share"}`` each ``(heads,)`` for one block (see module doc)."""
    attn = np.asarray(block.attention[batch], dtype=np.float64)       # (nG, h, N, N)
    real = ~block.layout.key_padding                                   # (nG, N)
    p = np.where(real[:, None, None, :], attn, 0.0)                    # keys: real only (padded are 0)
    ent = entropy(p)                                                   # (nG, h, N)
    dist = (p * member_distances_px(block)[:, None]).sum(-1)           # (nG, h, N)
    tv = total_variation(p, np.where(real[:, None, None, :], content_only_attention(block, batch), 0.0))
    return {"entropy": _mean_over_real_queries(ent, real), "distance_px": _mean_over_real_queries(dist, real),
            "dpb_share": _mean_over_real_queries(tv, real)}


def mean_entropy(block: BlockTrace, batch: int = 0) -> np.ndarray:
    """``(heads,)`` the ``entropy`` of :func:`block_stats` alone, in float32 (a page reruns it on every
    interaction); NaN for a block without real queries."""
    real = ~block.layout.key_padding                                   # (nG, N)
    p = np.where(real[:, None, None, :], np.asarray(block.attention[batch], np.float32), np.float32(0.0))
    with np.errstate(invalid="ignore"):
        return _mean_over_real_queries(entropy(p, dtype=np.float32), real)


def residual_rms(block: BlockTrace, batch: int = 0) -> float:
    """RMS of a block's output tokens ``(H·W, C)``."""
    x = np.asarray(block.output[batch], dtype=np.float64)
    return float(np.sqrt((x * x).mean()))


def trace_head_stats(trace: Trace, batch: int = 0) -> dict:
    """Statistics of every block of a trace, stacked for one compact figure.

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
        for k, v in block_stats(b, batch).items():
            out[k][i, : b.heads] = v
    out["residual_norm"] = np.array([residual_rms(b, batch) for b in blocks])
    out["names"] = [b.name for b in blocks]
    out["kinds"] = [b.kind for b in blocks]
    out["stages"] = np.array([b.stage for b in blocks])
    out["heads"] = np.array([b.heads for b in blocks])
    out["group_size"] = np.array([b.group_size for b in blocks])
    out["max_entropy"] = np.log(np.array([b.layout.group_tokens for b in blocks], dtype=np.float64))
    return out


def odd_heads(values: np.ndarray, threshold: float = 3.5, rel_floor: float = 0.1) -> np.ndarray:
    """``(blocks, heads)`` bool: heads far from the other heads of their block.

    Robust z-score ``|x − median| / s > threshold`` within each block (at least 3 heads), with
    ``s = max(1.4826·MAD, rel_floor·|median|)``, so that heads which differ only by noise (e.g. all
    near-uniform attention) are not called odd.
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, dtype=bool)
    for i, row in enumerate(v):
        ok = np.isfinite(row)
        if ok.sum() < 3:
            continue
        med = np.median(row[ok])
        mad = np.median(np.abs(row[ok] - med))
        scale = max(1.4826 * mad, rel_floor * abs(med), 1e-12)
        out[i, ok] = np.abs(row[ok] - med) / scale > threshold
    return out
