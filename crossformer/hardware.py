"""What this machine is: CPU model, core count, the instruction-set flags that decide a fast path, GPU name.

One owner for these facts: :mod:`crossformer.precision` reads the flags as a first filter before it probes an
op, and every benchmark prints :func:`describe` beside its numbers, so a ratio always says which machine made it.
Standard library only (torch is consulted for the GPU only when it is already imported).

    >>> describe("cpu")     # doctest: +SKIP
    'CPU: AMD EPYC (2 cores, x86_64; avx2 avx512f avx512_bf16; no amx_bf16)'
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

#: The CPU flags that decide a fast path here (x86 names as ``/proc/cpuinfo`` spells them; ``bf16`` is
#: aarch64's ``Features`` entry for the BF16 dot-product instructions).
FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
#: Flags that mean the CPU has native bf16 dot products (one is enough).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` of the first CPU in ``/proc/cpuinfo``; ``("", ∅)`` where it is missing."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return "", frozenset()
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model, flags


def cpu_flags() -> frozenset[str]:
    """The first CPU's instruction-set flags (empty where ``/proc/cpuinfo`` does not exist, e.g. macOS)."""
    return _cpuinfo()[1]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`, else the machine type)."""
    return _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"


def cpu_has_bf16_flags() -> bool:
    """True when the CPU advertises bf16 dot products (AVX512-BF16, AMX-BF16 or Arm BF16).

    A first filter only: whether an op really runs in bf16 is probed (:func:`crossformer.precision.native_bf16_linear`).
    """
    return bool(BF16_FLAGS & cpu_flags())


def describe_cpu() -> str:
    """``"<model> (<n> cores, <arch>; <flags>)"``: which of :data:`FLAGS_THAT_MATTER` are present or absent."""
    flags = cpu_flags()
    have = [f for f in FLAGS_THAT_MATTER if f in flags]
    lack = [f for f in FLAGS_THAT_MATTER if f not in flags]
    if not flags:
        detail = "flags unknown: no /proc/cpuinfo"
    else:
        detail = " ".join(have) if have else "none of " + " ".join(FLAGS_THAT_MATTER)
        if lack and have:
            detail += "; no " + " ".join(lack)
    return f"{cpu_model()} ({os.cpu_count()} cores, {platform.machine()}; {detail})"


def describe_gpu(device: object = None) -> str | None:
    """``"<name> (<memory> GiB, capability <x.y>)"`` for a CUDA ``device`` (or the current one when ``None`` and CUDA is up),
    else ``None``. Reads torch only when it is already imported."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(dev)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor})"


def describe(device: object = None) -> str:
    """The hardware a run used: the CPU line, plus the GPU line for a CUDA ``device`` (``None``: whenever a CUDA
    GPU is visible to an imported torch)."""
    gpu = describe_gpu(None if device is None else device) if device is None or str(device).startswith("cuda") \
        else None
    return f"CPU: {describe_cpu()}" + (f"\nGPU: {gpu}" if gpu else "")
