"""SDPA vs the explicit softmax on CrossFormer's group shapes (why the fast path cannot win much on CPU).

    .venv/bin/python benchmarks/bench_sdpa_cpu.py

Shapes are crossformer_t's at 224 with batch 8: (B·nG, heads, N=49, d=32) for stage 0, 2, 3 (and one more).
q/k/v are strided views of a qkv tensor, as in the model; the DPB bias is a (1, heads, N, N) mask.
Prints the median of 30 calls (ms) for the explicit path and SDPA, after 5 warm-ups, 2 threads, in fp32 and —
where :func:`crossformer.precision.bf16_supported` — with bf16 tensors (what bf16 autocast runs): at N = 49 the
bf16 kernels are slower than fp32 on AVX512-BF16/AMX here, which is what keeps a bf16 forward of CrossFormer-T
above half the fp32 time (docs/performance.md, bf16 section).
"""

from __future__ import annotations

import statistics
import time

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crossformer.precision import bf16_supported  # noqa: E402


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
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_supported(torch.device("cpu")) else [])
    if torch.bfloat16 not in dtypes:
        print("# bf16: not native here (emulated, slower than fp32) — fp32 rows only")
    print(f"# torch {torch.__version__}, CPU, 2 threads; median ms of 30")
    print(f"{'(B·nG, heads, N, d)':<22}{'dtype':>10}{'explicit':>10}{'sdpa':>10}{'sdpa/explicit':>15}"
          f"{'sdpa/sdpa fp32':>16}")
    for bg, h, n, d in [(512, 2, 49, 32), (128, 4, 49, 32), (32, 8, 49, 32), (8, 16, 49, 32)]:
        fp32_sdpa = None
        for dtype in dtypes:
            qkv = torch.randn(bg, n, 3, h, d).to(dtype)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)       # (B·nG, heads, N, d) strided views
            bias = torch.randn(1, h, n, n).to(dtype)
            scale = d ** -0.5
            with torch.inference_mode():
                t_exp = median_ms(lambda: ((q * scale) @ k.transpose(-2, -1) + bias).softmax(-1) @ v)
                t_sdpa = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale))
            fp32_sdpa = fp32_sdpa or t_sdpa
            print(f"{str((bg, h, n, d)):<22}{str(dtype).removeprefix('torch.'):>10}{t_exp:>10.2f}{t_sdpa:>10.2f}"
                  f"{t_sdpa / t_exp:>15.2f}{t_sdpa / fp32_sdpa:>16.2f}")


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
