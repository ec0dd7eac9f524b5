"""A model change keeps the user's preprocessing (issue 31, Must-have 5); when the app must change it, one
line says why."""

from __future__ import annotations

import pytest

import app_samples as S
from pages.common.images import Preprocessing
from pages.common.prep_policy import evaluation_hint, usable_preprocessing


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def model_input(at) -> str:
    caption = next(c.value for c in at.sidebar.caption if "model input" in c.value)
    return caption.split("model input ")[1].split(" ")[0]


def test_choosing_a_1000_class_model_keeps_the_aspect_preprocessing():
    at = S.new_app(224).run()
    at.file_uploader(key="sb_upload").upload("wide.png", S.png(S.gradient(224, 337)), "image/png").run()
    S.no_errors(at)
    assert model_input(at) == "224×337"
    S.widget(at.selectbox, "sb_model").set_value("architecture").run()          # CrossFormer-T, 1000 classes
    S.no_errors(at)
    assert "1000 classes" in " ".join(c.value for c in at.sidebar.caption)
    assert at.session_state["sb_prep"] == "aspect"
    assert model_input(at) == "224×337"                                          # not cropped to 224×224
    assert any(w.key == "sb_size_draft" or (w.key or "").startswith("sb_size_draft::") for w in at.slider)
    hint = [c.value for c in at.sidebar.caption if c.value.startswith("Your preprocessing is kept")]
    assert len(hint) == 1 and "official transform" in hint[0]
    S.widget(at.selectbox, "sb_model").set_value("demo").run()                   # and back: still kept
    assert at.session_state["sb_prep"] == "aspect" and model_input(at) == "224×337"


def test_official_preprocessing_is_kept_for_the_demo_model_too():
    at = S.new_app(None, sb_prep="official").run()
    S.no_errors(at)
    assert model_input(at) == "224×224"
    S.widget(at.selectbox, "sb_model").set_value("architecture").run()
    S.widget(at.selectbox, "sb_model").set_value("demo").run()
    assert at.session_state["sb_prep"] == "official"
    assert not [c.value for c in at.sidebar.caption if c.value.startswith("Your preprocessing is kept")]


def test_a_size_the_model_cannot_use_is_raised_with_one_line_why():
    prep, why = usable_preprocessing(Preprocessing("aspect", 48), 64)
    assert prep == Preprocessing("aspect", 64)
    assert why.startswith("Shorter side raised from 48 to 64 px") and why.endswith(".") and "\n" not in why
    same, none = usable_preprocessing(Preprocessing("aspect", 96), 32)
    assert same == Preprocessing("aspect", 96) and none is None
    assert evaluation_hint(Preprocessing("official", 224), 1000) is None
    assert evaluation_hint(Preprocessing("aspect", 224), 25) is None
