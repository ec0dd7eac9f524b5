"""The public recorder protocol (``crossformer.recording``, ``CrossFormer.run``): a recorder written against it
alone receives every documented call, in order, with the documented shapes; recording changes no output bit;
the model keeps no reference to the recorder; nothing outside ``crossformer/model.py`` uses the private forward."""

from __future__ import annotations

import ast
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import crossformer
from crossformer.edits import Edit
from crossformer.recording import NullRecorder, Recorder
from crossformer.trace import TraceRecorder

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 4), num_classes=3)
TINY_PP = dict(embed_dim=16, depths=(2, 2, 3, 2), num_heads=(1, 1, 2, 4), num_classes=3, group_size=(4, 4, 14, 7),
               interval=(4, 2, 1, 1), use_acl=True)
#: 224 (no padding), 60×92 (every stage padded, LDA groups included), 64×64 (small maps)
SIZES = [(224, 224), (60, 92), (64, 64)]


@pytest.fixture(scope="module")
def models() -> dict[str, crossformer.CrossFormer]:
    torch.manual_seed(0)
    return {"v1": crossformer.create_model("crossformer_t", **TINY).eval(),
            "pp": crossformer.create_model("crossformer_pp_s", **TINY_PP).eval()}


class Calls:
    """A recorder written against the documented protocol only (no base class): it keeps every call."""

    def __init__(self, keeps_content: bool) -> None:
        self.keeps_content = keeps_content
        self.calls: list[tuple] = []

    def embedding(self, layer, per_kernel, output) -> None:
        self.calls.append(("embedding", layer, [tuple(p.shape) for p in per_kernel], tuple(output.shape)))

    def attention(self, where, layout, content, attention, table, bias) -> None:
        self.calls.append(("attention", where, layout, None if content is None else content.clone(),
                           attention.clone(), table.clone(), bias.clone()))

    def block(self, block, layout, output) -> None:
        self.calls.append(("block", block, layout, tuple(output.shape)))

    def stage(self, stage, hw, output) -> None:
        self.calls.append(("stage", stage, hw, tuple(output.shape)))


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("which", ["v1", "pp"])
@pytest.mark.parametrize("keeps_content", [True, False])
def test_a_recorder_receives_every_documented_call_with_its_shapes(models, which, hw, keeps_content) -> None:
    model, B = models[which], 2
    cfg = model.cfg
    rec = Calls(keeps_content)
    assert isinstance(rec, Recorder)
    with torch.no_grad():
        model.run(torch.randn(B, 3, *hw), rec)
    plan = model.plan(hw)
    calls = iter(rec.calls)

    def check_embedding(index: int, in_hw: tuple[int, int]) -> tuple[int, int]:
        name, layer, per_kernel, output = next(calls)
        assert name == "embedding" and layer.index == index and layer.input_hw == in_hw
        kernels = cfg.patch_kernels if index == 0 else cfg.merge_kernels[index - 1]
        assert layer.kernels == tuple(kernels) and layer.stride == (4 if index == 0 else 2)
        Ho, Wo = layer.output_hw
        assert per_kernel == [(B, c, Ho, Wo) for c in layer.channels]
        assert output == (B, Ho * Wo, sum(layer.channels)) and sum(layer.channels) == cfg.stage_dim(index)
        return layer.output_hw

    grid = check_embedding(0, hw)
    padded_lda = False
    for i, stage_plan in enumerate(plan):
        for j, planned in enumerate(stage_plan):
            name, where, layout, content, attention, table, bias = next(calls)
            assert name == "attention" and where == (i, j) and layout.feature_hw == grid
            assert (layout.kind, layout.group_size, layout.interval) == (planned.kind, planned.group_size,
                                                                         planned.interval)
            h, nG, N, G = cfg.num_heads[i], layout.num_groups, layout.group_tokens, layout.group_size
            assert attention.shape == (B, nG, h, N, N) and N == G * G
            assert table.shape == ((2 * G - 1) ** 2, h) and bias.shape == (h, N, N)
            # the bias is the table expanded by the layout's relative index
            idx = torch.from_numpy(np.array(layout.relative_index, dtype=np.int64))
            assert torch.equal(bias, table[idx.reshape(-1)].reshape(N, N, h).permute(2, 0, 1))
            pad = torch.from_numpy(np.array(layout.key_padding))                            # (nG, N)
            assert torch.all(attention.masked_select(pad[None, :, None, None, :]) == 0)      # padded keys: 0
            torch.testing.assert_close(attention.sum(-1), torch.ones(B, nG, h, N))
            padded_lda |= layout.kind == "lda" and layout.is_padded
            if keeps_content:
                assert content.shape == (B, nG, h, N, N)
                mask = torch.from_numpy(np.array(layout.attn_mask))[None, :, None]           # (1, nG, 1, N, N)
                torch.testing.assert_close(attention, torch.softmax(content + bias + mask, -1))
            else:
                assert content is None
            name, block, layout_b, output = next(calls)
            assert name == "block" and block.where == (i, j) and layout_b is layout
            assert (block.dim, block.heads) == (cfg.stage_dim(i), h) and block.scale == (block.dim // h) ** -0.5
            assert block.has_acl == (j in set(cfg.acl_blocks(i)))
            assert output == (B, grid[0] * grid[1], cfg.stage_dim(i))
        assert next(calls) == ("stage", i, grid, (B, grid[0] * grid[1], cfg.stage_dim(i)))
        if i < len(plan) - 1:
            grid = check_embedding(i + 1, grid)
    assert next(calls, None) is None
    assert padded_lda or hw != (60, 92)                             # the padded size really pads LDA groups


@pytest.mark.parametrize("hw", [(224, 224), (60, 92)])
@pytest.mark.parametrize("which", ["v1", "pp"])
def test_recording_changes_no_output_bit(models, which, hw) -> None:
    """``run`` with any recorder = the plain explicit-path forward, bit for bit (and the fused one to rounding)."""
    model = models[which]
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        fused = model(x)
        model.set_fused_attention(False)
        try:
            explicit = model(x)
        finally:
            model.set_fused_attention(True)
        outs = [model.run(x, rec) for rec in (NullRecorder(), Calls(True), Calls(False), TraceRecorder())]
    for out in outs:
        assert torch.equal(out, explicit)
    torch.testing.assert_close(outs[0], fused, rtol=1e-5, atol=1e-5)


def test_run_with_edits_equals_the_edited_forward_and_records_the_edit(models) -> None:
    model = models["v1"]
    x = torch.randn(2, 3, 60, 92)
    edits = [Edit(0, 1, "uniform", head=0), Edit(2, 0, "zero"), Edit(1, 0, "swap")]
    rec = Calls(True)
    with torch.no_grad():
        got = model.run(x, rec, edits)
        model.set_fused_attention(False)
        try:
            want = model.forward_edited(x, edits)
        finally:
            model.set_fused_attention(True)
    assert torch.equal(got, want)
    seen = {c[1]: c for c in rec.calls if c[0] == "attention"}
    _, _, layout, content, attention, _, _ = seen[(0, 1)]
    real = torch.from_numpy(~np.asarray(layout.key_padding)).float()                          # (nG, N)
    uniform = (real / real.sum(-1, keepdim=True))[None, :, None, None].expand_as(attention[:, :, :1])
    torch.testing.assert_close(attention[:, :, :1], uniform)                                   # head 0 uniform
    assert seen[(1, 0)][2].kind != model.plan((60, 92))[1][0].kind                            # swapped layout
    with pytest.raises(ValueError, match="sample=None"):
        model.run(x, NullRecorder(), [Edit(0, 0, "zero", sample=0)])


def test_the_model_keeps_no_reference_to_the_recorder(models) -> None:
    model = models["pp"]
    before = {name: dict(m.__dict__) for name, m in model.named_modules()}
    for make in (lambda: Calls(True), lambda: Calls(False), NullRecorder):
        rec = make()
        ref = weakref.ref(rec)
        with torch.no_grad():
            model.run(torch.randn(1, 3, 60, 92), rec)
        del rec
        assert ref() is None                                     # freed by reference counting alone
    gc.collect()
    after = {name: dict(m.__dict__) for name, m in model.named_modules()}
    assert after.keys() == before.keys()
    for name, attrs in after.items():
        assert attrs.keys() == before[name].keys(), f"{name} gained {attrs.keys() - before[name].keys()}"


def test_not_a_recorder_is_refused_before_running(models) -> None:
    class Partial:
        keeps_content = True

        def attention(self, *args) -> None:
            raise AssertionError("ran")

    with pytest.raises(TypeError, match="lacks embedding, block, stage"):
        models["v1"].run(torch.randn(1, 3, 64, 64), Partial())
    assert isinstance(NullRecorder(), Recorder) and isinstance(TraceRecorder(), Recorder)
    assert not isinstance(Partial(), Recorder)


#: The model's private forward pieces, and the private recorder name they had before the protocol.
PRIVATE = {"_Recorder", "_run", "_stages"}


def _private_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "_Recorder":
            found.append(f"{path.name}:{node.lineno} {node.id}")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "_Recorder" for a in node.names):
            found.append(f"{path.name}:{node.lineno} import _Recorder")
    return found


def test_nothing_outside_the_model_uses_its_private_forward(tmp_path) -> None:
    dirs = ("crossformer", "pages", "viz", "benchmarks")
    files = [ROOT / "app.py"] + [p for d in dirs for p in (ROOT / d).rglob("*.py")]
    files = [p for p in files if p != ROOT / "crossformer" / "model.py"]
    assert len(files) > 50
    assert [f"{p.parent.name}/{u}" for p in files for u in _private_uses(p)] == []
    # the scan sees each form of use (the ones stats_heads.py had before the protocol)
    probe = tmp_path / "probe.py"
    probe.write_text("from .model import CrossFormer, _Recorder\nfrom . import model\n"
                     "class R(model._Recorder):\n    pass\n\nclass S(_Recorder):\n    pass\n\n"
                     "def f(m, x):\n    return m._run(x, R()), m._stages(x)\n", encoding="utf-8")
    assert len(_private_uses(probe)) == 5
