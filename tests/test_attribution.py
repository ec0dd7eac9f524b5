"""crossformer.attribution: captum attributions run on the model, give finite maps of the right shape, and agree
with their definitions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from viz_cases import sample_image, to_input

import crossformer
from crossformer import attribution

TARGET = 3


def make_model() -> torch.nn.Module:
    """A tiny v1 CrossFormer: at 64×64 its LDA groups pad little (the demo's fixed I = 8 would pad 16×16
    tokens to 56×56 and make every attribution step several times slower)."""
    return crossformer.create_model("crossformer_t", num_classes=10, depths=(1, 1, 2, 1), embed_dim=32,
                                    num_heads=(1, 2, 4, 8))


@lru_cache(maxsize=None)
def small():
    torch.manual_seed(1)
    model = make_model().eval()
    image = sample_image(64, 64, seed=2)
    return model, image, to_input(image)


def logit(model, x, target=TARGET) -> float:
    with torch.no_grad():
        return float(model(x)[0, target])


def test_integrated_gradients_is_complete_with_a_small_delta_and_bounded_batches():
    model, _, x = small()
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        attr, delta = attribution.integrated_gradients(model, x, TARGET, steps=16, internal_batch_size=4)
    finally:
        hook.remove()
    assert attr.shape == (64, 64) and np.all(np.isfinite(attr))
    diff = logit(model, x) - logit(model, torch.zeros_like(x))
    assert delta < 1e-3 * abs(diff) + 1e-5                  # convergence delta is small …
    assert attr.sum() == pytest.approx(diff, abs=1e-3 * abs(diff) + 1e-4)   # … so attributions add up
    assert max(seen) <= 4                                    # memory bounded by internal_batch_size


def test_grad_cam_matches_its_definition_at_every_stage():
    model, _, x = small()
    for stage in range(4):
        cam = attribution.grad_cam(model, x, TARGET, stage)
        assert np.all(np.isfinite(cam)) and cam.min() >= 0
        # by hand: weights = spatial mean of d logit / d map, cam = relu(Σ_c w_c · map_c)
        store = {}

        def keep(module, inp, out):
            out.retain_grad()
            store["map"] = out
        h = model.layers[stage].feature_map.register_forward_hook(keep)
        try:
            xi = x.clone().requires_grad_(True)
            model(xi)[0, TARGET].backward()
        finally:
            h.remove()
        fmap, grad = store["map"], store["map"].grad
        assert cam.shape == tuple(fmap.shape[-2:]) == (16 // 2 ** stage, 16 // 2 ** stage)
        manual = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * fmap).sum(1))[0].detach().numpy()
        assert np.allclose(cam, manual, atol=1e-5 * max(1.0, float(np.abs(manual).max())))
    with pytest.raises(ValueError):
        attribution.grad_cam(model, x, TARGET, 4)


def test_occlusion_is_the_logit_drop_of_each_window():
    model, _, x = small()
    occ = attribution.occlusion(model, x, TARGET, window=16, stride=16, perturbations_per_eval=4)
    assert occ.shape == (64, 64) and np.all(np.isfinite(occ))
    xo = x.clone()
    xo[..., 16:32, 32:48] = 0.0
    drop = logit(model, x) - logit(model, xo)
    assert np.allclose(occ[16:32, 32:48], drop, atol=1e-4)


def test_inplace_activations_are_attributed_on_a_copy():
    model, _, x = small()
    twin = make_model().eval()
    twin.load_state_dict(model.state_dict())
    relus = [m for m in twin.modules() if isinstance(m, torch.nn.ReLU)]
    assert relus
    for m in relus:
        m.inplace = True                                    # as in the official DPB
    assert attribution.has_inplace_ops(twin)
    safe = attribution.safe_model(twin)
    assert safe is not twin and not attribution.has_inplace_ops(safe)
    assert all(m.inplace for m in relus)                    # the shared model itself is left alone
    assert attribution.safe_model(model) is model           # nothing to fix: no copy
    a1, d1 = attribution.integrated_gradients(twin, x, TARGET, steps=4, internal_batch_size=4)
    a2, d2 = attribution.integrated_gradients(model, x, TARGET, steps=4, internal_batch_size=4)
    assert np.allclose(a1, a2, atol=1e-6) and np.isfinite(d1)
    cam = attribution.grad_cam(twin, x, TARGET, 2)
    assert np.all(np.isfinite(cam))


def test_the_convergence_delta_is_read_against_the_attributions_total():
    from crossformer.attribution import delta_share
    assert delta_share(np.array([[1.0, -3.0], [0.5, 0.5]]), 0.1) == pytest.approx(0.1 / 1.0)
    assert np.isfinite(delta_share(np.zeros((2, 2)), 0.1))          # an all-zero map does not divide by zero
