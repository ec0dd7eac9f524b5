"""One attention weight taken apart, step by step, in the PyTorch trace and the NumPy reference (NumPy only);
and the field where the two differ most."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from crossformer.geometry import NEG_INF
from crossformer.trace import BlockTrace


def worst(errors: Mapping[str, float]) -> tuple[str, float]:
    """The field with the largest error."""
    if not errors:
        return "", math.nan
    key = max(errors, key=lambda k: errors[k])
    return key, float(errors[key])


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
