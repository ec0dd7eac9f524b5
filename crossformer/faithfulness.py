"""Faithfulness of an attribution map: deletion and insertion curves (Petsiuk et al., RISE, 2018).

The image is cut into square patches (``patch`` pixels; the last row/column may be partial) and the
patches are ranked by their mean attribution, highest first.

* **Deletion**: start from the input and replace patches, in that order, with a *baseline* image; the
  probability of the target class should fall fast (a low area under the curve).
* **Insertion**: start from the baseline and put the input's patches back in that order; the probability
  should rise fast (a high area under the curve).

The same two curves with a seeded random patch order are the reference a map must beat. Each curve has
``steps + 1`` points at evenly spaced patch counts ``0 … n_patches`` (its x axis is the fraction of patches
removed / inserted, in ``[0, 1]``), and its AUC is the trapezoid rule over that fraction.

Baselines (all in the model's normalised input space):

* ``"blur"`` (default): the input blurred with a separable Gaussian of σ = ``max(4, min(H, W) / 16)``
  pixels (14 px at 224×224), kernel truncated at ±3σ, reflect padding (replicate where the image is
  smaller than the padding). Removes object detail while keeping the colours, so it does not push the
  model out of distribution as hard as a flat image does.
* ``"mean"``: zeros, i.e. the dataset mean colour (``model.cfg.mean``).
* ``"zero"``: a black image in pixel space, i.e. ``-mean / std`` per channel (from ``model.cfg``).

Only torch and NumPy are used.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .precision import autocast

BASELINES = ("blur", "mean", "zero")
MAX_STEPS = 64

ProgressFn = Callable[[int, int], None]


def blur_sigma(hw: tuple[int, int]) -> float:
    """σ (pixels) of the ``"blur"`` baseline for an image of ``hw``: ``max(4, min(H, W) / 16)``."""
    return max(4.0, min(int(hw[0]), int(hw[1])) / 16.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(B, C, H, W)`` blurred per channel by a separable Gaussian of ``sigma`` pixels (±3σ kernel)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    C = x.shape[1]
    out = x
    for dim in (-1, -2):                                    # width, then height
        size = out.shape[dim]
        mode = "reflect" if radius < size else "replicate"
        pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
        weight = k.view(1, 1, 1, -1) if dim == -1 else k.view(1, 1, -1, 1)
        out = F.conv2d(F.pad(out, pad, mode=mode), weight.expand(C, 1, *weight.shape[2:]), groups=C)
    return out


def baseline_image(x: torch.Tensor, baseline: str = "blur", mean=None, std=None) -> torch.Tensor:
    """The baseline (same shape as ``x``, normalised space); ``mean``/``std`` are needed for ``"zero"``."""
    if baseline == "blur":
        return gaussian_blur(x, blur_sigma(tuple(x.shape[-2:])))
    if baseline == "mean":
        return torch.zeros_like(x)
    if baseline == "zero":
        if mean is None or std is None:
            raise ValueError("baseline 'zero' needs the model's mean and std (model.cfg.mean/std)")
        m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (-m / s).expand_as(x).clone()
    raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")


def patch_grid(hw: tuple[int, int], patch: int) -> tuple[int, int]:
    """``(⌈H/patch⌉, ⌈W/patch⌉)``."""
    return -(-int(hw[0]) // patch), -(-int(hw[1]) // patch)


def patch_scores(attribution, hw: tuple[int, int], patch: int) -> np.ndarray:
    """Mean attribution of each patch, ``(gh, gw)``.

    A map of any resolution is first resized to the image (nearest, so a token map keeps its cells), then
    averaged over the pixels of each patch (partial edge patches over their own pixels). NaNs count as −∞.
    """
    H, W = int(hw[0]), int(hw[1])
    a = torch.as_tensor(np.asarray(attribution, dtype=np.float64))
    if a.ndim != 2:
        raise ValueError(f"attribution must be 2-D (h, w), got shape {tuple(a.shape)}")
    a = torch.nan_to_num(a, nan=0.0)
    nan = torch.isnan(torch.as_tensor(np.asarray(attribution, dtype=np.float64)))
    if tuple(a.shape) != (H, W):
        a = F.interpolate(a[None, None], size=(H, W), mode="nearest")[0, 0]
        nan = F.interpolate(nan[None, None].double(), size=(H, W), mode="nearest")[0, 0] > 0
    gh, gw = patch_grid((H, W), patch)
    ph, pw = gh * patch - H, gw * patch - W
    total = F.pad(a, (0, pw, 0, ph)).view(gh, patch, gw, patch).sum(dim=(1, 3))
    count = F.pad(torch.ones_like(a), (0, pw, 0, ph)).view(gh, patch, gw, patch).sum(dim=(1, 3))
    bad = F.pad(nan.double(), (0, pw, 0, ph)).view(gh, patch, gw, patch).sum(dim=(1, 3)) > 0
    scores = (total / count).numpy()
    scores[bad.numpy()] = -np.inf
    return scores


def auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area of ``values`` over ``fractions`` (in ``[0, 1]``)."""
    f, v = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    return float(np.sum((f[1:] - f[:-1]) * (v[1:] + v[:-1]) / 2.0))


def _model_mean_std(model):
    cfg = getattr(model, "cfg", None)
    return getattr(cfg, "mean", None), getattr(cfg, "std", None)


def deletion_insertion(model: torch.nn.Module, x: torch.Tensor, attribution, target: int, patch: int = 16,
                       steps: int | None = None, baseline: str = "blur", batch: int = 16,
                       precision: str = "auto", progress: ProgressFn | None = None, seed: int = 0) -> dict:
    """Deletion and insertion curves of ``attribution`` for class ``target`` (see the module docstring).

    Args:
        model: classifier returning logits ``(B, classes)``; used as is (put it in eval mode first).
            ``model.cfg.mean/std`` are read for the ``"zero"`` baseline.
        x: ``(1, 3, H, W)`` normalised input.
        attribution: ``(h, w)`` map of any resolution; higher = more evidence for ``target``.
        patch: side of the square patches in pixels.
        steps: number of intervals (``steps + 1`` points); default ``min(n_patches, 64)``; at most
            ``n_patches``.
        baseline: ``"blur"``, ``"mean"`` or ``"zero"``.
        batch: images per forward pass.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (:func:`crossformer.precision.autocast`).
        progress: called as ``progress(done, total)`` with image counts after each forward pass (and once
            with ``done = 0`` before the first); ``total = 2 + 4·(steps − 1)``: the input and the baseline
            once (shared end points of all four curves), then the inner points of each curve.
        seed: seed of the random patch order.

    Returns:
        dict with ``fractions`` ``(steps+1,)``; ``deletion``, ``insertion``, ``random_deletion``,
        ``random_insertion`` (target probabilities, each ``(steps+1,)``); ``deletion_auc``,
        ``insertion_auc``, ``random_deletion_auc``, ``random_insertion_auc``; ``baseline``, ``patch``,
        ``precision`` (the one used), ``steps``, ``n_patches``, ``grid``, ``target``, ``order`` (patch ids,
        row-major, most attributed first), ``random_order``, ``prob_input``, ``prob_baseline``,
        ``forward_images``, ``seconds``.
    """
    t0 = time.perf_counter()
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be (1, 3, H, W), got {tuple(x.shape)}")
    patch, batch, target = int(patch), max(1, int(batch)), int(target)
    if patch < 1:
        raise ValueError("patch must be ≥ 1")
    H, W = int(x.shape[-2]), int(x.shape[-1])
    gh, gw = patch_grid((H, W), patch)
    n = gh * gw
    steps = min(n, MAX_STEPS) if steps is None else int(steps)
    if not 1 <= steps <= n:
        raise ValueError(f"steps must be in [1, {n}] (number of patches), got {steps}")

    x = x.detach()
    mean, std = _model_mean_std(model)
    base = baseline_image(x, baseline, mean, std)
    scores = patch_scores(attribution, (H, W), patch).ravel()
    order = np.argsort(-scores, kind="stable")
    random_order = np.random.default_rng(seed).permutation(n)
    counts = np.rint(np.linspace(0, n, steps + 1)).astype(np.int64)
    fractions = counts / n

    # patch id of every pixel, and each order's rank of every patch
    rows = torch.arange(H, device=x.device) // patch
    cols = torch.arange(W, device=x.device) // patch
    pid = rows[:, None] * gw + cols[None, :]                        # (H, W)

    def ranks(o: np.ndarray) -> torch.Tensor:
        r = np.empty(n, dtype=np.int64)
        r[o] = np.arange(n)
        return torch.from_numpy(r).to(x.device)[pid]                 # (H, W): rank of the pixel's patch

    rank_of = {"attr": ranks(order), "random": ranks(random_order)}
    # the images to evaluate: x, baseline, then the inner points of each curve
    jobs: list[tuple[str, str, int]] = [("x", "", 0), ("base", "", 0)]
    for kind in ("attr", "random"):
        for curve in ("deletion", "insertion"):
            jobs += [(curve, kind, int(k)) for k in counts[1:-1]]
    total = len(jobs)

    def image(job: tuple[str, str, int]) -> torch.Tensor:
        curve, kind, k = job
        if curve == "x":
            return x[0]
        if curve == "base":
            return base[0]
        m = (rank_of[kind] < k).to(x.dtype)[None]                  # (1, H, W): 1 = patch changed
        if curve == "deletion":
            return x[0] * (1 - m) + base[0] * m
        return base[0] * (1 - m) + x[0] * m

    probs = np.empty(total, dtype=np.float64)
    if progress is not None:
        progress(0, total)
    with torch.no_grad(), autocast(x.device, precision) as used:
        for start in range(0, total, batch):
            chunk = jobs[start:start + batch]
            xb = torch.stack([image(j) for j in chunk])
            logits = model(xb)
            p = torch.softmax(logits.float(), dim=-1)[:, target]
            probs[start:start + len(chunk)] = p.detach().cpu().double().numpy()
            if progress is not None:
                progress(start + len(chunk), total)

    p_x, p_base = float(probs[0]), float(probs[1])
    inner = steps - 1
    curves = {}
    pos = 2
    for kind in ("attr", "random"):
        for curve in ("deletion", "insertion"):
            first, last = (p_x, p_base) if curve == "deletion" else (p_base, p_x)
            name = curve if kind == "attr" else f"random_{curve}"
            curves[name] = np.concatenate([[first], probs[pos:pos + inner], [last]])
            pos += inner

    out = dict(fractions=fractions, **curves)
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        out[f"{name}_auc"] = auc(fractions, curves[name])
    out.update(baseline=baseline, patch=patch, precision=used, steps=steps, n_patches=n, grid=(gh, gw),
               target=target, order=order, random_order=random_order, prob_input=p_x, prob_baseline=p_base,
               forward_images=total, seconds=time.perf_counter() - t0)
    return out


def faithfulness_score(result: dict) -> float:
    """Insertion AUC − deletion AUC (higher = more faithful)."""
    return float(result["insertion_auc"] - result["deletion_auc"])


def faithfulness_summary(results_by_method: dict[str, dict]) -> tuple[str, str]:
    """``(best_method, sentence)``: methods ranked by insertion AUC − deletion AUC, in words with numbers."""
    if not results_by_method:
        raise ValueError("no results to summarise")
    scored = sorted(((faithfulness_score(r), m) for m, r in results_by_method.items()), key=lambda t: -t[0])
    best_score, best = scored[0]
    r = results_by_method[best]
    first = (f"{best} is the most faithful here: insertion AUC {r['insertion_auc']:.3f} − deletion AUC "
             f"{r['deletion_auc']:.3f} = {best_score:+.3f}")
    others = [f"{s:+.3f} for {m}" for s, m in scored[1:]]
    sentence = first + (f", against {', '.join(others)}" if others else "")
    rand = float(np.mean([r2["random_insertion_auc"] - r2["random_deletion_auc"]
                          for r2 in results_by_method.values()]))
    sentence += f"; a random patch order scores {rand:+.3f}."
    worse = [m for s, m in scored if s <= rand]
    if len(worse) == len(scored):
        sentence += " No method beats the random order, so none of these maps is faithful on this image."
    elif worse:
        sentence += f" Not better than random: {', '.join(worse)}."
    return best, sentence
