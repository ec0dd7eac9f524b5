"""Our state_dict() equals the official one key for key, shape for shape (SPEC §8, §12)."""

from __future__ import annotations

import pytest
import torch

import crossformer

FAMILY = {  # our name -> (family, official name)
    "crossformer_t": ("v2cf", "crossformer-t"), "crossformer_s": ("v2cf", "crossformer-s"),
    "crossformer_b": ("v2cf", "crossformer-b"), "crossformer_l": ("v2cf", "crossformer-l"),
    "crossformer_pp_s": ("v2pp", "crossformer++-s"), "crossformer_pp_b": ("v2pp", "crossformer++-b"),
    "crossformer_pp_l": ("v2pp", "crossformer++-l"), "crossformer_pp_h": ("v2pp", "crossformer++-h"),
}


def _meta_model(name: str):
    with torch.device("meta"):
        return crossformer.create_model(name)


@pytest.mark.parametrize("name", list(FAMILY))
def test_keys_and_shapes_match_official(name, official_state_dicts):
    family, official = FAMILY[name]
    entry = official_state_dicts[family][official]
    expected = [(k, tuple(shape)) for k, shape, _ in entry["state_dict"]]
    ours = [(k, tuple(v.shape)) for k, v in _meta_model(name).state_dict().items()]
    assert ours == expected          # same keys, same order, same shapes
    n_params = sum(p.numel() for p in _meta_model(name).parameters())
    assert n_params == entry["num_parameters"]


def test_v1_family_loads_after_dropping_buffers(official_state_dicts):
    """A v1 checkpoint has the same tensors plus attn.biases / relative_position_index buffers."""
    entry = official_state_dicts["v1"]["crossformer-t"]
    model = crossformer.create_model("crossformer_t")
    sd = {k: torch.full(shape, 0.5, dtype=torch.int64 if dt == "int64" else torch.float32)
          for k, shape, dt in entry["state_dict"]}
    assert any(k.endswith("attn.biases") for k in sd)
    crossformer.load_official_state_dict(model, sd)   # strict after dropping the buffers
    assert model.head.bias.detach()[0].item() == 0.5


@pytest.mark.parametrize("name", [n for n in FAMILY if FAMILY[n][0] == "v2cf"])
def test_v1_keys_minus_buffers_equal_ours(name, official_state_dicts):
    from crossformer.state_dict import clean_state_dict
    entry = official_state_dicts["v1"][FAMILY[name][1]]
    v1_keys = list(clean_state_dict({k: None for k, _, _ in entry["state_dict"]}))
    assert v1_keys == list(_meta_model(name).state_dict())


def test_list_models_and_create():
    names = crossformer.list_models()
    assert set(FAMILY) | {"crossformer_demo"} <= set(names)
    with pytest.raises(KeyError, match="unknown model"):
        crossformer.create_model("crossformer_xl")
    m = crossformer.create_model("crossformer_t", num_classes=7)
    assert m.head.out_features == 7


@pytest.mark.parametrize("name", list(FAMILY))
def test_released_variants_fit_the_checkpoint_limits(name):
    """The bounds that keep a hostile file from building a huge model (config.check_limits, the parameter
    cap) pass every released variant read off its state dict — with an ImageNet-22k head and as a backbone
    at 3840 px (stage-0 map 960: interval ⌈960 / 2^i / G⌉) — so real checkpoints keep loading."""
    from crossformer.checkpoint import infer_config
    from crossformer.config import CONFIG_LIMITS, check_limits
    got, cfg, _, _ = infer_config(_meta_model(name).state_dict())
    assert got == name
    check_limits(cfg)
    big = cfg.replace(num_classes=21841, img_size=3840,
                      interval=tuple(-(-960 // 2 ** i // g) for i, g in enumerate(cfg.group_size)))
    check_limits(big)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in crossformer.CrossFormer(big).parameters())
    assert n_params <= CONFIG_LIMITS.max_params
    with pytest.raises(ValueError, match="embed_dim"):
        check_limits(cfg.replace(embed_dim=6 * CONFIG_LIMITS.max_embed_dim))   # splits into any heads
