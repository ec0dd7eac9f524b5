"""Which precision a heavy pass runs in: bf16 autocast where the hardware does bf16 natively, else fp32.

bf16 autocast pays only where the matrix units do bf16 (measured on an AMD EPYC with AVX512-BF16: 2.1–2.9×
faster than fp32). Elsewhere (an AVX2-only EPYC, most laptops) it is emulated and slower, so it is detected,
never assumed:

* CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer).
* CPU: the ``avx512_bf16``/``amx_bf16`` flags (:mod:`crossformer.hardware`) as a first filter, then a probe:
  oneDNN's bf16 linear is run once per process on a 1×8 input (:func:`native_bf16_linear`). Flags alone are not
  enough: a oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, or an older build) raises "could not create a
  primitive descriptor" on a CPU whose flags say bf16.

``"auto"`` resolves to bf16 only where both hold. An explicit ``"bf16"`` elsewhere still runs (autocast is
emulated, slower) after one log line saying so. The trace and the NumPy comparison always stay fp32 (they are
the reference numbers); heavy passes (training, attributions, occlusion, scans, dataset statistics) use
:func:`autocast`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .hardware import cpu_has_bf16_flags, describe_cpu

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")

#: ``(x, weight, bias, "none", [], "") -> x·weightᵀ + bias``: oneDNN's fused linear (what Inductor's CPU backend calls).
LinearOp = Callable[..., torch.Tensor]


@functools.lru_cache(maxsize=1)
def native_bf16_linear() -> LinearOp | None:
    """oneDNN's bf16 linear where this CPU runs it natively, else ``None`` (probed once per process).

    First filter: the CPU's bf16 flags (:func:`crossformer.hardware.cpu_has_bf16_flags`) and a torch built with
    oneDNN. Then the op runs on a 1×8 bf16 input and must equal ``F.linear`` bit for bit; any error (an AVX2-only
    oneDNN: "could not create a primitive descriptor …") or difference means ``None``, and callers use ``F.linear``.
    """
    if not cpu_has_bf16_flags():
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=g).to(torch.bfloat16) for s in ((1, 8), (4, 8), (4,)))
        with torch.inference_mode():
            ok = torch.equal(op(x, w, b, "none", [], ""), F.linear(x, w, b))
    except (AttributeError, RuntimeError) as err:
        log.info("oneDNN's bf16 linear does not run here (%s); bf16 linears use F.linear",
                 str(err).split(". Run workload")[0].splitlines()[0] if str(err) else type(err).__name__)
        return None
    if not ok:
        log.info("oneDNN's bf16 linear differs from F.linear here; bf16 linears use F.linear")
        return None
    return op


def cpu_has_native_bf16() -> bool:
    """True when this CPU does bf16 natively: bf16 flags and oneDNN's bf16 linear runs (:func:`native_bf16_linear`)."""
    return native_bf16_linear() is not None


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 autocast runs natively (and so faster than fp32) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve(precision: str, device: torch.device | str) -> str:
    """``"auto"`` → ``"bf16"`` where :func:`bf16_supported`, else ``"fp32"``; explicit values pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        _say_emulated(torch.device(device).type)
    return precision


@functools.lru_cache(maxsize=None)
def _say_emulated(device_type: str) -> None:
    """One log line per process and device type: an explicit bf16 request where bf16 is not native."""
    if device_type == "cpu":
        why = "; its bf16 flags are set but oneDNN's bf16 linear does not run" if cpu_has_bf16_flags() else ""
        where = f"this CPU ({describe_cpu()}{why})"
    else:
        where = f"this {device_type} device"
    log.warning("bf16 is emulated on %s: it runs, slower than fp32; precision 'auto' would pick fp32.", where)


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str = "auto") -> Iterator[str]:
    """Run the block in ``precision`` on ``device`` (bf16 autocast or plain fp32); yields the one used."""
    device = torch.device(device)
    used = resolve(precision, device)
    if used == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield used
    else:
        yield used


#: Layers whose weights autocast casts to bf16 on every call (``linear``, ``conv2d``).
_MATMUL_LAYERS = (nn.Linear, nn.Conv2d)


class Bf16Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict keys) whose bf16 CPU calls run oneDNN's linear.

    aten's bf16 ``addmm`` first copies the broadcast bias into its output and then accumulates the GEMM onto it;
    oneDNN's linear adds the bias inside the GEMM. Both accumulate in fp32 and round once, so the outputs are
    bit-identical (tested on whole models); measured here ~10 % of a CrossFormer-T bf16 forward at batch 8
    (``benchmarks/bench_model.py --tables bf16``). Anything else goes to ``F.linear`` as before: fp32 or CUDA
    inputs, a non-contiguous input (aten then adds the bias after rounding the product: not the same bits), a
    call that must record gradients (the op has no backward), and every call on a machine where
    :func:`native_bf16_linear` found no native bf16 (an AVX2-only CPU: there ``F.linear`` under autocast is the
    only path, emulated).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features) → (..., out_features)``."""
        op = native_bf16_linear()
        if (op is not None and x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.is_contiguous()
                and self.weight.dtype == torch.bfloat16
                and not (torch.is_grad_enabled() and x.requires_grad)):
            return op(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def _to_bf16(module: nn.Module) -> nn.Module:
    """``module`` with its weight and bias as bf16 parameters (no grad); a ``Linear`` becomes a :class:`Bf16Linear`."""
    twin = module
    if type(module) is nn.Linear:
        twin = Bf16Linear(module.in_features, module.out_features, bias=module.bias is not None, device="meta")
        twin.train(module.training)
    for name in ("weight", "bias"):
        param = getattr(module, name)
        if param is not None:
            setattr(twin, name, nn.Parameter(param.detach().to(torch.bfloat16), requires_grad=False))
    return twin


def bf16_weights(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for bf16 autocast whose ``Linear``/``Conv2d`` weights and biases are stored in bf16.

    Under autocast every such weight is re-cast from fp32 on every forward (autocast's weight cache does
    not apply under ``torch.inference_mode``); measured here as ~10 % of a CrossFormer-T bf16 forward.
    Autocast would round each of these tensors to bf16 anyway (round to nearest even, as ``.to`` does), so
    the copy's outputs under autocast are bit-identical to ``model``'s (tested); norms and the rest stay
    fp32. Its ``Linear`` layers are :class:`Bf16Linear` (oneDNN's linear on CPU; same outputs). No parameter
    of the copy requires grad, and it shares nothing mutable with ``model`` (derived caches are emptied).
    Meant for repeated heavy passes only: outside autocast it would run its matmuls in bf16. Half the fp32
    memory of those weights. ``model`` is not changed.
    """
    twin = copy.deepcopy(model).requires_grad_(False)       # gradients w.r.t. inputs still flow
    for module in list(twin.modules()):
        if isinstance(getattr(module, "_cache", None), dict):
            module._cache = {}
        for name, child in list(module.named_children()):
            if isinstance(child, _MATMUL_LAYERS):
                setattr(module, name, _to_bf16(child))
    if isinstance(twin, _MATMUL_LAYERS):
        twin = _to_bf16(twin)
    return twin
