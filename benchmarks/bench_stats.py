"""Cost of :func:`crossformer.stats.head_stats` against a plain forward (goal ≤ 1.5× at batch 16).

    .venv/bin/python benchmarks/bench_stats.py                     # crossformer_demo, batch 16, 224², 2 threads
    .venv/bin/python benchmarks/bench_stats.py --models crossformer_demo crossformer_s --batch 8

Interleaved repeats (plain, explicit, stats, plain, …) so a load change on a shared machine hits all alike;
prints medians and the ratios stats/plain (the goal) and explicit/plain (the floor: the statistics need the
attention probabilities, so the explicit-softmax path instead of fused SDPA). fp32, and bf16 against bf16
where :func:`crossformer.precision.bf16_supported`.

On a shared machine the speed drifts within a run, so each ratio is also given per round (stats and plain
of the same round) as the median and range over rounds, and as a ratio of process CPU time (time another
tenant takes from this VM is not counted in it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import crossformer  # noqa: E402
from crossformer.precision import autocast, bf16_supported  # noqa: E402
from crossformer.stats import head_stats  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["crossformer_demo"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    load = os.getloadavg()[0]
    out = sys.stdout
    out.write(f"# torch {torch.__version__}, CPU {args.threads} threads, batch {args.batch}, {args.size}², "
              f"median of {args.runs} interleaved; load average {load:.1f}"
              f"{' (machine loaded: compare the ratios)' if load > 1 else ''}\n")
    out.write(f"{'model':<18}{'precision':>10}{'plain ms':>10}{'explicit ms':>13}{'stats ms':>10}"
              f"{'stats/plain':>13}{'explicit/plain':>16}{'per round (range)':>22}{'CPU-time':>10}\n")
    precisions = ["fp32"] + (["bf16"] if bf16_supported(device) else [])
    if "bf16" not in precisions:
        print(f"# bf16: not native here ({device}; emulated, slower than fp32) — fp32 rows only")
    for name in args.models:
        torch.manual_seed(0)
        model = crossformer.create_model(name).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        for precision in precisions:
            def plain(fused: bool = True) -> None:
                model.set_fused_attention(fused)
                try:
                    with torch.inference_mode(), autocast(device, precision):
                        model(x)
                finally:
                    model.set_fused_attention(True)

            fns = {"plain": plain, "explicit": lambda: plain(False),
                   "stats": lambda: head_stats(model, x, precision=precision)}
            for fn in fns.values():          # warm-up
                fn()
            times: dict[str, list[float]] = {k: [] for k in fns}
            cpu: dict[str, float] = {k: 0.0 for k in fns}
            for _ in range(args.runs):
                for k, fn in fns.items():
                    c0, t0 = time.process_time(), time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
                    cpu[k] += time.process_time() - c0
            m = {k: statistics.median(v) for k, v in times.items()}
            rounds = [s / p for s, p in zip(times["stats"], times["plain"])]
            spread = f"{statistics.median(rounds):.2f} ({min(rounds):.2f}–{max(rounds):.2f})"
            out.write(f"{name:<18}{precision:>10}{m['plain'] * 1e3:>10.0f}{m['explicit'] * 1e3:>13.0f}"
                      f"{m['stats'] * 1e3:>10.0f}{m['stats'] / m['plain']:>13.2f}"
                      f"{m['explicit'] / m['plain']:>16.2f}{spread:>22}{cpu['stats'] / cpu['plain']:>10.2f}\n")
            out.flush()
    return 0


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
