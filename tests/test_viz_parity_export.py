"""Parity figure, export helpers, and the house rules every viz module keeps (no pyplot, no Streamlit)."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from viz import export
from viz.parity_figures import ZERO_FLOOR, group_errors, parity_figure

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


# ---- parity -----------------------------------------------------------------------------------------------
def test_parity_points_tolerance_line_and_log_axis():
    errors = {"embedding": {"output": 2e-6, "k4": 0.0}, "s0_b0": {"attention": 3e-8, "output": 5e-4},
              "head": {"logits": float("inf")}}
    fig = parity_figure(errors, tol=1e-4)
    assert fig.layout.yaxis.type == "log"
    tol_line = fig.layout.shapes[0]
    assert tol_line.y0 == tol_line.y1 == 1e-4
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"output", "k4", "attention", "logits"}
    out = by_name["output"]
    assert list(out.x) == ["embedding", "s0_b0"] and np.allclose(out.y, [2e-6, 5e-4])
    assert list(out.marker.line.width) == [1.5, 3]                        # above tolerance: outlined
    assert by_name["k4"].y[0] == ZERO_FLOOR and by_name["k4"].marker.symbol[0].endswith("-open")
    assert by_name["logits"].y[0] > 5e-4 and by_name["logits"].marker.symbol[0] == "x"
    assert "2 value(s) above" in fig.layout.title.subtitle.text


def test_group_errors_regroups_trace_names():
    flat = {"embedding.output": 1.0, "embedding.k4": 2.0, "merges.0.k2": 3.0, "blocks.s1_b0.attention": 4.0,
            "blocks.s1_b0.dpb_table": 5.0, "stages.2": 6.0, "pooled": 7.0, "logits": 8.0}
    g = group_errors(flat)
    assert g == {"embedding": {"output": 1.0, "k4": 2.0}, "merge 0": {"k2": 3.0},
                 "s1_b0": {"attention": 4.0, "dpb_table": 5.0}, "stage 2": {"output": 6.0},
                 "head": {"pooled": 7.0, "logits": 8.0}}
    fig = parity_figure({k: {f: v * 1e-7 for f, v in d.items()} for k, d in g.items()})
    assert "all 8 values below" in fig.layout.title.subtitle.text


# ---- export -------------------------------------------------------------------------------------------------
def small_figure() -> go.Figure:
    return go.Figure(go.Heatmap(z=[[0, 1], [2, 3]]), layout=dict(width=300, height=200))


def test_matplotlib_export_without_pyplot_and_no_figures_left_open():
    from matplotlib import _pylab_helpers
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = export.figure_to_png(fig, scale=1)
    svg = export.figure_to_svg(fig)
    html = export.figure_to_html(fig)
    assert png.startswith(PNG) and b"<svg" in svg and b"<svg" in html
    data, mime, ext = export.export_figure(fig, "png")
    assert mime == "image/png" and ext == "png" and data.startswith(PNG)
    assert _pylab_helpers.Gcf.get_all_fig_managers() == []


def test_html_export_is_standalone():
    html = export.figure_to_html(small_figure()).decode("utf-8")
    assert "<html" in html[:100].lower() and '<script src="http' not in html    # plotly.js inlined: offline
    assert len(html) > 1_000_000 and "Plotly.newPlot" in html
    with pytest.raises(ValueError):
        export.export_figure(small_figure(), "gif")


def test_without_a_browser_png_falls_back_to_html(monkeypatch):
    monkeypatch.setattr(export, "chromium_path", lambda: None)
    assert not export.png_available()
    with pytest.raises(export.ExportUnavailable):
        export.figure_to_png(small_figure())
    data, mime, ext = export.export_figure(small_figure(), "svg")
    assert (mime, ext) == ("text/html", "html") and b"<html" in data


@pytest.mark.skipif(not export.png_available(), reason="kaleido or chromium missing")
def test_plotly_png_and_svg_through_kaleido_from_several_threads():
    fig = small_figure()
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.append(export.figure_to_png(fig, scale=1))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 3
    for png in results:
        assert png.startswith(PNG)
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (w, h) == (300, 200)                         # the layout size at scale 1
    assert export.figure_to_svg(fig).lstrip().startswith(b"<svg")
    png = export.figure_to_png(export.responsive(small_figure()), scale=1)     # as the app shows it
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (300, 200)


# ---- house rules -----------------------------------------------------------------------------------------------
def test_viz_modules_never_import_pyplot_or_streamlit_and_only_attribution_imports_torch():
    for path in sorted((ROOT / "viz").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        assert not any(n.startswith(("matplotlib.pyplot", "streamlit")) for n in names), path.name
        if path.name != "attribution.py":
            assert not any(n.split(".")[0] in ("torch", "captum") for n in names), path.name


def test_importing_viz_and_building_a_figure_does_not_load_torch():
    code = ("import sys, numpy as np; import viz; from crossformer.geometry import plan_layout; "
            "viz.group_partition_figure(np.zeros((64, 64, 3), np.uint8), plan_layout('lda', (16, 16), 7, 2), 0, "
            "selected_group=0); assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
