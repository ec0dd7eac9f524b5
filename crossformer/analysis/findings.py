"""Which view is the informative one, and what a picture shows, in numbers (NumPy only, no UI).

Every function reads the trace of this image: nothing is assumed about the model. Thresholds (one constant
each, for the whole app and the dataset statistics):

* uniform attention — entropy ≥ :data:`UNIFORM` × ln N over the query's real keys: "this head averages
  its group";
* attention on one key — the largest weight ≥ :data:`ONE_KEY`;
* a flat bias — its range over the offsets < :data:`FLAT_BIAS`: a constant shift of every logit, which
  softmax ignores, so it moves no attention;
* a small bias — range < :data:`SMALL_BIAS`: it changes the attention ratio of any two keys by at most
  ``e^range`` (< 5 %), so content decides;
* a bias that decides most of the attention — DPB share (total variation between the attention with
  and without the bias) ≥ :data:`BIAS_DECIDES`.

The sentences built from these numbers are in ``pages/common/findings.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crossformer.trace import BlockTrace, Trace

from .attention import content_only_attention, entropy, total_variation
from .heads import mean_entropy

UNIFORM = 0.97
ONE_KEY = 0.9
FLAT_BIAS = 1e-3
SMALL_BIAS = 0.05
BIAS_DECIDES = 0.5


@dataclass(frozen=True)
class Pick:
    """An informative default and the one line that explains it."""

    stage: int
    block: int          # index within the stage
    head: int
    why: str


# ---- the position bias ---------------------------------------------------------------------------------
def bias_ranges(block: BlockTrace) -> np.ndarray:
    """``(heads,)`` max − min of the DPB table over all ``(2G−1)²`` offsets."""
    t = np.asarray(block.dpb_table, np.float64)
    return t.max(0) - t.min(0)


@dataclass(frozen=True)
class BiasExtent:
    """One head's DPB table over its offsets: ``span`` = max − min (:func:`bias_ranges`), ``mean``, ``low``,
    ``high``, and the heads of the block whose table is flat (span < :data:`FLAT_BIAS`)."""

    head: int
    span: float
    mean: float
    low: float
    high: float
    flat_heads: tuple[int, ...]

    @property
    def ratio_factor(self) -> float:
        """``e^span``: the most this bias changes the attention ratio of two keys."""
        return float(np.exp(self.span))


def bias_extent(block: BlockTrace, head: int) -> BiasExtent:
    """How far head ``head``'s position bias varies over the offsets, and which heads of the block are flat."""
    r = bias_ranges(block)
    t = np.asarray(block.dpb_table, np.float64)[:, head]
    return BiasExtent(head, float(r[head]), float(t.mean()), float(t.min()), float(t.max()),
                      tuple(h for h in range(len(r)) if r[h] < FLAT_BIAS))


def dpb_pick(trace: Trace) -> Pick:
    """Default block and head of the DPB page: the largest bias range over offsets in the whole model."""
    r, b, h = max(((float(bias_ranges(b)[h]), b, h) for b in trace.all_blocks() for h in range(b.heads)),
                  key=lambda t: t[0])
    return Pick(b.stage, b.index, h, f"{b.name}, head {h} has the largest bias range of the model "
                                     f"({r:.3f} over its offsets): the bias there moves attention the most.")


# ---- heads ---------------------------------------------------------------------------------------------
def focused_head(block: BlockTrace) -> tuple[int, float]:
    """The block's most focused head (lowest mean entropy / ln N over this image's queries) and its value."""
    ln_n = float(np.log(block.layout.group_tokens))      # only this block's statistics (a rerun's hot path)
    ent = mean_entropy(block)
    with np.errstate(invalid="ignore"):
        row = ent / ln_n if ln_n > 0 else np.where(np.isnan(ent), np.nan, 0.0)
    if np.all(np.isnan(row)):                       # no real query at all: nothing to rank
        return 0, float("nan")
    h = int(np.nanargmin(row))
    return h, float(row[h])


def attention_pick(block: BlockTrace) -> Pick:
    """Default head of the Attention page for the chosen ``block``: its most focused head."""
    h, e = focused_head(block)
    return Pick(block.stage, block.index, h,
                f"Head {h} is the most focused head of {block.name} on this image "
                f"(mean entropy {e:.2f} × ln N; 1.00 = uniform).")


# ---- one query -----------------------------------------------------------------------------------------
def query_row(block: BlockTrace, group: int, member: int, head: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The query's attention over its group's keys ``(N,)`` (mean over heads when ``head`` is None) and the
    real-key mask ``(N,)``."""
    a = np.asarray(block.attention[0, group], np.float64)        # (heads, N, N)
    row = a[:, member].mean(0) if head is None else a[head, member]
    return row, ~block.layout.key_padding[group]


@dataclass(frozen=True)
class QueryFocus:
    """One query's attention row over its group: ``n_real`` real keys, the largest weight ``top`` and its
    member ``top_member``."""

    n_real: int
    top: float
    top_member: int


def query_focus(row: np.ndarray, real: np.ndarray) -> QueryFocus:
    """``(N,)`` attention row and ``(N,)`` bool real-key mask → :class:`QueryFocus`."""
    row = np.asarray(row)
    k = int(row.argmax())
    return QueryFocus(int(np.asarray(real).sum()), float(row[k]), k)


def entropy_ratio(row: np.ndarray, real: np.ndarray) -> float:
    """Entropy of ``row`` over its real keys divided by ``ln(real keys)`` (1 = uniform); needs ≥ 2 real keys."""
    return float(entropy(np.asarray(row, np.float64)[real])) / float(np.log(int(real.sum())))


def query_dpb_share(block: BlockTrace, group: int, member: int, head: int) -> float:
    """Attention mass the DPB moves for one query and head: total variation between its attention and the
    content-only attention over the real keys."""
    real = ~block.layout.key_padding[group]
    a = np.asarray(block.attention[0, group, head, member], np.float64)
    c = content_only_attention(block)[group, head, member]
    return float(total_variation(np.where(real, a, 0.0), np.where(real, c, 0.0)))


def query_uniform_heads(block: BlockTrace, group: int, member: int) -> list[int]:
    """Heads whose attention for this query is uniform over its real keys (entropy ≥ UNIFORM × ln N)."""
    real = ~block.layout.key_padding[group]
    if int(real.sum()) <= 1:
        return list(range(block.heads))
    a = np.asarray(block.attention[0, group, :, member], np.float64)               # (heads, N)
    return [h for h in range(block.heads) if entropy_ratio(a[h], real) >= UNIFORM]


# ---- where to look first -------------------------------------------------------------------------------
def salience_map(trace: Trace) -> np.ndarray:
    """``(H_0, W_0)`` how unlike the image's average token the cross-scale embedding responds at each token.

    Each kernel's raw response ``(c_k, H, W)`` is centred on its mean over tokens and scaled by its spread,
    the squared deviations are summed over channels and kernels, then box-smoothed over 3 × 3 tokens so
    one noisy token does not win.
    """
    H, W = trace.stage_hw[0]
    score = np.zeros((H, W))
    for resp in trace.embedding.per_kernel:
        r = np.asarray(resp[0], np.float64)                      # (c, H, W)
        r = r - r.mean(axis=(1, 2), keepdims=True)
        r = r / (r.std(axis=(1, 2), keepdims=True) + 1e-9)
        score += (r * r).sum(0)
    pad = np.pad(score, 1, mode="edge")
    return sum(pad[dy: dy + H, dx: dx + W] for dy in range(3) for dx in range(3)) / 9.0


def salient_token(trace: Trace) -> tuple[int, int]:
    """The stage-0 token where the cross-scale embedding responds most unlike the image's average token
    (on a Navon figure: on the figure, not the paper; on a photo: the most distinctive spot)."""
    smooth = salience_map(trace)
    h, w = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return int(h), int(w)


def class_evidence(trace: Trace, norm_weight: np.ndarray, norm_bias: np.ndarray, head_row: np.ndarray,
                   eps: float = 1e-5) -> np.ndarray:
    """``(H_3, W_3)`` each last-stage token's share of one class logit (class activation map, exact).

    The head reads the mean over tokens of the final LayerNorm, so ``logit_c − b_c = Σ_t w_c · LN(x_t) / T``:
    the map sums to the logit minus the head's bias. ``norm_weight``, ``norm_bias``: ``(C_3,)`` of the final
    LayerNorm; ``head_row``: ``(C_3,)`` the class's row of the head.
    """
    x = np.asarray(trace.stage_outputs[-1][0], np.float64)                     # (T, C_3)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    ln = (x - mu) / np.sqrt(var + eps) * np.asarray(norm_weight, np.float64) + np.asarray(norm_bias, np.float64)
    per_token = ln @ np.asarray(head_row, np.float64) / x.shape[0]             # (T,)
    return per_token.reshape(trace.stage_hw[-1])


def object_token(trace: Trace, evidence: np.ndarray) -> tuple[int, int]:
    """The stage-0 token on the predicted object: inside the last-stage cell with the most class evidence
    (:func:`class_evidence`), the token where the embedding responds most distinctively."""
    h3, w3 = np.unravel_index(int(np.argmax(evidence)), evidence.shape)
    r = trace.stage_stride(len(trace.stage_hw) - 1) // trace.stage_stride(0)   # stage-0 tokens per cell side
    cell = salience_map(trace)[h3 * r:(h3 + 1) * r, w3 * r:(w3 + 1) * r]
    if cell.size == 0:                                                           # the map's floor division
        return min(h3 * r, trace.stage_hw[0][0] - 1), min(w3 * r, trace.stage_hw[0][1] - 1)
    dh, dw = np.unravel_index(int(np.argmax(cell)), cell.shape)
    return int(h3 * r + dh), int(w3 * r + dw)


@dataclass(frozen=True, eq=False)
class Readout:
    """The classifier's last steps as arrays: final LayerNorm ``(C_3,)`` weight and bias, its ``eps``, and the
    head's weight ``(classes, C_3)``."""

    norm_weight: np.ndarray
    norm_bias: np.ndarray
    head_weight: np.ndarray
    eps: float = 1e-5


@dataclass(frozen=True)
class DefaultQuery:
    """The informative default query: a stage-0 token ``(h, w)`` and the line that says why it is there."""

    token: tuple[int, int]
    reason: str


def default_query(trace: Trace, readout: Readout | None = None, class_names: Sequence[str] = ()) -> DefaultQuery:
    """The query to show before the user picks one.

    With a ``readout`` (weights whose classes mean something, e.g. ImageNet): on the predicted object — the
    last-stage cell with the most evidence for the top class (:func:`class_evidence`, exact for the
    mean-pooled head), refined to the most distinctive token inside it (:func:`object_token`). Without
    (the Navon demo, random weights): :func:`salient_token`.
    """
    if readout is None:
        return DefaultQuery(salient_token(trace), "Default query: the token where the cross-scale embedding "
                                                  "responds most unlike the image's average token (on a Navon "
                                                  "figure: on the figure, not the paper).")
    top = int(np.argmax(trace.logits[0]))
    evidence = class_evidence(trace, readout.norm_weight, readout.norm_bias, readout.head_weight[top],
                              eps=readout.eps)
    name = class_names[top] if top < len(class_names) else f"class {top}"
    s = trace.stage_stride(len(trace.stage_hw) - 1)
    return DefaultQuery(object_token(trace, evidence),
                        f"Default query: on the predicted object — inside the {s}×{s}-px last-stage cell that adds "
                        f"the most to the logit of “{name}”, the most distinctive token.")
