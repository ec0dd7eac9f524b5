"""What a picture shows, in words: sentences built from the numbers of :mod:`crossformer.analysis.findings`
(its thresholds and picks) for the pages (no Streamlit)."""

from __future__ import annotations

from crossformer.analysis.findings import (BIAS_DECIDES, FLAT_BIAS, ONE_KEY, SMALL_BIAS, UNIFORM, bias_extent,
                                           entropy_ratio, query_dpb_share, query_focus, query_row,
                                           query_uniform_heads)
from crossformer.analysis.predictions import Confidence
from crossformer.trace import BlockTrace


def attention_notes(block: BlockTrace, group: int, member: int, head: int | None) -> list[str]:
    """Sentences on what the query's attention map shows (uniform, one key, bias-decided), with numbers."""
    row, real = query_row(block, group, member, head)
    focus = query_focus(row, real)
    n_real = focus.n_real
    who = "the mean of the heads" if head is None else f"head {head}"
    notes: list[str] = []
    if n_real <= 1:
        return [f"The query's group has a single real token: {who} can only attend to itself."]
    ratio = entropy_ratio(row, real)
    top = focus.top
    if ratio >= UNIFORM:
        notes.append(f"**Uniform:** {who} averages its group — entropy {ratio:.3f} × ln {n_real} over the "
                     f"{n_real} real keys (every weight ≈ 1/{n_real} = {1 / n_real:.3f}). This is a finding, "
                     "not a drawing error: this head mixes its group evenly.")
    elif top >= ONE_KEY:
        notes.append(f"**One key:** {who} puts {top:.0%} of its attention on member {focus.top_member}.")
    if head is not None:
        share = query_dpb_share(block, group, member, head)
        if share >= BIAS_DECIDES:
            notes.append(f"**Position decides:** the DPB moves {share:.0%} of this query's attention mass — "
                         "where the keys are matters more than what they contain.")
        elif share < 0.01:
            notes.append(f"The DPB moves only {share:.1%} of this query's attention: content decides.")
    return notes


def bias_notes(block: BlockTrace, head: int) -> list[str]:
    """Sentences on one head's DPB table: flat (moves nothing) or how much it varies."""
    b = bias_extent(block, head)
    if b.span < FLAT_BIAS:
        return [f"**Constant bias:** head {head}'s table is {b.mean:+.4f} everywhere (range {b.span:.1e} "
                "over the offsets). A constant added to every logit moves no attention — softmax ignores a "
                "constant shift — so this bias does nothing, whatever the colour."]
    out = [f"Head {head}'s bias varies by {b.span:.3f} over the offsets (from {b.low:+.3f} to {b.high:+.3f}); "
           f"a difference of 1 in the bias multiplies the attention ratio of two keys by e ≈ 2.7."]
    if b.span < SMALL_BIAS:
        out.append(f"**Small bias:** it changes the attention ratio of any two keys by at most "
                   f"×{b.ratio_factor:.3f} (e^{b.span:.3f}) — the content term decides this head's attention.")
    if b.flat_heads:
        out.append(f"Heads {', '.join(map(str, b.flat_heads))} of this block have a constant bias "
                   f"(range < {FLAT_BIAS:g}).")
    return out


def prediction_caveat(is_demo: bool, trained: bool, expected: str | None, conf: Confidence) -> str | None:
    """A warning when the model's classes cannot describe this image, else ``None``.

    The demo model knows 25 Navon classes: any image that is not a Navon figure (no known class: not the
    generator, not a Navon sample or a file named after its class) gets the warning, and so does a Navon
    figure the model is unsure about (top-1 < 50 %). ``conf``: how sure the prediction is.
    """
    top_prob, entropy_nats, num_classes = conf.top_prob, conf.entropy_nats, conf.num_classes
    if not trained:
        return None
    if is_demo and expected is None:
        return (f"**These labels cannot describe this image.** The demo model knows only Navon figures "
                f"(25 classes such as \"triangle of squares\"), so whatever this image shows, it answers with "
                f"a Navon class (top-1 {top_prob:.0%}, entropy {entropy_nats:.2f} of ln {num_classes} = "
                f"{conf.max_entropy:.2f} nats). For ImageNet class names load official weights: "
                "`python -m crossformer fetch crossformer_s`, then `bash scripts/run_app.sh --official "
                "crossformer_s` (or upload a checkpoint in the sidebar). The mechanism views stay real either way.")
    if top_prob < 0.5:
        return (f"The model is unsure (top-1 {top_prob:.0%}, entropy {entropy_nats:.2f} of "
                f"{conf.max_entropy:.2f} nats): read the labels as a guess.")
    return None


def heads_note(block: BlockTrace, group: int, member: int) -> str | None:
    """One sentence for the all-heads view: which heads average their group for this query."""
    flat = query_uniform_heads(block, group, member)
    if not flat:
        return None
    if len(flat) == block.heads:
        return (f"**Every head of {block.name} is uniform for this query** (entropy ≥ {UNIFORM} × ln N): the block "
                "averages the query's group — the panels look alike because they are.")
    return (f"Head{'s' if len(flat) > 1 else ''} {', '.join(map(str, flat))} of {block.name} "
            f"{'average' if len(flat) > 1 else 'averages'} the group for this query (entropy ≥ {UNIFORM} × ln N).")
