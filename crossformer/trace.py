"""The ``Trace``: plain, read-only data of one CrossFormer forward pass, geometry spelled out.

``CrossFormer.forward_trace(x)`` fills it through a :class:`TraceRecorder` (a
:class:`~crossformer.recording.Recorder`); figures, the app and the NumPy reference read it. Every array is a
read-only CPU ``numpy`` array; the group geometry is the very :class:`~crossformer.geometry.GroupLayout` the
forward pass gathered its groups with. NumPy only (the recorder reads tensors through their methods; no torch import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from .geometry import GroupLayout, readonly
from .recording import BlockInfo, EmbeddingInfo

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True, eq=False)
class EmbeddingTrace:
    """A cross-scale embedding: the CEL (kernels 4/8/16/32, stride 4) or a merge (kernels 2/4, stride 2).

    Attributes:
        kernels: kernel sizes, in concatenation order.
        channels: output channels of each kernel (their slices of the concatenation, in order).
        stride: the common stride.
        paddings: zero padding of each conv, ``(k − stride) / 2``.
        input_hw: ``(H, W)`` the convs read (pixels for the CEL, tokens of the previous stage for a merge).
        output_hw: ``(Ho, Wo)``.
        per_kernel: one ``(B, c_k, Ho, Wo)`` array per kernel, the raw conv outputs (before the CEL's norm).
        output: ``(B, Ho·Wo, Σc_k)`` tokens leaving the layer (CEL: after LayerNorm; merge: the concat).
        input_stride: input pixels per position the layer reads (1 for the CEL; the stage stride for a merge).
    """

    kernels: tuple[int, ...]
    channels: tuple[int, ...]
    stride: int
    paddings: tuple[int, ...]
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    per_kernel: tuple[np.ndarray, ...]
    output: np.ndarray
    input_stride: int

    def channel_slice(self, i: int) -> slice:
        """Channels of kernel ``i`` inside :attr:`output`."""
        start = sum(self.channels[:i])
        return slice(start, start + self.channels[i])

    def output_map(self) -> np.ndarray:
        """:attr:`output` as ``(B, C, Ho, Wo)``."""
        B, _, C = self.output.shape
        return self.output.reshape(B, *self.output_hw, C).transpose(0, 3, 1, 2)


@dataclass(frozen=True, eq=False)
class BlockTrace:
    """One CrossFormer block: its grouping and everything its attention computed.

    Attributes:
        stage, index: position (0-based; ``index`` restarts in each stage).
        dim, heads: channels ``C`` and heads of the block (head dim ``d = C / heads``).
        scale: the ``d^-0.5`` applied to ``q``.
        layout: the grouping used (kind, G, I, padding, token ↔ (group, member) maps).
        content: ``(B, nG, heads, N, N)`` ``scale · q·kᵀ``, the content term of the logits.
        attention: ``(B, nG, heads, N, N)`` softmax(content + DPB bias + mask); row = query, col = key.
        dpb_table: ``((2G−1)², heads)`` DPB MLP output over the mother set of offsets (Δh-major).
        dpb_bias: ``(heads, N, N)`` the table expanded with ``layout.relative_index``.
        output: ``(B, H·W, C)`` block output (after the MLP residual, and the ACL if any).
        has_acl: the block ends with a CrossFormer++ activation cooling layer.
        stride: input pixels per token side of this block's map (the CEL stride × the merge strides).
    """

    stage: int
    index: int
    dim: int
    heads: int
    scale: float
    layout: GroupLayout
    content: np.ndarray
    attention: np.ndarray
    dpb_table: np.ndarray
    dpb_bias: np.ndarray
    output: np.ndarray
    has_acl: bool
    stride: int

    @property
    def kind(self) -> str:
        """Effective kind, ``"sda"`` or ``"lda"``."""
        return self.layout.kind

    @property
    def group_size(self) -> int:
        return self.layout.group_size

    @property
    def interval(self) -> tuple[int, int]:
        return self.layout.interval

    @property
    def mask(self) -> np.ndarray:
        """``(nG, N, N)`` additive padding mask (``NEG_INF`` on padded keys)."""
        return self.layout.attn_mask

    @property
    def logits(self) -> np.ndarray:
        """``(B, nG, heads, N, N)`` pre-softmax logits: content + bias + mask."""
        return self.content + self.dpb_bias[None, None] + self.mask[None, :, None]

    @property
    def name(self) -> str:
        return f"s{self.stage}_b{self.index}"


@dataclass(frozen=True, eq=False)
class Trace:
    """Everything one forward pass computed that the app draws.

    Attributes:
        input_hw: ``(H, W)`` of the input image tensor.
        embedding: the CEL.
        merges: the three PatchMerging layers (after stages 0, 1, 2).
        blocks: ``blocks[i][j]`` is block ``j`` of stage ``i``.
        stage_hw: token grid ``(H_i, W_i)`` of each stage.
        stage_outputs: ``(B, H_i·W_i, C_i)`` output of each stage's last block (before merging).
        pooled: ``(B, C_3)`` final LayerNorm then mean over tokens (a backbone: the mean of the last stage's
            output; it has no final norm).
        logits: ``(B, num_classes)``; ``(B, 0)`` for a backbone (no head).
        backbone: traced from a detection/segmentation backbone (no head; the stage outputs are its output).
    """

    input_hw: tuple[int, int]
    embedding: EmbeddingTrace
    merges: tuple[EmbeddingTrace, ...]
    blocks: tuple[tuple[BlockTrace, ...], ...]
    stage_hw: tuple[tuple[int, int], ...]
    stage_outputs: tuple[np.ndarray, ...]
    pooled: np.ndarray
    logits: np.ndarray
    backbone: bool = False

    def stage_stride(self, stage: int) -> int:
        """Input pixels per token side at ``stage``: the CEL stride times the strides of the merges before it."""
        s = self.embedding.stride
        for merge in self.merges[:stage]:
            s *= merge.stride
        return s

    def stage_map(self, stage: int) -> np.ndarray:
        """Output of ``stage`` as ``(B, C_i, H_i, W_i)`` (a backbone's ``out{stage}``)."""
        tokens = self.stage_outputs[stage]
        B, _, C = tokens.shape
        return tokens.reshape(B, *self.stage_hw[stage], C).transpose(0, 3, 1, 2)

    def block(self, stage: int, index: int) -> BlockTrace:
        return self.blocks[stage][index]

    def all_blocks(self) -> Iterator[BlockTrace]:
        for stage in self.blocks:
            yield from stage

    @property
    def batch(self) -> int:
        return int(self.logits.shape[0])

    def flat(self) -> dict[str, np.ndarray]:
        """Every array under a stable dotted name (``blocks.s0_b1.attention`` …): for ``np.savez`` and
        for field-by-field comparison with the NumPy reference."""
        out: dict[str, np.ndarray] = {"embedding.output": self.embedding.output}
        for k, a in zip(self.embedding.kernels, self.embedding.per_kernel):
            out[f"embedding.k{k}"] = a
        for i, m in enumerate(self.merges):
            out[f"merges.{i}.output"] = m.output
            for k, a in zip(m.kernels, m.per_kernel):
                out[f"merges.{i}.k{k}"] = a
        for b in self.all_blocks():
            for field in ("content", "attention", "dpb_table", "dpb_bias", "output"):
                out[f"blocks.{b.name}.{field}"] = getattr(b, field)
            out[f"blocks.{b.name}.members"] = b.layout.members
        for i, s in enumerate(self.stage_outputs):
            out[f"stages.{i}"] = s
        out["pooled"] = self.pooled
        out["logits"] = self.logits
        return out


def _np(t: "Tensor", *, fresh: bool = False) -> np.ndarray:
    """Detached float32 CPU numpy array, read-only.

    A copy, unless ``fresh``: the caller promises ``t`` is a new result of this forward pass that nothing
    writes to afterwards (the model has no in-place ops on recorded tensors), so a read-only view of its
    storage is the same numbers without a second copy of what can be hundreds of MiB (large inputs).
    Tensors that outlive the call (the DPB cache's table and bias) are always copied.
    """
    a = t.detach().float().cpu().numpy()
    return readonly(a if fresh else a.copy())


class TraceRecorder:
    """A :class:`~crossformer.recording.Recorder` that keeps everything, for one ``forward_trace`` call.

    Each call converts what it receives to read-only float32 NumPy arrays at once; :meth:`trace` assembles the
    :class:`Trace` at the end.
    """

    keeps_content = True

    def __init__(self) -> None:
        self.embeddings: list[EmbeddingTrace] = []
        self.blocks: list[list[BlockTrace]] = []
        self.stage_hw: list[tuple[int, int]] = []
        self.stage_outputs: list[np.ndarray] = []
        self._attention: tuple[tuple[int, int], tuple[np.ndarray, ...]] | None = None   # until ``block``

    def _stride(self) -> int:
        """Input pixels per token side after the embeddings recorded so far."""
        return int(np.prod([e.stride for e in self.embeddings]))

    def embedding(self, layer: EmbeddingInfo, per_kernel: Sequence["Tensor"], output: "Tensor") -> None:
        self.embeddings.append(EmbeddingTrace(
            kernels=layer.kernels, channels=layer.channels, stride=layer.stride,
            paddings=tuple((k - layer.stride) // 2 for k in layer.kernels), input_hw=layer.input_hw,
            output_hw=layer.output_hw, per_kernel=tuple(_np(p) for p in per_kernel), output=_np(output),
            input_stride=self._stride()))

    def attention(self, where: tuple[int, int], layout: GroupLayout, content: "Tensor | None",
                  attention: "Tensor", table: "Tensor", bias: "Tensor") -> None:
        if content is None:
            raise RuntimeError("a trace needs the content term (keeps_content = True)")
        self._attention = (tuple(where), (_np(content, fresh=True), _np(attention, fresh=True), _np(table),
                                          _np(bias)))

    def block(self, block: BlockInfo, layout: GroupLayout, output: "Tensor") -> None:
        if self._attention is None or self._attention[0] != block.where:
            raise RuntimeError(f"block {block.where} finished without reporting its attention")
        content, attention, table, bias = self._attention[1]
        self._attention = None
        if len(self.blocks) <= block.stage:
            self.blocks.append([])
        self.blocks[block.stage].append(BlockTrace(
            stage=block.stage, index=block.index, dim=block.dim, heads=block.heads, scale=block.scale,
            layout=layout, content=content, attention=attention, dpb_table=table, dpb_bias=bias,
            output=_np(output, fresh=True), has_acl=block.has_acl, stride=self._stride()))

    def stage(self, stage: int, hw: tuple[int, int], output: "Tensor") -> None:
        self.stage_hw.append(hw)
        self.stage_outputs.append(_np(output, fresh=True))

    def trace(self, input_hw: tuple[int, int], pooled: "Tensor", logits: "Tensor", backbone: bool = False) -> Trace:
        """Everything recorded, as one read-only :class:`Trace`; ``pooled (B, C_3)``, ``logits (B, classes)``."""
        return Trace(input_hw=input_hw, embedding=self.embeddings[0], merges=tuple(self.embeddings[1:]),
                     blocks=tuple(tuple(b) for b in self.blocks), stage_hw=tuple(self.stage_hw),
                     stage_outputs=tuple(self.stage_outputs), pooled=_np(pooled), logits=_np(logits),
                     backbone=backbone)
