"""NumPy reference vs PyTorch on CPU: CrossFormer-T, one 224×224 image, 2 threads. Goal: NumPy ≤ 3 × PyTorch.

    .venv/bin/python benchmarks/bench_reference.py [--repeats 9] [--threads 2]

On a machine whose cores are busy with other jobs, 2-thread runs of both libraries slow down erratically (their
BLAS/OpenMP threads wait on each other while descheduled); ``--threads 1`` then gives the steadier comparison.

Time: median and min of ``--repeats`` runs after two warm-up runs, NumPy and PyTorch interleaved run by run so
that a busy machine slows both alike; the ratio is the median of the per-pair ratios (and the ratio of minima).
Two pairs are timed: logits only (``reference.forward(trace=False)`` vs ``model(x)``, the fused SDPA path) and
with the full trace (``reference.forward`` vs ``model.forward_trace``).
Memory: each side runs two calls in a fresh subprocess (Linux only). Before each call the peak resident set
size is reset (``/proc/self/clear_refs``); "+" is the call's peak RSS (``VmHWM``) minus the RSS just before it.
The first call also pays one-time costs (BLAS buffers, thread pools); in the second, memory that the allocator
kept from the first is already counted in "before". ``tracemalloc`` sees every NumPy array, so for NumPy it
gives the peak of array memory allocated during the call.
"""

from __future__ import annotations

import argparse
import os
import sys

THREADS = "2"
if "--threads" in sys.argv:
    THREADS = sys.argv[sys.argv.index("--threads") + 1]
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):   # before numpy loads its BLAS
    os.environ[var] = THREADS

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crossformer import reference  # noqa: E402

MODEL, SIZE = "crossformer_t", 224


def status_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident set size of this process, from /proc (Linux only)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); ru_maxrss cannot be reset and is inherited over fork."""
    Path("/proc/self/clear_refs").write_text("5")


def make_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)


def memory_child(side: str, weights: str) -> None:
    """Two forward passes in this fresh process; print the memory figures of each as JSON."""
    import tracemalloc
    with np.load(weights) as z:
        sd = {k: z[k] for k in z.files}
    x = make_input()
    if side == "numpy":
        cfg = json.loads(Path(weights).with_suffix(".json").read_text())
        run = lambda: reference.forward(sd, x, cfg, trace=False)  # noqa: E731
    else:
        import torch
        import crossformer
        torch.set_num_threads(int(THREADS))
        model = crossformer.create_model(MODEL).eval()
        crossformer.load_official_state_dict(model, sd)
        xt = torch.from_numpy(x)
        torch.set_grad_enabled(False)
        run = lambda: model(xt)  # noqa: E731
    out = {"loaded_rss_mib": status_mib("VmRSS")}
    for call in ("first", "steady"):
        before = status_mib("VmRSS")
        reset_peak_rss()
        tracemalloc.start()
        run()
        out[f"{call}_tracemalloc_mib"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        out[f"{call}_peak_rss_mib"] = status_mib("VmHWM")
        out[f"{call}_extra_mib"] = out[f"{call}_peak_rss_mib"] - before
    print(json.dumps(out))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", default=THREADS)
    parser.add_argument("--memory-child", nargs=2, metavar=("SIDE", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    import torch
    import crossformer
    from crossformer.state_dict import to_numpy
    torch.set_num_threads(int(THREADS))
    model = crossformer.create_model(MODEL).eval()
    sd = to_numpy(model)
    x = make_input()
    xt = torch.from_numpy(x)
    load_before = os.getloadavg()

    pairs = {
        "logits": (lambda: reference.forward(sd, x, model.cfg, trace=False), lambda: model(xt)),
        "trace": (lambda: reference.forward(sd, x, model.cfg), lambda: model.forward_trace(xt)),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"numpy": [], "torch": []} for k in pairs}
    with torch.inference_mode():
        for name, (np_fn, torch_fn) in pairs.items():
            for _ in range(2):                                   # warm-up
                np_fn(), torch_fn()
            for _ in range(args.repeats):                        # interleaved
                times[name]["numpy"].append(timed(np_fn))
                times[name]["torch"].append(timed(torch_fn))
    load_after = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.npz"
        np.savez(weights, **sd)
        weights.with_suffix(".json").write_text(json.dumps(model.cfg.to_dict()))
        memory = {}
        for side in ("numpy", "torch"):
            run = subprocess.run([sys.executable, __file__, "--threads", THREADS, "--memory-child", side, str(weights)],
                                 capture_output=True, text=True, check=True)
            memory[side] = json.loads(run.stdout.strip().splitlines()[-1])

    print(f"CrossFormer-T ({MODEL}), input 1×3×{SIZE}×{SIZE}, {THREADS} thread(s) "
          f"(torch.set_num_threads, OMP/OPENBLAS/MKL_NUM_THREADS)")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; numpy {np.__version__}, "
          f"torch {torch.__version__}; load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    print(f"{args.repeats} interleaved runs after 2 warm-ups; seconds per forward pass\n")
    print(f"{'':34s}{'median':>9s}{'min':>9s}")
    for name, label in (("logits", "logits only"), ("trace", "with full trace")):
        t, n = times[name]["torch"], times[name]["numpy"]
        print(f"{'PyTorch CPU, ' + label:34s}{statistics.median(t):9.3f}{min(t):9.3f}")
        print(f"{'NumPy reference, ' + label:34s}{statistics.median(n):9.3f}{min(n):9.3f}")
        paired = statistics.median(a / b for a, b in zip(n, t))      # each NumPy run over the PyTorch run beside it
        print(f"{'ratio NumPy / PyTorch':34s}{paired:8.2f}×{min(n) / min(t):8.2f}×   (median of paired runs; "
              f"ratio of minima)  goal ≤ 3×: {'met' if paired <= 3 else 'NOT met'}\n")
    n, t = memory["numpy"], memory["torch"]
    print("memory of a logits-only forward pass, MiB (fresh process each; the model and weights already loaded)")
    print(f"{'':22s}{'RSS loaded':>12s}{'1st call +':>12s}{'2nd call +':>12s}{'peak RSS':>10s}{'tracemalloc':>13s}")
    for label, m in (("PyTorch CPU", t), ("NumPy reference", n)):
        peak = max(m["first_peak_rss_mib"], m["steady_peak_rss_mib"])
        print(f"{label:22s}{m['loaded_rss_mib']:12.0f}{m['first_extra_mib']:12.0f}{m['steady_extra_mib']:12.0f}"
              f"{peak:10.0f}{m['steady_tracemalloc_mib']:13.0f}")
    print("N-th call + = peak RSS during that call − RSS just before it; tracemalloc = peak memory allocated\n"
          "during the 2nd call as tracemalloc sees it: every NumPy array, none of PyTorch's tensors")

if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
