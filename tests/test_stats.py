"""crossformer.stats: on-device per-head statistics equal the trace-based diagnostics; the CLI."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import summary_plugin
import torch

import crossformer
from crossformer.analysis.heads import trace_head_stats
from crossformer.stats import FIELDS, head_stats
from crossformer.stats_cli import SUMMARY_WRITERS

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"


def check_against_trace(model, x: torch.Tensor) -> None:
    rows = head_stats(model, x)
    n_heads = sum(h * d for h, d in zip(model.cfg.num_heads, model.cfg.depths))
    assert len(rows) == x.shape[0] * n_heads
    assert all(set(r) == set(FIELDS) for r in rows)
    for i in range(x.shape[0]):
        ref_trace = model.forward_trace(x[i:i + 1])
        ref = trace_head_stats(ref_trace)
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


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossformer.stats", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


def with_summary_writer(tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run whose summary writer is registered as ``pip install`` registers it."""
    return summary_plugin.registered_env(tmp_path / "plugins", SUMMARY_WRITERS)


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
                 "--device", "cpu", "--out", str(out), "--summary", str(summary), env=with_summary_writer(tmp_path))
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


# ---- the CLI at the edges: arguments, hostile folders, resume, the app's loader (issue 28) -------------
PER_IMAGE = 60                                   # rows per image of the demo model (blocks × heads)
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")


def cli(capsys, *args: str) -> tuple[int, str]:
    """``crossformer.stats.main`` in this process: ``(exit code, stderr)``."""
    from crossformer.stats import main

    code = main(list(args))
    return code, capsys.readouterr().err


def write_images(folder: Path, names: list[str], seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(folder / name)


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def same_numbers(a: list[list[str]], b: list[list[str]]) -> None:
    """Same header, same image/block/head in the same order, numbers equal to 1e-6 relative (1e-5 absolute:
    fp32 sums over up to N² terms, as :func:`check_against_trace`)."""
    assert a[0] == b[0] == list(FIELDS) and len(a) == len(b)
    for ra, rb in zip(a[1:], b[1:]):
        assert ra[:5] == rb[:5] and ra[9] == rb[9]
        np.testing.assert_allclose([float(v) for v in ra[5:9] + ra[10:]], [float(v) for v in rb[5:9] + rb[10:]],
                                   rtol=1e-6, atol=1e-5)


def base_args(images: Path, out: Path, *extra: str) -> list[str]:
    return ["--checkpoint", str(DEMO), "--images", str(images), "--out", str(out), "--size", "64",
            "--batch", "2", "--device", "cpu", "--precision", "fp32", *extra]


@needs_demo
@pytest.mark.parametrize("case, phrase", [
    ("missing folder", "no such folder"),
    ("out in a missing folder", "does not exist"),
    ("out is a folder", "is a folder"),
    ("size below the minimum", "outside"),
    ("batch 0", "outside"),
    ("summary not html or png", ".html or .png"),
])
def test_bad_arguments_are_one_message_and_nothing_written(tmp_path, capsys, case, phrase) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    write_images(images, ["a.png"])
    out = tmp_path / "stats.csv"
    args = {"missing folder": base_args(tmp_path / "nope", out),
            "out in a missing folder": base_args(images, tmp_path / "no" / "stats.csv"),
            "out is a folder": base_args(images, images),
            "size below the minimum": base_args(images, out) + ["--size", "16"],
            "batch 0": base_args(images, out) + ["--batch", "0"],
            "summary not html or png": base_args(images, out) + ["--summary", str(tmp_path / "s.pdf")]}[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = cli(capsys, *args)
    assert code != 0 and phrase in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@needs_demo
def test_fifo_symlink_loops_and_devices_are_skipped_and_counted(tmp_path: Path) -> None:
    """A FIFO named y.png is never opened (it would block forever), a self-referential link and a link back
    to a parent folder are counted as loops; the images next to them are done."""
    images = tmp_path / "imgs"
    write_images(images, ["a.png", "sub/b.png"])
    os.mkfifo(images / "y.png")
    os.symlink("self.png", images / "self.png")
    os.symlink("..", images / "sub" / "up")
    os.symlink("missing.png", images / "dangling.png")
    out = tmp_path / "stats.csv"
    r = run_cli(*base_args(images, out))
    assert r.returncode == 0, r.stderr
    assert {row[0] for row in read_rows(out)[1:]} == {"a.png", "sub/b.png"}
    for count in ("4 skipped", "1 not a regular file", "2 symlink loop", "1 broken symlink"):
        assert count in r.stderr, r.stderr


@needs_demo
def test_an_unreadable_folder_is_counted(tmp_path, capsys, monkeypatch) -> None:
    images = tmp_path / "imgs"
    write_images(images, ["a.png", "locked/b.png"])
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)        # root ignores chmod: make the folder fail to list
    code, err = cli(capsys, *base_args(images, tmp_path / "stats.csv"))
    assert code == 0, err
    assert "1 skipped (1 unreadable folder)" in err and "locked/" in err, err


@needs_demo
def test_exif_rotated_and_16_bit_images_give_the_apps_numbers(tmp_path, capsys) -> None:
    import app_samples as S

    from crossformer.checkpoint import load_checkpoint
    from pages.common.images import Preprocessing, decode_image, normalise, preprocess

    images = tmp_path / "imgs"
    images.mkdir()
    files = {"photo.jpg": S.exif_rotated(6, h=120, w=240), "scan16.png": S.gray16(32896)}
    for name, data in files.items():
        (images / name).write_bytes(data)
    out = tmp_path / "stats.csv"
    code, err = cli(capsys, "--checkpoint", str(DEMO), "--images", str(images), "--out", str(out), "--official-eval",
                    "--device", "cpu", "--precision", "fp32")
    assert code == 0, err
    model, _ = load_checkpoint(DEMO)
    x = torch.from_numpy(np.stack([                      # the app's path: decode, official transform, normalise
        normalise(preprocess(decode_image(data, name).rgb, Preprocessing("official", 224)).pixels,
                  model.cfg.mean, model.cfg.std) for name, data in files.items()]))
    want = [[str(r[f]) for f in FIELDS] for r in head_stats(model, x, image_ids=list(files))]
    same_numbers(read_rows(out), [list(FIELDS)] + want)


@needs_demo
def test_a_cut_csv_is_resumed_without_glued_rows(tmp_path, capsys) -> None:
    images = tmp_path / "imgs"
    names = ["a.png", "b.png", "c.png", "d.png"]
    write_images(images, names)
    ref, out = tmp_path / "ref.csv", tmp_path / "stats.csv"
    assert cli(capsys, *base_args(images, ref))[0] == 0
    data = ref.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.6)])             # cut mid-row, in the third image
    (tmp_path / "stats.csv.json").write_bytes((tmp_path / "ref.csv.json").read_bytes())
    code, err = cli(capsys, *base_args(images, out))
    assert code == 0, err
    rows = read_rows(out)
    assert len(rows) == 1 + len(names) * PER_IMAGE and all(len(r) == len(FIELDS) for r in rows)
    same_numbers(rows, read_rows(ref))


@needs_demo
def test_a_killed_run_leaves_whole_rows_and_resumes(tmp_path, capsys, monkeypatch) -> None:
    """Killed after its first batch: OUT does not exist half-written, the part holds whole fsynced rows; a
    cut at the end of the part is dropped and that image run again; the result equals an uninterrupted run."""
    import crossformer.stats_cli as stats_cli

    images = tmp_path / "imgs"
    names = ["a.png", "b.png", "c.png", "d.png", "e.png"]
    write_images(images, names)
    ref, out = tmp_path / "ref.csv", tmp_path / "stats.csv"
    assert cli(capsys, *base_args(images, ref))[0] == 0
    calls = []

    def dies_in_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return head_stats(*args, **kwargs)

    monkeypatch.setattr(stats_cli, "head_stats", dies_in_the_second_batch)
    code, err = cli(capsys, *base_args(images, out))
    assert code == 130 and "resumes" in err, err
    monkeypatch.undo()
    assert not out.exists()
    part = tmp_path / "stats.csv.part0-of-1"
    assert len(read_rows(part)) == 1 + 2 * PER_IMAGE
    part.write_bytes(part.read_bytes()[:-30])                  # and the kill cut the last row
    code, err = cli(capsys, *base_args(images, out))
    assert code == 0 and "1 already" in err, err               # a.png complete, b.png cut: run again
    assert not part.exists()
    same_numbers(read_rows(out), read_rows(ref))


@needs_demo
def test_resume_with_other_weights_or_settings_is_refused(tmp_path, capsys) -> None:
    from crossformer.checkpoint import load_checkpoint, save_safetensors

    images = tmp_path / "imgs"
    write_images(images, ["a.png", "b.png"])
    out = tmp_path / "stats.csv"
    assert cli(capsys, *base_args(images, out))[0] == 0
    model, _ = load_checkpoint(DEMO)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    other = tmp_path / "other.safetensors"
    save_safetensors(model, other)
    kept = out.read_bytes(), (tmp_path / "stats.csv.json").read_bytes()
    write_images(images, ["c.png"], seed=1)
    args = base_args(images, out)
    for change, phrase in ((["--checkpoint", str(other)], "other weights"), (["--size", "96"], "other preprocessing"),
                           (["--precision", "bf16"], "another precision")):
        code, err = cli(capsys, *args, *change)
        assert code == 1 and phrase in err and "resume refused" in err, err
        assert (out.read_bytes(), (tmp_path / "stats.csv.json").read_bytes()) == kept
    (tmp_path / "stats.csv.json").unlink()                        # a CSV with no record of its weights
    code, err = cli(capsys, *args)
    assert code == 1 and "no record of the checkpoint" in err, err
    assert out.read_bytes() == kept[0]


@needs_demo
@pytest.mark.parametrize("content, phrase", [
    (b"id,name,score\n1,x,0.5\n", "not written by python -m crossformer.stats"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
])
def test_another_tools_file_at_out_is_left_alone(tmp_path, capsys, content, phrase) -> None:
    images = tmp_path / "imgs"
    write_images(images, ["a.png"])
    out = tmp_path / "theirs.csv"
    out.write_bytes(content)
    code, err = cli(capsys, *base_args(images, out))
    assert code == 1 and phrase in err and "Traceback" not in err, err
    assert out.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "theirs.csv"]


@needs_demo
def test_names_with_line_separators_round_trip(tmp_path) -> None:
    """U+2028 and a newline in file names: the CLI's CSV, its --summary and read_csv all read them back."""
    from crossformer.stats import read_csv

    images = tmp_path / "imgs"
    names = ["a\u2028b.png", "c\nd.png", "plain.png"]
    write_images(images, names)
    out, summary = tmp_path / "stats.csv", tmp_path / "s.html"
    r = run_cli(*base_args(images, out, "--summary", str(summary)), env=with_summary_writer(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "over 3 images" in summary.read_text(encoding="utf-8")
    cols = read_csv(out.read_text(encoding="utf-8"))
    assert sorted(set(cols["image"])) == sorted(names) and len(cols["image"]) == 3 * PER_IMAGE
    r2 = run_cli(*base_args(images, out))
    assert r2.returncode == 0 and "0 images done, 3 already" in r2.stderr, r2.stderr


def test_read_image_file_never_opens_a_fifo(tmp_path) -> None:
    from crossformer.images import ImageError, read_image_file

    os.mkfifo(tmp_path / "y.png")
    with pytest.raises(ImageError) as err:
        read_image_file(tmp_path / "y.png")                   # would block in open() without O_NONBLOCK
    assert err.value.reason == "not a regular file"


# ---- hostile statistics CSVs are refused before anything is sized from them ----------------------------
HEADER = "image,stage,block,kind,head,entropy,distance_px,dpb_share,output_rms\n"


def hostile_csvs() -> dict[str, tuple[str, str]]:
    many_stages = HEADER + "".join(f"a,{s},s{s}_b0,sda,0,1,1,0.1,1\n" for s in range(3000))
    return {
        "head 30,000,000": (HEADER + "a,0,s0_b0,sda,30000000,1,1,0.1,1\n", "column head"),
        "3,000 stages": (many_stages, "column stage"),
        "block index 10**9": (HEADER + "a,0,s0_b999999999,sda,0,1,1,0.1,1\n", "column block"),
        "stage of the block differs": (HEADER + "a,1,s0_b0,sda,0,1,1,0.1,1\n", "listed with stage"),
        "fractional head": (HEADER + "a,0,s0_b0,sda,0.5,1,1,0.1,1\n", "column head"),
        "infinite distance": (HEADER + "a,0,s0_b0,sda,0,1,inf,0.1,1\n", "non-finite"),
        "entropy of 1e300": (HEADER + "a,0,s0_b0,sda,0,1e300,1,0.1,1\n", "column entropy"),
        "same head twice": (HEADER + "a,0,s0_b0,sda,0,1,1,0.1,1\n" * 2, "more than once"),
        "too many values": (HEADER + "a,0,s0_b0,sda,0,1,1,0.1,1,7\n", "values for"),
        "a NUL byte": (HEADER + "a,0,s0_b0,sda,0,1\x00,1,0.1,1\n", "not a number"),
        "a 5,000-character name": (HEADER + "x" * 5000 + ",0,s0_b0,sda,0,1,1,0.1,1\n", "column image"),
        "block both sda and lda": (HEADER + "a,0,s0_b0,sda,0,1,1,0.1,1\na,0,s0_b0,lda,1,1,1,0.1,1\n", "both sda"),
    }


@pytest.mark.parametrize("case", list(hostile_csvs()))
def test_hostile_csv_is_refused_by_read_csv(case) -> None:
    from crossformer.stats import StatsFormatError, read_csv

    text, phrase = hostile_csvs()[case]
    with pytest.raises(StatsFormatError, match=phrase):
        read_csv(text)


def test_summary_figure_is_built_in_one_go(monkeypatch) -> None:
    """No per-boundary or per-item layout call: add_vline/add_shape/add_trace would each validate a
    figure-sized layout; the boundaries are one shapes list, the traces one add_traces."""
    import plotly.graph_objects as go

    from crossformer.analysis.dataset import summarise
    from crossformer.stats import read_csv
    from viz.stats_figures import stats_summary_figure

    rows = [f"img{i},{s},s{s}_b{b},{'sda' if b % 2 == 0 else 'lda'},{h},1.5,{10 + s},0.1,1.0,0,2.0"
            for i in range(3) for s in range(4) for b in range(2) for h in range(2)]
    cols = read_csv(",".join(FIELDS) + "\n" + "\n".join(rows) + "\n")
    for name in ("add_vline", "add_shape", "add_trace", "add_hline"):
        monkeypatch.setattr(go.Figure, name, lambda *a, **k: pytest.fail("a per-item layout call"))
    fig = stats_summary_figure(summarise(cols))
    assert len(fig.layout.shapes) == 4 * 3                        # 4 panels × 3 stage boundaries
    assert sorted({s.x0 for s in fig.layout.shapes}) == [1.5, 3.5, 5.5]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_demo
@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m crossformer.stats`` (gloo on CPU): each rank does every 2nd image of
    the sorted list into its own part, rank 0 merges; the CSV equals a single process's, row for row."""
    images = tmp_path / "imgs"
    write_images(images, ["a.png", "b.png", "sub/c.png", "d.png"])
    (images / "junk.png").write_text("not an image")
    ref, out = tmp_path / "ref.csv", tmp_path / "stats.csv"
    r = run_cli(*base_args(images, ref))
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "crossformer.stats", *base_args(images, out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 images done, 0 already" in r.stderr and "1 skipped (1 not an image)" in r.stderr, r.stderr[-3000:]
    same_numbers(read_rows(out), read_rows(ref))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "ref.csv", "ref.csv.json", "stats.csv",
                                                          "stats.csv.json"]
    r = run_cli(*base_args(images, out))                            # one process resumes the merged file
    assert r.returncode == 0 and "0 images done, 4 already" in r.stderr, r.stderr


def test_cli_on_a_detector_checkpoint_pads_to_32_like_mmdet(tmp_path: Path) -> None:
    """Issue 30: the statistics CLI opens an mmdet file as its backbone; a size whose stage maps would be odd
    is padded to a multiple of 32 (said once), and every image gets its image × block × head rows."""
    from PIL import Image

    import backbone_samples as B
    from crossformer.stats_heads import rows_per_image

    ckpt = B.write_mmdet(tmp_path / "mask_rcnn_crossformer_t.pth")
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "det.csv"
    r = run_cli("--checkpoint", str(ckpt), "--images", str(images), "--out", str(out), "--size", "80",
                "--device", "cpu", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("padded 80×80 → 96×96") == 1, r.stderr
    model, _ = crossformer.load_checkpoint(ckpt)
    assert model.cfg.backbone
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * rows_per_image(model)
    assert sorted({row["image"] for row in rows}) == ["a.png", "b.png"]
