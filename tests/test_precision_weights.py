"""``precision.bf16_weights``: a bf16-weight copy that is bit-identical under autocast and leaves the model alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import crossformer
from crossformer import hardware, precision
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


#: The oneDNN fast path needs native bf16; everything else in this file runs on every CPU.
needs_native_bf16 = pytest.mark.skipif(
    precision.native_bf16_linear() is None,
    reason=f"no native bf16 on this CPU: oneDNN's bf16 linear did not run (needs AVX512-BF16 or AMX-BF16; "
           f"this machine: {hardware.describe_cpu()})")


@pytest.fixture
def no_native_bf16(monkeypatch):
    """This process as on an AVX2-only CPU: the probe found no oneDNN bf16 linear."""
    monkeypatch.setattr(precision, "native_bf16_linear", lambda: None)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("path", ["native", "fallback"])
def test_bf16_linear_equals_f_linear_bit_for_bit(bias, strided, path, monkeypatch):
    if path == "native" and precision.native_bf16_linear() is None:
        pytest.skip(needs_native_bf16.kwargs["reason"])
    if path == "fallback":
        monkeypatch.setattr(precision, "native_bf16_linear", lambda: None)
    torch.manual_seed(1)
    lin = nn.Linear(96, 160, bias=bias)
    twin = precision.bf16_weights(nn.Sequential(lin))[0]
    assert type(twin) is precision.Bf16Linear
    x = torch.randn(3, 50, 96).to(torch.bfloat16)
    if strided:                 # a non-contiguous view (as a permuted activation is) goes to F.linear
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    with torch.inference_mode():
        got = twin(x)
        want = F.linear(x, lin.weight.to(torch.bfloat16), None if lin.bias is None else lin.bias.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)


@pytest.mark.parametrize("hw", [(64, 64), (72, 100)])
def test_the_fallback_copy_is_bit_identical_under_autocast(model, hw, no_native_bf16):
    """What an AVX2-only CPU runs: every Bf16Linear goes to F.linear; outputs equal autocast on the model."""
    twin = precision.bf16_weights(model)
    x = torch.randn(2, 3, *hw)
    assert torch.equal(_autocast(twin, x), _autocast(model, x))


def test_no_bf16_flags_means_no_probe(monkeypatch):
    """The flags are the first filter: without them the oneDNN op is never tried and auto picks fp32."""
    precision.native_bf16_linear.cache_clear()
    monkeypatch.setattr(precision, "cpu_has_bf16_flags", lambda: False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available",
                        lambda: pytest.fail("probed oneDNN on a CPU without bf16 flags"))
    try:
        assert precision.native_bf16_linear() is None
        assert not precision.cpu_has_native_bf16()
        assert precision.resolve("auto", "cpu") == "fp32"
    finally:
        monkeypatch.undo()
        precision.native_bf16_linear.cache_clear()


@needs_native_bf16
def test_the_copy_runs_onednn_linears_and_falls_back_where_gradients_flow(model, monkeypatch):
    twin = precision.bf16_weights(model)
    linears = [m for m in twin.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is precision.Bf16Linear for m in linears)
    calls = []
    op = precision.native_bf16_linear()

    def counted(*args):
        calls.append(args[0].requires_grad)
        return op(*args)

    monkeypatch.setattr(precision, "native_bf16_linear", lambda: counted)
    x = torch.randn(1, 3, 64, 64)
    _autocast(twin, x)
    assert len(calls) == len(linears)                 # every Linear of the forward went to oneDNN
    calls.clear()
    xg = x.clone().requires_grad_(True)               # an attribution's pass: the op has no backward
    with torch.autocast("cpu", dtype=torch.bfloat16):
        twin(xg)[0, 0].backward()
    # the DPB's small MLP needs no gradient (its input is constant, its weights frozen): oneDNN; the rest F.linear
    assert not any(calls) and 0 < len(calls) < len(linears)
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
