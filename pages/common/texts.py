"""Teaching text of every page, filled with the live numbers of the current trace (no Streamlit).

Each function returns Markdown: 2–5 sentences on the mechanism and what to look for.
"""

from __future__ import annotations

from crossformer.analysis import facts
from crossformer.analysis.cost import first_of_kind
from crossformer.geometry import GroupLayout
from crossformer.trace import BlockTrace, EmbeddingTrace, Trace

_hw = facts.hw_text


def cost_sentence(layouts: list[GroupLayout]) -> str:
    """'307 k query–key pairs per head = 1.6 % of full attention over the same 2 blocks (19.7 M)'."""
    return facts.pair_share_text(facts.pair_share(layouts)) if layouts else ""


def overview_intro(trace: Trace, model_label: str) -> str:
    grids = ", ".join(_hw(hw) for hw in trace.stage_hw)
    sda, lda = first_of_kind(trace, 0, "sda"), first_of_kind(trace, 0, "lda")
    H, W = trace.input_hw
    s = (f"**{model_label}** reads this {_hw((H, W))}-pixel image (H × W) as a pyramid of four token maps — "
         f"{grids} tokens — where a token of stage *i* covers 4·2ⁱ pixels per side. Inside each stage, blocks "
         "alternate "
         "**SDA** (short-distance attention among the G×G neighbours of a window; G = group side, in tokens) "
         "and **LDA** (long-distance attention among G×G tokens *I* apart, I = the interval, sampling a wider "
         "area: how wide is on the *SDA & LDA "
         "groups* page).")
    if sda is not None and lda is not None:
        s += (f" At stage 0 that is {facts.count(sda.layout.num_groups)} SDA windows and "
              f"{facts.count(lda.layout.num_groups)} LDA groups of "
              f"{sda.layout.group_tokens} tokens (G = {sda.layout.group_size}, I = {lda.layout.interval_text}): one "
              f"SDA + LDA pair scores {cost_sentence([sda.layout, lda.layout])}.")
    s += (" Every number and picture in this app is read from the model's own forward pass on this image "
          "(its *trace*).")
    return s


def embedding_intro(emb: EmbeddingTrace, layer: str, px_per_input: int) -> str:
    kernels = "/".join(str(k) for k in emb.kernels)
    chans = " + ".join(str(c) for c in emb.channels)
    Ho, Wo = emb.output_hw
    big = max(emb.kernels) * px_per_input
    small = min(emb.kernels) * px_per_input
    unit = "pixels" if px_per_input == 1 else f"tokens ({px_per_input} px each)"
    return (f"The **{layer}** samples every location with {len(emb.kernels)} convolutions of "
            f"{kernels} {unit}, all with stride {emb.stride}, and concatenates their {chans} = "
            f"{sum(emb.channels)} channels into one token. So each of the {Ho}×{Wo} output tokens sees its "
            f"spot at several scales at once: from {small}×{small} to {big}×{big} pixels. Fine kernels get "
            "more channels (they carry detail); large ones add context. Look for kernels whose energy follows "
            "edges and texture versus those that follow larger layout.")


def groups_intro(trace: Trace, stage: int, token: tuple[int, int] | None = None) -> str:
    """The stage's grouping, with the query token's (default: the centre token's) SDA window and LDA group
    measured on the input."""
    hw = trace.stage_hw[stage]
    token = token if token is not None else (hw[0] // 2, hw[1] // 2)
    px = trace.stage_stride(stage)
    sda, lda = first_of_kind(trace, stage, "sda"), first_of_kind(trace, stage, "lda")
    parts = [f"Stage {stage} has {_hw(hw)} tokens of {px}×{px} pixels."]
    if sda is not None:
        L = sda.layout
        if L.is_global:
            parts.append(f"The whole map fits in one {L.group_size}×{L.group_size} group, so SDA and LDA "
                         "both become global attention here.")
        else:
            pad = (f", after padding the map to {_hw(L.padded_hw)} with masked tokens" if L.is_padded else "")
            parts.append(f"**SDA** (short-distance attention) cuts it into {facts.count(L.num_groups)} windows of "
                         f"G×G = {L.group_size}×{L.group_size} neighbouring tokens{pad}."
                         + facts.span_sentence(L, L.locate(token)[0], px, trace.input_hw, who="The query's"))
    if lda is not None and not lda.layout.is_global:
        L = lda.layout
        pad = f" (map padded to {_hw(L.padded_hw)})" if L.is_padded else ""
        if tuple(L.interval) == (1, 1):
            parts.append(f"**LDA** (long-distance attention) here has interval I = 1, so it groups neighbours "
                         f"exactly like SDA ({facts.count(L.num_groups)} groups of {L.group_tokens}){pad}.")
        else:
            parts.append(f"**LDA** (long-distance attention) groups tokens I = {L.interval_text} apart (I: interval, "
                         f"H × W): {facts.count(L.num_groups)} groups of {L.group_tokens} members{pad}."
                         + facts.span_sentence(L, L.locate(token)[0], px, trace.input_hw, who="The query's"))
    layouts = [b.layout for b in trace.blocks[stage]]
    if layouts:
        parts.append(f"The stage's blocks score {cost_sentence(layouts)}.")
    return " ".join(parts)


def dpb_intro(block: BlockTrace) -> str:
    L = block.layout
    G = L.group_size
    step = ""
    if L.kind == "lda":
        step = (f" In this LDA block neighbouring members are I = {L.interval_text} tokens apart (H × W), so an "
                f"offset of 1 means {facts.step_text(L, block.stride)}.")
    return (f"The **dynamic position bias** (DPB) is a small MLP that turns the offset (Δh, Δw) between two "
            f"members of a group into one bias per head, added to q·k before the softmax. Block {block.name} "
            f"({L.kind.upper()}: {'long' if L.kind == 'lda' else 'short'}-distance attention; G = {G} group side) "
            f"evaluates it on (2G−1)² = {(2 * G - 1) ** 2} offsets for "
            f"{block.heads} heads.{step} Because it is a function of the offset rather than a table of "
            "parameters, the same weights give a bias for any group size — move the G slider. Look for heads "
            "that favour near keys (a peak at the centre) and heads with a direction.")


def attention_intro(block: BlockTrace, token: tuple[int, int], group: int, member: int,
                    input_hw: tuple[int, int] | None = None) -> str:
    L = block.layout
    px = block.stride
    real = L.real_members(group)
    pad = (f" ({L.group_tokens - real} of its {L.group_tokens} slots are padding, masked out)"
           if real < L.group_tokens else "")
    kind = "one global group" if L.is_global else (
        f"{L.kind.upper()}: {'long' if L.kind == 'lda' else 'short'}-distance attention")
    hw = input_hw or (L.feature_hw[0] * px, L.feature_hw[1] * px)
    spread = facts.span_sentence(L, group, px, hw)
    return (f"In block **{block.name}** ({kind}, G = {L.group_size}) the query token ({token[0]}, {token[1]}) is "
            f"member {member} of group {group}, and attends to that group's N = {real} real members only{pad} "
            f"(G = group side; attention spread evenly over N keys has entropy ln N, the most it can have). "
            f"Its weights are softmax(scale·q·k + b + mask) over those members (b: the dynamic position bias, "
            f"DPB, of each query–key offset), drawn where the members really are in the image.{spread} Compare "
            "the heads, and how much comes from content (q·k) versus position (bias).")


def attributions_intro(method: str) -> str:
    text = {
        "ig": ("**Integrated gradients** add up the gradient of the class score along a straight path from a "
               "black image to this one; the result is signed and sums (almost) to the score change."),
        "gradcam": ("**Grad-CAM** weighs a stage's feature maps by the gradient of the class score: coarse "
                    "(one value per token of that stage) but fast."),
        "occlusion": ("**Occlusion** greys out one square of the image at a time and records how much the class "
                      "score drops: slow, model-agnostic, and easy to explain."),
    }[method]
    return (text + " Attributions answer *which pixels mattered*, which attention maps alone do not. They are "
            "heavier than the forward pass, so they run when you press the button and are then cached.")


def reference_intro(num_blocks: int, tol: float) -> str:
    return (f"The NumPy reference is an independent implementation of the same forward pass (plain NumPy, "
            f"one short function per concept, sharing no code with the PyTorch model). Running it on this "
            f"image and comparing every field of all {num_blocks} blocks shows the PyTorch model computes "
            f"exactly the architecture of the paper: every difference should stay below {tol:g}. Then take "
            "any one attention weight apart, step by step.")


def lesson_text(step: int, total: int, instruction: str) -> str:
    return f"**Lesson step {step} of {total}.** {instruction}"


def lesson_recap() -> str:
    """What the lesson showed, in five lines (shown on its last page)."""
    return ("**Recap.** (1) The *cross-scale embedding* reads every 4-pixel token at four scales at once (4–32 px "
            "kernels). (2) Attention runs inside groups: *SDA* groups neighbours, *LDA* groups tokens spread "
            "out by the interval I, so two blocks connect near and far. (3) The *dynamic position bias* is an "
            "MLP of the offset, so it exists for any group size and input size. (4) Attention maps say where "
            "each head looks — and sometimes that a head just averages its group. (5) Attributions and the "
            "NumPy reference check what the prediction rests on and that every number is reproducible.")
