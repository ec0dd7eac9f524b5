"""Numbers the pages show, derived from a :class:`~crossformer.trace.Trace` (NumPy only, no Streamlit).

Top-k predictions, the per-stage pipeline table, the cost of group attention against full attention,
the parity of the PyTorch and NumPy traces, and the step-by-step recomputation of one attention weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from crossformer.analysis.facts import human  # noqa: F401 — one owner of the pair-count format
from crossformer.analysis.facts import hw_text, pair_share, percent
from crossformer.geometry import NEG_INF, GroupLayout
from crossformer.trace import BlockTrace, Trace
from viz.diagnostics import softmax  # noqa: F401 — pages use analysis.softmax for logits


# ---- predictions ----------------------------------------------------------------------------------


def top_k(logits: np.ndarray, class_names: Sequence[str], k: int = 5) -> list[tuple[int, str, float]]:
    """``(C,)`` logits → ``[(class index, name, probability)]``, most likely first."""
    p = softmax(logits)
    order = np.argsort(-p, kind="stable")[: min(k, p.size)]
    return [(int(i), class_names[i] if i < len(class_names) else f"class {i}", float(p[i])) for i in order]


# ---- cost of group attention ------------------------------------------------------------------------
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


# ---- NumPy reference parity -----------------------------------------------------------------------------
def worst(errors: Mapping[str, float]) -> tuple[str, float]:
    """The field with the largest error."""
    if not errors:
        return "", math.nan
    key = max(errors, key=lambda k: errors[k])
    return key, float(errors[key])


# ---- one attention weight, step by step ---------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One line of the recomputation: what, the formula, the value from each implementation."""

    what: str
    formula: str
    pytorch: float
    numpy: float

    @property
    def diff(self) -> float:
        return abs(self.pytorch - self.numpy)


@dataclass(frozen=True)
class Explanation:
    """The recomputed weight plus the geometry it used."""

    steps: tuple[Step, ...]
    query_pos: tuple[int, int]     # (h, w) on the padded grid
    key_pos: tuple[int, int]
    offset: tuple[int, int]        # (Δr, Δc) in member units (what the DPB sees)
    table_row: int                 # row of the DPB table
    key_is_padding: bool


def explain_attention(block: BlockTrace, ref: Mapping[str, np.ndarray], head: int, group: int,
                      query: int, key: int, batch: int = 0) -> Explanation:
    """Recompute ``attention[batch, group, head, query, key]`` of ``block`` from its parts, in float64,
    once from the PyTorch trace and once from the NumPy reference's arrays (``ref`` = reference flat dict).

    Steps: ``scale·q·k`` (content) → ``+ DPB bias`` at the offset → ``+ mask`` → softmax over the row.
    Each implementation contributes its own content, expanded bias, padding members and stored weight.
    """
    layout = block.layout
    name = block.name
    rel = layout.relative_index                                                 # (N, N)
    sources = {
        "pytorch": (block.content[batch, group, head, query], block.dpb_bias[head, query],
                    layout.members[group], block.attention[batch, group, head, query, key]),
        "numpy": (np.asarray(ref[f"blocks.{name}.content"])[batch, group, head, query],
                  np.asarray(ref[f"blocks.{name}.dpb_bias"])[head, query],
                  np.asarray(ref.get(f"blocks.{name}.members", layout.members))[group],
                  np.asarray(ref[f"blocks.{name}.attention"])[batch, group, head, query, key]),
    }
    vals: dict[str, dict[str, float]] = {}
    for impl, (content_row, bias_row, members, stored) in sources.items():   # rows: (N,)
        content_row = np.asarray(content_row, np.float64)
        bias_row = np.asarray(bias_row, np.float64)
        mask_row = np.where(np.asarray(members) < 0, NEG_INF, 0.0)
        logits = content_row + bias_row + mask_row
        m = float(logits.max())
        denom = float(np.exp(logits - m).sum())
        vals[impl] = {
            "content": float(content_row[key]), "bias": float(bias_row[key]), "mask": float(mask_row[key]),
            "logit": float(logits[key]), "max": m, "denom": denom,
            "weight": float(np.exp(logits[key] - m) / denom), "stored": float(stored),
        }
    G = layout.group_size
    rq, cq = divmod(query, G)
    rk, ck = divmod(key, G)
    labels = [
        ("content", "q·k", f"scale · q_{query} · k_{key}  (scale = {block.scale:.4g})"),
        ("bias", "+ DPB bias", f"table[{int(rel[query, key])}, head {head}] at offset ({rq - rk}, {cq - ck})"),
        ("mask", "+ mask", "−10⁶ if the key is padding, else 0"),
        ("logit", "= logit", "content + bias + mask"),
        ("max", "row max", f"max over the {layout.group_tokens} keys of the row"),
        ("denom", "Σ exp", "Σ_j exp(logit_j − max)"),
        ("weight", "= weight", "exp(logit − max) / Σ exp"),
        ("stored", "stored weight", "the attention value the forward pass kept"),
    ]
    steps = tuple(Step(what, formula, vals["pytorch"][k], vals["numpy"][k]) for k, what, formula in labels)
    pos = layout.positions[group]
    return Explanation(steps=steps, query_pos=(int(pos[query, 0]), int(pos[query, 1])),
                       key_pos=(int(pos[key, 0]), int(pos[key, 1])), offset=(rq - rk, cq - ck),
                       table_row=int(rel[query, key]), key_is_padding=bool(layout.members[group, key] < 0))


# ---- query selection ------------------------------------------------------------------------------------
def token_of_pixel(pixel: tuple[int, int], stage_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Pixel ``(y, x)`` of the model input → token ``(h, w)`` of a stage with ``stride`` px per token."""
    y, x = pixel
    H, W = stage_hw
    return min(max(int(y) // stride, 0), H - 1), min(max(int(x) // stride, 0), W - 1)


def pixel_of_token(token: tuple[int, int], stride: int) -> tuple[int, int]:
    """Centre pixel ``(y, x)`` of token ``(h, w)``."""
    return int(token[0]) * stride + stride // 2, int(token[1]) * stride + stride // 2
