"""Shared cases for the viz tests: small models traced once per test session.

Cases (small configs, so the whole viz suite stays quick on two cores):
* ``demo224``: ``crossformer_demo`` at 224×224 (v1 LDA rule: each LDA group spans the map; one group at stage 3);
* ``demo_pad``: ``crossformer_demo`` at 200×264 (padding in every stage);
* ``pp``: a CrossFormer++-S-like model (G = 4/4/14/7, I = 4/2/1/1, an ACL in stage 2) at 200×264, with
  all-padding LDA groups;
* ``s_v1``: a CrossFormer-S-like v1 model (implicit LDA interval, non-square I = 8×10) at 200×264.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

import crossformer
from crossformer.trace import Trace

CASES = ("demo224", "demo_pad", "pp", "s_v1")


@dataclass(frozen=True, eq=False)
class Case:
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    image: np.ndarray          # (H, W, 3) uint8 that x was made from
    trace: Trace


def sample_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic ``(h, w, 3)`` uint8 test picture: gradients, a disc and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    disc = ((yy - 0.45) ** 2 + (xx - 0.6) ** 2 < 0.05).astype(float)
    img = np.stack([yy, xx, disc], axis=-1) * 0.8 + rng.random((h, w, 3)) * 0.2
    return (img * 255).astype(np.uint8)


def to_input(image: np.ndarray) -> torch.Tensor:
    x = image.astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@lru_cache(maxsize=None)
def case(name: str) -> Case:
    torch.manual_seed(0)
    if name == "demo224":
        model, hw = crossformer.create_model("crossformer_demo"), (224, 224)
    elif name == "demo_pad":
        model, hw = crossformer.create_model("crossformer_demo"), (200, 264)
    elif name == "pp":
        model = crossformer.create_model("crossformer_pp_s", num_classes=10, depths=(2, 2, 4, 2), embed_dim=32)
        hw = (200, 264)
    elif name == "s_v1":
        model = crossformer.create_model("crossformer_s", num_classes=10, depths=(2, 2, 2, 2), embed_dim=48)
        hw = (200, 264)
    else:
        raise KeyError(name)
    model.eval()
    # random init gives near-uniform attention; sharpen q·k so attention patterns are not flat
    with torch.no_grad():
        for blk in (b for layer in model.layers for b in layer.blocks):
            blk.attn.qkv.weight.mul_(8.0)
    image = sample_image(*hw)
    x = to_input(image)
    return Case(name, model, x, image, model.forward_trace(x))
