"""Per-head attention statistics over many images, reduced on the device during the forward pass.

:func:`head_stats` gives, for every image × block × head, the numbers of
:func:`viz.diagnostics.block_head_stats` (same definitions, see that module):

* ``entropy``: ``−Σ_k p_k ln p_k`` over the real keys (nats), averaged over the real queries;
* ``distance_px``: mean attention distance ``Σ_k p_k ‖pos_q − pos_k‖₂ · s`` in input pixels, token
  positions from ``layout.positions``, ``s = stride·2^stage`` pixels per token;
* ``dpb_share``: total variation ``½ Σ_k |softmax(qk + B + M) − softmax(qk + M)|`` over the real keys;
* ``output_rms``: ``sqrt(mean(x²))`` of the block output (per block, repeated on its head rows).

The attention is never kept: a recorder passed down the call reduces each block's
``(B, nG, heads, N, N)`` softmax to ``(B, heads)`` sums on the device as soon as it is computed (fp32, also
under bf16 autocast) and only those few numbers reach the host.

Command line (``python -m crossformer.stats --help``)::

    python -m crossformer.stats --checkpoint ckpt.safetensors --images DIR --out stats.csv \\
        [--size 224 | --official-eval] [--batch 32] [--device auto] [--precision auto] [--summary s.png]

walks ``DIR`` recursively, skips (and counts) unreadable files, writes one CSV row per image × block × head
(``image`` = path relative to ``DIR``) and resumes: images already in ``--out`` are not run again.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .geometry import GroupLayout
from .model import CrossFormer, _Recorder

FIELDS = ("image", "stage", "block", "kind", "head", "entropy", "distance_px", "dpb_share", "output_rms")


class _StatsRecorder(_Recorder):
    """Reduces each block's attention on the device to per-(image, head) means; keeps nothing big.

    The layouts come from ``model.plan(input_hw)`` in block order (``attention`` is reported before
    ``block`` names the layout). Lives for one call; stores nothing on modules.
    """

    def __init__(self, layouts: Sequence[tuple[int, int, GroupLayout]], cel_stride: int,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.layouts = list(layouts)          # (stage, index, layout) in forward order
        self.cel_stride = cel_stride
        self.dtype = dtype
        self._i = 0                           # next block whose attention arrives
        self._pending: torch.Tensor | None = None
        self._geom: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self.rows: list[tuple[int, int, str, torch.Tensor, torch.Tensor]] = []   # stage, idx, kind, (B,3,h), (B,)

    def _geometry(self, layout: GroupLayout, stage: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = (layout.kind, layout.feature_hw, layout.group_size, layout.interval, stage)
        if key not in self._geom:
            real = torch.as_tensor(np.array(~layout.key_padding), device=device)                      # (nG, N) bool
            pos = torch.as_tensor(np.array(layout.positions), device=device, dtype=torch.float64)      # (nG, N, 2)
            dist = torch.sqrt(((pos[:, :, None, :] - pos[:, None, :, :]) ** 2).sum(-1))
            dist = (dist * (self.cel_stride * 2 ** stage)).to(self.dtype)                   # (nG, N, N)
            mask = torch.as_tensor(np.array(layout.attn_mask), device=device, dtype=self.dtype)       # (nG, N, N)
            w = real.to(self.dtype)                                                          # real queries
            self._geom[key] = (real, dist, mask, w, w.sum())
        return self._geom[key]

    def embedding(self, *args, **kwargs) -> None:   # nothing kept
        pass

    def stage(self, hw, output) -> None:            # nothing kept
        pass

    @torch.no_grad()
    def attention(self, content: torch.Tensor, attention: torch.Tensor, table: torch.Tensor,
                  bias: torch.Tensor) -> None:
        if self._i >= len(self.layouts):
            raise RuntimeError("more attention reports than blocks in the plan")
        stage, _, layout = self.layouts[self._i]
        B, nG, h, N, _ = attention.shape
        if (nG, N) != (layout.num_groups, layout.group_tokens):
            raise RuntimeError(f"attention {tuple(attention.shape)} does not match the planned layout")
        real, dist, mask, w, n_q = self._geometry(layout, stage, attention.device)
        keys = real[:, None, None, :]                                                        # (nG,1,1,N)
        p = torch.where(keys, attention.to(self.dtype), 0.0)                                 # (B,nG,h,N,N)
        ent = -torch.special.xlogy(p, p).sum(-1)                                             # (B,nG,h,N)
        dis = (p * dist[:, None]).sum(-1)
        q = torch.where(keys, (content.to(self.dtype) + mask[:, None]).softmax(-1), 0.0)
        tv = 0.5 * (p - q).abs().sum(-1)
        del p, q
        stats = torch.stack([ent, dis, tv], 1)                                               # (B,3,nG,h,N)
        self._pending = (stats * w[:, None, :]).sum(dim=(2, 4)) / n_q                         # (B,3,h)

    @torch.no_grad()
    def block(self, blk, where: tuple[int, int], layout: GroupLayout, output: torch.Tensor) -> None:
        if self._pending is None:
            raise RuntimeError(f"block {where} finished without reporting its attention")
        stage, index, _ = self.layouts[self._i]
        if (stage, index) != tuple(where):
            raise RuntimeError(f"block {where} ran where {(stage, index)} was planned")
        rms = output.to(self.dtype).pow(2).mean(dim=(1, 2)).sqrt()                           # (B,)
        self.rows.append((stage, index, layout.kind, self._pending, rms))
        self._pending = None
        self._i += 1


@torch.no_grad()
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
    rec = _StatsRecorder(layouts, model.cfg.stride)
    with autocast(x.device, precision):
        model._run(x, rec)
    if rec._i != len(layouts):
        raise RuntimeError(f"{rec._i} of {len(layouts)} blocks reported")
    ids = list(range(x.shape[0])) if image_ids is None else list(image_ids)
    # one host copy for the whole batch
    stats = [s.cpu().numpy().astype(np.float64) for _, _, _, s, _ in rec.rows]
    rms = [r.cpu().numpy().astype(np.float64) for *_, r in rec.rows]
    out: list[dict] = []
    for b, image in enumerate(ids):
        for (stage, index, kind, _, _), s, r in zip(rec.rows, stats, rms):
            for head in range(s.shape[2]):
                out.append({"image": image, "stage": stage, "block": f"s{stage}_b{index}", "kind": kind,
                            "head": head, "entropy": float(s[b, 0, head]),
                            "distance_px": float(s[b, 1, head]), "dpb_share": float(s[b, 2, head]),
                            "output_rms": float(r[b])})
    return out


# ---- command line --------------------------------------------------------------------------------------
def iter_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, recursively, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def load_image(path: Path, size: int, official: bool) -> np.ndarray:
    """``(3, S, S)`` float32 in [0, 1]; raises on unreadable files."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        if official:
            R = int(256 / 224 * size)
            ow, oh = (R, int(R * h / w)) if w <= h else (int(R * w / h), R)
            top, left = int(round((oh - size) / 2.0)), int(round((ow - size) / 2.0))
            img = img.resize((ow, oh), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))
        else:
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(img, dtype=np.float32) / 255.0
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def done_images(out: Path) -> set[str]:
    """Images already in an existing output CSV."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    with out.open(newline="") as f:
        return {row["image"] for row in csv.DictReader(f)}


def _batches(files: Iterable[tuple[str, Path]], size: int, official: bool, batch: int,
             bad: list[str]) -> Iterator[tuple[list[str], np.ndarray]]:
    """Same-size batches of readable images; unreadable ones are appended to ``bad``."""
    buckets: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for rel, path in files:
        try:
            a = load_image(path, size, official)
        except Exception:                               # not an image, truncated, unreadable: skip, count
            bad.append(rel)
            continue
        bucket = buckets.setdefault(a.shape, [])
        bucket.append((rel, a))
        if len(bucket) >= batch:
            yield [r for r, _ in bucket], np.stack([a for _, a in bucket])
            bucket.clear()
    for bucket in buckets.values():
        if bucket:
            yield [r for r, _ in bucket], np.stack([a for _, a in bucket])


def summary_figure(rows: Sequence[dict], path: str | Path) -> None:
    """Mean distance, entropy and DPB share per head vs block (SDA/LDA coloured) and per-block output RMS."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    blocks: list[str] = []
    acc: dict[tuple[str, int], list[np.ndarray]] = {}
    kinds: dict[str, str] = {}
    rms: dict[str, list[float]] = {}
    for r in rows:
        name = r["block"]
        if name not in kinds:
            blocks.append(name)
            kinds[name] = r["kind"]
        acc.setdefault((name, int(r["head"])), []).append(
            np.array([float(r["entropy"]), float(r["distance_px"]), float(r["dpb_share"])]))
        if int(r["head"]) == 0:
            rms.setdefault(name, []).append(float(r["output_rms"]))
    fig = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    colours = {"sda": "tab:blue", "lda": "tab:orange"}
    titles = ("mean attention distance (px)", "entropy (nats)", "DPB share (TV)")
    for k, ax in zip((1, 0, 2), axes[:3]):
        for kind in ("sda", "lda"):
            xs, ys = [], []
            for (name, _), vals in acc.items():
                if kinds[name] == kind:
                    xs.append(blocks.index(name))
                    ys.append(float(np.mean([v[k] for v in vals])))
            ax.scatter(xs, ys, s=14, color=colours[kind], label=kind.upper())
        ax.set_ylabel(titles[[1, 0, 2].index(k)], fontsize=8)
    axes[0].legend(fontsize=8)
    axes[3].plot(range(len(blocks)), [float(np.mean(rms[b])) for b in blocks], "o-", color="k")
    axes[3].set_ylabel("output RMS", fontsize=8)
    axes[3].set_xticks(range(len(blocks)), blocks, rotation=90, fontsize=7)
    n_img = len({r["image"] for r in rows})
    fig.suptitle(f"per-head attention statistics, {n_img} images")
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crossformer.stats", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", required=True, help="folder, walked recursively")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--size", type=int, default=224, help="resize every image to SIZE×SIZE (bicubic)")
    g.add_argument("--official-eval", action="store_true",
                   help="shorter side 256/224·224 bicubic, then centre crop 224")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--out", required=True, help="CSV (appended to; images already in it are skipped)")
    ap.add_argument("--summary", default=None, help="optional PNG summary figure (needs matplotlib)")
    args = ap.parse_args(argv)

    from .checkpoint import load_checkpoint
    from .registry import pick_device

    device = pick_device() if args.device == "auto" else torch.device(args.device)
    model, _info = load_checkpoint(args.checkpoint, device=device)
    model.eval()
    mean = torch.tensor(model.cfg.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.cfg.std, device=device).view(1, 3, 1, 1)
    size = 224 if args.official_eval else args.size

    root = Path(args.images)
    out = Path(args.out)
    done = done_images(out)
    todo = [(p.relative_to(root).as_posix(), p) for p in iter_files(root)]
    todo = [(rel, p) for rel, p in todo if rel not in done and p.resolve() != out.resolve()]
    bad: list[str] = []
    new_file = not out.exists() or out.stat().st_size == 0
    n_done, t0 = 0, time.perf_counter()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for names, arr in _batches(todo, size, args.official_eval, max(1, args.batch), bad):
            x = (torch.from_numpy(arr).to(device) - mean) / std
            writer.writerows(head_stats(model, x, precision=args.precision, image_ids=names))
            f.flush()
            n_done += len(names)
            rate = n_done / max(time.perf_counter() - t0, 1e-9)
            print(f"\r{n_done}/{len(todo)} images, {rate:.1f} images/s, {len(bad)} skipped",
                  end="", file=sys.stderr, flush=True)
    print(f"\n{n_done} images done, {len(done)} already in {out}, {len(bad)} skipped (unreadable)",
          file=sys.stderr)
    for rel in bad[:20]:
        print(f"  skipped: {rel}", file=sys.stderr)
    if args.summary:
        with out.open(newline="") as f:
            summary_figure(list(csv.DictReader(f)), args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
