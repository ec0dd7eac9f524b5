"""load_checkpoint opens real-world files and refuses bad ones without executing anything."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap

import numpy as np
import pytest
import torch

import crossformer
from crossformer import CheckpointError, load_checkpoint
from crossformer.checkpoint import save_safetensors
from conftest import load_vector


def _small(name="crossformer_t", **kw):
    """A small-depth variant with the same key structure as a released one."""
    return crossformer.create_model(name, num_classes=5, **kw)


def _assert_same(a: torch.nn.Module, b: torch.nn.Module, size=64):
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def tiny_t():
    torch.manual_seed(0)
    return _small("crossformer_t").eval()


@pytest.mark.parametrize("wrap", ["model", "state_dict", "bare", "module_prefix", "backbone_prefix"])
def test_official_pth_layouts(tmp_path, tiny_t, wrap):
    sd = tiny_t.state_dict()
    if wrap == "module_prefix":
        obj = {"model": {f"module.{k}": v for k, v in sd.items()}}
    elif wrap == "backbone_prefix":
        obj = {"state_dict": {f"backbone.{k}": v for k, v in sd.items()}}
    elif wrap == "bare":
        obj = sd
    else:
        obj = {wrap: sd, "epoch": 299, "max_accuracy": 81.5}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    model, info = load_checkpoint(path)
    assert info.variant == "crossformer_t" and info.config.num_classes == 5
    assert info.format == "pth" and not info.missing
    _assert_same(model, tiny_t)


def test_v1_checkpoint_with_buffers_and_cfgnode(tmp_path, tiny_t, monkeypatch):
    """An official v1 training file: v1 buffers + a pickled yacs CfgNode under 'config' + optimizer state."""
    pkg = tmp_path / "fake" / "yacs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(textwrap.dedent("""
        class CfgNode(dict):
            IMMUTABLE = "__immutable__"
            def __init__(self, init_dict=None):
                super().__init__(init_dict or {})
                self.__dict__[CfgNode.IMMUTABLE] = False
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    from yacs.config import CfgNode  # the stand-in, only while writing

    sd = dict(tiny_t.state_dict())
    for k in [k for k in sd if k.endswith("attn.qkv.weight")]:
        base = k[: -len("qkv.weight")]
        sd[base + "biases"] = torch.zeros(169, 2)
        sd[base + "relative_position_index"] = torch.zeros(49, 49, dtype=torch.int64)
    cfg = CfgNode({"MODEL": CfgNode({"TYPE": "cross-scale", "NAME": "crossformer_tiny"}), "SEED": 0})
    path = tmp_path / "crossformer-t.pth"
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "epoch": 10,
                "max_accuracy": np.float64(81.5), "config": cfg}, path)
    for mod in [m for m in sys.modules if m == "yacs" or m.startswith("yacs.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(tmp_path / "nothing"))
    sys.path.remove(str(tmp_path / "fake"))
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)      # what the SPEC says happens
    model, info = load_checkpoint(path)
    assert "yacs" not in sys.modules             # nothing imported yacs to read it
    assert len(info.dropped) == 2 * sum(tiny_t.cfg.depths)
    assert "crossformer-t.pth" in info.source and "ICLR" in info.family and "v1" in info.family
    _assert_same(model, tiny_t)


def test_safetensors_and_npz_round_trip(tmp_path, tiny_t):
    st = tmp_path / "w.safetensors"
    save_safetensors(tiny_t, st)
    m1, info1 = load_checkpoint(st)
    assert info1.format == "safetensors"
    _assert_same(m1, tiny_t)
    npz = tmp_path / "w.npz"
    np.savez(npz, **{k: v.numpy() for k, v in tiny_t.state_dict().items()})
    m2, info2 = load_checkpoint(npz)
    assert info2.format == "npz" and info2.variant == "crossformer_t"
    _assert_same(m2, tiny_t)


def test_safetensors_from_the_library(tmp_path, tiny_t):
    from safetensors.torch import save_file
    path = tmp_path / "lib.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_t.state_dict().items()}, str(path))
    model, info = load_checkpoint(path.read_bytes())    # bytes work too (uploads)
    assert info.variant == "crossformer_t"
    _assert_same(model, tiny_t)


def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path, tiny_t):
    """A header length with low byte 0x80 makes the file start with a pickle's PROTO byte (a real case:
    the shipped demo weights); it must still be read as safetensors, not handed to the unpickler."""
    st = tmp_path / "w.safetensors"
    save_safetensors(tiny_t, st)
    data = st.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].rstrip(b" ")
    pad = (0x80 - len(header)) % 256 or 256                       # JSON allows trailing spaces
    header = header + b" " * pad
    assert len(header) % 256 == 0x80
    forged = len(header).to_bytes(8, "little") + header + data[8 + n:]
    assert forged[:1] == b"\x80"
    model, info = load_checkpoint(forged)
    assert info.format == "safetensors"
    _assert_same(model, tiny_t)


def test_vector_npz_loads_as_custom_v2pp():
    vec = load_vector("v2pp_lda_224")
    from conftest import VECTOR_DIR
    model, info = load_checkpoint(VECTOR_DIR / "v2pp_lda_224.npz")
    assert info.variant == "custom" and info.config.use_acl and info.config.group_size == (4, 4, 14, 7)
    with torch.no_grad():
        logits = model(torch.from_numpy(vec["input"])).numpy()
    np.testing.assert_allclose(logits, vec["logits"], atol=1e-4)


@pytest.mark.parametrize("name,variant", [("crossformer_pp_s", "crossformer_pp_s"), ("crossformer_s", "crossformer_s")])
def test_variant_inferred_from_tensors(tmp_path, name, variant):
    with torch.device("meta"):
        model = crossformer.create_model(name)
    sd = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
    from crossformer.checkpoint import infer_config
    got, cfg, family, _ = infer_config(sd)
    assert got == variant and cfg.num_classes == 1000
    assert ("++" in family) == ("pp" in name)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["top", "inside_model", "legacy"])
def test_hostile_pickle_is_refused_and_not_run(tmp_path, tiny_t, where):
    marker = tmp_path / "pwned"
    payload = _Evil(marker)
    sd = dict(tiny_t.state_dict())
    obj = {"model": sd, "config": payload} if where != "inside_model" else {"model": {**sd, "x": payload}}
    path = tmp_path / "evil.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=(where != "legacy"))
    with pytest.raises(CheckpointError, match="refus"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_bomb_refused(tmp_path):
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil2.pt"
    path.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_bad_files(tmp_path, tiny_t):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    good = tmp_path / "good.pth"
    torch.save({"model": tiny_t.state_dict()}, good)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_checkpoint(trunc)
    text = tmp_path / "notes.pth"
    text.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pth")
    st = tmp_path / "w.safetensors"
    save_safetensors(tiny_t, st)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


def test_other_architecture_and_wrong_shapes(tmp_path, tiny_t):
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64), "fc.weight": torch.zeros(10, 512)}
    p = tmp_path / "resnet.pth"
    torch.save(resnet, p)
    with pytest.raises(CheckpointError, match="not a CrossFormer"):
        load_checkpoint(p)
    sd = dict(tiny_t.state_dict())
    sd["layers.0.blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    p2 = tmp_path / "shapes.pth"
    torch.save({"model": sd}, p2)
    with pytest.raises(CheckpointError, match="shape mismatch for layers.0.blocks.0.attn.qkv.weight"):
        load_checkpoint(p2)
    sd = dict(tiny_t.state_dict())
    del sd["layers.2.blocks.0.mlp.fc1.weight"]
    p3 = tmp_path / "partial.pth"
    torch.save({"model": sd}, p3)
    with pytest.raises(CheckpointError, match="lacks 1"):
        load_checkpoint(p3)
    # a backbone without the classification head opens as the detection backbone (tests/test_backbone.py)


def test_npz_with_pickled_objects_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, a=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(p)
