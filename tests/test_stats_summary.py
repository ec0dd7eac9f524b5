"""The dataset summary in numbers (crossformer.analysis.dataset) and the CLI's summary figure as a plugin: written
when a writer is registered under the entry point group, and the CSV alone (with one sentence saying how to get the
figure) when none is; crossformer itself never imports viz."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path

import numpy as np
import pytest
import summary_plugin

from crossformer import stats_cli
from crossformer.analysis.dataset import UNIFORM, summarise, summary_sentences, uniform_heads
from crossformer.stats import FIELDS, read_csv

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")


def table(rows: list[tuple]) -> dict[str, np.ndarray]:
    """``read_csv`` of rows ``(image, stage, block, kind, head, entropy, distance_px, dpb_share, output_rms, acl,
    uniform_entropy)``."""
    text = ",".join(FIELDS) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows)
    return read_csv(text)


# ---- the numbers ---------------------------------------------------------------------------------------------
def test_summary_is_the_mean_and_spread_over_images_in_forward_order() -> None:
    ln4 = float(np.log(4))
    rows = []
    for i, (e, d) in enumerate([(1.0, 10.0), (1.2, 14.0), (1.4, 12.0)]):   # 3 images
        rows += [(f"im{i}", 1, "s1_b0", "sda", 0, e, d, 0.1 * i, 2.0 + i, 0, ln4),
                 (f"im{i}", 1, "s1_b0", "sda", 1, ln4, d + 1, 0.0, 2.0 + i, 0, ln4),
                 (f"im{i}", 0, "s0_b1", "lda", 0, 0.5, 30.0, 0.2, 1.0, 1, ln4),
                 (f"im{i}", 0, "s0_b0", "sda", 0, 0.7, 5.0, 0.3, 0.5 * (i + 1), 0, ln4)]
    s = summarise(table(rows))
    assert s.blocks == ("s0_b0", "s0_b1", "s1_b0") and s.kinds == ("sda", "lda", "sda")
    assert list(s.stages) == [0, 0, 1] and list(s.heads) == [1, 1, 2] and s.n_images == 3
    assert s.mean["entropy"][2, 0] == pytest.approx(1.2) and s.spread["entropy"][2, 0] == pytest.approx(
        np.std([1.0, 1.2, 1.4]))
    assert s.mean["distance_px"][2, 1] == pytest.approx(13.0) and np.isnan(s.mean["entropy"][0, 1])
    assert s.rms_mean[2] == pytest.approx(3.0) and s.rms_spread[2] == pytest.approx(np.std([2.0, 3.0, 4.0]))
    assert s.rms_mean[0] == pytest.approx(1.0)                          # one RMS per image × block, not per head
    assert list(s.acl) == [False, True, False] and np.allclose(s.uniform, ln4)
    assert uniform_heads(s) == [("s1_b0", 1, pytest.approx(1.0))]       # entropy = ln N: uniform
    assert uniform_heads(s, threshold=1.19 / ln4) == [("s1_b0", 0, pytest.approx(1.2 / ln4)),
                                                     ("s1_b0", 1, pytest.approx(1.0))]
    text = " ".join(summary_sentences(s))
    assert f"1 of 4 heads are uniform** over these 3 images (mean entropy ≥ {UNIFORM} × ln N" in text
    assert "s1_b0 h1" in text and "stage 0: SDA 5 px, LDA 30 px" in text and "ACL cooling layers after s0_b1" in text


def test_without_uniform_entropy_no_head_is_called_uniform() -> None:
    header = FIELDS[:FIELDS.index("output_rms") + 1]
    text = ",".join(header) + "\n" + "a,0,s0_b0,sda,0,5.0,3.0,0.1,1.0\n"
    s = summarise(read_csv(text))
    assert s.acl is None and np.isnan(s.uniform).all() and uniform_heads(s) == []
    assert not any("uniform" in line for line in summary_sentences(s))


# ---- the summary figure is a plugin ----------------------------------------------------------------------------
def write_images(folder: Path, n: int = 2) -> None:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"i{i}.png")


def run(tmp_path: Path, capsys, summary: str = "s.html") -> tuple[int, str]:
    images, out = tmp_path / "imgs", tmp_path / "stats.csv"
    if not images.exists():
        write_images(images)
    code = stats_cli.main(["--checkpoint", str(DEMO), "--images", str(images), "--out", str(out), "--size", "64",
                           "--device", "cpu", "--precision", "fp32", "--summary", str(tmp_path / summary)])
    return code, capsys.readouterr().err


def registered(monkeypatch, *eps: EntryPoint) -> None:
    """The entry point lookup of the CLI sees exactly ``eps``."""
    def lookup(group: str, name: str) -> EntryPoints:
        return EntryPoints(ep for ep in eps if ep.group == group and ep.name == name)
    monkeypatch.setattr(stats_cli, "entry_points", lookup)


def test_pyproject_registers_the_viz_writer() -> None:
    (ep,) = summary_plugin.declared(stats_cli.SUMMARY_WRITERS)
    assert ep.name == stats_cli.SUMMARY_WRITER
    from viz.stats_report import write_summary
    assert ep.load() is write_summary


@needs_demo
def test_a_registered_writer_draws_the_summary(tmp_path, capsys, monkeypatch) -> None:
    registered(monkeypatch, *summary_plugin.declared(stats_cli.SUMMARY_WRITERS))
    code, err = run(tmp_path, capsys)
    assert code == 0, err
    assert "over 2 images" in (tmp_path / "s.html").read_text(encoding="utf-8")
    assert f"summary: {tmp_path / 's.html'}" in err and "pip install" not in err


@needs_demo
def test_without_a_writer_the_csv_is_written_and_one_sentence_says_how(tmp_path, capsys, monkeypatch) -> None:
    registered(monkeypatch)                                              # a checkout never pip-installed
    code, err = run(tmp_path, capsys)
    assert code == 0, err
    rows = read_csv((tmp_path / "stats.csv").read_text(encoding="utf-8"))
    assert sorted(set(rows["image"])) == ["i0.png", "i1.png"]
    assert not (tmp_path / "s.html").exists() and "summary:" not in err
    said = [line for line in err.splitlines() if "pip install -e ." in line]
    assert len(said) == 1 and said[0].startswith(stats_cli.PROG) and "same command again" in said[0]
    with pytest.raises(stats_cli.SummaryUnavailable, match="pip install -e ."):
        stats_cli.write_summary(rows, tmp_path / "s.html")


@needs_demo
def test_a_writer_that_cannot_be_imported_says_which_extra_to_install(tmp_path, capsys, monkeypatch) -> None:
    registered(monkeypatch, EntryPoint("figure", "viz.no_such_module:write_summary", stats_cli.SUMMARY_WRITERS))
    code, err = run(tmp_path, capsys)
    assert code == 0 and (tmp_path / "stats.csv").exists() and not (tmp_path / "s.html").exists()
    assert "viz.no_such_module:write_summary cannot be imported" in err and "crossformer-explorer[app]" in err


def test_png_without_an_exporter_falls_back_to_html(tmp_path, monkeypatch, caplog) -> None:
    from viz import stats_report
    from viz.export import ExportUnavailable

    def no_png(fig) -> bytes:
        raise ExportUnavailable("no chromium")
    monkeypatch.setattr(stats_report, "figure_to_png", no_png)
    rows = [(f"im{i}", 0, "s0_b0", "sda", h, 1.0, 3.0, 0.1, 1.0, 0, 1.5) for i in range(2) for h in range(2)]
    written = stats_report.write_summary(summarise(table(rows)), tmp_path / "s.png")
    assert written == tmp_path / "s.html" and "over 2 images" in written.read_text(encoding="utf-8")
    assert not (tmp_path / "s.png").exists() and "PNG export unavailable (no chromium)" in caplog.text


def test_crossformer_never_imports_viz() -> None:
    """Not at module level, not inside a function, not by a module name handed to importlib."""
    for p in (ROOT / "crossformer").rglob("*.py"):
        names: list[str] = []
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.append(node.module or "")
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and (
                    getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")):
                names.append(str(node.args[0].value))
        assert not [n for n in names if n.split(".")[0] == "viz"], f"{p.relative_to(ROOT)} imports {names}"


def test_total_heads_counts_every_block():
    from crossformer.analysis.dataset import total_heads
    from types import SimpleNamespace
    assert total_heads(SimpleNamespace(heads=np.array([2, 2, 4]))) == 8
