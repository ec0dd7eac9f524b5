"""What group attention costs against full attention, block by block and stage by stage (plain Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from crossformer.geometry import GroupLayout
from crossformer.trace import BlockTrace, Trace

from .facts import hw_text, pair_share, percent


@dataclass(frozen=True)
class AttentionCost:
    """Query–key pairs scored by one block against full self-attention on the same map."""

    tokens: int          # L = H·W real tokens
    groups: int          # nG
    group_tokens: int    # N = G²
    full_pairs: int      # L²
    group_pairs: int     # nG·N² (padded members included: they are computed, then masked)

    @property
    def ratio(self) -> float:
        return self.group_pairs / self.full_pairs if self.full_pairs else math.nan


def attention_cost(layout: GroupLayout) -> AttentionCost:
    L = layout.num_tokens
    return AttentionCost(tokens=L, groups=layout.num_groups, group_tokens=layout.group_tokens,
                         full_pairs=L * L, group_pairs=layout.num_groups * layout.group_tokens ** 2)


# ---- pipeline table ---------------------------------------------------------------------------------
def first_of_kind(trace: Trace, stage: int, kind: str) -> BlockTrace | None:
    """The first block of ``stage`` configured as ``kind`` (``"sda"``/``"lda"``)."""
    for b in trace.blocks[stage]:
        if b.layout.configured_kind == kind:
            return b
    return None


def _padded(layout: GroupLayout | None) -> str:
    if layout is None:
        return "–"
    return "no padding" if not layout.is_padded else hw_text(layout.padded_hw)


def stage_rows(trace: Trace) -> list[dict[str, Any]]:
    """One row per stage: token grid, pixels per token, channels, heads, G, I, groups, padding, cost."""
    rows = []
    for i, (hw, blocks) in enumerate(zip(trace.stage_hw, trace.blocks)):
        sda, lda = first_of_kind(trace, i, "sda"), first_of_kind(trace, i, "lda")
        sl = sda.layout if sda else None
        ll = lda.layout if lda else None
        share = pair_share([b.layout for b in blocks])
        glob = bool(sl is not None and sl.is_global)
        rows.append({
            "stage": i,
            "tokens": hw_text(hw),
            "px/token": trace.stage_stride(i),
            "channels": blocks[0].dim if blocks else 0,
            "heads": blocks[0].heads if blocks else 0,
            "blocks": len(blocks),
            "G": (f"{sl.group_size} (global)" if glob else str(sl.group_size)) if sl else "–",
            "I (LDA)": "–" if ll is None or ll.kind != "lda" else ll.interval_text,
            "SDA groups": sl.num_groups if sl else 0,
            "LDA groups": ll.num_groups if ll else 0,
            "SDA padded to": _padded(sl),
            "LDA padded to": _padded(ll),
            "pairs vs full": percent(share.share),
        })
    return rows
