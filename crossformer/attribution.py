"""Attributions with captum: Integrated Gradients, Grad-CAM at the end of each stage, Occlusion.

A model and an input tensor in, NumPy maps out (the app draws them with
``viz.attribution_figures.attribution_overlay_figure``). captum is imported inside the functions that run it,
so ``import crossformer.attribution`` needs only torch. The model is never modified: its
``layers[i].feature_map`` (an ``nn.Identity`` that sees the stage output as ``(B, C, H, W)``) is the
pre-wired Grad-CAM target, so no layer or reshape is guessed. Attribution methods re-run modules on saved
inputs; an in-place activation would overwrite them, so a model that has one (e.g. an official DPB built
with ``ReLU(inplace=True)``) is attributed on a private copy with in-place switched off.

Speed: integrated gradients and occlusion run their images in batches (sized by a pixel budget, so a large
input does not exhaust memory) under bf16 autocast where :mod:`crossformer.precision` says the hardware
does bf16 natively (``precision="fp32"`` for the plain path). Every pass reports ``progress(done, total)``
(images done), which is where a page can interrupt the run.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import precision as prec

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int], None]
#: images × pixels per batch: 16 images of 224 × 224 (a few hundred MiB of activations for the demo model).
PIXEL_BUDGET = 16 * 224 * 224


def batch_for(hw: tuple[int, int], cap: int = 64, budget: int = PIXEL_BUDGET) -> int:
    """Images per forward pass for inputs of ``hw = (H, W)`` pixels: ``budget // (H·W)``, in ``1…cap``."""
    return int(max(1, min(cap, budget // max(1, hw[0] * hw[1]))))


class _Counted(nn.Module):
    """``model`` under autocast ``precision``, returning fp32 logits and reporting images done.

    ``progress(done, total)`` is called after every forward pass (``done`` capped at ``total``); an
    exception it raises (a page's interruption) propagates out of captum unchanged.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str, total: int,
                 progress: ProgressFn | None) -> None:
        super().__init__()
        self.model, self.device, self.precision = model, device, precision
        self.total, self.progress, self.done = int(total), progress, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with prec.autocast(self.device, self.precision):
            out = self.model(x)
        self.done += int(x.shape[0])
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        return out.float()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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


def ig_total(steps: int) -> int:
    """Images integrated gradients runs: ``steps`` along the path + the input and the baseline (delta)."""
    return int(steps) + 2


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, steps: int = 32,
                         internal_batch_size: int | None = None, baseline: torch.Tensor | float = 0.0,
                         precision: str = "fp32", progress: ProgressFn | None = None
                         ) -> tuple[np.ndarray, float]:
    """Integrated Gradients of logit ``target`` w.r.t. the (normalised) input pixels.

    Args:
        model: a CrossFormer in eval mode.
        x: ``(1, 3, H, W)`` normalised input.
        target: class index.
        steps: integration steps (Gauss–Legendre).
        internal_batch_size: images per forward pass along the path (bounds memory regardless of
            ``steps``); ``None``: :func:`batch_for` the input size, at most ``steps``.
        baseline: the reference input (0 = the dataset-mean colour after normalisation).
        precision: ``"fp32"`` (plain), ``"bf16"`` or ``"auto"`` (bf16 where native).
        progress: ``progress(images done, ig_total(steps))`` after each forward pass.

    Returns:
        ``(attr, delta)``: ``attr`` ``(H, W)`` float32, summed over colour channels (signed; its total
        approximates ``f(x) − f(baseline)``); ``delta`` the absolute convergence delta, the error of that
        completeness identity (small → enough steps).
    """
    from captum.attr import IntegratedGradients

    m = safe_model(model)
    xi = _batch1(x)
    batch = internal_batch_size or min(int(steps), batch_for(tuple(x.shape[-2:])))
    wrapped = _Counted(m, _device(m), precision, ig_total(steps), progress)
    ig = IntegratedGradients(wrapped)
    attr, delta = ig.attribute(xi, baselines=baseline, target=int(target), n_steps=int(steps),
                               internal_batch_size=max(1, int(batch)), return_convergence_delta=True)
    return attr[0].sum(0).detach().float().cpu().numpy().astype(np.float32), float(delta.abs().max())


def delta_share(values: np.ndarray, delta: float) -> float:
    """Integrated gradients' convergence ``delta`` as a share of ``|Σ attributions|`` (how far their sum is
    from the output's change, relative to it; ``values``: the ``(H, W)`` map)."""
    return float(delta) / max(float(np.abs(np.asarray(values, np.float64).sum())), 1e-12)


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


def occlusion_total(hw: tuple[int, int], window: int, stride: int) -> int:
    """Images occlusion runs on an ``hw`` input: one per window position + the unoccluded input."""
    n = [(d - int(window)) // int(stride) + 1 if d >= window else 0 for d in hw]
    return int(n[0] * n[1]) + 1


def occlusion(model: nn.Module, x: torch.Tensor, target: int, window: int = 32, stride: int = 16,
              baseline: float = 0.0, perturbations_per_eval: int | None = None, precision: str = "fp32",
              progress: ProgressFn | None = None) -> np.ndarray:
    """Occlusion: the drop of logit ``target`` when a ``window × window`` patch is set to ``baseline``,
    averaged over the windows covering each pixel → ``(H, W)`` float32 (positive = evidence for the class).

    ``perturbations_per_eval`` occluded copies run per forward pass (bounds memory; ``None``:
    :func:`batch_for` the input size); ``precision`` as in :func:`integrated_gradients`; ``progress(images
    done, occlusion_total(...))`` after each pass.
    """
    from captum.attr import Occlusion

    m = safe_model(model)
    batch = perturbations_per_eval or batch_for(tuple(x.shape[-2:]))
    total = occlusion_total(tuple(x.shape[-2:]), window, stride)
    occ = Occlusion(_Counted(m, _device(m), precision, total, progress))
    with torch.no_grad():
        a = occ.attribute(_batch1(x).detach(), sliding_window_shapes=(x.shape[-3], int(window), int(window)),
                          strides=(x.shape[-3], int(stride), int(stride)), baselines=baseline,
                          target=int(target), perturbations_per_eval=max(1, int(batch)))
    return a[0].mean(0).detach().float().cpu().numpy().astype(np.float32)
