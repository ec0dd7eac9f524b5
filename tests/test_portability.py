"""The same results on every CPU this project claims: with native bf16 and without it.

An AVX2-only CPU (no AVX512-BF16) is reproduced on any x86 machine by limiting oneDNN to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``): its bf16 linear then raises "could not create a primitive descriptor", exactly as
on such a CPU. These tests run in a subprocess with that limit, so they exercise the fallback everywhere; on a
real AVX2 machine the limit changes nothing and they test the same path.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from crossformer import hardware

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"
AVX2_ONLY = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "PYTHONPATH": str(ROOT)}


def _python(code: str, env: dict[str, str], timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_avx2_only_onednn_falls_back_and_stays_bit_identical() -> None:
    """The probe finds no bf16 linear, ``auto`` picks fp32, explicit bf16 runs after one warning, the copy's
    outputs equal autocast on the fp32 model (what used to raise in ``Bf16Linear.forward``)."""
    r = _python("""
        import logging, torch
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        import crossformer
        from crossformer import precision
        assert precision.native_bf16_linear() is None, "probe found a bf16 linear under ONEDNN_MAX_CPU_ISA=AVX2"
        assert precision.resolve("auto", "cpu") == "fp32"
        assert precision.resolve("bf16", "cpu") == "bf16" and precision.resolve("bf16", "cpu") == "bf16"
        torch.manual_seed(0)
        model = crossformer.create_model("crossformer_demo").eval()
        twin = precision.bf16_weights(model)
        x = torch.randn(2, 3, 72, 100)
        with torch.inference_mode(), precision.autocast("cpu", "bf16"):
            assert torch.equal(twin(x), model(x))
        print("fallback ok")
    """, AVX2_ONLY)
    assert r.returncode == 0, r.stderr
    assert "fallback ok" in r.stdout
    assert r.stderr.count("bf16 is emulated on this CPU") == 1, r.stderr     # said once, not per call
    assert "precision 'auto' would pick fp32" in r.stderr


@pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")
def test_stats_cli_bf16_on_a_cpu_without_it_says_so_and_writes_every_row(tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "stats.csv"
    r = subprocess.run([sys.executable, "-m", "crossformer.stats", "--checkpoint", str(DEMO), "--images",
                        str(images), "--out", str(out), "--size", "64", "--device", "cpu", "--precision", "bf16"],
                       cwd=tmp_path, env=AVX2_ONLY, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "bf16 is emulated on this CPU" in r.stderr
    import crossformer

    cfg = crossformer.get_config("crossformer_demo")
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * sum(h * d for h, d in zip(cfg.num_heads, cfg.depths))
    assert all(np.isfinite(float(row["entropy"])) for row in rows)


AVX2_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2
"""
BF16_CPUINFO = AVX2_CPUINFO.replace("7B13", "9B14").replace("avx2 bmi2", "avx2 avx512f avx512_bf16 bmi2")


@pytest.mark.parametrize("text, bf16, line", [
    (AVX2_CPUINFO, False, "AMD EPYC 7B13 (2 cores, x86_64; avx2; no avx512f avx512_bf16 amx_bf16)"),
    (BF16_CPUINFO, True, "AMD EPYC 9B14 (2 cores, x86_64; avx2 avx512f avx512_bf16; no amx_bf16)"),
    (None, False, "flags unknown: no /proc/cpuinfo"),
])
def test_hardware_reads_the_flags_that_decide_a_fast_path(text, bf16, line, tmp_path, monkeypatch) -> None:
    info = tmp_path / "cpuinfo"
    if text is not None:
        info.write_text(text)
    monkeypatch.setattr(hardware, "CPUINFO", info)
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    hardware._cpuinfo.cache_clear()
    try:
        assert hardware.cpu_has_bf16_flags() is bf16
        assert line in hardware.describe_cpu()
        assert hardware.describe("cpu").startswith("CPU: ")
    finally:
        hardware._cpuinfo.cache_clear()
