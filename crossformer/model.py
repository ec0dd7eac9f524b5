"""CrossFormer and CrossFormer++ in one readable file (Wang et al., ICLR 2022 / TPAMI 2023).

Top-down: cross-scale embedding → dynamic position bias → group attention → block → stage → model.
Parameter names are the official ones, so official checkpoints load strictly. Group geometry (SDA
windows, LDA strided groups, padding, masks) comes from :mod:`crossformer.geometry` and is derived at
forward time for whatever input size arrives; the numbers the forward pass used can be handed back as a
:class:`~crossformer.trace.Trace`, or to any :class:`~crossformer.recording.Recorder` through
:meth:`CrossFormer.run` (opt-in, passed down the call, nothing stored on modules).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import MERGE_STRIDE, CrossFormerConfig, split_channels
from .edits import Edit, EditPlan, head_edits, plan_edits, swaps
from .geometry import (NEG_INF, GroupLayout, InputPadding, block_kind, dpb_offsets, plan_input_padding, plan_layout,
                       relative_position_index, stage_hw)
from .recording import BlockInfo, EmbeddingInfo, Recorder, check_recorder
from .trace import Trace, TraceRecorder

log = logging.getLogger(__name__)

HW = tuple[int, int]



def tokens_to_map(x: torch.Tensor, hw: HW) -> torch.Tensor:
    """``(B, H·W, C)`` tokens → ``(B, C, H, W)`` map."""
    B, L, C = x.shape
    return x.transpose(1, 2).reshape(B, C, *hw)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map → ``(B, H·W, C)`` tokens (row-major ``t = h·W + w``)."""
    return x.flatten(2).transpose(1, 2)


# ---- cross-scale embedding ----------------------------------------------------------------------
def conv_as_space_to_depth(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a stride-``s`` conv whose kernel ``k`` is a multiple of ``s``, computed as a stride-1
    ``k/s × k/s`` conv over ``s × s`` pixel blocks stacked into channels (same numbers, other summation order).

    The large CEL kernels (16, 32 at stride 4) are slow in the CPU conv backward; the equivalent
    stride-1 conv is several times faster. ``x (B, C, H, W)`` → ``(B, c, ⌊(H + 2p − k)/s⌋ + 1, …)``.
    """
    (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
    B, C, H, W = x.shape
    out_hw = ((H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1)
    # pad so both sides are whole blocks; the extra zeros on the right only feed outputs that are cropped
    x = F.pad(x, (p, p + (-(W + 2 * p)) % s, p, p + (-(H + 2 * p)) % s))
    Hb, Wb = x.shape[-2] // s, x.shape[-1] // s
    blocks = x.view(B, C, Hb, s, Wb, s).permute(0, 1, 3, 5, 2, 4).reshape(B, C * s * s, Hb, Wb)
    c, kb = conv.out_channels, k // s
    w = conv.weight.view(c, C, kb, s, kb, s).permute(0, 1, 3, 5, 2, 4).reshape(c, C * s * s, kb, kb)
    return F.conv2d(blocks, w, conv.bias)[..., :out_hw[0], :out_hw[1]]


class CrossScaleEmbedding(nn.Module):
    """CEL (SPEC §2): convs with kernels 4/8/16/32, all stride 4, concatenated, then LayerNorm.

    Padding ``(k − 4)/2`` gives every kernel the same ``⌊H/4⌋ × ⌊W/4⌋`` output, so each token sees
    the same location at four scales; channels ``D/2, D/4, D/8, D/8`` favour the fine kernels.
    """

    def __init__(self, in_chans: int, dim: int, kernels: Sequence[int], norm: bool = True) -> None:
        super().__init__()
        self.kernels = list(kernels)
        self.stride = kernels[0]
        self.channels = split_channels(dim, len(kernels))
        self.projs = nn.ModuleList(
            nn.Conv2d(in_chans, c, k, stride=self.stride, padding=(k - self.stride) // 2)
            for k, c in zip(self.kernels, self.channels))
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        self.space_to_depth = False      # kernels > stride as stride-1 convs over pixel blocks (training)

    def forward(self, x: torch.Tensor, rec: Recorder | None = None) -> tuple[torch.Tensor, HW]:
        """``(B, 3, H, W)`` → tokens ``(B, H/4·W/4, D)`` and their grid ``(H/4, W/4)``."""
        fast = self.space_to_depth   # only kernels that are whole multiples of the stride, above it
        outs = [conv_as_space_to_depth(x, proj) if fast and k > self.stride and k % self.stride == 0 else proj(x)
                for k, proj in zip(self.kernels, self.projs)]  # each (B, c_k, H/4, W/4)
        hw = tuple(outs[0].shape[-2:])
        y = self.norm(map_to_tokens(torch.cat(outs, dim=1)))    # (B, L, D)
        if rec is not None:
            rec.embedding(EmbeddingInfo(0, tuple(self.kernels), tuple(self.channels), self.stride,
                                        tuple(x.shape[-2:]), hw), outs, y)
        return y, hw


class PatchMerging(nn.Module):
    """Cross-scale merge between stages (SPEC §3): LayerNorm, then convs 2×2 and 4×4 (stride 2), concat.

    ``C`` channels in, ``2C`` out (``C`` from each kernel); the map halves (floor, as the convs give).
    """

    def __init__(self, dim: int, out_dim: int, kernels: Sequence[int] = (2, 4)) -> None:
        super().__init__()
        self.kernels = list(kernels)
        self.stride = MERGE_STRIDE
        self.channels = split_channels(out_dim, len(kernels))
        # registration order matches the official state_dict: reductions.*, then norm.*
        self.reductions = nn.ModuleList(
            nn.Conv2d(dim, c, k, stride=self.stride, padding=(k - self.stride) // 2)
            for k, c in zip(self.kernels, self.channels))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, hw: HW, rec: Recorder | None = None,
                index: int = 1) -> tuple[torch.Tensor, HW]:
        """``(B, H·W, C)`` → ``(B, ⌊H/2⌋·⌊W/2⌋, 2C)``; ``index``: the recorder's name for it (stage + 1)."""
        m = tokens_to_map(self.norm(x), hw)                    # (B, C, H, W)
        outs = [red(m) for red in self.reductions]              # each (B, c_k, H/2, W/2)
        y = map_to_tokens(torch.cat(outs, dim=1))               # (B, L/4, 2C)
        out_hw = tuple(outs[0].shape[-2:])
        if rec is not None:
            rec.embedding(EmbeddingInfo(index, tuple(self.kernels), tuple(self.channels), self.stride, hw, out_hw),
                          outs, y)
        return y, out_hw


# ---- dynamic position bias ----------------------------------------------------------------------
class DynamicPositionBias(nn.Module):
    """DPB (SPEC §4.4): an MLP from a relative offset ``(Δh, Δw)`` to one bias per head.

    ``Linear(2, P) → [LN, ReLU, Linear(P, P)] × 2 → [LN, ReLU, Linear(P, heads)]`` with ``P = C/16``.
    Its parameters do not depend on G, so the same weights give a bias table for any group size.
    """

    def __init__(self, pos_dim: int, num_heads: int) -> None:
        super().__init__()
        self.pos_dim, self.num_heads = pos_dim, num_heads
        self.pos_proj = nn.Linear(2, pos_dim)
        # ReLU not in place: attribution methods (captum) re-run modules and need intact inputs.
        self.pos1 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos2 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos3 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, num_heads))

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(M, 2)`` offsets → ``(M, heads)`` biases."""
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))

    def table(self, group_size: int, device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bias over the mother set of offsets of a ``G × G`` group: ``((2G−1)², heads)``, Δh-major."""
        device = device or self.pos_proj.weight.device
        return self(torch.from_numpy(dpb_offsets(group_size).copy()).to(device, dtype))


# ---- attention over groups ------------------------------------------------------------------------
class GroupAttention(nn.Module):
    """Multi-head self-attention inside each SDA/LDA group, with DPB and padding mask (SPEC §4.1).

    ``logits = scale·q·kᵀ + DPB + mask``, softmax over keys, then ``proj``. Two paths compute it: the
    fused :func:`torch.nn.functional.scaled_dot_product_attention` (default) and an explicit softmax that
    the trace reads. The DPB table is cached per group size in eval mode without grad and recomputed
    whenever the DPB weights change.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, dpb_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        # official: DPB(dim // 4) with P = dim // 4 inside, i.e. a hidden width of C/16 (CrossFormerConfig.dpb_dim)
        self.pos = DynamicPositionBias(dpb_dim or (dim // 4) // 4, num_heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused = True                        # use SDPA when not tracing
        self._cache: dict[tuple, object] = {}   # derived tensors only (DPB table/bias, index maps)

    # -- cached derived tensors --
    def position_bias(self, G: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """DPB table ``((2G−1)², heads)`` and expanded bias ``(heads, G², G²)``.

        Cached per (G, device, dtype) in eval mode without grad; the key carries the DPB parameters'
        version counters, so loading new weights (an in-place copy) invalidates it.
        """
        params = list(self.pos.parameters())
        # Inference tensors (a model built under torch.inference_mode()) track no version counter, so
        # their table cannot be validated: it is recomputed (a few small matmuls) instead of cached.
        cacheable = not self.training and not torch.is_grad_enabled() and not any(p.is_inference() for p in params)
        key = ("dpb", G, device, dtype)
        version = tuple((p.data_ptr(), p._version) for p in params) if cacheable else ()
        hit = self._cache.get(key) if cacheable else None
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        table = self.pos.table(G, device, dtype)                                     # ((2G−1)², heads)
        index = self._index(("rel", G), lambda: relative_position_index(G), device)  # (N, N)
        bias = table[index.reshape(-1)].reshape(G * G, G * G, -1).permute(2, 0, 1).contiguous()  # (heads, N, N)
        if cacheable:
            self._cache[key] = (version, table, bias)
        return table, bias

    def _index(self, key: tuple, make, device: torch.device) -> torch.Tensor:
        full = key + (device,)
        t = self._cache.get(full)
        if t is None:
            if len(self._cache) > 256:
                self._cache.clear()
            with torch.inference_mode(False):   # plain tensors: usable later by autograd (captum)
                t = torch.from_numpy(np.asarray(make()).copy()).to(device)
            self._cache[full] = t
        return t

    def _fused(self, qkv: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None, layout: GroupLayout,
               lk: tuple) -> torch.Tensor:
        """SDPA on grouped ``qkv (B, nG·N, 3C)`` → ungrouped ``(B, L, C)`` (before ``proj``).

        SDPA's CPU kernels want 4-D inputs and a 4-D mask that is dense except for a size-1 batch dim
        (other broadcasts fall back to a slow path). No padding: groups go to the batch dim, one
        ``(1, h, N, N)`` bias serves every group, and q/k/v are strided views of ``qkv`` (no copies).
        Padding: groups are folded into the head dim so the per-group mask ``(1, nG·h, N, N)``
        broadcasts over B.
        """
        B, nG, N, h, d = qkv.shape[0], layout.num_groups, layout.group_tokens, self.num_heads, self.head_dim
        p = self.attn_drop.p if self.training else 0.0
        if mask is None:
            q, k, v = qkv.view(B * nG, N, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)     # (B·nG, h, N, d)
            attn_mask = bias[None]                                                     # (1, h, N, N)
        else:
            q, k, v = (t.reshape(B, nG * h, N, d) for t in
                       qkv.view(B, nG, N, 3, h, d).permute(3, 0, 1, 4, 2, 5).unbind(0))  # (B, nG·h, N, d)
            attn_mask = (bias + mask).reshape(1, nG * h, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype), dropout_p=p,
                                             scale=self.scale)
        return self._ungroup(out.view(B, nG, h, N, d), layout, lk)

    def _ungroup(self, out: torch.Tensor, layout: GroupLayout, lk: tuple) -> torch.Tensor:
        """``(B, nG, h, N, d)`` per-group heads → ``(B, L, C)`` tokens in image order, padding dropped."""
        B, nG, h, N, d = out.shape
        out = out.transpose(2, 3).reshape(B, nG * N, h * d)            # heads back to channels h·d + e
        scatter = self._index(("scatter",) + lk, lambda: layout.slot_of_token, out.device)   # (L,)
        return out.index_select(1, scatter)

    def forward(self, x: torch.Tensor, layout: GroupLayout, rec: Recorder | None = None,
                edits: Sequence[Edit] = (), where: HW = (0, 0)) -> torch.Tensor:
        """``(B, H·W, C)`` normalised tokens → ``(B, H·W, C)`` attention output.

        ``edits``: head edits of this block for this call only (:mod:`crossformer.edits`); a block with
        any runs the explicit softmax path. ``where``: the block's ``(stage, index)``, as told to ``rec``.
        """
        B, L, C = x.shape
        nG, N, G = layout.num_groups, layout.group_tokens, layout.group_size
        h, d = self.num_heads, self.head_dim
        lk = (layout.kind, layout.feature_hw, G, layout.interval)
        gather = self._index(("gather",) + lk, lambda: layout.gather_index, x.device)    # (nG·N,)

        # group: read members in group order (padding reads an appended zero row)
        if layout.is_padded:
            x = torch.cat([x, x.new_zeros(B, 1, C)], dim=1)                        # (B, L+1, C)
        xg = x.index_select(1, gather)                                              # (B, nG·N, C)
        qkv = self.qkv(xg)                                                          # (B, nG·N, 3C)
        table, bias = self.position_bias(G, x.device, x.dtype)                     # (h, N, N)
        mask = None
        if layout.is_padded:
            pad = self._index(("pad",) + lk, lambda: layout.key_padding, x.device)  # (nG, N) bool
            mask = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, NEG_INF)
            mask = mask[:, None, None, :]                                            # (nG, 1, 1, N)

        if rec is None and self.fused and not edits:
            out = self._fused(qkv, bias, mask, layout, lk)                         # (B, L, C)
        else:
            q, k, v = qkv.reshape(B, nG, N, 3, h, d).permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B, nG, h, N, d)
            content = (q * self.scale) @ k.transpose(-2, -1)                         # (B, nG, h, N, N)
            keep = _head_factors(edits, B, h, x.device, content.dtype)
            if "content" in keep:     # uniform: content term dropped
                content = content * keep["content"][:, None, :, None, None]
            if "bias" in keep:        # uniform, no_dpb: DPB term dropped
                bias_b = bias * keep["bias"][:, None, :, None, None]                # (B, 1, h, N, N)
            else:
                bias_b = bias                                                        # (h, N, N)
            # content is not used again unless a recorder keeps it: the DPB is then added in place, where that
            # keeps the sum's dtype (a bf16 content with an fp32 bias would need the fp32 sum: a new tensor;
            # under autocast the DPB table comes out bf16 too, so today both are bf16 there)
            if (rec is not None and rec.keeps_content) or content.dtype != torch.promote_types(content.dtype,
                                                                                               bias_b.dtype):
                logits = content + bias_b                                           # a new tensor
            else:
                logits = content.add_(bias_b)
            if mask is not None:
                logits += mask                                # in place: add's backward needs no inputs
            if torch.is_grad_enabled():
                attn = logits.softmax(dim=-1)
            else:                                             # the logits are not used again: softmax over them
                attn = torch.softmax(logits, -1, out=logits)
            if rec is not None:
                if "bias" in keep:    # recorded edits apply to every sample (checked in run)
                    table, bias = table * keep["bias"][0], bias_b[0, 0]
                rec.attention(where, layout, content if rec.keeps_content else None, attn, table, bias)
            heads = self.attn_drop(attn) @ v                                         # (B, nG, h, N, d)
            if "out" in keep:         # zero: the head's slice of proj's input is 0
                heads = heads * keep["out"][:, None, :, None, None]
            out = self._ungroup(heads, layout, lk)                                   # (B, L, C)
        return self.proj_drop(self.proj(out))


def _head_factors(edits: Sequence[Edit], B: int, h: int, device: torch.device,
                  dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Per-sample, per-head 0/1 factors ``(B, h)`` for the terms the head edits remove.

    ``"out"`` multiplies the head outputs (``zero``), ``"content"`` the ``scale·q·kᵀ`` term (``uniform``),
    ``"bias"`` the DPB term (``uniform``, ``no_dpb``). A term no edit touches has no entry, so unedited
    numbers are computed exactly as without edits (and ×1 is exact where there are entries).
    """
    terms = {"zero": ("out",), "uniform": ("content", "bias"), "no_dpb": ("bias",)}
    keep: dict[str, torch.Tensor] = {}
    for e in edits:
        rows = slice(None) if e.sample is None else e.sample
        cols = slice(None) if e.head is None else e.head
        for term in terms[e.kind]:
            if term not in keep:
                keep[term] = torch.ones(B, h, device=device, dtype=dtype)
            keep[term][rows, cols] = 0.0
    return keep


# ---- block ------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Mlp(nn.Module):
    """``Linear(C, rC) → GELU → Linear(rC, C)``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class CrossFormerBlock(nn.Module):
    """``x += Attn(group(LN(x)))``; ``x += MLP(LN(x))``; [CrossFormer++ ACL: ``x = LN(DWConv3×3(x))``].

    ``kind`` is the configured attention (``"sda"`` for even, ``"lda"`` for odd blocks); the layout it
    really uses is planned per call from the map that call sees (a small map becomes one global SDA group,
    by the ``small_map`` rule of :func:`~crossformer.geometry.plan_layout`). The official backbone instead
    writes ``self.lsda_flag = 0`` on the module when a small map arrives, so after one small input that
    block stays SDA for every later input; here nothing is written: each call's layout depends on its own
    input only.
    """

    def __init__(self, dim: int, num_heads: int, group_size: int, interval: int | None, kind: str,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, acl: bool = False,
                 dpb_dim: int | None = None, small_map: str = "fits") -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.group_size, self.interval, self.kind = group_size, interval, kind
        self.small_map = small_map                # constant: when a small map becomes one group (per call)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, dpb_dim)
        self.has_acl = acl
        if acl:  # registered here so their keys sit between attn.* and norm2.* as in the official file
            self.ex_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
            self.ex_ln = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def layout(self, hw: HW, swapped: bool = False) -> GroupLayout:
        """The grouping this block uses on an ``H × W`` map (cached per size in geometry).

        ``swapped``: the other kind (SDA ↔ LDA) with this block's own ``G`` and ``I`` (the ``"swap"`` edit).
        """
        kind = {"sda": "lda", "lda": "sda"}[self.kind] if swapped else self.kind
        return plan_layout(kind, hw, self.group_size, self.interval, self.small_map)

    def forward(self, x: torch.Tensor, hw: HW, rec: Recorder | None = None,
                where: tuple[int, int] = (0, 0), edits: Sequence[Edit] = ()) -> torch.Tensor:
        """``(B, H·W, C)`` → ``(B, H·W, C)``; ``edits`` are this block's, for this call only."""
        layout = self.layout(hw, swapped=swaps(edits))
        x = x + self.drop_path(self.attn(self.norm1(x), layout, rec, head_edits(edits), where))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.has_acl:
            x = self.ex_ln(map_to_tokens(self.ex_conv(tokens_to_map(x, hw))))     # replaces x, no skip
        if rec is not None:
            rec.block(BlockInfo(where[0], where[1], self.dim, self.num_heads, float(self.attn.scale), self.has_acl),
                      layout, x)
        return x


class CrossFormerStage(nn.Module):
    """Blocks of one stage, an identity tap on its output map, then (stages 0–2) a cross-scale merge.

    ``feature_map`` is an ``nn.Identity`` that sees the stage output as ``(B, C, H, W)``: a ready target
    layer for Grad-CAM and captum (no reshapes to guess). It holds no parameters.
    """

    def __init__(self, stage: int, cfg: CrossFormerConfig, drop_paths: Sequence[float]) -> None:
        super().__init__()
        dim = cfg.stage_dim(stage)
        acl = set(cfg.acl_blocks(stage))
        self.stage = stage
        self.blocks = nn.ModuleList(
            CrossFormerBlock(dim, cfg.num_heads[stage], cfg.group_size[stage], cfg.stage_interval(stage),
                             block_kind(j), cfg.mlp_ratio[stage], cfg.qkv_bias, cfg.qk_scale,
                             cfg.drop_rate, cfg.attn_drop_rate, drop_paths[j], acl=j in acl,
                             dpb_dim=cfg.dpb_dim(stage), small_map=cfg.small_map_rule)
            for j in range(cfg.depths[stage]))
        self.downsample = (PatchMerging(dim, 2 * dim, cfg.merge_kernels[stage])
                           if stage < cfg.num_stages - 1 else None)
        self.feature_map = nn.Identity()

    def forward(self, x: torch.Tensor, hw: HW, rec: Recorder | None = None, edits: EditPlan | None = None,
                start: int = 0, taps: list | None = None) -> tuple[torch.Tensor, HW, torch.Tensor]:
        """``(B, H·W, C)`` → (next stage tokens, their grid, this stage's output map ``(B, C, H, W)``).

        ``edits``: the call's edits by ``(stage, block)``; ``start``: first block to run (``x`` is its
        input); ``taps``: if a list, ``((stage, block), input tokens, hw)`` of every block run is appended.
        """
        edits = edits or {}
        for j in range(start, len(self.blocks)):
            if taps is not None:
                taps.append(((self.stage, j), x, hw))
            x = self.blocks[j](x, hw, rec, (self.stage, j), edits.get((self.stage, j), ()))
        fmap = self.feature_map(tokens_to_map(x, hw))      # (B, C, H, W)
        x = map_to_tokens(fmap)
        if rec is not None:
            rec.stage(self.stage, hw, x)
        if self.downsample is not None:
            x, hw = self.downsample(x, hw, rec, self.stage + 1)
        return x, hw, fmap


# ---- the model ---------------------------------------------------------------------------------------
class CrossFormer(nn.Module):
    """CrossFormer / CrossFormer++ classifier for any input size ``H, W ≥ 32``, or (``cfg.backbone``) the
    official detection/segmentation backbone.

    Classifier: ``forward = forward_head(forward_features(x))``; ``forward_intermediates`` gives the four stage
    maps (NCHW); ``forward_trace`` gives a :class:`~crossformer.trace.Trace` of everything computed, and
    ``run(x, recorder)`` hands it to any :class:`~crossformer.recording.Recorder` as it is computed.

    Backbone (``from_official_config(kwargs, "det")``, SPEC §7): no final norm and no head (its state dict has
    neither); ``forward(x)`` is ``forward_intermediates(x)``, the four stage outputs ``(B, C_i, H_i, W_i)``
    (after the blocks, before merging). Input sides must give even maps to every merge (multiples of 32:
    :func:`pad_input` pads as mmdet does and reports it). A stage map whose short side is ≤ G runs as one
    SDA group of side ``max(H, W)``, decided in each call from that call's map through the layout planning
    (:func:`~crossformer.geometry.plan_layout`, ``small_map="short_side"``) — not by writing
    ``lsda_flag = 0`` on the block as the official code does, which would leave the block SDA for every
    later (large) input. The trace records the layout each call really used.
    """

    def __init__(self, cfg: CrossFormerConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = (cfg or CrossFormerConfig()).replace(**overrides) if overrides else (cfg or CrossFormerConfig())
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.patch_embed = CrossScaleEmbedding(cfg.in_chans, cfg.embed_dim, cfg.patch_kernels)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        total = sum(cfg.depths)
        dpr = np.linspace(0, cfg.drop_path_rate, total).tolist()            # stochastic depth per block
        starts = np.cumsum([0, *cfg.depths])
        self.layers = nn.ModuleList(
            CrossFormerStage(i, cfg, dpr[starts[i]:starts[i + 1]]) for i in range(cfg.num_stages))
        self.num_features = cfg.stage_dim(cfg.num_stages - 1)
        self.head: nn.Module | None
        if cfg.backbone:                     # the official backbone: no final norm, no head
            self.norm, self.head = nn.Identity(), None
        else:
            self.norm = nn.LayerNorm(self.num_features)
            self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    # -- switches --
    def set_fused_attention(self, enabled: bool) -> "CrossFormer":
        """Choose SDPA (``True``, default) or the explicit softmax path for plain forwards."""
        for m in self.modules():
            if isinstance(m, GroupAttention):
                m.fused = enabled
        return self

    def set_space_to_depth_embedding(self, enabled: bool) -> "CrossFormer":
        """Compute the large CEL kernels as stride-1 convs over 4 × 4 pixel blocks (:func:`conv_as_space_to_depth`).

        Same function, other float summation order; several times faster to train on the CPU. Off by
        default, so inference reproduces the official conv to the last bit the official vectors check.
        """
        self.patch_embed.space_to_depth = enabled
        return self

    # -- forward pieces --
    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_chans:
            raise ValueError(f"expected input (B, {self.cfg.in_chans}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.cfg.min_input_side:
            raise ValueError(f"input sides must be ≥ {self.cfg.min_input_side} pixels, got {tuple(x.shape[-2:])}")
        if self.cfg.backbone:
            sizes = stage_hw(tuple(x.shape[-2:]), self.cfg.num_stages, self.cfg.stride)[:-1]
            odd = [(i, hw) for i, hw in enumerate(sizes) if hw[0] % 2 or hw[1] % 2]
            if odd:
                (i, (h, w)), d = odd[0], self.cfg.input_divisor
                raise ValueError(f"a {x.shape[-2]}×{x.shape[-1]} input gives stage {i} an odd {h}×{w} map, which the "
                                 f"backbone cannot merge: pad it to a multiple of {d} first "
                                 f"(crossformer.pad_input, as mmdet does)")

    def _run(self, x: torch.Tensor, rec: Recorder | None = None, edits: EditPlan | None = None,
             taps: list | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Input → final-norm tokens ``(B, L_3, C_3)`` and the four stage maps."""
        self._check_input(x)
        x, hw = self.patch_embed(x, rec)
        x = self.pos_drop(x)
        return self._stages(x, hw, rec, edits, (0, 0), taps)

    def _stages(self, x: torch.Tensor, hw: HW, rec: Recorder | None, edits: EditPlan | None,
                start: tuple[int, int], taps: list | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Tokens entering block ``start = (stage, block)`` → final-norm tokens and the maps of the stages run."""
        maps = []
        for i in range(start[0], len(self.layers)):
            x, hw, fmap = self.layers[i](x, hw, rec, edits, start[1] if i == start[0] else 0, taps)
            maps.append(fmap)
        return self.norm(x), maps

    def plan_edits(self, edits: Sequence[Edit] | None, batch: int | None = None) -> EditPlan:
        """Check ``edits`` against this model (ValueError if out of range) and group them by block."""
        return plan_edits(edits, self.cfg.depths, self.cfg.num_heads, batch)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` → ``(B, C_3, H_3, W_3)`` after the final LayerNorm."""
        tokens, maps = self._run(x)
        return tokens_to_map(tokens, tuple(maps[-1].shape[-2:]))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, C_3, H_3, W_3)`` → logits ``(B, classes)`` (mean-pooled features if ``pre_logits``)."""
        if self.head is None:
            raise ValueError("a detection/segmentation backbone has no head: use forward_intermediates(x)")
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def _output(self, tokens: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """What ``forward`` returns: logits ``(B, classes)``, or a backbone's stage maps ``[(B, C_i, H_i, W_i)]``."""
        if self.cfg.backbone:
            return maps
        return self.forward_head(tokens_to_map(tokens, tuple(maps[-1].shape[-2:])))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(B, classes)``; a backbone returns its four stage maps (as the official backbone)."""
        return self._output(*self._run(x))

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage (after its blocks, before merging) as ``(B, C_i, H_i, W_i)``."""
        return self._run(x)[1]

    def forward_edited(self, x: torch.Tensor, edits: Sequence[Edit]) -> torch.Tensor:
        """``model(x)`` with ``edits`` (:class:`~crossformer.edits.Edit`) applied for this call only.

        ``(B, 3, H, W)`` → logits ``(B, classes)`` (a backbone: its stage maps). Nothing is stored on the
        model: a plain ``model(x)`` running meanwhile (another thread, another Streamlit session) never sees
        the edits. Blocks with head edits run the explicit softmax path; an empty list is exactly ``model(x)``.
        """
        plan = self.plan_edits(edits, batch=x.shape[0])
        return self._output(*self._run(x, edits=plan))

    def block_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[tuple[int, int], torch.Tensor, HW]]]:
        """One plain forward that also returns the input of every block.

        Returns logits ``(B, classes)`` (a backbone: its stage maps) and
        ``[((stage, block), tokens (B, H·W, C), (H, W)), …]`` in block order; :meth:`forward_from` continues
        from any of them (scans re-run only the blocks after an edit).
        """
        taps: list = []
        tokens, maps = self._run(x, taps=taps)
        return self._output(tokens, maps), taps

    def forward_from(self, tokens: torch.Tensor, hw: HW, start: tuple[int, int],
                     edits: Sequence[Edit] = ()) -> torch.Tensor:
        """Logits ``(B, classes)`` from the tokens ``(B, H·W, C)`` entering block ``start = (stage, block)``.

        A backbone returns the maps of the stages run (``start[0]`` … last). ``edits`` before ``start`` would
        have no effect and are refused (ValueError).
        """
        plan = self.plan_edits(edits, batch=tokens.shape[0])
        early = [e for e in plan if e < tuple(start)]
        if early:
            raise ValueError(f"edits of blocks {early} lie before the start block {tuple(start)}")
        return self._output(*self._stages(tokens, hw, None, plan, tuple(start)))

    def _recorded_edits(self, edits: Sequence[Edit], batch: int, caller: str) -> EditPlan:
        """The plan of a recorded call's ``edits``: every sample only (a recorder gets one DPB bias per block)."""
        per_sample = [e for e in edits if isinstance(e, Edit) and e.sample is not None]
        if per_sample:
            raise ValueError(f"{caller} takes edits for every sample only (sample=None), got {per_sample}")
        return self.plan_edits(edits, batch=batch)

    def run(self, x: torch.Tensor, recorder: Recorder,
            edits: Sequence[Edit] = ()) -> torch.Tensor | list[torch.Tensor]:
        """``model(x)`` on the explicit-softmax path, reporting what it computes to ``recorder``.

        ``recorder``: any :class:`~crossformer.recording.Recorder` (the calls, their order and shapes are
        documented there); the model holds it for this call only. Returns what ``forward`` returns, logits
        ``(B, classes)`` (a backbone: its stage maps), bit for bit those of ``model(x)`` with the fused path off
        (``set_fused_attention(False)``). ``edits`` as in :meth:`forward_edited`, for every sample only
        (``sample=None``). Gradients flow unless the caller disables them.
        """
        check_recorder(recorder)
        plan = self._recorded_edits(edits, x.shape[0], "run")
        return self._output(*self._run(x, recorder, plan))

    @torch.no_grad()
    def forward_trace(self, x: torch.Tensor, edits: Sequence[Edit] = ()) -> Trace:
        """One forward pass on the explicit-softmax path that returns everything it computed.

        ``forward_trace(x).logits`` equals ``model(x)`` (to float rounding of the fused path). With
        ``edits`` it equals ``forward_edited(x, edits)`` and records the edited attention (content, softmax,
        DPB table and bias as used) and, for a swap, the swapped layout. Trace edits apply to every batch
        element (``sample=None``): the trace keeps one DPB bias per block. A backbone's trace has
        ``logits`` of shape ``(B, 0)`` and ``pooled`` = the mean of the last stage's output (no norm).
        """
        plan = self._recorded_edits(edits, x.shape[0], "forward_trace")
        rec = TraceRecorder()
        tokens, _ = self._run(x, rec, plan)
        pooled = tokens.mean(dim=1)
        logits = pooled.new_zeros(pooled.shape[0], 0) if self.head is None else self.head(pooled)
        return rec.trace(tuple(x.shape[-2:]), pooled, logits, backbone=self.cfg.backbone)

    # -- geometry without running the model --
    def plan(self, input_hw: HW) -> list[list[GroupLayout]]:
        """The layout of every block for an input of ``input_hw`` pixels (no forward needed); the same per-call
        planning the forward pass uses (a backbone's small-map rule included)."""
        sizes = stage_hw(input_hw, self.cfg.num_stages, self.cfg.stride)
        return [[blk.layout(hw) for blk in layer.blocks] for layer, hw in zip(self.layers, sizes)]

    def dpb_table(self, stage: int, block: int, group_size: int) -> torch.Tensor:
        """Evaluate a block's DPB MLP at any group size: ``((2G−1)², heads)``."""
        with torch.no_grad():
            return self.layers[stage].blocks[block].attn.pos.table(group_size)


def pad_input(x: torch.Tensor, divisor: int = 32) -> tuple[torch.Tensor, InputPadding]:
    """Zero-pad ``x (B, C, H, W)`` on the bottom/right to multiples of ``divisor`` → ``(B, C, Hp, Wp)`` and what
    was added.

    This is mmdet's ``Pad(size_divisor=32)``, which runs after normalisation (so the zeros are the mean
    colour); a backbone needs it whenever a stage map would be odd. ``padding.describe()`` says it in words.
    """
    pad = plan_input_padding(tuple(x.shape[-2:]), divisor)
    if pad.is_padded:
        x = F.pad(x, (0, pad.right, 0, pad.bottom))
    return x, pad


def _init_weights(m: nn.Module) -> None:
    """Official init: trunc-normal(0.02) Linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
