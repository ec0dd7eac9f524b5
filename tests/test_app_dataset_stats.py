"""The Dataset statistics page: a CSV made by the CLI, a broken CSV, the samples button (AppTest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import app_samples as S
import numpy as np
import pytest
from app_samples import no_errors, plotly_array, plotly_specs

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"
PAGE = "pages/dataset_stats.py"


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


@pytest.fixture(scope="module")
def cli_csv(tmp_path_factory) -> bytes:
    """A stats CSV written by the CLI on 4 generated images (one named with U+2028)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("stats")
    rng = np.random.default_rng(3)
    for i in range(4):
        name = f"img{i}.png" if i != 1 else "img\u2028 1.png"   # a line separator in a name: read back as one row
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(d / name)
    out = d / "stats.csv"
    r = subprocess.run([sys.executable, "-m", "crossformer.stats", "--checkpoint", str(DEMO), "--images", str(d),
                        "--size", "64", "--device", "cpu", "--precision", "fp32", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def open_page():
    at = S.new_app(64).run()
    at.switch_page(PAGE).run()
    no_errors(at)
    return at


def figure_values(spec: dict, stat: str) -> np.ndarray:
    return np.concatenate([plotly_array(t["y"]) for t in spec["data"] if (t.get("meta") or {}).get("stat") == stat])


@pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")
def test_upload_cli_csv_draws_its_numbers(cli_csv):
    import csv
    import io

    at = open_page()
    assert len(at.get("plotly_chart")) == 0 and at.info           # nothing chosen yet: a hint, no figure
    at.file_uploader(key="stats_upload").upload("stats.csv", cli_csv, "text/csv").run()
    no_errors(at)
    specs = plotly_specs(at)
    assert len(specs) == 1
    rows = list(csv.DictReader(io.StringIO(cli_csv.decode())))
    # the plotted dots are the per-head means over the 4 images of the CSV
    for stat in ("distance_px", "entropy", "dpb_share"):
        by_head: dict[tuple, list[float]] = {}
        for r in rows:
            by_head.setdefault((r["block"], r["head"]), []).append(float(r[stat]))
        want = sorted(np.mean(v) for v in by_head.values())
        np.testing.assert_allclose(sorted(figure_values(specs[0], stat)), want, rtol=1e-6)
    text = " ".join(m.value for m in at.markdown)
    n_heads = len({(r["block"], r["head"]) for r in rows})
    assert f"of {n_heads} heads are uniform" in text and "over these 4 images" in text
    assert any("4 images" in c.value for c in at.caption)


@pytest.mark.parametrize("data, message", [
    (b"image,stage,block\nx,0,s0_b0\n", "missing column"),
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "not a text"),
    (b"image,stage,block,kind,head,entropy,distance_px,dpb_share,output_rms\na,0,s0_b0,sda,0,abc,1,0.1,1\n",
     "not a number"),
    (b"image,stage,block,kind,head,entropy,distance_px,dpb_share,output_rms\na,0,s0_b0,xyz,0,1,1,0.1,1\n",
     "sda or lda"),
    # hostile: a 130-byte file whose head index would size a 4 GB table; 3,000 stages (a boundary line each)
    (b"image,stage,block,kind,head,entropy,distance_px,dpb_share,output_rms\na,0,s0_b0,sda,30000000,1,1,0.1,1\n",
     "column head must hold integers from 0 to 63"),
    (("image,stage,block,kind,head,entropy,distance_px,dpb_share,output_rms\n"
      + "".join(f"a,{s},s{s}_b0,sda,0,1,1,0.1,1\n" for s in range(3000))).encode(),
     "column stage must hold integers from 0 to 7"),
])
def test_broken_csv_is_an_error_and_the_app_keeps_running(data, message):
    at = open_page()
    at.file_uploader(key="stats_upload").upload("broken.csv", data, "text/csv").run()
    assert not at.exception
    assert at.error and message in at.error[0].value, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 0
    at.switch_page("pages/overview.py").run()                       # the app still works
    no_errors(at)


def test_samples_button_runs_head_stats():
    from pages.common.settings import SAMPLES_DIR

    n = len([p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
    at = open_page()
    at.button(key="stats_compute").click().run()
    no_errors(at)
    specs = plotly_specs(at)
    assert len(specs) == 1
    assert any(f"{n} shipped samples" in c.value for c in at.caption)
    dist = figure_values(specs[0], "distance_px")
    import crossformer
    cfg = crossformer.get_config("crossformer_demo")
    assert len(dist) == sum(h * d for h, d in zip(cfg.num_heads, cfg.depths)) and (dist > 0).all()
    assert figure_values(specs[0], "rms").shape == (sum(cfg.depths),)
    at.run()                                                         # a plain rerun keeps the summary
    assert len(plotly_specs(at)) == 1


def test_uploader_limit_shown_is_the_one_the_label_says():
    """Streamlit prints "Limit … per file" from the widget's max_upload_size (else server.maxUploadSize, 512 MB
    here for checkpoints); it must be the page's own 64 MB."""
    import re

    at = open_page()
    up = at.file_uploader(key="stats_upload")
    said = re.search(r"≤ (\d+) MB", up.proto.label)
    assert said and up.proto.max_upload_size_mb == int(said.group(1)), (up.proto.label, up.proto.max_upload_size_mb)
