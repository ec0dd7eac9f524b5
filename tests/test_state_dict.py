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
