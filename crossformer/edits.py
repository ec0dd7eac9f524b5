"""Exact, call-scoped edits of CrossFormer attention (ablations and swaps for one forward pass).

    edits = [Edit(stage=2, block=1, kind="zero", head=3), Edit(0, 0, "swap")]
    logits = model.forward_edited(x, edits)          # model(x) is untouched, before, during and after
    trace = model.forward_trace(x, edits=edits)      # the trace records the edited attention / layout

An :class:`Edit` is plain, frozen data. Edits travel down the forward call (like the trace recorder):
nothing is stored on modules and no hook is registered, so one cached model can serve a plain
``model(x)`` in one thread while another runs edited forwards.

Kinds (per head ``h`` of block ``(stage, block)``, or all heads when ``head is None``):

* ``"zero"``: the head's output (its ``d`` channels of the attention output, the input of ``proj``) is 0.
* ``"uniform"``: the head attends uniformly over the real, unpadded keys of each group
  (``logits = mask``: content and DPB terms dropped; padded keys keep weight 0).
* ``"no_dpb"``: the DPB term of the logits is 0.
* ``"swap"``: the whole block runs the other layout (SDA ↔ LDA), planned for this input size with the
  block's own ``G`` and ``I`` (:func:`crossformer.geometry.plan_layout`). No head, no sample.

Batched scans: ``sample=i`` restricts a head edit to batch element ``i`` (``None``: every element), so a
batch of one image repeated ``B`` times can carry ``B`` different ablations in one pass
(:func:`crossformer.interventions.head_importance`). NumPy-free and torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

EditKind = Literal["zero", "uniform", "no_dpb", "swap"]

#: Every edit kind; the first three act on heads, ``"swap"`` on the block's layout.
KINDS: tuple[str, ...] = ("zero", "uniform", "no_dpb", "swap")
HEAD_KINDS: tuple[str, ...] = ("zero", "uniform", "no_dpb")

#: ``(stage, block) → the edits of that block``, as the forward pass reads them.
EditPlan = Mapping[tuple[int, int], tuple["Edit", ...]]


def _is_index(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Edit:
    """One edit of block ``block`` (0-based within its stage) of stage ``stage``.

    Attributes:
        stage, block: the block's position (``block`` restarts in each stage).
        kind: ``"zero"``, ``"uniform"``, ``"no_dpb"`` or ``"swap"`` (see the module docstring).
        head: head index for the head kinds; ``None`` = all heads. Must be ``None`` for ``"swap"``.
        sample: batch element the edit applies to; ``None`` = all. Must be ``None`` for ``"swap"``.
    """

    stage: int
    block: int
    kind: EditKind
    head: int | None = None
    sample: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self}: kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("stage", "block"):
            v = getattr(self, name)
            if not _is_index(v) or v < 0:
                raise ValueError(f"{self}: {name} must be an int ≥ 0, got {v!r}")
        for name in ("head", "sample"):
            v = getattr(self, name)
            if v is not None and (not _is_index(v) or v < 0):
                raise ValueError(f"{self}: {name} must be None or an int ≥ 0, got {v!r}")
        if self.kind == "swap" and (self.head is not None or self.sample is not None):
            raise ValueError(f"{self}: 'swap' changes the whole block's layout; it takes no head and no sample")

    @property
    def where(self) -> tuple[int, int]:
        """``(stage, block)``."""
        return self.stage, self.block


def plan_edits(edits: Iterable[Edit] | None, depths: Sequence[int], num_heads: Sequence[int],
               batch: int | None = None) -> dict[tuple[int, int], tuple[Edit, ...]]:
    """Check ``edits`` against a model's shape and group them by block.

    Args:
        edits: the edits (any iterable of :class:`Edit`; ``None`` or empty: no edits).
        depths: blocks per stage; num_heads: heads per stage (the model's config).
        batch: the batch size of the call, to check ``sample`` (``None``: not checked).

    Returns:
        ``{(stage, block): (edit, …)}`` in the given order; blocks without edits are absent.

    Raises:
        ValueError: an edit that is not an :class:`Edit`, or whose stage, block, head or sample is out of range.
    """
    plan: dict[tuple[int, int], list[Edit]] = {}
    for e in edits or ():
        if not isinstance(e, Edit):
            raise ValueError(f"edits must be crossformer.Edit instances, got {type(e).__name__}: {e!r}")
        if e.stage >= len(depths):
            raise ValueError(f"{e}: stage {e.stage} out of range (the model has {len(depths)} stages)")
        if e.block >= depths[e.stage]:
            raise ValueError(f"{e}: block {e.block} out of range (stage {e.stage} has {depths[e.stage]} blocks)")
        if e.head is not None and e.head >= num_heads[e.stage]:
            raise ValueError(f"{e}: head {e.head} out of range (stage {e.stage} has {num_heads[e.stage]} heads)")
        if e.sample is not None and batch is not None and e.sample >= batch:
            raise ValueError(f"{e}: sample {e.sample} out of range (the batch has {batch} elements)")
        plan.setdefault(e.where, []).append(e)
    return {k: tuple(v) for k, v in plan.items()}


def swaps(block_edits: Sequence[Edit]) -> bool:
    """Whether a block's edits include a layout swap (several swaps of one block still swap once)."""
    return any(e.kind == "swap" for e in block_edits)


def head_edits(block_edits: Sequence[Edit]) -> tuple[Edit, ...]:
    """The head edits (``zero``/``uniform``/``no_dpb``) among a block's edits."""
    return tuple(e for e in block_edits if e.kind in HEAD_KINDS)
