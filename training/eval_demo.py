"""Evaluate the shipped demo weights on held-out generated Navon figures at several image sizes.

    .venv/bin/python training/eval_demo.py                      # 2,000 images at 224², 320², 192×256
    .venv/bin/python training/eval_demo.py --n 200 --sizes 224x224

Prints Markdown tables (overall top-1, global-shape and local-shape accuracy, per-shape accuracy and the
most frequent confusions) that go into ``assets/MODEL_CARD.md``; ``--json`` also writes the numbers.

The evaluation images come from ``navon_batch(seed)`` with an integer seed (default 20240601); training
batches come from ``SeedSequence((seed, step, 7))`` streams, so the two never share a random stream.
Classes are balanced (80 images per class for n = 2,000).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crossformer  # noqa: E402
from crossformer import navon  # noqa: E402
from crossformer.images import normalise  # noqa: E402

log = logging.getLogger("eval_demo")

EVAL_SEED = 20240601


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def to_tensor(images: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    """``uint8 (B, H, W, 3)`` → normalised ``float32 (B, 3, H, W)`` (:func:`crossformer.images.normalise`)."""
    return torch.from_numpy(normalise(images, mean, std))


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 50) -> np.ndarray:
    """Predicted labels ``int64 (n,)`` for ``uint8 (n, H, W, 3)`` images."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch], model.cfg.mean, model.cfg.std).to(device)
        out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out)


def scores(pred: np.ndarray, labels: np.ndarray) -> dict:
    """Overall / global / local accuracy, per-shape accuracy and the top confusions."""
    pg, pl = navon.split_label(pred)
    tg, tl = navon.split_label(labels)
    per_global = {s: float((pg[tg == i] == i).mean()) for i, s in enumerate(navon.SHAPES)}
    per_local = {s: float((pl[tl == i] == i).mean()) for i, s in enumerate(navon.SHAPES)}
    wrong = pred != labels
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(labels[wrong], pred[wrong]):
        pairs[(int(t), int(p))] = pairs.get((int(t), int(p)), 0) + 1
    top = sorted(pairs.items(), key=lambda kv: -kv[1])[:5]
    return {"n": int(len(labels)), "top1": float((~wrong).mean()), "global": float((pg == tg).mean()),
            "local": float((pl == tl).mean()), "per_global": per_global, "per_local": per_local,
            "confusions": [{"true": navon.CLASS_NAMES[t], "pred": navon.CLASS_NAMES[p], "count": c}
                           for (t, p), c in top]}


def markdown(results: dict[str, dict]) -> str:
    """The tables for the model card."""
    lines = ["| input size | images | top-1 (25 classes) | global shape (5) | local shape (5) |",
             "|---|---|---|---|---|"]
    for size, r in results.items():
        lines.append(f"| {size} | {r['n']} | {100 * r['top1']:.1f} % | {100 * r['global']:.1f} % | "
                     f"{100 * r['local']:.1f} % |")
    lines += ["", "| shape | " + " | ".join(f"as global @ {s} | as local @ {s}" for s in results) + " |",
              "|---|" + "---|---|" * len(results)]
    for shape in navon.SHAPES:
        cells = " | ".join(f"{100 * r['per_global'][shape]:.1f} % | {100 * r['per_local'][shape]:.1f} %"
                           for r in results.values())
        lines.append(f"| {shape} | {cells} |")
    for size, r in results.items():
        if r["confusions"]:
            conf = "; ".join(f"{c['true']} → {c['pred']} ({c['count']})" for c in r["confusions"])
            lines += ["", f"Most frequent confusions at {size}: {conf}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(ROOT / "assets" / "crossformer_demo.safetensors"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--sizes", default="224x224,320x320,192x256")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    model, info = crossformer.load_checkpoint(args.weights)
    model.to(args.device)
    results: dict[str, dict] = {}
    for text in args.sizes.split(","):
        size = parse_size(text)
        t0 = time.time()
        images, labels = navon.navon_batch(args.seed, args.n, size)
        t1 = time.time()
        pred = predict(model, images, args.batch)
        r = scores(pred, labels)
        r["seconds_generate"], r["seconds_predict"] = round(t1 - t0, 1), round(time.time() - t1, 1)
        results[f"{size[0]}×{size[1]}"] = r
        log.info("%d×%d: top-1 %.4f, global %.4f, local %.4f (generate %.0f s, predict %.0f s)", *size,
                 r["top1"], r["global"], r["local"], t1 - t0, time.time() - t1)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"weights": str(args.weights), "seed": args.seed,
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
