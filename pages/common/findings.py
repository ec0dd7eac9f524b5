"""What a picture shows, in numbers and words, and which view is the informative one (NumPy only).

Every function reads the trace of this image: nothing is assumed about the model. Thresholds:

* uniform attention — entropy ≥ :data:`UNIFORM` × ln N over the query's real keys: "this head averages
  its group";
* attention on one key — the largest weight ≥ :data:`ONE_KEY`;
* a flat bias — its range over the offsets < :data:`FLAT_BIAS`: a constant shift of every logit, which
  softmax ignores, so it moves no attention;
* a small bias — range < :data:`SMALL_BIAS`: it changes the attention ratio of any two keys by at most
  ``e^range`` (< 5 %), so content decides;
* a bias that decides most of the attention — DPB share (total variation between the attention with
  and without the bias) ≥ :data:`BIAS_DECIDES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossformer.trace import BlockTrace, Trace
from viz.diagnostics import content_only_attention, entropy, total_variation

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


def bias_ranges(block: BlockTrace) -> np.ndarray:
    """``(heads,)`` max − min of the DPB table over all ``(2G−1)²`` offsets."""
    t = np.asarray(block.dpb_table, np.float64)
    return t.max(0) - t.min(0)


def mean_entropy(block: BlockTrace) -> np.ndarray:
    """``(heads,)`` attention entropy over the real keys, averaged over the real queries — the ``entropy`` of
    ``viz.diagnostics.block_stats`` without its other statistics (this runs on every rerun of a page)."""
    real = ~block.layout.key_padding                                   # (nG, N)
    p = np.where(real[:, None, None, :], np.asarray(block.attention[0], np.float32), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(-1)   # (nG, heads, N)
    w = real.astype(np.float64)
    return (ent * w[:, None, :]).sum(axis=(0, 2)) / w.sum()


def focused_head(block: BlockTrace, trace: Trace) -> tuple[int, float]:
    """The block's most focused head (lowest mean entropy / ln N over this image's queries) and its value."""
    ln_n = float(np.log(block.layout.group_tokens))      # only this block's statistics (a rerun's hot path)
    ent = mean_entropy(block)
    with np.errstate(invalid="ignore"):
        row = ent / ln_n if ln_n > 0 else np.where(np.isnan(ent), np.nan, 0.0)
    if np.all(np.isnan(row)):                       # no real query at all: nothing to rank
        return 0, float("nan")
    h = int(np.nanargmin(row))
    return h, float(row[h])


def attention_pick(trace: Trace, block: BlockTrace) -> Pick:
    """Default head of the Attention page for the chosen ``block``: its most focused head."""
    h, e = focused_head(block, trace)
    return Pick(block.stage, block.index, h,
                f"Head {h} is the most focused head of {block.name} on this image "
                f"(mean entropy {e:.2f} × ln N; 1.00 = uniform).")


def dpb_pick(trace: Trace) -> Pick:
    """Default block and head of the DPB page: the largest bias range over offsets in the whole model."""
    best = max(((float(bias_ranges(b)[h]), b, h) for b in trace.all_blocks() for h in range(b.heads)),
               key=lambda t: t[0])
    r, b, h = best
    return Pick(b.stage, b.index, h, f"{b.name}, head {h} has the largest bias range of the model "
                                     f"({r:.3f} over its offsets): the bias there moves attention the most.")


def _salience_map(trace: Trace) -> np.ndarray:
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
    smooth = _salience_map(trace)
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
    cell = _salience_map(trace)[h3 * r:(h3 + 1) * r, w3 * r:(w3 + 1) * r]
    if cell.size == 0:                                                           # the map's floor division
        return min(h3 * r, trace.stage_hw[0][0] - 1), min(w3 * r, trace.stage_hw[0][1] - 1)
    dh, dw = np.unravel_index(int(np.argmax(cell)), cell.shape)
    return int(h3 * r + dh), int(w3 * r + dw)


def query_row(block: BlockTrace, group: int, member: int, head: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The query's attention over its group's keys ``(N,)`` (mean over heads when ``head`` is None) and the
    real-key mask ``(N,)``."""
    a = np.asarray(block.attention[0, group], np.float64)        # (heads, N, N)
    row = a[:, member].mean(0) if head is None else a[head, member]
    return row, ~block.layout.key_padding[group]


def attention_notes(block: BlockTrace, group: int, member: int, head: int | None) -> list[str]:
    """Sentences on what the query's attention map shows (uniform, one key, bias-decided), with numbers."""
    row, real = query_row(block, group, member, head)
    n_real = int(real.sum())
    who = "the mean of the heads" if head is None else f"head {head}"
    notes: list[str] = []
    if n_real <= 1:
        return [f"The query's group has a single real token: {who} can only attend to itself."]
    e = float(entropy(row[real]))
    ratio = e / np.log(n_real)
    top = float(row.max())
    if ratio >= UNIFORM:
        notes.append(f"**Uniform:** {who} averages its group — entropy {ratio:.3f} × ln {n_real} over the "
                     f"{n_real} real keys (every weight ≈ 1/{n_real} = {1 / n_real:.3f}). This is a finding, "
                     "not a drawing error: this head mixes its group evenly.")
    elif top >= ONE_KEY:
        k = int(row.argmax())
        notes.append(f"**One key:** {who} puts {top:.0%} of its attention on member {k}.")
    if head is not None:
        a = np.asarray(block.attention[0, group, head, member], np.float64)
        c = content_only_attention(block)[group, head, member]
        share = float(total_variation(np.where(real, a, 0.0), np.where(real, c, 0.0)))
        if share >= BIAS_DECIDES:
            notes.append(f"**Position decides:** the DPB moves {share:.0%} of this query's attention mass — "
                         "where the keys are matters more than what they contain.")
        elif share < 0.01:
            notes.append(f"The DPB moves only {share:.1%} of this query's attention: content decides.")
    return notes


def bias_notes(block: BlockTrace, head: int) -> list[str]:
    """Sentences on one head's DPB table: flat (moves nothing) or how much it varies."""
    r = bias_ranges(block)
    t = np.asarray(block.dpb_table, np.float64)[:, head]
    if r[head] < FLAT_BIAS:
        return [f"**Constant bias:** head {head}'s table is {t.mean():+.4f} everywhere (range {r[head]:.1e} "
                "over the offsets). A constant added to every logit moves no attention — softmax ignores a "
                "constant shift — so this bias does nothing, whatever the colour."]
    flat = [h for h in range(len(r)) if r[h] < FLAT_BIAS]
    out = [f"Head {head}'s bias varies by {r[head]:.3f} over the offsets (from {t.min():+.3f} to {t.max():+.3f}); "
           f"a difference of 1 in the bias multiplies the attention ratio of two keys by e ≈ 2.7."]
    if r[head] < SMALL_BIAS:
        out.append(f"**Small bias:** it changes the attention ratio of any two keys by at most "
                   f"×{np.exp(r[head]):.3f} (e^{r[head]:.3f}) — the content term decides this head's attention.")
    if flat:
        out.append(f"Heads {', '.join(map(str, flat))} of this block have a constant bias (range < {FLAT_BIAS:g}).")
    return out


def prediction_caveat(is_demo: bool, trained: bool, expected: str | None, top_prob: float,
                      entropy_nats: float, num_classes: int) -> str | None:
    """A warning when the model's classes cannot describe this image, else ``None``.

    The demo model knows 25 Navon classes: any image that is not a Navon figure (no known class: not the
    generator, not a Navon sample or a file named after its class) gets the warning, and so does a Navon
    figure the model is unsure about (top-1 < 50 %). ``entropy_nats``: of the predicted distribution.
    """
    if not trained:
        return None
    if is_demo and expected is None:
        return (f"**These labels cannot describe this image.** The demo model knows only Navon figures "
                f"(25 classes such as \"triangle of squares\"), so whatever this image shows, it answers with "
                f"a Navon class (top-1 {top_prob:.0%}, entropy {entropy_nats:.2f} of ln {num_classes} = "
                f"{np.log(num_classes):.2f} nats). For ImageNet class names load official weights: "
                "`python -m crossformer fetch crossformer_s`, then `bash scripts/run_app.sh --official "
                "crossformer_s` (or upload a checkpoint in the sidebar). The mechanism views stay real either way.")
    if top_prob < 0.5:
        return (f"The model is unsure (top-1 {top_prob:.0%}, entropy {entropy_nats:.2f} of "
                f"{np.log(num_classes):.2f} nats): read the labels as a guess.")
    return None


def uniform_heads(block: BlockTrace, group: int, member: int) -> list[int]:
    """Heads whose attention for this query is uniform over its real keys (entropy ≥ UNIFORM × ln N)."""
    real = ~block.layout.key_padding[group]
    n = int(real.sum())
    if n <= 1:
        return list(range(block.heads))
    a = np.asarray(block.attention[0, group, :, member], np.float64)[:, real]     # (heads, n_real)
    return [h for h in range(block.heads) if float(entropy(a[h])) / np.log(n) >= UNIFORM]


def heads_note(block: BlockTrace, group: int, member: int) -> str | None:
    """One sentence for the all-heads view: which heads average their group for this query."""
    flat = uniform_heads(block, group, member)
    if not flat:
        return None
    if len(flat) == block.heads:
        return (f"**Every head of {block.name} is uniform for this query** (entropy ≥ {UNIFORM} × ln N): the block "
                "averages the query's group — the panels look alike because they are.")
    return (f"Head{'s' if len(flat) > 1 else ''} {', '.join(map(str, flat))} of {block.name} "
            f"{'average' if len(flat) > 1 else 'averages'} the group for this query (entropy ≥ {UNIFORM} × ln N).")
