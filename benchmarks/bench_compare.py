"""What turning on A/B compare costs: B's forward trace, the per-head statistics of both traces and the
difference figure, against A's own trace (ratios printed, measured in one run).

Run from the repository root (prints one line per size; say so if the machine is loaded):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_compare.py [--variant crossformer_t] [--sizes 96 224]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import crossformer
from crossformer.analysis.compare import head_stat_difference
from crossformer.analysis.heads import trace_head_stats
from viz.compare_figures import difference_figure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="crossformer_t", help="B's architecture (random weights)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    args = ap.parse_args(argv)
    a_model, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    b_model = crossformer.create_model(args.variant).eval()
    load = os.getloadavg()[0]
    sys.stdout.write(f"{torch.get_num_threads()} threads, load average {load:.1f}"
                     f"{' (machine loaded: absolute times are noisy, ratios less so)' if load > 1 else ''}\n")
    with torch.no_grad():                                  # warm-up: first-call allocations are not measured
        a_model.forward_trace(torch.zeros(1, 3, 64, 64))
        b_model.forward_trace(torch.zeros(1, 3, 64, 64))
    for size in args.sizes:
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            t0 = time.perf_counter()
            ta = a_model.forward_trace(x)
            t1 = time.perf_counter()
            tb = b_model.forward_trace(x)
            t2 = time.perf_counter()
        sa, sb = trace_head_stats(ta), trace_head_stats(tb)
        t3 = time.perf_counter()
        difference_figure(head_stat_difference(sa, sb))
        t4 = time.perf_counter()
        a_s, b_s, stats_s, fig_s = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        sys.stdout.write(f"{size}x{size}: A trace (demo) {a_s:.2f} s · B trace ({args.variant}) {b_s:.2f} s "
                         f"({b_s / a_s:.1f}x A) · both head stats {stats_s:.3f} s · difference figure {fig_s:.3f} s "
                         f"· compare extras without B's trace = {(stats_s + fig_s) / a_s:.2f}x A's trace\n")
    return 0


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
