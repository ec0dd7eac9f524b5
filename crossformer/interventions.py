"""Interventions on a CrossFormer: head-importance scans built on call-scoped :class:`~crossformer.edits.Edit` s.

``head_importance(model, x, target)`` ablates every head of every block, one at a time, and reports how
much the target logit and probability move. It computes exactly what one
``model.forward_edited(x, [Edit(s, j, kind, head=h)])`` per head would, but faster:

* one plain pass records the input of every block (:meth:`CrossFormer.block_inputs`); an edit of block
  ``(s, j)`` cannot change anything before it, so each edited pass starts there
  (:meth:`CrossFormer.forward_from`);
* the image's block input is repeated along the batch and each batch element carries a different edit
  (``Edit(..., sample=i)``), ``batch`` heads per pass, in block order.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from .edits import HEAD_KINDS, Edit
from .precision import autocast

log = logging.getLogger(__name__)


@torch.no_grad()
def head_importance(model: "torch.nn.Module", x: torch.Tensor, target: int, kind: str = "zero",
                    precision: str = "auto", batch: int = 16,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """Effect of ablating each head on the ``target`` class, one head at a time.

    Args:
        model: a :class:`~crossformer.model.CrossFormer` (eval mode; it is not modified).
        x: one image ``(1, 3, H, W)`` or ``(3, H, W)``.
        target: class index whose logit/probability is followed.
        kind: head edit, ``"zero"``, ``"uniform"`` or ``"no_dpb"`` (see :mod:`crossformer.edits`).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (:func:`crossformer.precision.autocast`); the base
            numbers are computed in the same precision, so deltas compare like with like.
        batch: heads per edited pass (batch elements, each with its own edit).
        progress: called as ``progress(done, total)`` after each pass (``total`` = number of heads).

    Returns:
        ``delta_logit``, ``delta_prob``: ``(blocks, max_heads)`` float32, edited − base for ``target``; NaN
        where a block has fewer heads. ``blocks``: names ``"s{stage}_b{block}"``; ``where``: ``(stage,
        block)`` per row; ``heads``: heads per row; ``base_logit``, ``base_prob``: floats; ``target``,
        ``kind``, ``precision`` (the one used).
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (1, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    num_classes = model.num_classes
    if not 0 <= int(target) < num_classes:
        raise ValueError(f"target {target} out of range (the model has {num_classes} classes)")
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    device = next(model.parameters()).device
    x = x.to(device)

    with autocast(device, precision) as used:
        base_logits, taps = model.block_inputs(x)                     # (1, classes); block inputs in order
        base = base_logits.float()[0]
        base_logit = float(base[target])
        base_prob = float(base.softmax(-1)[target])
        heads = [int(model.layers[s].blocks[j].num_heads) for (s, j), _, _ in taps]
        jobs = [(row, h) for row in range(len(taps)) for h in range(heads[row])]
        total = len(jobs)
        max_heads = max(heads)
        d_logit = np.full((len(taps), max_heads), np.nan, dtype=np.float32)
        d_prob = np.full((len(taps), max_heads), np.nan, dtype=np.float32)
        done = 0
        for lo in range(0, total, batch):
            chunk = jobs[lo:lo + batch]
            start_row = chunk[0][0]                                     # jobs are in block order
            start, tokens, hw = taps[start_row]
            edits = [Edit(*taps[row][0], kind, head=h, sample=i) for i, (row, h) in enumerate(chunk)]
            tokens = tokens.expand(len(chunk), *tokens.shape[1:])       # (b, H·W, C), one image b times
            logits = model.forward_from(tokens, hw, start, edits).float()   # (b, classes)
            probs = logits.softmax(-1)[:, target]
            for i, (row, h) in enumerate(chunk):
                d_logit[row, h] = float(logits[i, target]) - base_logit
                d_prob[row, h] = float(probs[i]) - base_prob
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    log.debug("head_importance: %d heads in %d passes (%s)", total, -(-total // batch), used)
    return {"delta_logit": d_logit, "delta_prob": d_prob,
            "blocks": [f"s{s}_b{j}" for (s, j), _, _ in taps], "where": [w for w, _, _ in taps],
            "heads": heads, "base_logit": base_logit, "base_prob": base_prob, "target": int(target),
            "kind": kind, "precision": used}


def pyramid_change(base: Sequence[torch.Tensor], edited: Sequence[torch.Tensor]) -> np.ndarray:
    """Relative L2 change of each stage map: ``‖edited_i − base_i‖ / ‖base_i‖`` → ``(stages,)`` float64.

    Maps ``(B, C_i, H_i, W_i)`` (or ``(C_i, H_i, W_i)``); ``edited`` may hold only the last stages (a run
    started at a later stage): the earlier ones are unchanged (0). Per batch element when batched:
    ``(B, stages)``.
    """
    n, k = len(base), len(edited)
    if k > n:
        raise ValueError(f"{k} edited maps for {n} stages")
    batched = base[0].ndim == 4
    rows = edited[0].shape[0] if batched and k else (base[0].shape[0] if batched else 1)
    out = np.zeros((rows, n), dtype=np.float64)
    for i in range(n - k, n):
        b, e = base[i].float(), edited[i - (n - k)].float()
        b = b.reshape(b.shape[0], -1) if batched else b.reshape(1, -1)
        e = e.reshape(e.shape[0], -1) if batched else e.reshape(1, -1)
        num = (e - b).norm(dim=1)
        out[:, i] = (num / b.norm(dim=1).clamp_min(1e-12)).double().cpu().numpy()
    return out if batched else out[0]


@torch.no_grad()
def head_pyramid_importance(model: "torch.nn.Module", x: torch.Tensor, kind: str = "zero",
                            precision: str = "auto", batch: int = 16,
                            progress: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """A backbone's :func:`head_importance`: what ablating each head alone does to the four stage maps.

    Returns ``change``: ``(blocks, max_heads, stages)`` relative L2 change per stage (:func:`pyramid_change`;
    0 for the stages before the head's block, NaN where a block has fewer heads), ``mean_change``
    ``(blocks, max_heads)`` its mean over the stages (the score heads are ranked by), ``blocks``, ``where``,
    ``heads``, ``kind``, ``precision`` as :func:`head_importance`.
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
    if not getattr(model.cfg, "backbone", False):
        raise ValueError("head_pyramid_importance needs a backbone (cfg.backbone); use head_importance")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (1, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    x = x.to(next(model.parameters()).device)
    with autocast(x.device, precision) as used:
        base_maps, taps = model.block_inputs(x)                       # [(1, C_i, H_i, W_i)]; block inputs
        base_maps = [m.float() for m in base_maps]
        heads = [int(model.layers[s].blocks[j].num_heads) for (s, j), _, _ in taps]
        jobs = [(row, h) for row in range(len(taps)) for h in range(heads[row])]
        n_stages = len(base_maps)
        change = np.full((len(taps), max(heads), n_stages), np.nan, dtype=np.float32)
        done = 0
        for lo in range(0, len(jobs), batch):
            chunk = jobs[lo:lo + batch]
            start_row = chunk[0][0]
            start, tokens, hw = taps[start_row]
            edits = [Edit(*taps[row][0], kind, head=h, sample=i) for i, (row, h) in enumerate(chunk)]
            maps = model.forward_from(tokens.expand(len(chunk), *tokens.shape[1:]), hw, start, edits)
            rel = pyramid_change([m.expand(len(chunk), *m.shape[1:]) for m in base_maps], maps)   # (b, stages)
            for i, (row, h) in enumerate(chunk):
                stage = taps[row][0][0]
                change[row, h] = np.where(np.arange(n_stages) < stage, 0.0, rel[i])   # earlier stages: unedited
            done += len(chunk)
            if progress is not None:
                progress(done, len(jobs))
    with warnings.catch_warnings():           # rows of blocks with fewer heads are all-NaN: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_change = np.nanmean(change, axis=2)
    return {"change": change, "mean_change": mean_change,
            "blocks": [f"s{s}_b{j}" for (s, j), _, _ in taps], "where": [w for w, _, _ in taps],
            "heads": heads, "kind": kind, "precision": used}
