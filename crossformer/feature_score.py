"""A scalar of a backbone's output to explain: the feature norm of one stage, over a region of its map.

A detection/segmentation backbone has no class score, so attribution methods (integrated gradients, Grad-CAM,
occlusion) need a scalar of its output to explain. :class:`FeatureScore` names one — the L2 norm of stage
``stage``'s feature vector ``‖f_t‖`` summed over the tokens ``t`` of a box of that stage's map (the whole map
of real tokens by default) — and :meth:`FeatureScore.module` wraps the backbone so that ``wrapped(x)`` returns
it as ``(B, 1)`` "logits" (target 0). The backbone is not modified: the wrapper holds it and exposes its
``layers`` (Grad-CAM's targets ``layers[i].feature_map``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureScore:
    """``Σ_{t ∈ box} ‖f_t‖₂`` of stage ``stage``'s map ``f`` ``(C_i, H_i, W_i)``.

    Attributes:
        stage: 0-based stage whose output is scored.
        box: ``(h0, w0, h1, w1)`` tokens of that stage (end exclusive); ``None`` = the whole map.
    """

    stage: int = 3
    box: tuple[int, int, int, int] | None = None

    def describe(self, hw: tuple[int, int] | None = None) -> str:
        """``"the stage-3 feature norm ‖f‖ summed over its 25×42 tokens"`` (``hw``: the map's grid, for words)."""
        if self.box is None:
            where = f"its {hw[0]}×{hw[1]} tokens" if hw is not None else "the whole map"
        else:
            h0, w0, h1, w1 = self.box
            where = f"tokens rows {h0}–{h1 - 1}, columns {w0}–{w1 - 1} ({(h1 - h0) * (w1 - w0)} tokens)"
        return f"the stage-{self.stage} feature norm ‖f‖ summed over {where}"

    def module(self, backbone: nn.Module) -> nn.Module:
        """``backbone`` wrapped: ``(B, 3, H, W)`` → ``(B, 1)`` this score (ValueError for a bad stage)."""
        return _Scored(backbone, self)

    def of_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` stage map → ``(B,)`` the score."""
        if self.box is not None:
            h0, w0, h1, w1 = self.box
            if not (0 <= h0 < h1 <= fmap.shape[-2] and 0 <= w0 < w1 <= fmap.shape[-1]):
                raise ValueError(f"box {self.box} lies outside the {tuple(fmap.shape[-2:])} map of stage {self.stage}")
            fmap = fmap[..., h0:h1, w0:w1]
        return fmap.float().pow(2).sum(1).clamp_min(1e-12).sqrt().sum((1, 2))     # (B,)


class _Scored(nn.Module):
    """A backbone whose output is one :class:`FeatureScore` ``(B, 1)``."""

    def __init__(self, backbone: nn.Module, score: FeatureScore) -> None:
        super().__init__()
        if not getattr(getattr(backbone, "cfg", None), "backbone", False):
            raise ValueError("a feature score explains a detection/segmentation backbone (cfg.backbone=True)")
        if not 0 <= score.stage < len(backbone.layers):
            raise ValueError(f"stage must be in 0…{len(backbone.layers) - 1}, got {score.stage}")
        self.backbone, self.score = backbone, score
        self.layers = backbone.layers          # the same modules: Grad-CAM hooks backbone.layers[i].feature_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.backbone.forward_intermediates(x)                     # [(B, C_i, H_i, W_i)]
        return self.score.of_map(maps[self.score.stage])[:, None]         # (B, 1)
