"""``precision.bf16_weights``: a bf16-weight copy that is bit-identical under autocast and leaves the model alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import crossformer
from crossformer import precision
from crossformer.stats import head_stats


@pytest.fixture(scope="module")
def model() -> crossformer.CrossFormer:
    torch.manual_seed(0)
    return crossformer.create_model("crossformer_demo").eval()


def _autocast(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return m(x)


@pytest.mark.parametrize("hw", [(64, 64), (72, 100)])            # unpadded and padded groups
def test_copy_under_autocast_is_bit_identical(model, hw):
    twin = precision.bf16_weights(model)
    x = torch.randn(2, 3, *hw)
    assert torch.equal(_autocast(twin, x), _autocast(model, x))


def test_only_matmul_weights_change_dtype_and_the_model_is_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = precision.bf16_weights(model)
    for name, module in twin.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            want = torch.bfloat16 if isinstance(module, (nn.Linear, nn.Conv2d)) else torch.float32
            assert p.dtype == want, f"{name}.{pname}"
            assert not p.requires_grad
    after = model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    assert {n for n, _ in twin.named_parameters()} == {n for n, _ in model.named_parameters()}
    # nothing shared: editing the copy's weights does not reach the model
    next(twin.parameters()).data.zero_()
    assert torch.equal(next(model.parameters()), before[next(iter(before))])


def test_head_stats_on_the_copy_equal_the_model_under_bf16(model):
    x = torch.randn(2, 3, 64, 64)
    a = head_stats(model, x, precision="bf16")
    b = head_stats(precision.bf16_weights(model), x, precision="bf16")
    assert a == b
