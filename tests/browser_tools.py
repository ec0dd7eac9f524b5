"""Driving the app in a real browser (Debian chromium + playwright): server start-up, settling, and the
interactions a person makes — choosing a selectbox option, a radio option, moving a slider with the
keyboard, switching pages. Shared by the browser tests; the pattern is Streamlit's own end-to-end one.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: As FLAGS, but WebGL rendered in software (SwiftShader) instead of no GPU at all: 3-D plotly scenes draw.
WEBGL_FLAGS = [f for f in FLAGS if f != "--disable-gpu"] + ["--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                                                           "--ignore-gpu-blocklist"]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "out" / "screenshots"
EXCEPTION = "[data-testid='stException']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict | None = None, root: Path = ROOT, log: Path | None = None) -> subprocess.Popen:
    """``streamlit run app.py`` (of ``root``) on ``127.0.0.1:port``; returns once ``/_stcore/health`` answers.
    ``log``: a file that receives the server's output (the app's log lines), else it is discarded."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    out = open(log, "w") if log is not None else subprocess.DEVNULL   # noqa: SIM115 — the server owns it
    proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited during start-up")
    proc.kill()
    raise RuntimeError("streamlit did not answer /_stcore/health within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def settle(page, timeout: float = 120_000) -> None:
    """Streamlit's own end-to-end pattern: connected, then the script has finished."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    page.wait_for_timeout(250)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def exceptions(page) -> list[str]:
    """Texts of the exception boxes on the page (empty when none)."""
    boxes = page.locator(EXCEPTION)
    return [boxes.nth(i).inner_text()[:2000] for i in range(boxes.count())]


def assert_no_exception(page, what: str = "") -> None:
    found = exceptions(page)
    assert not found, f"exception box after {what}:\n{found[0]}"


def nav_link(page, title: str):
    """The sidebar navigation link whose text is exactly ``title`` ("Attention", not "Why cross-scale attention?")."""
    return page.locator("[data-testid='stSidebarNavLink']").filter(
        has_text=re.compile(rf"{re.escape(title)}\s*$")).first   # textContent is the icon's name + the title


def goto_page(page, title: str) -> None:
    """Click the sidebar navigation link ``title`` and wait for the page."""
    nav_link(page, title).click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    settle(page)


def _open_list(page, label: str):
    """Open the selectbox ``label``'s option list; its options.

    A rerun that redraws the box between the click and the list (a model still loading under a loaded CI machine)
    closes the list: then the page is settled and the box clicked once more, as a user would.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def click_open() -> None:
        box = page.get_by_role("combobox", name=label, exact=True).first
        box.locator("xpath=..").get_by_role("button", name="Open").click()

    opts = page.get_by_role("option")
    click_open()
    try:
        opts.first.wait_for(timeout=10_000)
    except PlaywrightTimeout:
        settle(page)
        click_open()
        opts.first.wait_for(timeout=10_000)
    return opts


def select(page, label: str, option: str, exact: bool = False) -> None:
    """Choose ``option`` (its shown text, a substring unless ``exact``) in the selectbox labelled ``label``."""
    opts = _open_list(page, label)
    opts.filter(has_text=option).first.click() if not exact else page.get_by_role(
        "option", name=option, exact=True).first.click()
    settle(page)


def select_options(page, label: str) -> list[str]:
    """The option texts of the selectbox ``label`` (opens and closes its list)."""
    opts = _open_list(page, label)
    texts = [opts.nth(i).inner_text() for i in range(opts.count())]
    page.keyboard.press("Escape")
    return texts


def choose_radio(page, label: str, option: str) -> None:
    """Click the option ``option`` (exact text) of the radio group labelled ``label``."""
    group = page.get_by_role("radiogroup", name=label, exact=True).first
    group.locator("[data-testid='stRadioOption']").filter(has_text=option).first.click()
    settle(page)


def press_slider(page, label: str, key: str) -> None:
    """Focus the slider ``label`` and press ``key`` (``ArrowRight``, ``End``, ``PageUp`` …)."""
    s = page.get_by_role("slider", name=label, exact=True).first
    s.focus()
    page.keyboard.press(key)
    page.wait_for_timeout(300)
    settle(page)
