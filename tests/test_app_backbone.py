"""A detection / segmentation checkpoint in the app: it opens as its backbone and every page works (AppTest).

The checkpoint is synthetic (tests/backbone_samples.py: a CrossFormer-T backbone of the official detection
configs with random weights, fake neck / RPN / RoI tensors and mmdet-like meta), named at start-up through
``CROSSFORMER_CHECKPOINT`` or uploaded in the sidebar. Inputs use small shorter sides so the tests stay quick.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import app_samples as S
import backbone_samples as B
from pages.common.navigation import PAGES

SIZE = 160          # the detector resize at shorter side 160: a 1333×800 photo → 160×267, padded to 160×288


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


@pytest.fixture(scope="module")
def mmdet_path(tmp_path_factory):
    return B.write_mmdet(tmp_path_factory.mktemp("ckpt") / "mask_rcnn_crossformer_t.pth")


def backbone_app(monkeypatch, path, size: int | None = SIZE, mode: str | None = "mmdet", photo: bool = True):
    """The app started with ``path`` named at start-up, the detector preprocessing at ``size``, a photo uploaded."""
    monkeypatch.setenv("CROSSFORMER_CHECKPOINT", str(path))
    at = S.new_app(None)
    if size is not None:
        at.session_state["sb_size"] = size
    if mode is not None:
        at.session_state["sb_prep"] = mode
    at.run()
    if photo:
        at.file_uploader(key="sb_upload").upload("street.jpg", B.jpeg(B.street_photo()), "image/jpeg").run()
    S.no_errors(at)
    return at


def frame(at, column: str):
    """The value of the first dataframe with ``column`` (AppTest dataframes carry no key)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no dataframe with a {column!r} column"
    return found[0]


def specs_with(at, name: str) -> list[dict]:
    return [t for s in S.plotly_specs(at) for t in s["data"] if str(t.get("name", "")).startswith(name)]


def test_every_page_works_with_a_detector_backbone(monkeypatch, mmdet_path):
    at = backbone_app(monkeypatch, mmdet_path)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "backbone" in captions and "street.jpg" in captions and "160×288" in captions
    assert any("detector parts not used: neck" in w.value for w in at.sidebar.warning)
    for page in PAGES:
        at.switch_page(page.path).run()
        S.no_errors(at)
    # the Overview: the feature pyramid instead of a prediction, with the padding said
    at.switch_page("pages/overview.py").run()
    assert not any("probability" in d.value.columns for d in at.dataframe)     # no top-5
    table = frame(at, "real tokens")
    assert list(table["stage"]) == [0, 1, 2, 3]
    assert list(table["stride (px)"]) == [4, 8, 16, 32]
    assert list(table["map (C × H × W)"]) == ["64×40×72", "128×20×36", "256×10×18", "512×5×9"]
    assert list(table["real tokens"]) == ["40×67", "20×34", "10×17", "5×9"]
    text = " ".join(m.value for m in at.markdown)
    assert "padded 160×267 → 160×288" in text
    pca = specs_with(at, "pca s")
    assert [t["name"] for t in pca] == ["pca s0", "pca s1", "pca s2", "pca s3"]
    assert [t["dx"] for t in pca] == [4, 8, 16, 32]
    energy = specs_with(at, "energy s")
    assert len(energy) == 4
    # the table's mean energy is the mean of the channel energies the figure draws
    for mean, tr in zip(table["mean energy"], energy):
        assert float(mean) == pytest.approx(float(np.mean(S.plotly_array(tr["y"]))), rel=1e-5)


def test_detector_preprocessing_pads_like_mmdet(monkeypatch, mmdet_path):
    """The model sees zeros in the padded band (mmdet pads after normalisation), and maps that match a plain
    forward of the backbone on that input."""
    from pages.common import dense_prep
    from pages.common.images import Preprocessing
    prep = dense_prep.preprocess(B.street_photo(), Preprocessing("mmdet", 800, 32))
    assert prep.hw == (800, 1344) and prep.padding == (0, 11)
    assert dense_prep.padding_text(prep).startswith("padded 800×1333 → 800×1344")
    small = dense_prep.preprocess(B.street_photo(), Preprocessing("mmdet", SIZE, 32))
    assert small.hw == (160, 288) and small.padding == (0, 21)
    seg = dense_prep.preprocess(B.street_photo(400, 3000), Preprocessing("mmseg", 512, 32))
    assert seg.hw == (288, 2048) and seg.padding == (15, 0)                    # long side capped at 2048

    from pages.common.traces import normalised

    class _Bundle:                          # the two fields normalised() reads
        cfg = type("cfg", (), {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
    x = normalised(_Bundle, small.pixels, small.padding)
    assert x.shape == (3, 160, 288) and not x[:, :, 267:].any() and x[:, :, :267].any()
    at = backbone_app(monkeypatch, mmdet_path)
    S.widget(at.radio, "sb_prep").set_value("aspect").run()                    # the user's own mode: padded too
    S.no_errors(at)
    assert any("Padded to a multiple of 32" in c.value for c in at.sidebar.caption)


def test_defaults_are_the_detectors_and_segmentors(monkeypatch, tmp_path):
    from pages.common import prep_policy
    from pages.common.images import Preprocessing
    assert prep_policy.default_mode(True, "mmseg", False) == "mmseg" and prep_policy.default_size("mmseg") == 512
    assert prep_policy.default_mode(True, "mmdet", False) == "mmdet" and prep_policy.default_size("mmdet") == 800
    assert prep_policy.default_mode(False, None, True) == "aspect" and prep_policy.max_size(True) == 1344
    prep, why = prep_policy.usable_preprocessing(Preprocessing("aspect", 224), 32, backbone=True)
    assert prep == Preprocessing("aspect", 224, 32) and "multiple of 32" in why
    prep, why = prep_policy.usable_preprocessing(Preprocessing("mmdet", 800, 32), 32, backbone=False)
    assert prep.pad == 1 and why is None                                          # a classifier never pads
    seg = tmp_path / "upernet_crossformer_t.pth"
    seg.write_bytes(B.mmdet_bytes(segmentor=True))
    at = backbone_app(monkeypatch, seg, mode=None, photo=False)                  # nothing chosen yet
    assert S.widget(at.radio, "sb_prep").value == "mmseg"
    assert any("segmentor parts not used" in w.value for w in at.sidebar.warning)
    assert S.widget(at.slider, "sb_size_draft").max == 1344


def _pyramid_change_table(at) -> list[float]:
    return list(frame(at, "relative change ‖Δ‖/‖base‖")["relative change ‖Δ‖/‖base‖"])


def test_interventions_measure_the_pyramid(monkeypatch, mmdet_path):
    at = backbone_app(monkeypatch, mmdet_path, photo=False)
    at.switch_page("pages/interventions.py").run()
    S.no_errors(at)
    assert "relative L2 change" in at.markdown[0].value or any("relative L2 change" in m.value for m in at.markdown)
    assert _pyramid_change_table(at) == [0.0, 0.0, 0.0, 0.0]                       # no edit
    S.widget(at.selectbox, "int_stage").set_value(2).run()
    S.widget(at.selectbox, "int_zero").set_value(1).run()
    S.no_errors(at)
    change = _pyramid_change_table(at)
    assert change[0] == 0.0 and change[1] == 0.0 and change[2] > 1e-4 and change[3] > 1e-4, change
    assert any("stage 2" in i.value and "relative L2" in i.value for i in at.info)
    at.button(key="int_scan").click().run()
    S.no_errors(at)
    heat = specs_with(at, "importance")
    assert len(heat) == 1
    z = S.plotly_array(heat[0]["z"]).astype(np.float64)
    assert z.shape == (16, 16)                                                    # CrossFormer-T: 16 blocks, ≤ 16 heads
    assert np.nanmin(z) >= 0 and np.nanmax(z) > 0
    text = next(i.value for i in at.info if "changes the pyramid most" in i.value)
    # the teaching text names the largest cell of the figure's own z and counts the heads above 1 %
    head, amount, count = re.search(r"head (\d+) of s\d_b\d+ changes the pyramid most: by ([\d.]+) %.* (\d+) of \d+ "
                                    r"heads change it by more than 1 %", text).groups()
    i, j = np.unravel_index(int(np.nanargmax(z)), z.shape)
    assert int(head) == j and abs(float(amount) - z[i, j]) < 0.006
    assert int(count) == int(np.sum(np.nan_to_num(z) > 1.0))


def test_attributions_explain_a_feature(monkeypatch, mmdet_path):
    at = backbone_app(monkeypatch, mmdet_path, photo=False)
    at.switch_page("pages/attributions.py").run()
    S.widget(at.radio, "attr_method").set_value("gradcam").run()
    S.no_errors(at)
    assert any("stage-3 feature norm" in i.value and "backbone" in i.value for i in at.info)
    at.button(key="attr_run").click().run()
    S.no_errors(at)
    figs = S.plotly_specs(at)
    assert len(figs) == 1 and "stage-3 feature norm" in str(figs[0]["layout"]["title"])
    S.widget(at.radio, "attr_feat_region").set_value("query").run()
    S.no_errors(at)
    assert any("3×3" in i.value or "(9 tokens)" in i.value for i in at.info)
    assert any("Deletion / insertion curves follow a class probability" in c.value for c in at.caption)


# ---- the computations behind the pages ------------------------------------------------------------------
def test_feature_score_is_the_summed_feature_norm():
    from crossformer.feature_score import FeatureScore
    model = B.t_backbone()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        maps = model(x)
        for score in (FeatureScore(3), FeatureScore(1, (2, 3, 5, 7))):
            got = score.module(model)(x)
            m = maps[score.stage][0]
            if score.box:
                h0, w0, h1, w1 = score.box
                m = m[:, h0:h1, w0:w1]
            assert got.shape == (1, 1)
            torch.testing.assert_close(got[0, 0], m.norm(dim=0).sum(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        FeatureScore(3, (0, 0, 9, 9)).module(model)(x)
    with pytest.raises(ValueError, match="stage"):
        FeatureScore(4).module(model)
    with pytest.raises(ValueError, match="backbone"):
        FeatureScore(3).module(S_classifier())


def S_classifier():
    import crossformer
    return crossformer.CrossFormer(crossformer.CrossFormerConfig(
        embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), group_size=(4, 4, 4, 4),
        interval=(4, 2, 1, 1), num_classes=5))


def test_head_pyramid_scan_equals_one_edited_forward_per_head():
    from crossformer.edits import Edit
    from crossformer.interventions import head_pyramid_importance, pyramid_change
    model = B.t_backbone()
    x = torch.randn(1, 3, 64, 96)
    res = head_pyramid_importance(model, x, kind="zero", precision="fp32", batch=7)
    assert res["change"].shape == (16, 16, 4)
    with torch.no_grad():
        base = model(x)
        for stage, block, head in ((0, 0, 1), (2, 3, 5), (3, 1, 15)):
            want = pyramid_change(base, model.forward_edited(x, [Edit(stage, block, "zero", head=head)]))[0]
            row = res["blocks"].index(f"s{stage}_b{block}")
            np.testing.assert_allclose(res["change"][row, head], want, atol=2e-5)
            assert not res["change"][row, head][:stage].any()                   # earlier stages: untouched
    assert np.isnan(res["change"][0, 2]).all()                                 # stage 0 of T has 2 heads
    np.testing.assert_allclose(pyramid_change(base, base)[0], 0.0)
    with pytest.raises(ValueError, match="backbone"):
        head_pyramid_importance(S_classifier(), x)


def test_cost_model_counts_a_backbone():
    from pages.common.estimates import forward_flops
    model = B.t_backbone()
    flops = forward_flops(model.cfg, (800, 1344))
    with_head = forward_flops(model.cfg.replace(num_classes=1000, backbone=False), (800, 1344))
    assert 0 < flops < with_head and with_head - flops == 512 * 1000


def test_pyramid_figure_shows_grids_and_padding():
    from crossformer.analysis.pyramid import pyramid_views
    from viz.pyramid_figures import GRID_MAX_TOKENS, pyramid_figure
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((8 * 2 ** i, 40 // 2 ** i, 72 // 2 ** i)).astype(np.float32) for i in range(4)]
    views = pyramid_views(maps, [4, 8, 16, 32], real_hw=(160, 267))
    fig = pyramid_figure(views, (160, 267))
    names = [t.name for t in fig.data]
    assert [n for n in names if n.startswith("pca")] == ["pca s0", "pca s1", "pca s2", "pca s3"]
    grids = [n for n in names if n.startswith("grid")]
    assert grids == [f"grid s{i}" for i in range(4) if maps[i].shape[1] * maps[i].shape[2] <= GRID_MAX_TOKENS]
    bands = [s for s in fig.layout.shapes if s.type == "rect" and s.fillcolor]
    assert len(bands) == 4 and all(float(s.x0) == 267 and float(s.x1) == 288 for s in bands)
    energy = [t for t in fig.data if t.name == "energy s3"][0]
    assert np.all(np.diff(np.asarray(energy.y)) <= 0) and len(energy.y) == 64
    assert "160×267 → 160×288" in fig.layout.title.subtitle.text.replace("<br>", " ")


def test_numpy_reference_agrees_on_the_padded_backbone_input(monkeypatch, mmdet_path):
    """The NumPy forward reads the same input (zeros in the padding) and agrees with the trace."""
    at = backbone_app(monkeypatch, mmdet_path, size=100)          # 100×167 → padded 128×192
    at.switch_page("pages/reference.py").run()
    at.button(key="ref_run").click().run()
    S.no_errors(at)
    assert "PASS" in " ".join(m.value for m in at.markdown)
    assert any("128×192" in c.value for c in at.sidebar.caption)
    assert any("four stage maps (backbone, no classes)" in c.value for c in at.caption)
