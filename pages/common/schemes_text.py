"""Teaching text of the "Why cross-scale attention?" page, filled with live numbers (no Streamlit)."""

from __future__ import annotations

from crossformer.analysis import facts

from crossformer.analysis.facts import human


def schemes_intro(input_hw: tuple[int, int], stage: int, stage_hw: tuple[int, int], full_pairs: int,
                  crossformer_pairs: int, crossformer_reach: int, swin_reach: int) -> str:
    """Markdown: why a pair of SDA + LDA blocks, with this image's numbers.

    Args:
        input_hw: model input ``(H, W)`` in pixels.
        stage: the stage shown; ``stage_hw`` its token grid ``(H, W)``.
        full_pairs: query–key pairs per head of one full-attention block on that grid.
        crossformer_pairs: the same for one SDA plus one LDA block (CrossFormer, G = 7).
        crossformer_reach, swin_reach: tokens that can reach the query after SDA + LDA, after Swin W + SW.
    """
    H, W = input_hw
    h, w = stage_hw
    L = h * w
    share = facts.pair_share_text(facts.PairShare(grouped=crossformer_pairs, full=2 * full_pairs, blocks=2))
    return (
        "Full self-attention (ViT) lets every token look at every other, but its cost grows with the "
        "*square* of the token count. Windowed attention (Swin) is linear but local: information crosses a "
        "window border only through the shifted block, a few tokens per block. PVT keeps global attention "
        "by pooling the keys, which blurs fine detail and stays quadratic. CrossFormer pairs a "
        "**short-distance** block (SDA: the G×G neighbours) with a **long-distance** block (LDA: G×G tokens "
        "spread over the whole map), so two linear-cost blocks already mix near and far.\n\n"
        f"On this {facts.hw_text((H, W))}-pixel image (H × W), stage {stage} ({facts.hw_text((h, w))} = "
        f"{facts.count(L)} tokens): full attention scores **{human(full_pairs)}** query–key pairs per head in one "
        f"block, one SDA + one LDA block **{human(crossformer_pairs)}** together — {share}; after those "
        f"two blocks **{facts.count(crossformer_reach)}** of the {facts.count(L)} tokens have reached the query "
        f"token, after a Swin W + SW pair **{facts.count(swin_reach)}**."
    )
