"""Recording a forward pass: what a recorder receives while ``CrossFormer.run(x, recorder)`` runs.

A recorder is any object with the four methods and the one attribute of :class:`Recorder`; the model calls
them as it computes, in forward order, and keeps no reference to the recorder after the call (no hook is
registered, nothing is stored on modules, so one cached model can serve a recorded and a plain forward at
once). :class:`NullRecorder` does nothing and can be subclassed to override only the calls one needs.

    class MaxAttention(NullRecorder):
        def __init__(self): self.peaks = {}
        def attention(self, where, layout, content, attention, table, bias):
            self.peaks[where] = float(attention.amax())

    rec = MaxAttention()
    logits = model.run(x, rec)

The order for one input: :meth:`Recorder.embedding` (the CEL); then per stage ``i``, per block ``j``:
:meth:`Recorder.attention` then :meth:`Recorder.block` of ``(i, j)``; then :meth:`Recorder.stage` of ``i``; then
:meth:`Recorder.embedding` of the merge after it (stages 0 … n−2). Tensors are the forward's own (on its device,
in its dtype, e.g. bf16 under autocast): read them, never write to them, and copy what must outlive the call.
The two built on it are :class:`crossformer.trace.TraceRecorder` (``forward_trace``) and the on-device head
statistics (:func:`crossformer.stats_heads.head_stats`). Torch-free at import (types only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from .geometry import GroupLayout

if TYPE_CHECKING:
    from torch import Tensor

HW = tuple[int, int]


@dataclass(frozen=True)
class EmbeddingInfo:
    """A cross-scale embedding layer as it ran: the CEL (``index`` 0) or the merge after stage ``index − 1``.

    Attributes:
        index: 0 for the CEL, ``i + 1`` for the merge after stage ``i``.
        kernels: kernel sizes, in concatenation order.
        channels: output channels of each kernel.
        stride: the common stride of the convs.
        input_hw: ``(H, W)`` the convs read (pixels for the CEL, the previous stage's grid for a merge).
        output_hw: ``(Ho, Wo)`` of every conv output.
    """

    index: int
    kernels: tuple[int, ...]
    channels: tuple[int, ...]
    stride: int
    input_hw: HW
    output_hw: HW


@dataclass(frozen=True)
class BlockInfo:
    """A CrossFormer block as it ran (plain numbers: a recorder never receives a module).

    Attributes:
        stage, index: position (0-based; ``index`` restarts in each stage).
        dim, heads: channels ``C`` and heads ``h`` (head dim ``C / h``).
        scale: the factor applied to ``q`` (``(C / h)^-0.5`` unless configured).
        has_acl: the block ends with a CrossFormer++ activation cooling layer.
    """

    stage: int
    index: int
    dim: int
    heads: int
    scale: float
    has_acl: bool

    @property
    def where(self) -> HW:
        """``(stage, index)``."""
        return self.stage, self.index


@runtime_checkable
class Recorder(Protocol):
    """What the model reports during ``CrossFormer.run(x, recorder)`` (shapes for a batch of ``B``; a block's
    layout has ``nG`` groups of ``N = G²`` members, see :class:`~crossformer.geometry.GroupLayout`)."""

    #: ``True``: :meth:`attention` receives the content term. ``False``: it receives ``None`` there, and the
    #: model adds the DPB and mask into that tensor in place (one attention-sized allocation less per block).
    keeps_content: bool

    def embedding(self, layer: EmbeddingInfo, per_kernel: Sequence[Tensor], output: Tensor) -> None:
        """An embedding layer finished. ``per_kernel``: one ``(B, c_k, Ho, Wo)`` conv output per kernel (before
        the CEL's LayerNorm); ``output``: the ``(B, Ho·Wo, Σc_k)`` tokens leaving the layer."""

    def attention(self, where: HW, layout: GroupLayout, content: Tensor | None, attention: Tensor,
                  table: Tensor, bias: Tensor) -> None:
        """Block ``where = (stage, index)`` computed its attention on the grouping ``layout``.

        ``content``: ``(B, nG, h, N, N)`` ``scale·q·kᵀ`` (``None`` unless :attr:`keeps_content`);
        ``attention``: ``(B, nG, h, N, N)`` ``softmax(content + bias + mask)``, row = query, col = key, padded keys
        exactly 0; ``table``: ``((2G−1)², h)`` the DPB over the group's offsets (Δh-major); ``bias``:
        ``(h, N, N)`` the table expanded by ``layout.relative_index``. Edits are applied (as used).
        """

    def block(self, block: BlockInfo, layout: GroupLayout, output: Tensor) -> None:
        """Block ``block.where`` finished on ``layout``: ``output (B, H·W, C)`` after the MLP residual (and the
        ACL, if any), tokens in row-major order of the stage grid ``layout.feature_hw``."""

    def stage(self, stage: int, hw: HW, output: Tensor) -> None:
        """Stage ``stage`` finished on the ``hw`` grid: its output tokens ``(B, H·W, C)``, before merging."""


class NullRecorder:
    """A :class:`Recorder` that records nothing: subclass it and override the calls you need."""

    keeps_content = False

    def embedding(self, layer: EmbeddingInfo, per_kernel: Sequence[Tensor], output: Tensor) -> None:
        pass

    def attention(self, where: HW, layout: GroupLayout, content: Tensor | None, attention: Tensor,
                  table: Tensor, bias: Tensor) -> None:
        pass

    def block(self, block: BlockInfo, layout: GroupLayout, output: Tensor) -> None:
        pass

    def stage(self, stage: int, hw: HW, output: Tensor) -> None:
        pass


def check_recorder(recorder: object) -> None:
    """Raise ``TypeError`` with what is missing unless ``recorder`` has every :class:`Recorder` member."""
    missing = [m for m in ("keeps_content", "embedding", "attention", "block", "stage") if not hasattr(recorder, m)]
    if missing:
        raise TypeError(f"{type(recorder).__name__} is not a crossformer recorder: it lacks {', '.join(missing)} "
                        "(subclass crossformer.recording.NullRecorder and override the calls you need)")
