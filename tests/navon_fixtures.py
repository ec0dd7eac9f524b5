"""Model inputs made from Navon figures (shared by tests)."""

from __future__ import annotations

import numpy as np
import torch


def navon_input(model, img: np.ndarray | None = None) -> torch.Tensor:
    """``(1, 3, H, W)`` normalised input of a Navon figure (a default 96×128 one when ``img`` is None)."""
    if img is None:
        from crossformer import navon
        img = navon.render_navon("circle", "cross", (96, 128), seed=1)
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    mean = torch.tensor(model.cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.cfg.std).view(1, 3, 1, 1)
    return ((x - mean) / std).float()
