"""Per-head attention statistics over a batch, reduced on the device during the forward pass.

:func:`head_stats` gives, for every image × block × head, the numbers of
:func:`viz.diagnostics.block_head_stats` (same definitions, see that module):

* ``entropy``: ``−Σ_k p_k ln p_k`` over the real keys (nats), averaged over the real queries;
* ``distance_px``: mean attention distance ``Σ_k p_k ‖pos_q − pos_k‖₂ · s`` in input pixels, token
  positions from ``layout.positions``, ``s = cfg.stage_stride(stage)`` pixels per token;
* ``dpb_share``: total variation ``½ Σ_k |softmax(qk + B + M) − softmax(qk + M)|`` over the real keys;
* ``output_rms``: ``sqrt(mean(x²))`` of the block output (per block, repeated on its head rows);
* ``acl``: the block has a CrossFormer++ cooling layer; ``uniform_entropy``: the mean ``ln(real keys)``,
  what ``entropy`` would be for uniform attention.

The attention is never kept: a :class:`~crossformer.recording.Recorder` passed down the call
(:meth:`CrossFormer.run <crossformer.model.CrossFormer.run>`) reduces each block's
``(B, nG, heads, N, N)`` softmax to ``(B, heads)`` sums on the device as soon as it is computed (fp32, also
under bf16 autocast) and only those few numbers reach the host. The command line over a folder is
:mod:`crossformer.stats_cli`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .geometry import GroupLayout
from .model import CrossFormer
from .recording import BlockInfo, NullRecorder

#: Attention elements reduced at a time (4 MiB in fp32): under bf16 only this much is ever held as an fp32
#: copy, and a slice and its scratch stay in the last-level cache. (In fp32 on this CPU chunking measured
#: the same as one pass over the whole batch: the win is the bounded copy.)
CHUNK_ELEMENTS = 1 << 20


class _StatsRecorder(NullRecorder):
    """Reduces each block's attention on the device to per-(image, head) means; keeps nothing big.

    The layouts planned by ``model.plan(input_hw)`` in block order are checked against those reported. Lives
    for one call; stores nothing on modules.

    Every statistic is a mean over the real queries of a sum over keys: the sum over keys is one matrix
    product reading the attention-sized tensor once (no broadcast copies), the mean over queries works on
    ``(B, nG, h, N)``. Padded keys need no masking: their softmax weight is exactly 0 (the additive mask is
    −10⁶); padded queries have weight 0.
    """

    keeps_content = False                     # only the softmax and the DPB bias are used

    def __init__(self, layouts: Sequence[tuple[int, int, GroupLayout]], stage_strides: Sequence[int],
                 dtype: torch.dtype = torch.float32) -> None:
        self.layouts = list(layouts)          # (stage, index, layout) in forward order
        self.stage_strides = tuple(stage_strides)   # input pixels per token side, per stage
        self.dtype = dtype
        self._i = 0                           # next block whose attention arrives
        self._pending: torch.Tensor | None = None
        self._geom: dict[tuple, tuple] = {}
        self._scratches: dict[tuple, torch.Tensor] = {}
        # stage, index, kind, acl, (B, 3, h) stats, (B,) rms, uniform entropy
        self.rows: list[tuple[int, int, str, bool, torch.Tensor, torch.Tensor, float]] = []

    def _geometry(self, layout: GroupLayout, stage: int, device: torch.device) -> tuple:
        """``(w, dist, uniform)`` of a layout: real-query weights ``(nG, N)`` summing to 1, the
        distances ``dist (N, N, 1)``, ``dist[q, k] = ‖pos_q − pos_k‖ · px`` (the same for every group:
        SDA and LDA members sit at the same offsets in every group, checked), and the mean over real
        queries of ``ln(real keys)``."""
        key = (layout.kind, layout.feature_hw, layout.group_size, layout.interval, stage)
        if key not in self._geom:
            real = ~np.asarray(layout.key_padding)                                          # (nG, N)
            N = real.shape[1]
            w = real.astype(np.float64) / real.sum()                                         # real queries
            pos = np.asarray(layout.positions, dtype=np.float64)                             # (nG, N, 2)
            rel = pos - pos[:, :1]                                                           # offsets in group
            if not np.array_equal(rel, np.broadcast_to(rel[:1], rel.shape)):
                raise RuntimeError(f"{layout.kind} groups with different member offsets")
            dist = np.sqrt(((rel[0][:, None, :] - rel[0][None, :, :]) ** 2).sum(-1))         # (N, N)
            dist *= self.stage_strides[stage]                                                # px
            n_real = real.sum(1)                                                             # keys per group
            uniform = float((w.sum(1) * np.log(np.maximum(n_real, 1))).sum())
            self._geom[key] = (torch.as_tensor(w, device=device, dtype=self.dtype),
                               torch.as_tensor(dist[:, :, None], device=device, dtype=self.dtype), uniform)
        return self._geom[key]

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor shaped like ``like``, shared by the blocks of this call with that shape."""
        key = (tuple(like.shape), like.dtype, like.device)
        if key not in self._scratches:
            self._scratches.clear()                 # the stages shrink: an old shape never comes back
            self._scratches[key] = torch.empty_like(like, memory_format=torch.contiguous_format)
        return self._scratches[key]

    @torch.no_grad()
    def attention(self, where: tuple[int, int], layout: GroupLayout, content: torch.Tensor | None,
                  attention: torch.Tensor, table: torch.Tensor, bias: torch.Tensor) -> None:
        if self._i >= len(self.layouts):
            raise RuntimeError("more attention reports than blocks in the plan")
        stage, index, planned = self.layouts[self._i]
        same = [(lay.kind, lay.feature_hw, lay.group_size, lay.interval) for lay in (layout, planned)]
        if (stage, index) != tuple(where) or same[0] != same[1]:
            raise RuntimeError(f"block {tuple(where)} ran with another layout than planned for {(stage, index)}")
        w, dist, _ = self._geometry(layout, stage, attention.device)
        with torch.autocast(attention.device.type, enabled=False):      # reductions in fp32 under bf16 too
            self._pending = self._reduce(attention, bias, w, dist)

    def _reduce(self, attention: torch.Tensor, bias: torch.Tensor, w: torch.Tensor,
                dist: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h)``: entropy, distance and DPB share of each head, averaged over real queries.

        ``attention (B, nG, h, N, N)`` is ``p = softmax(c + B + M)``; the attention without the DPB,
        ``q = softmax(c + M)``, is ``p·e^{−B}`` renormalised over the keys (``p_k ∝ e^{c_k + B_k}``), so it
        needs no second exponential over the attention-sized tensor (entropy + DPB share 15–25 % faster than
        with a second softmax); ``e^{−(B − min_k B)} ≤ 1`` cannot overflow, and padded keys stay exactly 0
        (``p`` is 0 there). Tested against the trace's ``softmax(content)`` with DPB shares near 1.

        The distance-weighted sums over keys are one batched matrix-vector product with the query as the
        batch, ``(N, M, N) @ (N, N, 1)`` on a strided view of the ``(M = b·nG·h, N, N)`` attention (no copy;
        half the time of a dense ``(M·N, N·N) @ (N·N, N)`` operator, which multiplies mostly zeros); the other
        steps write one attention-sized scratch tensor in place
        (reused by every block of that shape: allocating 20 MB costs as much as a pass over it), and
        ``p ln p`` is ``p · ln max(p, tiny)``, exact where ``p = 0`` (padded keys) and a third of the cost of
        ``xlogy``. Only the ``(B, nG, h, N)`` per-query results are then weighted by ``w``.
        """
        B, nG, h, N, _ = attention.shape
        step = max(1, CHUNK_ELEMENTS // (nG * h * N * N))                              # images per chunk
        tiny = torch.finfo(self.dtype).tiny
        bias = bias.to(self.dtype)
        no_dpb = torch.exp(bias.amin(-1, keepdim=True) - bias)                             # (h, N, N) ∈ (0, 1]
        out = []
        for b0 in range(0, B, step):
            p = attention[b0:b0 + step].to(self.dtype)                                     # (b,nG,h,N,N)
            scratch = self._scratch(p)
            dis = torch.bmm(p.view(-1, N, N).transpose(0, 1), dist)                         # (N, M, 1)
            dis = dis.view(N, -1).t().reshape(p.shape[:-1])                                  # (b,nG,h,N)
            torch.clamp_min(p, tiny, out=scratch)
            ent = -torch.log(scratch, out=scratch).mul_(p).sum(-1)
            q = torch.mul(p, no_dpb, out=scratch)                 # attention without the DPB, in the scratch
            q.div_(q.sum(-1, keepdim=True))
            tv = 1.0 - torch.minimum(q, p, out=q).sum(-1)          # ½Σ|p − q| = 1 − Σ min(p, q): one pass less
            per_query = torch.stack([ent, dis, tv], 1)                                       # (b,3,nG,h,N)
            out.append((per_query * w[:, None, :]).sum(dim=(2, 4)))                          # (b,3,h)
        return torch.cat(out)

    @torch.no_grad()
    def block(self, block: BlockInfo, layout: GroupLayout, output: torch.Tensor) -> None:
        if self._pending is None:
            raise RuntimeError(f"block {block.where} finished without reporting its attention")
        stage, index, _ = self.layouts[self._i]
        if (stage, index) != block.where:
            raise RuntimeError(f"block {block.where} ran where {(stage, index)} was planned")
        rms = output.to(self.dtype).pow(2).mean(dim=(1, 2)).sqrt()                           # (B,)
        uniform = self._geometry(layout, stage, output.device)[2]
        self.rows.append((stage, index, layout.kind, block.has_acl, self._pending, rms, uniform))
        self._pending = None
        self._i += 1


@torch.inference_mode()
def head_stats(model: CrossFormer, x: torch.Tensor, *, precision: str = "fp32",
               image_ids: Sequence | None = None) -> list[dict]:
    """One row per image × block × head (see module doc) for the batch ``x (B, 3, H, W)``.

    ``precision``: the forward runs under :func:`crossformer.precision.autocast` (``"fp32"``, ``"bf16"``,
    ``"auto"``); the statistics are reduced in fp32 either way. ``image_ids``: the ``image`` value of each
    batch element (default: its index).
    """
    from .precision import autocast

    hw = tuple(int(s) for s in x.shape[-2:])
    layouts = [(i, j, lay) for i, stage in enumerate(model.plan(hw)) for j, lay in enumerate(stage)]
    rec = _StatsRecorder(layouts, [model.cfg.stage_stride(i) for i in range(model.cfg.num_stages)])
    with autocast(x.device, precision):
        model.run(x, rec)
    if rec._i != len(layouts):
        raise RuntimeError(f"{rec._i} of {len(layouts)} blocks reported")
    ids = list(range(x.shape[0])) if image_ids is None else list(image_ids)
    # one host copy for the whole batch
    stats = [row[4].cpu().numpy().astype(np.float64) for row in rec.rows]
    rms = [row[5].cpu().numpy().astype(np.float64) for row in rec.rows]
    out: list[dict] = []
    for b, image in enumerate(ids):
        for (stage, index, kind, acl, _, _, uniform), s, r in zip(rec.rows, stats, rms):
            for head in range(s.shape[2]):
                out.append({"image": image, "stage": stage, "block": f"s{stage}_b{index}", "kind": kind,
                            "head": head, "entropy": float(s[b, 0, head]),
                            "distance_px": float(s[b, 1, head]), "dpb_share": float(s[b, 2, head]),
                            "output_rms": float(r[b]), "acl": int(acl), "uniform_entropy": uniform})
    return out


def rows_per_image(model: CrossFormer) -> int:
    """Rows :func:`head_stats` gives per image: ``Σ_stages heads × depth`` (one per block × head)."""
    return sum(h * d for h, d in zip(model.cfg.num_heads, model.cfg.depths))
