"""crossformer.stats: on-device per-head statistics equal the trace-based diagnostics; the CLI."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import crossformer
from crossformer.stats import FIELDS, head_stats
from viz.diagnostics import block_head_stats

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"


def check_against_trace(model, x: torch.Tensor) -> None:
    rows = head_stats(model, x)
    n_heads = sum(h * d for h, d in zip(model.cfg.num_heads, model.cfg.depths))
    assert len(rows) == x.shape[0] * n_heads
    assert all(set(r) == set(FIELDS) for r in rows)
    for i in range(x.shape[0]):
        ref_trace = model.forward_trace(x[i:i + 1])
        ref = block_head_stats(ref_trace)
        mine = [r for r in rows if r["image"] == i]
        assert len(mine) == n_heads
        for r in mine:
            b = ref["names"].index(r["block"])
            assert r["kind"] == ref["kinds"][b] and r["stage"] == ref["stages"][b]
            for k in ("entropy", "distance_px", "dpb_share"):
                # fp32 sums over up to N² terms: 1e-6 relative (distances reach hundreds of pixels)
                np.testing.assert_allclose(r[k], ref[k][b, r["head"]], rtol=1e-6, atol=1e-5, err_msg=f"{r}")
            np.testing.assert_allclose(r["output_rms"], ref["residual_norm"][b], atol=1e-5)
            block = list(ref_trace.all_blocks())[b]
            assert r["acl"] == int(block.has_acl)
            real = (~np.asarray(block.layout.key_padding)).sum(1)   # real keys (= real queries) per group; may be 0
            np.testing.assert_allclose(r["uniform_entropy"], (real * np.log(np.maximum(real, 1))).sum() / real.sum(), rtol=1e-9)
        heads = {(r["block"], r["head"]) for r in mine}
        assert len(heads) == n_heads


def test_demo_padded_groups_batch3() -> None:
    torch.manual_seed(0)
    model = crossformer.create_model("crossformer_demo").eval()
    assert any(lay.is_padded for stage in model.plan((64, 96)) for lay in stage)
    check_against_trace(model, torch.randn(3, 3, 64, 96))


def test_a_dominant_position_bias_is_measured_as_such() -> None:
    """The DPB share comes from ``p·e^{−B}`` renormalised; with the DPB scaled ×400 (biases of tens, shares near 1) it must still
    equal the trace-based ``softmax(content)`` comparison."""
    torch.manual_seed(3)
    model = crossformer.create_model("crossformer_demo").eval()
    with torch.no_grad():
        for dpb in (m for m in model.modules() if isinstance(m, crossformer.model.DynamicPositionBias)):
            last = [m for m in dpb.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.mul_(400.0)
            last.bias.mul_(400.0)
    x = torch.randn(2, 3, 64, 96)
    assert max(float(np.abs(b.dpb_bias).max()) for b in model.forward_trace(x[:1]).all_blocks()) > 30
    assert max(r["dpb_share"] for r in head_stats(model, x)) > 0.9
    check_against_trace(model, x)


def test_crossformer_pp_small() -> None:
    torch.manual_seed(1)
    model = crossformer.create_model("crossformer_pp_s", depths=(1, 2, 1, 1)).eval()
    check_against_trace(model, torch.randn(2, 3, 72, 72))


def test_bf16_close() -> None:
    torch.manual_seed(2)
    model = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(2, 3, 64, 64)
    a = head_stats(model, x)
    b = head_stats(model, x, precision="bf16")
    assert len(a) == len(b)
    ent = np.array([[r["entropy"] for r in a], [r["entropy"] for r in b]])
    assert np.isfinite(ent).all() and np.abs(ent[0] - ent[1]).max() < 0.2


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossformer.stats", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")
def test_cli_folder_resume(tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["a.png", "b.png", "c.png", "sub/d.png", "sub/e.png"]
    for i, name in enumerate(names):
        hw = (40, 50) if i % 2 else (70, 64)
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(images / name)
    (images / "x.png").write_text("not an image")
    out = tmp_path / "stats.csv"

    r = run_cli("--checkpoint", str(DEMO), "--images", str(images), "--size", "64", "--batch", "2",
                "--device", "cpu", "--precision", "fp32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "images/s" in r.stderr
    assert re.search(r"\b1 skipped", r.stderr), r.stderr
    cfg = crossformer.get_config("crossformer_demo")
    per_image = sum(h * d for h, d in zip(cfg.num_heads, cfg.depths))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == FIELDS
    assert len(rows) == 5 * per_image
    assert sorted({row["image"] for row in rows}) == sorted(names)
    assert all(np.isfinite(float(row[k])) for row in rows for k in ("entropy", "distance_px", "dpb_share"))

    summary = tmp_path / "summary.png"
    r2 = run_cli("--checkpoint", str(DEMO), "--images", str(images), "--size", "64", "--precision", "fp32",
                 "--device", "cpu", "--out", str(out), "--summary", str(summary))
    assert r2.returncode == 0, r2.stderr
    assert summary.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0 images done, 5 already" in r2.stderr, r2.stderr
    with out.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 5 * per_image


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_logits_added_in_place_equal_the_new_tensor_path(precision) -> None:
    """Without a recorder that keeps the content, the explicit path adds the DPB (and the padding mask) into
    the content in place; the attention output must be the one of the new-tensor path, bit for bit, and
    the cached DPB bias must be left alone."""
    from crossformer.precision import autocast

    class Keeper:
        keeps_content = True

        def attention(self, *args) -> None:
            pass

    torch.manual_seed(4)
    model = crossformer.create_model("crossformer_demo").eval()
    model.set_fused_attention(False)
    blk = model.layers[0].blocks[0]
    layout = blk.layout((16, 16))
    assert layout.is_padded
    x = torch.randn(2, 256, blk.dim)
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        in_place = blk.attn(x, layout)
        bias = blk.attn.position_bias(layout.group_size, x.device, x.dtype)[1].clone()
        new = blk.attn(x, layout, Keeper())
        again = blk.attn(x, layout)
        assert torch.equal(blk.attn.position_bias(layout.group_size, x.device, x.dtype)[1], bias)
    assert torch.equal(in_place, new) and torch.equal(in_place, again)
