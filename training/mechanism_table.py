"""What the demo model learned, per block × head, averaged over held-out figures (for the model card).

    .venv/bin/python training/mechanism_table.py                     # 100 figures at 224×224
    .venv/bin/python training/mechanism_table.py --n 50 --size 320x320 --json /tmp/mech.json

For every block and head, from the model's own forward trace (the app's diagnostics, ``crossformer/analysis/heads.py``):

* ``DPB range`` — max − min of the learned bias table over all ``(2G−1)²`` offsets of the block's group size
  (a constant table moves no attention: softmax ignores a constant shift). Per block it is the same for
  every image; reported once.
* ``entropy / ln N`` — attention entropy over the real keys, averaged over real queries, divided by the
  entropy of uniform attention over a full group (1.0 = the head averages its group).
* ``distance`` — mean attention distance in input pixels.
* ``DPB share`` — the fraction of attention mass the DPB moves (total variation between attention with and
  without the bias term).

Nothing here is a training target: these numbers are measured, not shaped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crossformer  # noqa: E402
from crossformer import navon  # noqa: E402
from crossformer.analysis.heads import trace_head_stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_demo import EVAL_SEED, parse_size, to_tensor  # noqa: E402


def mechanism_rows(model: torch.nn.Module, images: np.ndarray) -> list[dict]:
    """One row per block × head, each number averaged over ``images`` ``uint8 (n, H, W, 3)``."""
    acc: dict[tuple[int, int], dict[str, list[float]]] = {}
    meta: dict[int, dict] = {}
    for img in images:
        with torch.no_grad():
            trace = model.forward_trace(to_tensor(img[None], model.cfg.mean, model.cfg.std))
        st = trace_head_stats(trace)
        for i, b in enumerate(trace.all_blocks()):
            table = np.asarray(b.dpb_table, np.float64)
            meta[i] = {"block": b.name, "kind": b.layout.kind, "describe": b.layout.describe(),
                       "dpb_range": table.max(0) - table.min(0)}
            for h in range(b.heads):
                cell = acc.setdefault((i, h), {"entropy_ratio": [], "distance_px": [], "dpb_share": []})
                cell["entropy_ratio"].append(st["entropy"][i, h] / st["max_entropy"][i])
                cell["distance_px"].append(st["distance_px"][i, h])
                cell["dpb_share"].append(st["dpb_share"][i, h])
    rows = []
    for (i, h), cell in sorted(acc.items()):
        rows.append({"block": meta[i]["block"], "kind": meta[i]["kind"], "head": h,
                     "dpb_range": float(meta[i]["dpb_range"][h]),
                     **{k: float(np.mean(v)) for k, v in cell.items()},
                     "entropy_ratio_min": float(np.min(cell["entropy_ratio"]))})
    return rows


def markdown(rows: list[dict], size: tuple[int, int], n: int) -> str:
    lines = [f"Held-out figures: {n} at {size[0]}×{size[1]} (seed {EVAL_SEED}).", "",
             "| block | kind | head | DPB range | entropy / ln N (mean, min) | distance (px) | DPB share |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['block']} | {r['kind'].upper()} | {r['head']} | {r['dpb_range']:.3f} | "
                     f"{r['entropy_ratio']:.3f}, {r['entropy_ratio_min']:.3f} | {r['distance_px']:.1f} | "
                     f"{r['dpb_share']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(ROOT / "assets" / "crossformer_demo.safetensors"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", default="224x224")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = crossformer.load_checkpoint(args.weights)
    model.eval()
    size = parse_size(args.size)
    images, _ = navon.navon_batch(EVAL_SEED, args.n, size)
    rows = mechanism_rows(model, images)
    print(markdown(rows, size, args.n))
    if args.json:
        Path(args.json).write_text(json.dumps({"size": list(size), "n": args.n, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
