"""Bad input never breaks the app: uploads and checkpoints a class may throw at it (AppTest)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import app_samples as S


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def upload(data: bytes, name: str, mime: str = "image/png"):
    at = S.new_app(64).run()
    at.file_uploader(key="sb_upload").upload(name, data, mime).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def image_caption(at) -> str:
    return next(c.value for c in at.sidebar.caption if "model input" in c.value)


@pytest.mark.parametrize("data, name, phrase", [
    (S.not_an_image(), "renamed.png", "not an image"),
    (S.truncated_jpeg(), "cut.jpg", "truncated or corrupt"),
    (b"", "empty.png", "empty (0 bytes)"),
    (S.png_header_only(20000, 20000), "bomb.png", "decompression bomb"),
], ids=["renamed", "truncated", "zero-byte", "bomb"])
def test_unreadable_upload_shows_an_error_and_falls_back(data, name, phrase):
    at = upload(data, name)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and phrase in errors[0] and name in errors[0]
    assert "default image" in errors[0]
    assert not image_caption(at).startswith("upload:")           # the app keeps working on the fallback
    assert at.dataframe, "the overview still renders"
    at.switch_page("pages/attention.py").run()                   # and every page still works
    assert not at.exception and len(at.get("plotly_chart")) == 2


@pytest.mark.parametrize("data, name, note", [
    (S.tiny(), "one_pixel.png", "upscaled"),
    (S.very_wide(), "wide.png", "extreme aspect ratio"),
    (S.rgba(), "alpha.png", "flattened onto white"),
    (S.palette_with_transparency(), "palette.png", "flattened onto white"),
    (S.la(), "la.png", "flattened onto white"),
    (S.cmyk_jpeg(), "cmyk.jpg", "CMYK"),
    (S.gray16(), "sixteen.png", "16-bit"),
    (S.exif_rotated(), "phone.jpg", "EXIF orientation 6"),
    (S.animated_gif(), "anim.gif", "first frame"),
], ids=["1x1", "20000x20", "rgba", "palette", "la", "cmyk", "16bit", "exif", "gif"])
def test_odd_but_valid_upload_is_used_with_a_note(data, name, note):
    at = upload(data, name, "image/gif" if name.endswith("gif") else "image/png")
    assert not at.error, [e.value for e in at.error]
    assert image_caption(at).startswith(f"upload: {name}")
    assert any(note in w.value for w in at.sidebar.warning), [w.value for w in at.sidebar.warning]


def checkpoint_app(data: bytes, name: str):
    at = S.new_app(64, sb_model="upload").run()
    at.file_uploader(key="sb_ckpt").upload(name, data, "application/octet-stream").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    at = checkpoint_app(S.hostile_checkpoint(str(marker)), "evil.pth")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "refus" in errors[0] and "evil.pth" in errors[0]
    assert not marker.exists(), "the pickle must not have run"
    assert any("Demo model" in c.value or "demo" in c.value for c in at.sidebar.caption)
    assert at.dataframe                                            # the demo model carries on


def test_checkpoint_of_another_model_is_explained():
    at = checkpoint_app(S.foreign_checkpoint(), "resnet.pth")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "not a CrossFormer checkpoint" in errors[0]


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    import json
    import struct

    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _huge_config_safetensors() -> bytes:
    import json

    import crossformer
    cfg = crossformer.CrossFormerConfig(embed_dim=4096, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)).to_dict()
    return _safetensors({"__metadata__": {"config": json.dumps(cfg)},
                         "patch_embed.norm.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)


def _zip_bomb_pth() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/data/0", b"\0" * (16 * 2 ** 20))           # 16 MiB of zeros in ~16 kB
    return buf.getvalue()


@pytest.mark.parametrize("build, name, phrase", [
    (lambda: __import__("struct").pack("<Q", 2 ** 40) + b"{" + b" " * 600, "header.safetensors", "header"),
    (_huge_config_safetensors, "huge.safetensors", "embed_dim"),
    (lambda: _safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                           "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16),
     "overlap.safetensors", "overlap"),
    (_zip_bomb_pth, "bomb.pth", "zip bomb"),
], ids=["header-length", "600-byte-huge-model", "overlapping-offsets", "zip-bomb"])
def test_each_class_of_broken_checkpoint_is_one_sentence_and_the_demo_carries_on(build, name, phrase):
    """Issue 28: each class the checkpoint checks refuse reaches the app as one CheckpointError sentence (no
    traceback, nothing allocated from the file's claims), and the demo model keeps working."""
    at = checkpoint_app(build(), name)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Could not load the checkpoint — "), errors
    assert phrase in errors[0] and name in errors[0], errors[0]
    assert any("demo" in c.value.lower() for c in at.sidebar.caption)
    assert at.dataframe                                            # the demo model carries on


def _tiny_imagenet_checkpoint(path: Path) -> Path:
    """A small CrossFormer with 1000 classes, saved as .safetensors (stands in for an official file)."""
    import torch
    import crossformer
    from crossformer.checkpoint import save_safetensors
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = crossformer.CrossFormer(crossformer.CrossFormerConfig(
            embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4), group_size=(4, 4, 4, 4),
            interval=(4, 2, 1, 1), num_classes=1000))
    save_safetensors(model, path)
    return path


def test_uploaded_checkpoint_is_detected_and_uses_imagenet_names(tmp_path):
    data = _tiny_imagenet_checkpoint(tmp_path / "tiny.safetensors").read_bytes()
    at = checkpoint_app(data, "tiny.safetensors")
    assert not at.error, [e.value for e in at.error]
    summary = next(c.value for c in at.sidebar.caption if "1000 classes" in c.value)
    assert "tiny.safetensors" in summary
    from pages.common.models import imagenet_class_names
    assert set(at.dataframe[0].value["class"]) <= set(imagenet_class_names())


def test_checkpoint_named_at_startup(tmp_path, monkeypatch):
    path = _tiny_imagenet_checkpoint(tmp_path / "startup.safetensors")
    monkeypatch.setenv("CROSSFORMER_CHECKPOINT", str(path))
    at = S.new_app(64).run()
    assert not at.exception and not at.error
    assert S.widget(at.selectbox, "sb_model").value == "startup"
    assert "1000 classes" in " ".join(c.value for c in at.sidebar.caption)
    monkeypatch.setenv("CROSSFORMER_CHECKPOINT", str(tmp_path / "missing.pth"))
    at = S.new_app(64).run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_startup_argument_parsing():
    from pages.common.settings import startup_checkpoint
    assert startup_checkpoint(["--checkpoint", "a.pth"], {}) == Path("a.pth")
    assert startup_checkpoint([], {"CROSSFORMER_CHECKPOINT": "b.pth"}) == Path("b.pth")
    assert startup_checkpoint(["--checkpoint", "a.pth"], {"CROSSFORMER_CHECKPOINT": "b.pth"}) == Path("a.pth")
    assert startup_checkpoint(["--other", "x"], {}) is None


def test_server_config_is_local_and_caps_uploads():
    cfg = tomllib.loads((Path(S.APP).parent / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["headless"] is True and cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False
    assert 0 < cfg["server"]["maxUploadSize"] <= 1024
    assert cfg["runner"]["postScriptGC"] is False, "a full gc.collect() per script run stalls every other session"


def test_official_weights_entry_uses_a_cached_file_and_never_fetches_unasked(tmp_path, monkeypatch):
    import torch

    import crossformer
    from crossformer import fetch, fetch_cache
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path))
    calls = []
    monkeypatch.setattr(fetch, "fetch_official", lambda *a, **k: calls.append(a))
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()     # nothing cached
    assert not at.exception and not calls
    assert any("Not downloaded yet" in c.value for c in at.sidebar.caption)
    assert at.button(key="sb_fetch")                                              # offered, not pressed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sd = {k: v.half() for k, v in crossformer.create_model("crossformer_t").state_dict().items()}
    torch.save({"model": sd}, tmp_path / fetch_cache.OFFICIAL_WEIGHTS["crossformer_t"].filename)
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()     # cached: used at once
    assert not at.exception and not calls
    assert any("CrossFormer-T" in c.value and "1000 classes" in c.value and "crossformer-t.pth" in c.value
               for c in at.sidebar.caption)


def test_default_query_is_on_the_predicted_object_with_imagenet_weights(tmp_path, monkeypatch):
    """ImageNet weights (a 1000-class checkpoint): the Attention page's default query is the object token of
    the top class — from the evidence of the very weights loaded — and the page says so."""
    import numpy as np
    import torch

    import crossformer
    from crossformer import fetch_cache
    from crossformer.analysis import findings
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = crossformer.create_model("crossformer_t").eval()
    torch.save({"model": model.state_dict()}, tmp_path / fetch_cache.OFFICIAL_WEIGHTS["crossformer_t"].filename)
    seen = []
    real = findings.object_token

    def spy(trace, ev):
        seen.append((trace, ev, real(trace, ev)))
        return seen[-1][2]
    monkeypatch.setattr(findings, "object_token", spy)
    at = S.new_app(96, sb_model="official", sb_official="crossformer_t").run()
    at.switch_page("pages/attention.py").run()
    assert not at.exception and seen
    assert any(c.value.startswith("Default query: on the predicted object") for c in at.caption)
    trace, evidence, token = seen[-1]
    top = int(np.argmax(trace.logits[0]))
    expected = findings.class_evidence(trace, model.norm.weight.detach().numpy(), model.norm.bias.detach().numpy(),
                                       model.head.weight.detach()[top].numpy())
    np.testing.assert_allclose(evidence, expected, atol=1e-5)
    r = trace.stage_stride(3) // trace.stage_stride(0)
    assert divmod(int(np.argmax(evidence)), evidence.shape[1]) == (token[0] // r, token[1] // r)
    assert (S.widget(at.slider, "attn_qrow").value, S.widget(at.slider, "attn_qcol").value) == token


def test_default_query_on_the_demo_is_the_embedding_salience():
    at = S.new_app(96).run()
    at.switch_page("pages/attention.py").run()
    assert not at.exception
    assert any(c.value.startswith("Default query: the token where the cross-scale embedding") for c in at.caption)
    at.slider(key=S.widget(at.slider, "attn_qrow").key).set_value(1).run()      # a picked query: no default line
    assert not any(c.value.startswith("Default query") for c in at.caption)


@pytest.mark.parametrize("model", ["demo", "architecture"])
def test_model_caption_names_the_variant_once(model):
    at = S.new_app(64, sb_model=model, sb_arch="crossformer_pp_s").run()
    assert not at.exception
    caption = next(c.value for c in at.sidebar.caption if "M parameters" in c.value)
    label = caption.split("**")[1]
    assert caption.count(label) == 1 and caption.count(label.split(" (")[0]) == 1, caption
    assert caption.count("Navon") <= 1 and caption.count("this project") <= 1, caption   # no near-repeats
