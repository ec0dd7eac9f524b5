"""SDPA vs the explicit softmax on CrossFormer's group shapes (why the fast path cannot win much on CPU).

    .venv/bin/python benchmarks/bench_sdpa_cpu.py

Shapes are crossformer_t's at 224 with batch 8: (B·nG, heads, N=49, d=32) for stage 0, 2, 3 (and one more).
q/k/v are strided views of a qkv tensor, as in the model; the DPB bias is a (1, heads, N, N) mask.
Prints the median of 30 calls (ms) for the explicit path and SDPA, after 5 warm-ups, 2 threads.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(fn, runs: int = 30) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    torch.set_num_threads(2)
    print(f"# torch {torch.__version__}, CPU, 2 threads; median ms of 30")
    print(f"{'(B·nG, heads, N, d)':<22}{'explicit':>10}{'sdpa':>10}{'sdpa/explicit':>15}")
    for bg, h, n, d in [(512, 2, 49, 32), (128, 4, 49, 32), (32, 8, 49, 32), (8, 16, 49, 32)]:
        qkv = torch.randn(bg, n, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)       # (B·nG, heads, N, d) strided views
        bias = torch.randn(1, h, n, n)
        scale = d ** -0.5
        with torch.inference_mode():
            t_exp = median_ms(lambda: ((q * scale) @ k.transpose(-2, -1) + bias).softmax(-1) @ v)
            t_sdpa = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale))
        print(f"{str((bg, h, n, d)):<22}{t_exp:>10.2f}{t_sdpa:>10.2f}{t_sdpa / t_exp:>15.2f}")


if __name__ == "__main__":
    main()
