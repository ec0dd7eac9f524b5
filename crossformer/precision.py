"""Which precision a heavy pass runs in: bf16 autocast where the hardware does bf16 natively, else fp32.

bf16 autocast pays only where the matrix units do bf16 (measured on this project's CPU with AVX512-BF16:
2.1–2.9× faster than fp32). Elsewhere it is emulated and slower, so it is detected, never assumed:

* CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer).
* CPU: the ``avx512_bf16`` or ``amx_bf16`` flags of ``/proc/cpuinfo`` (Linux); other systems: fp32.

The trace and the NumPy comparison always stay fp32 (they are the reference numbers); heavy passes
(training, attributions, occlusion, scans, dataset statistics) use :func:`autocast`.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 autocast runs natively (and so faster than fp32) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve(precision: str, device: torch.device | str) -> str:
    """``"auto"`` → ``"bf16"`` where :func:`bf16_supported`, else ``"fp32"``; explicit values pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str = "auto") -> Iterator[str]:
    """Run the block in ``precision`` on ``device`` (bf16 autocast or plain fp32); yields the one used."""
    device = torch.device(device)
    used = resolve(precision, device)
    if used == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield used
    else:
        yield used
