"""Shared cases for the A/B comparison tests: two forward passes to compare, traced once per session."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

import crossformer

#: Group size of the compared DPB tables (stage 1, block 0).
G = 5


@lru_cache(maxsize=None)
def traces():
    """The demo model on two different random images (A, B) and CrossFormer-T on A's image (C)."""
    demo, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    other = crossformer.create_model("crossformer_t").eval()
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(1, 3, 64, 96, generator=g), torch.randn(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        return demo.forward_trace(xa), demo.forward_trace(xb), other.forward_trace(xa)


@lru_cache(maxsize=None)
def dpb_tables(group_size: int = G) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage-1 block-0 DPB tables ``((2G−1)², heads)`` float64: the demo model's (A), CrossFormer-T's (B), and
    the demo model's at ``G + 1`` (another group size)."""
    demo, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    other = crossformer.create_model("crossformer_t")
    with torch.no_grad():
        return tuple(t.numpy().astype(np.float64) for t in (
            demo.dpb_table(1, 0, group_size), other.dpb_table(1, 0, group_size), demo.dpb_table(1, 0, group_size + 1)))
