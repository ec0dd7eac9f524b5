"""How far bf16 autocast moves the logits from fp32: max |Δlogit| and top-1 agreement.

    .venv/bin/python benchmarks/bf16_deviation.py                  # demo set 200 × 224², random T/S/++-S, 4 images
    .venv/bin/python benchmarks/bf16_deviation.py --n 2000 --random-images 8

Rows:

* the shipped demo weights on the held-out Navon set of ``training/eval_demo.py`` (``navon_batch`` with its
  eval seed, ``--n`` images at ``--size``²), plus the top-1 accuracy in each precision;
* random-weight ``crossformer_t``, ``crossformer_s``, ``crossformer_pp_s`` (seed 0) on ``--random-images``
  Navon figures from the same set (random weights: the logits are small, so top-1 agreement there is a
  stress test, not a property of trained models).

bf16 rows run only where :func:`crossformer.precision.bf16_supported` says the device does bf16 natively
(on other hardware autocast is emulated and the app never uses it). Both passes use the plain forward.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crossformer  # noqa: E402
from crossformer import navon  # noqa: E402
from crossformer.images import normalise  # noqa: E402
from crossformer.precision import autocast, bf16_supported  # noqa: E402

EVAL_SEED = 20240601          # training/eval_demo.py's held-out seed (not imported: training/ is a script folder)
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"


def to_tensor(images: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    """``uint8 (B, H, W, 3)`` → normalised ``float32 (B, 3, H, W)`` (:func:`crossformer.images.normalise`)."""
    return torch.from_numpy(normalise(images, mean, std))


@torch.inference_mode()
def logits(model: torch.nn.Module, x: torch.Tensor, precision: str, batch: int) -> np.ndarray:
    """``(n, classes)`` float64 logits of the plain forward in ``precision``."""
    out = []
    for i in range(0, len(x), batch):
        with autocast(x.device, precision):
            out.append(model(x[i:i + batch]).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def compare(name: str, model: torch.nn.Module, x: torch.Tensor, labels: np.ndarray | None,
            batch: int) -> str:
    """One Markdown row: images, max and mean |Δlogit|, logit range, top-1 agreement (and accuracies)."""
    a, b = logits(model, x, "fp32", batch), logits(model, x, "bf16", batch)
    d = np.abs(a - b)
    agree = float((a.argmax(1) == b.argmax(1)).mean())
    acc = ("–" if labels is None else
           f"{(a.argmax(1) == labels).mean():.3f} / {(b.argmax(1) == labels).mean():.3f}")
    return (f"| {name} | {len(x)} | {d.max():.4f} | {d.mean():.4f} | {np.abs(a).max():.2f} | "
            f"{agree * 100:.1f} % | {acc} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="held-out demo images")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--random-images", type=int, default=4)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = sys.stdout
    if not bf16_supported(device):
        out.write(f"{device}: bf16 not native here (precision.bf16_supported is False) — nothing to compare\n")
        return 0
    out.write(f"# bf16 autocast vs fp32, torch {torch.__version__}, {device}, {args.size}², Navon eval seed "
              f"{EVAL_SEED}\n")
    out.write("| model | images | max \\|Δlogit\\| | mean \\|Δlogit\\| | max \\|logit\\| fp32 | top-1 agreement "
              "| top-1 accuracy fp32 / bf16 |\n|---|---|---|---|---|---|---|\n")
    images, labels = navon.navon_batch(EVAL_SEED, args.n, (args.size, args.size))
    model, _ = crossformer.load_checkpoint(DEMO)
    model = model.to(device).eval()
    x = to_tensor(images, model.cfg.mean, model.cfg.std).to(device)
    out.write(compare("demo weights (held-out Navon)", model, x, np.asarray(labels), args.batch) + "\n")
    out.flush()
    for name in ("crossformer_t", "crossformer_s", "crossformer_pp_s"):
        torch.manual_seed(0)
        model = crossformer.create_model(name).to(device).eval()
        x = to_tensor(images[:args.random_images], model.cfg.mean, model.cfg.std).to(device)
        out.write(compare(f"{name} (random weights)", model, x, None, args.batch) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
