"""Deletion / insertion faithfulness: a linear toy model with a known answer, the demo model, the page."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossformer.faithfulness import (baseline_image, deletion_insertion, faithfulness_summary, patch_grid,
                                      patch_scores)

H = W = 48
PATCH = 8
TARGET = 1


class LinearToy(torch.nn.Module):
    """logits[c] = Σ weight[c] · x: only a few patches carry weight, and only for the target class."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = SimpleNamespace(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        w = torch.zeros(3, 3, H, W)
        gh, gw = patch_grid((H, W), PATCH)
        for k, pid in enumerate((3, 8, 14, 20, 27, 33)):         # distinct strengths → a strict optimum
            r, c = divmod(pid, gw)
            w[TARGET, :, r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH] = \
                (0.004 + 0.003 * k) * (1 + 0.2 * torch.rand(3, PATCH, PATCH, generator=g))
        self.register_buffer("weight", w)
        self.register_buffer("bias", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kchw->bk", x, self.weight) + self.bias

    def centre(self, x: torch.Tensor, base: torch.Tensor) -> "LinearToy":
        """Shift the target logit so the input and the baseline sit either side of p = 1/2 (no saturation)."""
        self.bias.zero_()
        with torch.no_grad():
            z = self(torch.cat([x, base]))[:, TARGET]
        self.bias[TARGET] = -float(z.mean()) + float(np.log(2.0))   # two other classes at logit 0
        return self


def toy_input(seed: int = 1) -> torch.Tensor:
    """Dim noise with bright weighted patches: blurring, the mean and black all lower the target logit."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.3 * torch.rand(1, 3, H, W, generator=g)
    w = LinearToy().weight[TARGET].sum(0) > 0
    return x + 1.5 * w


def true_effect(model: LinearToy, x: torch.Tensor, base: torch.Tensor) -> np.ndarray:
    """Per-patch change of the target logit when the patch goes from the baseline to the input."""
    per_pixel = ((x - base)[0] * model.weight[TARGET]).sum(0)    # (H, W)
    gh, gw = patch_grid((H, W), PATCH)
    return per_pixel.view(gh, PATCH, gw, PATCH).sum(dim=(1, 3)).numpy()


def prob(model, img) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(img), -1)[0, TARGET])


@pytest.mark.parametrize("baseline", ["blur", "mean", "zero"])
def test_the_true_effect_beats_random_and_reversed(baseline):
    model, x = LinearToy(), toy_input()
    base = baseline_image(x, baseline, model.cfg.mean, model.cfg.std)
    model.centre(x, base)
    effect = true_effect(model, x, base)
    good = deletion_insertion(model, x, effect, TARGET, patch=PATCH, baseline=baseline, precision="fp32")
    bad = deletion_insertion(model, x, -effect, TARGET, patch=PATCH, baseline=baseline, precision="fp32")
    assert good["deletion_auc"] < good["random_deletion_auc"] - 1e-4
    assert good["insertion_auc"] > good["random_insertion_auc"] + 1e-4
    assert good["deletion_auc"] < bad["deletion_auc"] - 1e-4
    assert good["insertion_auc"] > bad["insertion_auc"] + 1e-4
    # the greedy order is optimal at every step for a linear logit
    assert np.all(good["deletion"] <= bad["deletion"] + 1e-9)
    assert np.all(good["insertion"] >= bad["insertion"] - 1e-9)
    assert np.all(good["deletion"] <= good["random_deletion"] + 1e-9)
    # end points: the input and the baseline
    px, pb = prob(model, x), prob(model, base)
    for r in (good, bad):
        for name in ("deletion", "random_deletion"):
            assert r[name][0] == pytest.approx(px, abs=1e-6) and r[name][-1] == pytest.approx(pb, abs=1e-6)
        for name in ("insertion", "random_insertion"):
            assert r[name][0] == pytest.approx(pb, abs=1e-6) and r[name][-1] == pytest.approx(px, abs=1e-6)
    gh, gw = patch_grid((H, W), PATCH)
    assert good["steps"] == gh * gw == 36 and good["fractions"].shape == (37,)
    assert good["fractions"][0] == 0 and good["fractions"][-1] == 1
    assert good["baseline"] == baseline and good["patch"] == PATCH and good["precision"] == "fp32"
    # one inner point checked by hand: deletion after the first k patches of the order
    k = 5
    m = torch.zeros(H, W)
    for pid in good["order"][:k]:
        r_, c_ = divmod(int(pid), gw)
        m[r_ * PATCH:(r_ + 1) * PATCH, c_ * PATCH:(c_ + 1) * PATCH] = 1
    assert good["deletion"][k] == pytest.approx(prob(model, x * (1 - m) + base * m), abs=1e-6)


def test_baselines_are_what_they_say():
    model, x = LinearToy(), torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    assert torch.equal(baseline_image(x, "mean"), torch.zeros_like(x))
    zero = baseline_image(x, "zero", model.cfg.mean, model.cfg.std)
    pixels = zero * torch.tensor(model.cfg.std).view(1, 3, 1, 1) + torch.tensor(model.cfg.mean).view(1, 3, 1, 1)
    assert torch.allclose(pixels, torch.zeros_like(x), atol=1e-6)
    blur = baseline_image(x, "blur")
    assert blur.shape == x.shape
    assert blur.std() < 0.5 * x.std()                              # strongly smoothed
    assert torch.allclose(blur.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=0.05)   # colours kept
    with pytest.raises(ValueError):
        baseline_image(x, "noise")


def test_batching_does_not_change_the_curves_and_progress_counts_images():
    model, x = LinearToy(), toy_input()
    effect = true_effect(model, x, baseline_image(x, "blur"))
    calls: list[tuple[int, int]] = []
    one = deletion_insertion(model, x, effect, TARGET, patch=PATCH, batch=1, precision="fp32", steps=10)
    many = deletion_insertion(model, x, effect, TARGET, patch=PATCH, batch=7, precision="fp32", steps=10,
                              progress=lambda d, t: calls.append((d, t)))
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        np.testing.assert_allclose(one[name], many[name], atol=1e-6)
        assert one[name].shape == (11,)
    total = 2 + 4 * (10 - 1)
    assert many["forward_images"] == total
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == [0, 7, 14, 21, 28, 35, total]
    # fractions: evenly spaced patch counts
    np.testing.assert_allclose(many["fractions"], np.rint(np.linspace(0, 36, 11)) / 36)


def test_steps_default_and_cap_and_random_seed():
    model = LinearToy()
    x = toy_input()
    a = np.random.default_rng(0).random((H, W))
    r = deletion_insertion(model, x, a, TARGET, patch=4, precision="fp32")          # 144 patches → 64 steps
    assert r["n_patches"] == 144 and r["steps"] == 64
    r0 = deletion_insertion(model, x, a, TARGET, patch=PATCH, precision="fp32", seed=3)
    r1 = deletion_insertion(model, x, a, TARGET, patch=PATCH, precision="fp32", seed=3)
    np.testing.assert_array_equal(r0["random_order"], r1["random_order"])
    with pytest.raises(ValueError):
        deletion_insertion(model, x, a, TARGET, patch=PATCH, steps=37)


def test_patch_scores_average_any_resolution():
    a = np.arange(16, dtype=float).reshape(4, 4)                  # token map, 4 px per cell at 16×16
    s = patch_scores(a, (16, 16), 8)                               # 2×2 patches, each 2×2 cells
    np.testing.assert_allclose(s, [[a[:2, :2].mean(), a[:2, 2:].mean()], [a[2:, :2].mean(), a[2:, 2:].mean()]])
    full = np.random.default_rng(1).random((20, 20))               # partial edge patches: 3×3 grid
    s = patch_scores(full, (20, 20), 8)
    assert s.shape == (3, 3)
    assert s[2, 2] == pytest.approx(full[16:, 16:].mean())


def test_summary_ranks_by_insertion_minus_deletion():
    res = {"A": dict(insertion_auc=0.5, deletion_auc=0.3, random_insertion_auc=0.3, random_deletion_auc=0.3),
           "B": dict(insertion_auc=0.7, deletion_auc=0.1, random_insertion_auc=0.3, random_deletion_auc=0.3),
           "C": dict(insertion_auc=0.2, deletion_auc=0.4, random_insertion_auc=0.3, random_deletion_auc=0.3)}
    best, sentence = faithfulness_summary(res)
    assert best == "B"
    assert "B is the most faithful" in sentence and "+0.600" in sentence and "+0.200 for A" in sentence
    assert "Not better than random: C" in sentence


def test_demo_model_smoke():
    import crossformer
    torch.manual_seed(0)
    model = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(1, 3, 64, 64)
    a = np.random.default_rng(0).random((16, 16))
    r = deletion_insertion(model, x, a, 0, patch=16)
    assert r["n_patches"] == 16 and r["steps"] == 16
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        assert r[name].shape == (17,) and np.all(np.isfinite(r[name]))
        assert np.all((r[name] >= 0) & (r[name] <= 1))
        assert 0 <= r[f"{name}_auc"] <= 1
    assert r["precision"] in ("fp32", "bf16")


def test_figure_has_a_line_per_method_and_the_random_baseline():
    from viz.faithfulness_figures import faithfulness_figure
    model, x = LinearToy(), toy_input()
    effect = true_effect(model, x, baseline_image(x, "blur"))
    res = {"good": deletion_insertion(model, x, effect, TARGET, patch=PATCH, precision="fp32", steps=6),
           "bad": deletion_insertion(model, x, -effect, TARGET, patch=PATCH, precision="fp32", steps=6)}
    fig = faithfulness_figure(res)
    groups = [t.legendgroup for t in fig.data]
    assert groups.count("good") == 2 and groups.count("bad") == 2 and groups.count("random") == 2
    good = [t for t in fig.data if t.legendgroup == "good"]
    np.testing.assert_allclose(good[0].y, res["good"]["deletion"])
    np.testing.assert_allclose(good[1].y, res["good"]["insertion"])
    assert good[0].name.startswith("good") and f"{res['good']['deletion_auc']:.3f}" in good[0].name
    assert all(t.line.dash == "dash" for t in fig.data if t.legendgroup == "random")


# ---- the page ----------------------------------------------------------------------------------------

@pytest.fixture
def _server_like(monkeypatch):
    import app_samples as S
    from pages.common import heavy_runs
    S.run_like_the_server(monkeypatch)
    heavy_runs.heavy_store().clear()          # no attribution map left by another test file (shared store)


def test_attributions_page_compares_methods(_server_like):
    import app_samples as S
    at = S.new_app(64).run()
    at.switch_page("pages/attributions.py").run()
    S.no_errors(at)
    assert not S.plotly_specs(at)
    at.button(key="attr_faith_run").click().run()
    S.no_errors(at)
    specs = S.plotly_specs(at)
    faith = [s for s in specs if any(t.get("legendgroup") == "random" for t in s["data"])]
    assert len(faith) == 1
    groups = {t.get("legendgroup") for t in faith[0]["data"]}
    assert {"Integrated gradients", "Grad-CAM", "Occlusion", "random"} <= groups
    assert any("most faithful" in m.value for m in at.markdown)
    assert any("baseline" in c.value.lower() and "patch" in c.value for c in at.caption)
    labels = [b.label for b in at.get("download_button")]
    assert "HTML" in labels
    # kept in the session: a rerun shows it again without recomputing
    at.run()
    S.no_errors(at)
    assert len([s for s in S.plotly_specs(at) if any(t.get("legendgroup") == "random" for t in s["data"])]) == 1


@pytest.mark.parametrize("steps", [None, 10, 1])
def test_each_auc_is_the_trapezoid_of_its_own_curve(steps):
    """Every reported AUC equals the trapezoid rule over the returned curve and its fractions 0 … 1
    (recomputed here with numpy, not the module's auc): an AUC that drops the last step, or a curve that
    stops short of fraction 1, fails (issue 28, mutation audit)."""
    model, x = LinearToy(), toy_input()
    base = baseline_image(x, "blur")
    model.centre(x, base)
    r = deletion_insertion(model, x, true_effect(model, x, base), TARGET, patch=PATCH, steps=steps,
                           precision="fp32")
    f = r["fractions"]
    assert f.shape == (r["steps"] + 1,) and f[0] == 0 and f[-1] == 1 and np.all(np.diff(f) > 0)
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        curve = r[name]
        assert curve.shape == f.shape, name
        assert r[f"{name}_auc"] == pytest.approx(np.trapezoid(curve, f), abs=1e-12), name
        # the last interval matters: without it the area differs by more than rounding
        assert abs(np.trapezoid(curve[:-1], f[:-1]) - r[f"{name}_auc"]) > 1e-6, name
