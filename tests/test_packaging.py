"""The project installs as a package: a wheel built from pyproject.toml, installed into a fresh venv outside the
checkout, runs its console script ``crossformer`` (``list``, ``stats``) and ``python -m crossformer.stats`` from
another folder, importing the installed copy (not the checkout); ``--summary`` finds the figure's writer through the
entry point the wheel registers."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"

pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the built wheel; the project venv's site-packages (torch, numpy, …) are reached
    through a ``.pth`` line, so nothing is downloaded (its editable install, if any, is not activated that way)."""
    tmp = tmp_path_factory.mktemp("pkg")
    wheels = tmp / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-q", "-w", wheels,
         cwd=tmp)
    wheel = next(wheels.glob("crossformer_explorer-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "crossformer/model.py" in names and "viz/stats_figures.py" in names
    assert not any(n.startswith(("tests/", "pages/", "benchmarks/")) for n in names)
    points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "[crossformer.summary_writers]\nfigure = viz.stats_report:write_summary" in zipfile.ZipFile(wheel).read(
        points).decode()
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    site.mkdir(parents=True, exist_ok=True)
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "-q",
         "--disable-pip-version-check", wheel, cwd=tmp)
    return venv


def test_wheel_imports_the_installed_copy_from_another_folder(installed, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run(installed / "bin" / "python", "-c", "import crossformer, viz; print(crossformer.__file__)",
             cwd=tmp_path, env=env)
    assert str(installed) in r.stdout and str(ROOT) not in r.stdout


def test_console_script_list_from_another_folder(installed, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"CROSSFORMER_CACHE": str(tmp_path / "c")}
    r = _run(installed / "bin" / "crossformer", "list", cwd=tmp_path, env=env)
    assert "crossformer_t" in r.stdout and "not cached" in r.stdout


@pytest.mark.skipif(not DEMO.exists(), reason="demo checkpoint missing")
@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_stats_on_two_images_from_another_folder(installed, tmp_path, how) -> None:
    from PIL import Image

    import crossformer

    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(1)
    for name in ("one.png", "two.jpg"):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "stats.csv"
    cmd = ([installed / "bin" / "crossformer", "stats"] if how == "console script"
           else [installed / "bin" / "python", "-m", "crossformer.stats"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run(*cmd, "--checkpoint", DEMO, "--images", "imgs", "--out", "stats.csv", "--size", "64",
             "--device", "cpu", "--precision", "fp32", "--summary", "s.html", cwd=tmp_path, env=env)
    assert "summary: s.html" in r.stderr and "pip install" not in r.stderr, r.stderr
    assert "over 2 images" in (tmp_path / "s.html").read_text(encoding="utf-8")    # the writer of the installed viz
    cfg = crossformer.get_config("crossformer_demo")
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["image"] for r in rows}) == ["one.png", "two.jpg"]
    assert len(rows) == 2 * sum(h * d for h, d in zip(cfg.num_heads, cfg.depths))
