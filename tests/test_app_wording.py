"""The small things of issue 31 (item 8): product names as written, number agreement, one number format."""

from __future__ import annotations

import pytest

import app_samples as S
from crossformer.analysis import facts
from pages.common.estimates import Cost
from pages.common.heavy import steps_text


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def test_step_counts_agree_in_number_and_carry_separators():
    assert steps_text(Cost(3.0, 1, 1, "passes")) == "1 pass"
    assert steps_text(Cost(3.0, 1, 2, "passes")) == "2 passes"
    assert steps_text(Cost(1.0, 1, 1200, "images")) == "1,200 images"
    assert steps_text(Cost(1.0, 1, 1, "heads")) == "1 head"
    assert facts.plural(1, "group") == "1 group" and facts.count(9834496) == "9,834,496"


def test_one_number_format_for_small_and_large_floats():
    assert [facts.number(v) for v in (8.9e-8, 1.54853e-6, 0.0123, 42.13, 123456.0)] == [
        "8.90e-08", "1.55e-06", "0.0123", "42.1", "1.23e+05"]
    assert facts.percent(0.0021) == "0.21 %" and facts.percent(0.016) == "1.6 %" and facts.percent(0.5) == "50 %"


def test_grad_cam_is_written_as_its_name():
    at = S.new_app(64).run()
    at.switch_page("pages/attributions.py").run()
    S.widget(at.radio, "attr_method").set_value("gradcam").run()
    S.no_errors(at)
    labels = [b.label for b in at.button]
    assert "Compute Grad-CAM" in labels and not any("grad-cam" in l for l in labels)
    assert not any(" 1 passes" in c.value or "(1 passes)" in c.value for c in at.caption)


def test_one_group_is_not_called_1_groups():
    at = S.new_app(64, dpb_stage=3).run()                  # 64 px: stage 3 is a 2×2 map, one global group
    at.switch_page("pages/position_bias.py").run()
    S.no_errors(at)
    captions = " ".join(c.value for c in at.caption)
    assert "the block's one group" in captions and "1 groups" not in captions
