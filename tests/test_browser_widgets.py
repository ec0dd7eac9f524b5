"""Widgets as a class uses them, in a real browser: the four sequences that used to raise
``TypeError: '>=' not supported between instances of 'str' and 'int'`` (a picker's stale label string in
session state, see pages/common/state.py), and a seeded monkey test over every page's selectboxes, radios
and sliders, the sidebar's image and model switches and the page navigation.

``MONKEY_ACTIONS`` / ``MONKEY_SECONDS`` / ``MONKEY_SEED`` (environment) size the monkey test; the suite
runs it for at most ~2 minutes. Every action is logged, so a failure names the seed and the sequence.
"""

from __future__ import annotations

import logging
import os
import random
import time

import pytest

import app_samples as S
from browser_tools import (CHROMIUM, SHOTS, assert_no_exception, choose_radio, exceptions, goto_page, nav_link,
                           select, settle)
from pages.common.navigation import PAGES

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:                        # collected without playwright: the tests are skipped anyway
    PlaywrightTimeout = TimeoutError

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]
TITLE = {p.id: p.title for p in PAGES}


def test_attention_block_then_stages_regression(page):
    goto_page(page, TITLE["attn"])
    for label, option in (("Block", "s0_b0"), ("Stage", "Stage 2"), ("Block", "s2_b1"), ("Stage", "Stage 3"),
                          ("Stage", "Stage 0")):
        select(page, label, option)
        assert_no_exception(page, f"{label} → {option}")
    box = page.get_by_role("combobox", name="Block", exact=True).first
    assert box.input_value().startswith("s0_b1"), "block 1 exists in stage 0, so the choice is kept"


def test_groups_stage_changes_regression(page):
    goto_page(page, TITLE["grp"])
    for option in ("Stage 2", "Stage 3"):
        select(page, "Stage", option)
        assert_no_exception(page, f"Stage → {option}")
    assert page.get_by_role("combobox", name="Stage", exact=True).first.input_value().startswith("Stage 3")


def test_position_bias_stage_changes_regression(page):
    goto_page(page, TITLE["dpb"])
    for option in ("Stage 2", "Stage 3"):
        select(page, "Stage", option)
        assert_no_exception(page, f"Stage → {option}")


def test_embedding_layer_changes_regression(page):
    goto_page(page, TITLE["emb"])
    choose_radio(page, "Kernel", "32×32")                   # the CEL's 4th kernel: merges have only two
    for option in ("merge after stage 1", "merge after stage 2"):
        select(page, "Layer", option)
        assert_no_exception(page, f"Layer → {option}")
    assert page.get_by_role("combobox", name="Layer", exact=True).first.input_value().endswith(
        "(stage 2 → stage 3)")


# ---- the monkey ------------------------------------------------------------------------------------------
def _visible(locator) -> list:
    return [locator.nth(i) for i in range(locator.count()) if locator.nth(i).is_visible()]


def _act_selectbox(page, rng: random.Random) -> str | None:
    boxes = _visible(page.get_by_role("combobox"))
    if not boxes:
        return None
    box = rng.choice(boxes)
    label = box.get_attribute("aria-label")
    box.locator("xpath=..").get_by_role("button", name="Open").click()
    opts = page.get_by_role("option")
    try:
        opts.first.wait_for(timeout=10_000)
    except PlaywrightTimeout:              # the app re-ran under the click and redrew the box: not an error
        page.keyboard.press("Escape")
        return None
    k = rng.randrange(opts.count())
    text = opts.nth(k).inner_text()
    opts.nth(k).click()
    return f"select {label!r} → {text!r}"


def _act_radio(page, rng: random.Random) -> str | None:
    groups = _visible(page.get_by_role("radiogroup"))
    if not groups:
        return None
    group = rng.choice(groups)
    options = _visible(group.locator("[data-testid='stRadioOption']"))
    option = rng.choice(options)
    text = option.inner_text()
    option.click()
    return f"radio {group.get_attribute('aria-label')!r} → {text!r}"


def _act_slider(page, rng: random.Random) -> str | None:
    sliders = _visible(page.get_by_role("slider"))
    if not sliders:
        return None
    s = rng.choice(sliders)
    key = rng.choice(["ArrowRight", "ArrowLeft", "Home", "End", "PageUp", "PageDown"])
    s.focus()
    for _ in range(rng.choice([1, 1, 2, 3])):
        page.keyboard.press(key)
    return f"slider {s.get_attribute('aria-label')!r} {key}"


def _act_page(page, rng: random.Random) -> str:
    spec = rng.choice(PAGES)
    nav_link(page, spec.title).click()
    return f"page {spec.title!r}"


def _act_upload(page, rng: random.Random, files: dict) -> str | None:
    inputs = page.locator("[data-testid='stFileUploaderDropzoneInput']")
    if inputs.count() == 0:
        return None
    # first uploader: the image; second (only when "Upload a checkpoint" is chosen): the checkpoint
    k = rng.randrange(inputs.count())
    name = rng.choice(sorted(files["image" if k == 0 else "checkpoint"]))
    inputs.nth(k).set_input_files(str(files["image" if k == 0 else "checkpoint"][name]))
    return f"upload {'image' if k == 0 else 'checkpoint'} {name}"


def _files(tmp_path) -> dict:
    import numpy as np
    import torch

    import crossformer
    from crossformer.checkpoint import save_safetensors
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    photo.write_bytes(S.png(S.gradient(180, 300)))
    tall = tmp_path / "tall.png"
    tall.write_bytes(S.png(rng.integers(0, 255, (300, 120, 3), dtype=np.uint8)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(S.not_an_image())
    torch.manual_seed(0)
    ckpt = tmp_path / "random_demo.safetensors"
    save_safetensors(crossformer.create_model("crossformer_demo"), ckpt, metadata={"variant": "crossformer_demo"})
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint" * 10)
    import backbone_samples
    detector = backbone_samples.write_mmdet(tmp_path / "mask_rcnn_crossformer_t.pth")   # opens as its backbone
    return {"image": {"photo.png": photo, "tall.png": tall, "bad.png": bad},
            "checkpoint": {"random_demo.safetensors": ckpt, "junk.pth": junk, "mask_rcnn_crossformer_t.pth": detector}}


def test_monkey(page, tmp_path):
    _monkey(page, _files(tmp_path), min_actions=20)


def test_monkey_backbone(browser, tmp_path):
    """The same monkey on a server started with a detector's checkpoint (``CROSSFORMER_CHECKPOINT``: a synthetic
    mmdet file whose CrossFormer-T backbone the app opens), from the user's keep-aspect preprocessing."""
    from browser_tools import free_port, start_server, stop_server
    files = _files(tmp_path)
    proc = start_server(port := free_port(), env={"CROSSFORMER_CHECKPOINT":
                                                  str(files["checkpoint"]["mask_rcnn_crossformer_t.pth"])})
    try:
        ctx = browser.new_context(viewport={"width": 1400, "height": 2400})
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        settle(page, timeout=180_000)
        assert page.get_by_text("detector parts not used", exact=False).count() >= 1
        choose_radio(page, "Preprocessing", "Keep aspect ratio")     # 224 px: quick actions on 2 cores
        assert_no_exception(page, "the backbone's start")
        # fewer actions than the demo's monkey: each first visit of a heavy page calibrates the cost model on
        # the backbone (seconds on 2 shared cores; 6 actions in 110 s at load average 30, 115 at load 4)
        _monkey(page, files, min_actions=5, seed_offset=1)
        ctx.close()
    finally:
        stop_server(proc)


def _monkey(page, files: dict, min_actions: int, seed_offset: int = 0) -> None:
    seed = int(os.environ.get("MONKEY_SEED", "20261202")) + seed_offset
    budget = int(os.environ.get("MONKEY_ACTIONS", "400"))
    seconds = float(os.environ.get("MONKEY_SECONDS", "110"))
    rng = random.Random(seed)
    history: list[str] = []
    start = time.monotonic()
    kinds = ["selectbox"] * 5 + ["radio"] * 3 + ["slider"] * 3 + ["page"] * 3 + ["upload"]
    while len(history) < budget and time.monotonic() - start < seconds:
        kind = rng.choice(kinds)
        if kind == "selectbox":
            done = _act_selectbox(page, rng)
        elif kind == "radio":
            done = _act_radio(page, rng)
        elif kind == "slider":
            done = _act_slider(page, rng)
        elif kind == "page":
            done = _act_page(page, rng)
        else:
            done = _act_upload(page, rng, files)
        if done is None:
            continue
        history.append(done)
        page.wait_for_timeout(150)
        settle(page, timeout=180_000)
        found = exceptions(page)
        if found:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "monkey_failure.png"))
            steps = "\n".join(f"{i + 1:4d}. {h}" for i, h in enumerate(history))
            pytest.fail(f"exception box after action {len(history)} (seed {seed}):\n{steps}\n\n{found[0]}")
    log.warning("monkey: seed %d, %d actions in %.0f s, no exception box", seed, len(history),
                time.monotonic() - start)
    print(f"monkey: seed {seed}, {len(history)} actions in {time.monotonic() - start:.0f} s, no exception box")
    assert len(history) >= min_actions, f"the monkey made only {len(history)} actions"
