"""Shared fixtures: the official test vectors from ../shared/reference/vectors (fail loudly if missing)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ../shared/reference beside the clone (CI and developers); CROSSFORMER_REFERENCE overrides (device runs)
REFERENCE = Path(os.environ.get("CROSSFORMER_REFERENCE", ROOT.parent / "shared" / "reference"))
VECTOR_DIR = REFERENCE / "vectors"
VECTOR_NAMES = ("v1_tiny_224", "v2pp_tiny_256", "v2pp_lda_224")


class Vector:
    """One official test vector: sidecar JSON + arrays."""

    def __init__(self, name: str) -> None:
        npz, meta = VECTOR_DIR / f"{name}.npz", VECTOR_DIR / f"{name}.json"
        if not npz.exists() or not meta.exists():
            raise FileNotFoundError(
                f"official test vector {name} missing: expected {npz} and {meta} "
                "(the shared/ folder must sit beside the repository)")
        self.name = name
        self.meta = json.loads(meta.read_text())
        with np.load(npz) as z:
            self.arrays = {k: z[k] for k in z.files}
        self.kwargs = self.meta["constructor_kwargs"]
        self.code_version = self.meta["code_version"]

    @property
    def state_dict(self) -> dict[str, np.ndarray]:
        return {k[3:]: v for k, v in self.arrays.items() if k.startswith("sd/")}

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def attention_keys(self) -> list[tuple[str, int, int]]:
        out = []
        for k in self.arrays:
            if k.startswith("attn_s"):
                s, b = k[len("attn_s"):].split("_b")
                out.append((k, int(s), int(b)))
        return out


_cache: dict[str, Vector] = {}


def load_vector(name: str) -> Vector:
    if name not in _cache:
        _cache[name] = Vector(name)
    return _cache[name]


@pytest.fixture(params=VECTOR_NAMES)
def vector(request) -> Vector:
    return load_vector(request.param)


@pytest.fixture(scope="session")
def official_state_dicts() -> dict:
    path = REFERENCE / "official_state_dicts.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing (the shared/ folder must sit beside the repository)")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def device():
    """Where conformance tests run: ``CROSSFORMER_TEST_DEVICE`` (e.g. ``cuda``), default CPU.

    On CUDA, TF32 is switched off so float32 really is float32 (cuDNN convolutions default to TF32).
    """
    import os

    import torch
    dev = torch.device(os.environ.get("CROSSFORMER_TEST_DEVICE", "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return dev


@pytest.fixture(autouse=True)
def _two_threads():
    import torch
    torch.set_num_threads(2)
    yield


# ---- browser tests (tests/browser_tools.py): one server and one chromium per test module ---------------
@pytest.fixture(scope="module")
def server():
    """A running ``streamlit run app.py`` on a free loopback port → its URL."""
    from browser_tools import free_port, start_server, stop_server
    proc = start_server(port := free_port())
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def _chromium(flags: list[str]):
    """Debian's chromium under playwright (never a downloaded browser), launched with ``flags``."""
    from playwright.sync_api import sync_playwright

    from browser_tools import CHROMIUM
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser():
    """Chromium with the usual flags (no GPU: 3-D plotly scenes draw nothing)."""
    from browser_tools import FLAGS
    yield from _chromium(FLAGS)


@pytest.fixture(scope="module")
def webgl_browser():
    """Chromium that renders WebGL in software (SwiftShader), for the 3-D plotly scenes."""
    from browser_tools import WEBGL_FLAGS
    yield from _chromium(WEBGL_FLAGS)


@pytest.fixture
def page(server, browser):
    """A fresh 1400×2400 browser page on the app, settled after its first run."""
    from browser_tools import settle
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})
    pg = ctx.new_page()
    pg.goto(server)
    settle(pg)
    yield pg
    ctx.close()
