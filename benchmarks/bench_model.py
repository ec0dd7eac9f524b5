"""Latency of the fused (SDPA) path, the explicit-softmax path and ``forward_trace``; fp32 against bf16.

    .venv/bin/python benchmarks/bench_model.py                       # CPU, 2 threads (the figures in docs/performance.md)
    .venv/bin/python benchmarks/bench_model.py --tables bf16         # only the fp32 / bf16 table
    .venv/bin/python benchmarks/bench_model.py --device cuda --amp bf16

Table ``paths``: for each model and batch, the median of ``--runs`` timed runs after ``--warmup`` runs,
the ratios fast/explicit and trace/fast, and peak memory (CUDA: ``max_memory_allocated``; CPU: the growth
of the process's peak RSS during that measurement, which only shows new high-water marks).

Table ``bf16``: the plain forward (fused path) in fp32 and under bf16 autocast
(:func:`crossformer.precision.autocast`), timed in interleaved repeats (fp32, bf16, fp32, …) so that a load
change on a shared machine hits both alike; prints the median of each and bf16/fp32. Only where
:func:`crossformer.precision.bf16_supported` says the device does bf16 natively (else a note, no rows).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import crossformer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fn, device: torch.device, warmup: int, runs: int) -> tuple[float, float]:
    """Median seconds per call and peak memory (MB) of ``fn``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _peak_rss_mb()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda"
            else _peak_rss_mb() - rss0)
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["crossformer_t", "crossformer_s", "crossformer_pp_s"])
    ap.add_argument("--tables", nargs="+", choices=["paths", "bf16"], default=["paths", "bf16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == "bf16"
           else contextlib.nullcontext())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# torch {torch.__version__}, {name}, input {args.size}×{args.size}, amp={args.amp}, "
          f"median of {args.runs} after {args.warmup} warm-up (cpu count {os.cpu_count()}, "
          f"load average {load:.1f} at start{' — machine loaded, compare ratios only' if load > 1 else ''})")
    if "paths" in args.tables:
        paths_table(args, device, amp)
    if "bf16" in args.tables:
        bf16_table(args, device)


def interleaved(fns: dict[str, Callable[[], None]], device: torch.device, warmup: int,
                runs: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (a, b, a, b, …) after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bf16_table(args: argparse.Namespace, device: torch.device) -> None:
    """fp32 vs bf16 autocast of the plain (fused) forward, interleaved; prints bf16/fp32 per row."""
    from crossformer.precision import autocast, bf16_supported, bf16_weights

    if not bf16_supported(device):
        print(f"# bf16: not native here ({device}: precision.bf16_supported is False; autocast would be emulated, "
              f"slower than fp32, and precision 'auto' picks fp32) — no bf16 rows")
        return
    print(f"\n# plain forward, fp32 vs bf16 autocast, interleaved, median of {args.runs}")
    print("# bf16w: the same under autocast on precision.bf16_weights(model): bf16 weights, oneDNN linears on CPU "
          "(bit-identical outputs; what the stats CLI runs)")
    print(f"{'model':<18}{'batch':>6}{'fp32 ms':>10}{'bf16 ms':>10}{'bf16w ms':>10}{'bf16/fp32':>11}"
          f"{'bf16w/fp32':>12}")
    for model_name in args.models:
        model = crossformer.create_model(model_name).to(device).eval().set_fused_attention(True)
        twin = bf16_weights(model)
        for batch in args.batches:
            x = torch.randn(batch, 3, args.size, args.size, device=device)

            def run(precision: str, m: torch.nn.Module = model) -> None:
                with torch.inference_mode(), autocast(device, precision):
                    m(x)

            t = interleaved({"fp32": lambda: run("fp32"), "bf16": lambda: run("bf16"),
                             "bf16w": lambda: run("bf16", twin)}, device, args.warmup, args.runs)
            print(f"{model_name:<18}{batch:>6}{t['fp32'] * 1e3:>10.1f}{t['bf16'] * 1e3:>10.1f}"
                  f"{t['bf16w'] * 1e3:>10.1f}{t['bf16'] / t['fp32']:>11.2f}{t['bf16w'] / t['fp32']:>12.2f}",
                  flush=True)


def paths_table(args: argparse.Namespace, device: torch.device, amp) -> None:
    """Fused vs explicit vs trace latency and peak memory per model and batch."""
    print(f"{'model':<16}{'batch':>6}{'fast ms':>10}{'explicit ms':>13}{'trace ms':>10}"
          f"{'fast/expl':>11}{'trace/fast':>12}{'peak MB fast/expl/trace':>26}")
    for model_name in args.models:
        model = crossformer.create_model(model_name).to(device).eval()
        for batch in args.batches:
            x = torch.randn(batch, 3, args.size, args.size, device=device)

            def fast():
                with torch.inference_mode(), amp:
                    model.set_fused_attention(True)(x)

            def explicit():
                with torch.inference_mode(), amp:
                    model.set_fused_attention(False)(x)

            def trace():
                with amp:
                    model.forward_trace(x)

            t_fast, m_fast = measure(fast, device, args.warmup, args.runs)
            t_expl, m_expl = measure(explicit, device, args.warmup, args.runs)
            t_trace, m_trace = measure(trace, device, max(1, args.warmup // 2), max(3, args.runs // 2))
            model.set_fused_attention(True)
            print(f"{model_name:<16}{batch:>6}{t_fast * 1e3:>10.1f}{t_expl * 1e3:>13.1f}{t_trace * 1e3:>10.1f}"
                  f"{t_fast / t_expl:>11.2f}{t_trace / t_fast:>12.2f}"
                  f"{m_fast:>10.0f}/{m_expl:.0f}/{m_trace:.0f}")


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
