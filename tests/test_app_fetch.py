"""Each class of download or checkpoint failure goes through the app (AppTest): the sidebar shows the
FetchError's / CheckpointError's sentence, nothing is raised into the page, the demo model carries on, no
progress bar is left on screen and no temporary file in the cache. Downloads come from a loopback server
standing in for Google Drive (``fetch_http.DRIVE_URL``); nothing touches the network."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading

import pytest

import app_samples as S
from crossformer import fetch, fetch_cache, fetch_http
from local_http import base, clear_proxies, send, send_then_wait, serve

T_FILE = fetch_cache.OFFICIAL_WEIGHTS["crossformer_t"].filename


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)
    clear_proxies(monkeypatch)


@pytest.fixture()
def drive(monkeypatch):
    """A loopback server answering for Google Drive."""
    with serve() as srv:
        monkeypatch.setattr(fetch_http, "DRIVE_URL", base(srv) + "/uc")
        yield srv


def _malformed_safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\x00" * 4


def _cut_off_pth() -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(4096)}}, buf)
    return buf.getvalue()[:5000]


def _demo_in_use(at) -> bool:
    return any(c.value.startswith("**CrossFormer demo") for c in at.sidebar.caption)


def _assert_fell_back(at, start: str, phrase: str) -> str:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    msg = errors[0]
    assert msg.startswith(start) and phrase in msg, msg
    assert re.search(r"[.!?)] Using the demo model\.$", msg), msg       # whole sentences
    assert _demo_in_use(at) and at.dataframe                             # the demo model carries on
    return msg


# ---- a download that fails, one class at a time -----------------------------------------------------
def _gate_route(body: bytes, first: int, gates: list[threading.Event]):
    def route(h) -> None:
        gate = threading.Event()
        gates.append(gate)
        send_then_wait(h, body, first, gate)
    return route


CASES = {
    "web page": (lambda gates: lambda h: send(h, b"<!DOCTYPE html><html>Quota exceeded</html>", "text/html"),
                 "Google Drive returned a web page instead of the checkpoint"),
    "HTTP error": (None, "answered HTTP 404"),
    "truncated": (lambda gates: lambda h: send(h, b"PK\x03\x04" + b"\x00" * 1000, length=50_000),
                  "connection closed after 1,004 of the 50,000 bytes announced"),
    "stall": (lambda gates: _gate_route(b"PK\x03\x04" + b"\x00" * 50_000, 20_000, gates),
              "the download stalled"),
    "malformed": (lambda gates: lambda h: send(h, _malformed_safetensors()),
                  "the downloaded file is not a usable checkpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failed_download_shows_why_and_keeps_the_demo_model(case, drive, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path))
    if case == "stall":
        monkeypatch.setattr(fetch, "STALL_S", 0.3)
    gates: list[threading.Event] = []
    route, phrase = CASES[case]
    if route is not None:
        drive.routes["/uc"] = route(gates)
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()
    assert not at.error and _demo_in_use(at)
    try:
        at.button(key="sb_fetch").click().run()
    finally:
        for gate in gates:
            gate.set()
    msg = _assert_fell_back(at, "Could not download the official crossformer_t weights — ", phrase)
    assert drive.requests, "the download was tried"
    assert not at.get("progress"), "no progress bar ('Connecting…') is left on screen"
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(fetch_cache.LOCK_SUFFIX)] == [], msg


def test_unwritable_cache_folder(drive, tmp_path, monkeypatch):
    """As root chmod does not stop writes: the cache folder's path runs through a regular file."""
    (tmp_path / "afile").write_bytes(b"x")
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path / "afile" / "cache"))
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()
    at.button(key="sb_fetch").click().run()
    _assert_fell_back(at, "Could not download", "cannot use the cache folder")
    assert drive.requests == [] and not at.get("progress")


def test_full_disk(drive, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path))
    drive.routes["/uc"] = lambda h: send(h, b"PK\x03\x04" + b"\x00" * 5_000_000)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()
    at.button(key="sb_fetch").click().run()
    _assert_fell_back(at, "Could not download", "has 0 MB free")
    assert list(tmp_path.glob(f"*{fetch_cache.TEMP_SUFFIX}")) == []


# ---- a bad file under the right name in the cache ---------------------------------------------------
def test_bad_cached_file_is_flagged_and_offered_again(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path))
    (tmp_path / T_FILE).write_bytes(b"<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>")
    calls = []
    monkeypatch.setattr(fetch, "fetch_official", lambda *a, **k: calls.append(a))
    at = S.new_app(64, sb_model="official", sb_official="crossformer_t").run()
    assert not at.exception and not at.error and not calls                 # never loaded, never fetched unasked
    warnings = [w.value for w in at.sidebar.warning]
    assert any("is bad: an HTML page" in w and T_FILE in w and "Download it again" in w for w in warnings), warnings
    assert at.button(key="sb_fetch") and _demo_in_use(at)


# ---- a corrupt uploaded checkpoint -----------------------------------------------------------------
@pytest.mark.parametrize("data, name, phrase", [
    (_cut_off_pth, "cut.pth", "truncated or corrupt"),
    (lambda: b"<!DOCTYPE html><html>Sign in</html>", "page.pth", "is not a checkpoint"),
    (lambda: b"", "empty.safetensors", "empty (0 bytes)"),
], ids=["cut-off", "html", "empty"])
def test_corrupt_uploaded_checkpoint(data, name, phrase):
    at = S.new_app(64, sb_model="upload").run()
    at.file_uploader(key="sb_ckpt").upload(name, data(), "application/octet-stream").run()
    msg = _assert_fell_back(at, "Could not load the checkpoint — ", phrase)
    assert name in msg
