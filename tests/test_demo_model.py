"""The shipped demo weights (assets/crossformer_demo.safetensors): they load and they classify Navon figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import crossformer
from crossformer import navon
from crossformer.variants import VARIANTS

WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "crossformer_demo.safetensors"
MEAN, STD = VARIANTS["crossformer_demo"].mean, VARIANTS["crossformer_demo"].std
SMALL_BIAS_BLOCKS = {"s1_b1", "s2_b1"}   # DPB range < 0.05 over the offsets (assets/MODEL_CARD.md)
TEST_SEED = 31337          # not a training stream (those are SeedSequence((seed, step, 7)))


def _tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def demo():
    if not WEIGHTS.exists():   # issue 4 is open until the trained weights ship (see assets/MODEL_CARD.md)
        pytest.skip(f"{WEIGHTS.name} not shipped yet: train it with training/train_demo.py")
    return crossformer.load_checkpoint(str(WEIGHTS))


def test_file_is_small_and_loads_as_the_demo_variant(demo):
    model, info = demo
    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    assert info.variant == "crossformer_demo" and info.format == "safetensors"
    assert not model.training
    # the config stored in the file is the registry's, and the class names are the generator's
    assert info.config == VARIANTS["crossformer_demo"]
    assert tuple(info.config.class_names) == navon.CLASS_NAMES
    assert info.num_params <= 3_000_000
    own = crossformer.create_model("crossformer_demo").state_dict()
    assert set(model.state_dict()) == set(own)


@pytest.mark.parametrize("size, target", [((224, 224), 0.95), ((320, 320), 0.88)])
def test_accuracy_on_a_seeded_sample(demo, size, target):
    model, _ = demo
    images, labels = navon.navon_batch(TEST_SEED, 100, size)
    with torch.no_grad():
        pred = torch.cat([model(_tensor(images[i:i + 25])) for i in range(0, 100, 25)]).argmax(1).numpy()
    acc = (pred == labels).mean()
    assert acc >= target, f"top-1 {acc:.2f} on 100 held-out figures at {size}"


def test_no_block_has_a_flat_position_bias(demo):
    """Every block's DPB table varies over its offsets (the stage-0 MLP is wide enough to learn one)."""
    model, _ = demo
    assert all(model.cfg.dpb_dim(i) >= 4 for i in range(model.cfg.num_stages))
    images, _ = navon.navon_batch(TEST_SEED + 2, 1, (224, 224))
    with torch.no_grad():
        trace = model.forward_trace(_tensor(images))
    small = set()
    for b in trace.all_blocks():
        t = np.asarray(b.dpb_table, np.float64)
        r = t.max(0) - t.min(0)                                   # per head, over the (2G−1)² offsets
        assert r.max() >= 0.01, f"{b.name}: DPB range {r.max():.4f} over its offsets"   # v1 demo: 0.000
        if r.max() < 0.05:
            small.add(b.name)
    # Issue 13 asks ≥ 0.05 in every block; the shipped weights miss it in these two LDA blocks (0.033, 0.039),
    # as the model card reports. A new model must be looked at again: this set is the card's, not a tolerance.
    assert small == SMALL_BIAS_BLOCKS, f"blocks with DPB range < 0.05: {sorted(small)} (model card: {sorted(SMALL_BIAS_BLOCKS)})"


def test_other_sizes_and_trace_agree(demo):
    """A non-square input still classifies well, and the traced forward gives the same logits."""
    model, _ = demo
    images, labels = navon.navon_batch(TEST_SEED + 1, 25, (192, 256))
    x = _tensor(images)
    with torch.no_grad():
        logits = model(x)
    assert (logits.argmax(1).numpy() == labels).mean() >= 0.8
    trace = model.forward_trace(x[:2])
    np.testing.assert_allclose(trace.logits, logits[:2].numpy(), atol=1e-4)
