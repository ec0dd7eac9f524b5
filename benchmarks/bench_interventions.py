"""Time the head-importance scan (issue 14 item 2a): every head of every block ablated once, at 224 × 224.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_interventions.py [--models crossformer_demo crossformer_s] [--batch 16]

Prints seconds per scan in fp32 and bf16, the speed ratio, and max |Δ| between the bf16 and fp32
``delta_logit``. Goals on this project's 2-core CPU: demo ≤ 3 s, S ≤ 30 s. Random (official-init) weights:
the timing does not depend on them. bf16 is forced even where :mod:`crossformer.precision` would pick fp32.
"""

from __future__ import annotations

import sys

import argparse
import time

import numpy as np
import torch

import crossformer
from crossformer.precision import bf16_supported

GOALS = {"crossformer_demo": 3.0, "crossformer_s": 30.0}


def scan(model: torch.nn.Module, x: torch.Tensor, precision: str, batch: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = crossformer.head_importance(model, x, target=0, kind="zero", precision=precision, batch=batch)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["crossformer_demo", "crossformer_s"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native bf16: {bf16_supported('cpu')}")
    for name in args.models:
        model = crossformer.create_model(name).eval()
        x = torch.randn(1, 3, args.size, args.size)
        with torch.no_grad():
            model(x)                                                  # warm caches (layouts, DPB tables)
        t32, r32 = scan(model, x, "fp32", args.batch)
        t16, r16 = scan(model, x, "bf16", args.batch)
        n = int(np.isfinite(r32["delta_logit"]).sum())
        diff = float(np.nanmax(np.abs(r16["delta_logit"] - r32["delta_logit"])))
        spread = float(np.nanmax(np.abs(r32["delta_logit"])))
        goal = GOALS.get(name)
        print(f"{name:18s} {n:4d} heads  fp32 {t32:7.2f} s  bf16 {t16:7.2f} s  fp32/bf16 {t32 / t16:4.2f}×  "
              f"max|Δbf16−Δfp32| {diff:.3g} (max |Δfp32| {spread:.3g})"
              + (f"  goal ≤ {goal:.0f} s: {'met' if min(t32, t16) <= goal else 'missed'}" if goal else ""))


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
