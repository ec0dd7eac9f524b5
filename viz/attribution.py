"""Attributions with captum: Integrated Gradients, Grad-CAM at the end of each stage, Occlusion.

The only ``viz`` module that runs torch: a model and an input tensor in, NumPy maps out (draw them with
:func:`viz.attribution_figures.attribution_overlay_figure`). The model is never modified: its
``layers[i].feature_map`` (an ``nn.Identity`` that sees the stage output as ``(B, C, H, W)``) is the
pre-wired Grad-CAM target, so no layer or reshape is guessed. Attribution methods re-run modules on saved
inputs; an in-place activation would overwrite them, so a model that has one (e.g. an official DPB built
with ``ReLU(inplace=True)``) is attributed on a private copy with in-place switched off.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def _batch1(x: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` or ``(1, 3, H, W)`` → a fresh ``(1, 3, H, W)`` leaf that requires grad."""
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (1, 3, H, W), got {tuple(x.shape)}")
    return x.detach().clone().requires_grad_(True)


def has_inplace_ops(model: nn.Module) -> bool:
    """Whether any submodule runs in place (``ReLU(inplace=True)`` and friends)."""
    return any(getattr(m, "inplace", False) for m in model.modules())


def safe_model(model: nn.Module) -> nn.Module:
    """The model itself, or (if it has in-place activations) a deep copy with ``inplace=False``.

    The shared, cached model of the app is never mutated.
    """
    if not has_inplace_ops(model):
        return model
    log.info("model has in-place activations: attributing on a copy with inplace=False")
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    return clone


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, steps: int = 32,
                         internal_batch_size: int = 8, baseline: torch.Tensor | float = 0.0
                         ) -> tuple[np.ndarray, float]:
    """Integrated Gradients of logit ``target`` w.r.t. the (normalised) input pixels.

    Args:
        model: a CrossFormer in eval mode.
        x: ``(1, 3, H, W)`` normalised input.
        target: class index.
        steps: integration steps (Gauss–Legendre).
        internal_batch_size: images per forward pass along the path (bounds memory regardless of ``steps``).
        baseline: the reference input (0 = the dataset-mean colour after normalisation).

    Returns:
        ``(attr, delta)``: ``attr`` ``(H, W)`` float32, summed over colour channels (signed; its total
        approximates ``f(x) − f(baseline)``); ``delta`` the absolute convergence delta, the error of that
        completeness identity (small → enough steps).
    """
    from captum.attr import IntegratedGradients

    m = safe_model(model)
    xi = _batch1(x)
    ig = IntegratedGradients(m)
    attr, delta = ig.attribute(xi, baselines=baseline, target=int(target), n_steps=int(steps),
                               internal_batch_size=max(1, int(internal_batch_size)),
                               return_convergence_delta=True)
    return attr[0].sum(0).detach().cpu().numpy().astype(np.float32), float(delta.abs().max())


def grad_cam(model: nn.Module, x: torch.Tensor, target: int, stage: int, relu: bool = True) -> np.ndarray:
    """Grad-CAM (captum ``LayerGradCam``) at the output of ``stage`` → ``(H_i, W_i)`` float32.

    The target layer is ``model.layers[stage].feature_map``; ``relu`` keeps the positive evidence only
    (the usual Grad-CAM). Stage ``i`` cells cover ``4·2^i`` pixels.
    """
    from captum.attr import LayerGradCam

    m = safe_model(model)
    if not 0 <= stage < len(m.layers):
        raise ValueError(f"stage must be in 0…{len(m.layers) - 1}, got {stage}")
    cam = LayerGradCam(m, m.layers[stage].feature_map)
    a = cam.attribute(_batch1(x), target=int(target), relu_attributions=relu)   # (1, 1, H_i, W_i)
    return a[0, 0].detach().cpu().numpy().astype(np.float32)


def occlusion(model: nn.Module, x: torch.Tensor, target: int, window: int = 32, stride: int = 16,
              baseline: float = 0.0, perturbations_per_eval: int = 8) -> np.ndarray:
    """Occlusion: the drop of logit ``target`` when a ``window × window`` patch is set to ``baseline``,
    averaged over the windows covering each pixel → ``(H, W)`` float32 (positive = evidence for the class).

    ``perturbations_per_eval`` occluded copies run per forward pass (bounds memory).
    """
    from captum.attr import Occlusion

    m = safe_model(model)
    occ = Occlusion(m)
    with torch.no_grad():
        a = occ.attribute(_batch1(x).detach(), sliding_window_shapes=(x.shape[-3], int(window), int(window)),
                          strides=(x.shape[-3], int(stride), int(stride)), baselines=baseline,
                          target=int(target), perturbations_per_eval=max(1, int(perturbations_per_eval)))
    return a[0].mean(0).detach().cpu().numpy().astype(np.float32)
