"""``docs/stats_figure.py``: the README's statistics figure comes from the real CLI on held-out Navon figures."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import summary_plugin

from crossformer.stats_cli import SUMMARY_WRITERS

ROOT = Path(__file__).resolve().parents[1]


def test_writes_the_csv_and_summary_of_n_images(tmp_path: Path, monkeypatch) -> None:
    env = summary_plugin.registered_env(tmp_path / "plugins", SUMMARY_WRITERS)    # as `pip install -e .` does
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    spec = importlib.util.spec_from_file_location("stats_figure", ROOT / "docs" / "stats_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out, table = tmp_path / "summary.html", tmp_path / "stats.csv"
    assert mod.main(["--n", "3", "--out", str(out), "--csv", str(table)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert {r["image"] for r in rows} == {"0000.png", "0001.png", "0002.png"}
    assert len(rows) == 3 * len({(r["block"], r["head"]) for r in rows})      # one row per image × block × head
    assert "over 3 images" in out.read_text()
