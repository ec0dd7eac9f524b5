"""crossformer.fetch_official against a local loopback HTTP server (no real network is ever used).

The server answers from per-test routes: the right checkpoint, a truncated body, an HTML page, a file of
the wrong variant, and Google Drive's confirmation round trip (``fetch_http.DRIVE_URL`` points at it).
A real crossformer_t checkpoint (fp16, ~55 MB) is written once per session; flows that only need *some*
verifiable file use the small demo model through a test-only ``OFFICIAL_WEIGHTS`` entry.
"""

from __future__ import annotations

import errno
import html
import http.server
import io
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossformer import fetch, fetch_cache, fetch_http
from crossformer.fetch import fetch_official
from crossformer.fetch_cache import cached_official
from crossformer.fetch_http import FetchError
from crossformer.variants import WeightSource
from local_http import Handler, LocalServer as _Server
from local_http import base, clear_proxies, query, send, send_then_wait, serve

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "crossformer_demo.safetensors"
DEMO_ID = "demo-drive-id"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    monkeypatch.delenv(fetch_cache.CACHE_ENV, raising=False)


@pytest.fixture()
def server() -> Iterator[_Server]:
    with serve() as srv:
        yield srv


@pytest.fixture(scope="session")
def tiny_t_bytes() -> bytes:
    """A real crossformer_t checkpoint in the official layout ({'model': state_dict}), fp16, 2 classes."""
    import torch

    import crossformer

    torch.manual_seed(0)
    model = crossformer.create_model("crossformer_t", num_classes=2)
    buf = io.BytesIO()
    torch.save({"model": {k: v.half() for k, v in model.state_dict().items()}, "epoch": 300}, buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def demo_bytes() -> bytes:
    if not DEMO.exists():
        pytest.skip(f"{DEMO} missing")
    return DEMO.read_bytes()


@pytest.fixture()
def demo_entry(monkeypatch: pytest.MonkeyPatch) -> WeightSource:
    """Register the small demo model as an 'official' download (its inferred variant is crossformer_demo)."""
    src = WeightSource(DEMO_ID, "crossformer-demo.safetensors")
    monkeypatch.setitem(fetch_cache.OFFICIAL_WEIGHTS, "crossformer_demo", src)
    return src


def listing(cache: Path) -> list[str]:
    """The cache folder's files, without the (empty, kept) per-name lock files."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(fetch_cache.LOCK_SUFFIX))


def assert_empty(cache: Path) -> None:
    """Nothing but lock files: no checkpoint, no temporary download."""
    assert not cache.exists() or listing(cache) == [], list(cache.iterdir())


# ---- (a) + (e): the right file, then the cache without the network ---------------------------------
def test_good_file_then_cache_reuse(server: _Server, tiny_t_bytes: bytes, tmp_path: Path) -> None:
    server.routes["/t.pth"] = lambda h: send(h, tiny_t_bytes)
    cache = tmp_path / "cache"
    path = fetch_official("crossformer_t", cache_dir=cache, url=base(server) + "/t.pth", progress=False)
    assert path == cache / "crossformer-t.pth" and path.read_bytes() == tiny_t_bytes
    assert listing(cache) == ["crossformer-t.pth"]
    assert len(server.requests) == 1
    assert cached_official(cache) == {"crossformer_t": path}
    again = fetch_official("crossformer_t", cache_dir=cache, url=base(server) + "/t.pth")
    assert again == path and len(server.requests) == 1           # no request the second time
    again = fetch_official("crossformer_t", cache_dir=cache)      # nor without url= (Drive)
    assert again == path and len(server.requests) == 1


def test_cache_env_and_progress_line(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    monkeypatch.setenv(fetch_cache.CACHE_ENV, str(tmp_path / "env-cache"))
    path = fetch_official("crossformer_demo", url=base(server) + "/demo", progress=True)
    assert path == tmp_path / "env-cache" / demo_entry.filename
    err = capsys.readouterr().err                       # tqdm's bar: "name: 100%|…| 5.15M/5.15M [… MB/s]"
    assert "MB/s" in err and f"{len(demo_bytes) / 1e6:.2f}M/{len(demo_bytes) / 1e6:.2f}M" in err
    assert "100%" in err and demo_entry.filename in err
    assert cached_official() == {"crossformer_demo": path}
    fetch_official("crossformer_demo", url=base(server) + "/demo", progress=True)
    assert capsys.readouterr().err == "" and len(server.requests) == 1


# ---- (b), (c), (d), (g): failures leave nothing behind ----------------------------------------------
def test_truncated_download(server: _Server, demo_bytes: bytes, demo_entry: WeightSource, tmp_path: Path) -> None:
    server.routes["/short"] = lambda h: send(h, demo_bytes[:100_000], length=len(demo_bytes))
    # the download's own length check (its wording is not the checkpoint loader's): without it the cut-off
    # file would reach the loader and fail there with a "truncated" CheckpointError instead
    with pytest.raises(FetchError, match=r"connection closed after 100,000 of the [\d,]+ bytes announced"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/short", progress=False)
    assert_empty(tmp_path)


@pytest.mark.parametrize("page", [b"<!DOCTYPE html><html><body>Sign in</body></html>",
                                  b"\n  <html><head><title>x</title></head></html>"])
def test_html_instead_of_checkpoint(server: _Server, tmp_path: Path, page: bytes) -> None:
    # served as octet-stream: the body itself gives the page away
    server.routes["/page"] = lambda h: send(h, page)
    with pytest.raises(FetchError, match="web page instead of the checkpoint"):
        fetch_official("crossformer_t", cache_dir=tmp_path, url=base(server) + "/page", progress=False)
    assert_empty(tmp_path)


def test_wrong_variant(server: _Server, demo_bytes: bytes, tmp_path: Path) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    with pytest.raises(FetchError, match="crossformer_demo weights, not crossformer_t"):
        fetch_official("crossformer_t", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)
    assert cached_official(tmp_path) == {}


def test_not_a_checkpoint(server: _Server, demo_entry: WeightSource, tmp_path: Path) -> None:
    server.routes["/junk"] = lambda h: send(h, b"\x00\x01 definitely not weights" * 100)
    with pytest.raises(FetchError, match="not a usable checkpoint"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/junk", progress=False)
    assert_empty(tmp_path)


def test_http_error_and_unreachable(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_official("crossformer_t", cache_dir=tmp_path, url=base(server) + "/missing", progress=False)
    assert_empty(tmp_path)
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(FetchError, match="could not reach"):
        fetch_official("crossformer_t", cache_dir=tmp_path, url=f"http://127.0.0.1:{port}/x", progress=False)
    assert_empty(tmp_path)


def test_non_http_url_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="only http"):
        fetch_official("crossformer_t", cache_dir=tmp_path, url=f"file://{DEMO}", progress=False)


# ---- (f): the Google Drive confirmation flow ---------------------------------------------------------
def drive_warning_page(action: str, drive_id: str) -> bytes:
    """Shaped like Drive's current "can't scan this file for viruses" page."""
    return f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<div class="uc-main"><p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
<p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id={drive_id}">
crossformer-demo.safetensors</a> (5M)</span> is too large for Google to scan for viruses.</p>
<form id="download-form" action="{html.escape(action)}" method="get">
<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action"
 value="Download anyway"/>
<input type="hidden" name="id" value="{drive_id}">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="0f5e1f4c-1b7e-4c1e-9d1a-2b3c4d5e6f70">
</form></div></body></html>""".encode()


@pytest.fixture()
def drive(server: _Server, monkeypatch: pytest.MonkeyPatch) -> _Server:
    monkeypatch.setattr(fetch_http, "DRIVE_URL", base(server) + "/uc")
    return server


def test_drive_confirmation_form(drive: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                 tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def uc(h: http.server.BaseHTTPRequestHandler) -> None:
        assert query(h) == {"export": "download", "id": DEMO_ID}
        send(h, drive_warning_page(base(drive) + "/download", DEMO_ID), "text/html; charset=utf-8")

    def download(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.update(query(h))
        send(h, demo_bytes)

    drive.routes.update({"/uc": uc, "/download": download})
    path = fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == demo_bytes
    assert seen == {"id": DEMO_ID, "export": "download", "confirm": "t",
                    "uuid": "0f5e1f4c-1b7e-4c1e-9d1a-2b3c4d5e6f70"}
    assert [urllib.parse.urlsplit(r).path for r in drive.requests] == ["/uc", "/download"]
    assert listing(tmp_path) == [demo_entry.filename]


def test_drive_small_file_direct(drive: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                 tmp_path: Path) -> None:
    drive.routes["/uc"] = lambda h: send(h, demo_bytes)
    assert fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False).read_bytes() == demo_bytes
    assert len(drive.requests) == 1


def test_drive_old_confirm_link(drive: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                tmp_path: Path) -> None:
    def uc(h: http.server.BaseHTTPRequestHandler) -> None:
        if query(h).get("confirm") == "AbC-12_x":
            send(h, demo_bytes)
        else:
            page = (f'<html><body><a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC-12_x'
                    f'&amp;id={DEMO_ID}">Download anyway</a></body></html>')
            send(h, page.encode(), "text/html")

    drive.routes["/uc"] = uc
    assert fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False).read_bytes() == demo_bytes
    assert len(drive.requests) == 2


def test_drive_warning_cookie(drive: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                              tmp_path: Path) -> None:
    def uc(h: http.server.BaseHTTPRequestHandler) -> None:
        q = query(h)
        if q.get("confirm") == "cookieTok":
            assert "download_warning_13058_x=cookieTok" in (h.headers.get("Cookie") or "")
            send(h, demo_bytes)
        else:
            send(h, b"<html><body>Virus scan warning</body></html>", "text/html",
                 headers={"Set-Cookie": "download_warning_13058_x=cookieTok; Path=/"})

    drive.routes["/uc"] = uc
    assert fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False).read_bytes() == demo_bytes


def test_drive_quota_page(drive: _Server, demo_entry: WeightSource, tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Too many users have viewed or downloaded this file recently.</body></html>"
    drive.routes["/uc"] = lambda h: send(h, page, "text/html")
    with pytest.raises(FetchError, match=r"Google Drive returned a web page .*quota.*--checkpoint"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False)
    assert_empty(tmp_path)


def test_drive_confirm_still_html(drive: _Server, demo_entry: WeightSource, tmp_path: Path) -> None:
    drive.routes["/uc"] = lambda h: send(h, drive_warning_page(base(drive) + "/download", DEMO_ID), "text/html")
    drive.routes["/download"] = lambda h: send(h, b"<!doctype html><html>quota exceeded</html>", "text/html")
    with pytest.raises(FetchError, match="Google Drive returned a web page instead of the checkpoint") as err:
        fetch_official("crossformer_demo", cache_dir=tmp_path, progress=False)
    assert demo_entry.drive_link in str(err.value)
    assert len(drive.requests) == 2
    assert_empty(tmp_path)


def test_real_drive_link_in_manual_hint(drive: _Server, tmp_path: Path) -> None:
    drive.routes["/uc"] = lambda h: send(h, b"<html>nope</html>", "text/html")
    with pytest.raises(FetchError, match="1YSkU9enn-ITyrbxLH13zNcBYvWSEidfq"):
        fetch_official("crossformer_t", cache_dir=tmp_path, progress=False)
    assert query_ids(drive) == ["1YSkU9enn-ITyrbxLH13zNcBYvWSEidfq"]


def query_ids(srv: _Server) -> list[str]:
    return [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r).query)).get("id", "") for r in srv.requests]


# ---- (i): names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["crossformer_pp_s", "crossformer_pp_b", "crossformer_pp_l", "crossformer_pp_h"])
def test_crossformer_pp_is_baidu_only(name: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError) as err:
        fetch_official(name, cache_dir=tmp_path)
    msg = str(err.value)
    assert "Baidu" in msg and "https://pan.baidu.com/s/" in msg and "key crsf" in msg
    assert "load_checkpoint(path)" in msg and "--checkpoint PATH" in msg
    assert_empty(tmp_path)


def test_unknown_name_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="crossformer_t, crossformer_s, crossformer_b, crossformer_l"):
        fetch_official("crossformer_xl", cache_dir=tmp_path)


def test_table_matches_spec() -> None:
    assert set(fetch_cache.OFFICIAL_WEIGHTS) == {"crossformer_t", "crossformer_s", "crossformer_b", "crossformer_l"}
    assert {k: v.drive_id for k, v in fetch_cache.OFFICIAL_WEIGHTS.items()} == {
        "crossformer_t": "1YSkU9enn-ITyrbxLH13zNcBYvWSEidfq", "crossformer_s": "1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8",
        "crossformer_b": "1bK8biVCi17nz_nkt7rBfio_kywUpllSU", "crossformer_l": "1zRWByVW_KIZ87NgaBkDIm60DAsGJErdG"}
    assert fetch_http.DRIVE_URL == "https://drive.google.com/uc"


def test_import_does_not_fetch() -> None:
    code = ("import socket, urllib.request\n"
            "def boom(*a, **k): raise SystemExit('network used at import')\n"
            "socket.socket.connect = boom; urllib.request.urlopen = boom\n"
            "import crossformer, crossformer.fetch, crossformer.__main__\n"
            "assert crossformer.fetch_official is crossformer.fetch.fetch_official\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


# ---- (h): the command line -------------------------------------------------------------------------
def run_cli(*args: str, cache_env: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["no_proxy"] = "127.0.0.1,localhost"
    env.pop(fetch_cache.CACHE_ENV, None)
    if cache_env is not None:
        env[fetch_cache.CACHE_ENV] = str(cache_env)
    return subprocess.run([sys.executable, "-m", "crossformer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_fetch_and_list(server: _Server, tiny_t_bytes: bytes, tmp_path: Path) -> None:
    server.routes["/t.pth"] = lambda h: send(h, tiny_t_bytes)
    cache = tmp_path / "c"
    res = run_cli("fetch", "crossformer_t", "--url", base(server) + "/t.pth", "--cache-dir", str(cache))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(cache / "crossformer-t.pth")
    assert "MB/s" in res.stderr and "Traceback" not in res.stderr
    assert (cache / "crossformer-t.pth").read_bytes() == tiny_t_bytes
    res = run_cli("list", cache_env=cache)
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.startswith("crossformer_")}
    assert "cached" in lines["crossformer_t"] and str(cache / "crossformer-t.pth") in lines["crossformer_t"]
    assert "not cached" in lines["crossformer_s"] and "Baidu" in lines["crossformer_pp_s"]
    # cached: no request, --quiet prints only the path
    res = run_cli("fetch", "crossformer_t", "--quiet", "--cache-dir", str(cache))
    assert res.returncode == 0 and res.stdout == f"{cache / 'crossformer-t.pth'}\n" and res.stderr == ""
    assert len(server.requests) == 1


def test_cli_failures_one_line(server: _Server, tmp_path: Path) -> None:
    server.routes["/page"] = lambda h: send(h, b"<!DOCTYPE html><html></html>", "text/html")
    for args in (("fetch", "crossformer_pp_b"), ("fetch", "nope"),
                 ("fetch", "crossformer_t", "--quiet", "--url", base(server) + "/page")):
        res = run_cli(*args, "--cache-dir", str(tmp_path))
        assert res.returncode == 1, (args, res)
        assert res.stdout == "" and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert_empty(tmp_path)



def test_progress_callback_gets_bytes_done_and_total(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The app passes a callable (its st.progress) instead of the stderr bar."""
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    seen: list[tuple[int, int | None]] = []
    path = fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo",
                          progress=lambda done, total: seen.append((done, total)))
    assert path.is_file() and seen[-1] == (len(demo_bytes), len(demo_bytes))
    assert capsys.readouterr().err == ""


# ---- issue 28: atomic, locked, verified downloads; every failure a FetchError; a listing that checks ----
def no_temp_files(cache: Path) -> None:
    assert not [p.name for p in cache.iterdir() if p.name.endswith(fetch_cache.TEMP_SUFFIX)], list(cache.iterdir())


def test_two_concurrent_downloads_give_one_verified_file(server: _Server, demo_bytes: bytes,
                                                         demo_entry: WeightSource, tmp_path: Path) -> None:
    """Two downloads of one name at once: the second waits for the first's lock, then finds its file."""
    release = threading.Event()                 # half the file, a pause, the rest
    server.routes["/demo"] = lambda h: send_then_wait(h, demo_bytes, len(demo_bytes) // 2, release, 10)
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo",
                                          progress=False))
        except BaseException as err:  # noqa: BLE001 — reported by the assertion below
            results.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    threads[0].start()
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    threads[1].start()                       # starts while the first is half-way
    threads[1].join(0.5)
    assert threads[1].is_alive()             # … and waits for the lock
    release.set()
    for t in threads:
        t.join(60)
    assert results == [tmp_path / demo_entry.filename] * 2, results
    assert (tmp_path / demo_entry.filename).read_bytes() == demo_bytes
    assert len(server.requests) == 1          # the second found the verified file, no second download
    assert listing(tmp_path) == [demo_entry.filename]


def test_concurrent_downloads_in_two_processes(server: _Server, demo_bytes: bytes, tmp_path: Path) -> None:
    """The lock holds across processes too (the CLI in a terminal while the app downloads)."""
    half = threading.Event()                    # never set: a 3 s pause, while the other process arrives
    server.routes["/t.pth"] = lambda h: send_then_wait(h, demo_bytes, 1000, half, 3)
    code = ("import sys; from crossformer import fetch, fetch_cache; from crossformer.variants import WeightSource\n"
            "fetch_cache.OFFICIAL_WEIGHTS['crossformer_demo'] = WeightSource('x', 'crossformer-demo.safetensors')\n"
            "print(fetch.fetch_official('crossformer_demo', cache_dir=sys.argv[1], url=sys.argv[2], progress=False))")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), base(server) + "/t.pth"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    half.set()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == [str(tmp_path / "crossformer-demo.safetensors")] * 2
    assert (tmp_path / "crossformer-demo.safetensors").read_bytes() == demo_bytes
    assert len(server.requests) == 1 and listing(tmp_path) == ["crossformer-demo.safetensors"]


def fetch_stalled(srv: _Server, route: Handler, gate: threading.Event, cache: Path, stall_s: float,
                  progress: bool = False) -> str:
    """Fetch from ``route`` expecting a stall → the FetchError's message; ``gate`` releases the server."""
    srv.routes["/slow"] = route
    try:
        with pytest.raises(FetchError, match="the download stalled") as err:
            fetch_official("crossformer_demo", cache_dir=cache, url=base(srv) + "/slow", progress=progress,
                           stall_s=stall_s)
    finally:
        gate.set()
    assert_empty(cache)
    return str(err.value)


def test_stall_is_a_fetch_error_within_the_stall_timeout(server: _Server, demo_bytes: bytes,
                                                         demo_entry: WeightSource, tmp_path: Path) -> None:
    done = threading.Event()                    # 200 kB, then nothing
    t0 = time.monotonic()
    msg = fetch_stalled(server, lambda h: send_then_wait(h, demo_bytes, 200_000, done), done, tmp_path, 0.3)
    assert time.monotonic() - t0 < 2 * 0.3 + 1.5            # at worst two stall windows, not the 60 s read timeout
    assert re.search(r"the download stalled: .* in 0\.3 s \(after 0\.2 MB\); .*try again", msg), msg


def test_trickle_is_a_stall(server: _Server, demo_bytes: bytes, demo_entry: WeightSource, tmp_path: Path) -> None:
    """A body that keeps sending a few bytes never trips a per-read timeout; the stall window catches it."""
    done = threading.Event()

    def trickle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(demo_bytes)))
        h.end_headers()
        h.wfile.write(demo_bytes[:100_000])
        for i in range(200):
            if done.wait(0.05):
                return
            h.wfile.write(demo_bytes[100_000 + i:100_001 + i])
            h.wfile.flush()

    fetch_stalled(server, trickle, done, tmp_path, 0.5)


def test_progress_from_the_first_bytes(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                       tmp_path: Path) -> None:
    """The callback hears of the first bytes long before 1 MiB has arrived (it used to wait for 1 MiB)."""
    gate = threading.Event()                    # the rest only once the first bytes were reported
    seen: list[tuple[int, int | None]] = []

    def progress(done: int, total: int | None) -> None:
        seen.append((done, total))
        gate.set()

    server.routes["/demo"] = lambda h: send_then_wait(h, demo_bytes, 300_000, gate, 10)
    fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=progress)
    assert 0 < seen[0][0] <= 300_000 and seen[0][1] == len(demo_bytes)
    assert seen[-1] == (len(demo_bytes), len(demo_bytes))


def test_tqdm_bar_draws_the_first_bytes(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = threading.Event()
    fetch_stalled(server, lambda h: send_then_wait(h, demo_bytes, 200_000, done), done, tmp_path, 0.3, True)
    err = capsys.readouterr().err
    assert demo_entry.filename in err and f"/{len(demo_bytes) / 1e6:.2f}M" in err
    assert re.search(r"\| (65\.5|131|197|200)k/", err), err            # a bar drawn before 1 MiB arrived


# ---- the listing checks what it calls cached --------------------------------------------------------
@pytest.mark.parametrize("bad, problem", [
    (b"<!DOCTYPE html><html><body>Google Drive - Quota exceeded</body></html>", "an HTML page"),
    (b"", "empty"),
    (b"\x00\x01 junk " * 50, "not a checkpoint"),
], ids=["html", "empty", "junk"])
def test_bad_cached_file_is_reported_and_downloaded_again(server: _Server, demo_bytes: bytes,
                                                          demo_entry: WeightSource, tmp_path: Path,
                                                          bad: bytes, problem: str) -> None:
    (tmp_path / demo_entry.filename).write_bytes(bad)
    report = fetch_cache.cache_report(tmp_path)
    assert report["crossformer_demo"].problem is not None and problem in report["crossformer_demo"].problem
    assert report["crossformer_s"].missing and not report["crossformer_demo"].missing
    assert "crossformer_demo" not in cached_official(tmp_path)       # offered for download again
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    path = fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert path.read_bytes() == demo_bytes and len(server.requests) == 1
    assert cached_official(tmp_path) == {"crossformer_demo": path}
    assert listing(tmp_path) == [demo_entry.filename]


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_cut_off_cached_files_are_reported(tiny_t_bytes: bytes, demo_bytes: bytes, demo_entry: WeightSource,
                                           tmp_path: Path, cut: float) -> None:
    (tmp_path / "crossformer-t.pth").write_bytes(tiny_t_bytes[:int(len(tiny_t_bytes) * cut)])
    (tmp_path / demo_entry.filename).write_bytes(demo_bytes[:int(len(demo_bytes) * cut)])
    report = fetch_cache.cache_report(tmp_path)
    assert "zip archive" in report["crossformer_t"].problem
    assert "safetensors" in report["crossformer_demo"].problem
    assert cached_official(tmp_path) == {}


def test_complete_cached_files_pass_the_cheap_check(tiny_t_bytes: bytes, demo_bytes: bytes,
                                                    demo_entry: WeightSource, tmp_path: Path) -> None:
    (tmp_path / "crossformer-t.pth").write_bytes(tiny_t_bytes)
    (tmp_path / demo_entry.filename).write_bytes(demo_bytes)
    assert set(cached_official(tmp_path)) == {"crossformer_t", "crossformer_demo"}


def test_recorded_size_and_checksum(server: _Server, demo_bytes: bytes, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With a recorded SHA-256 the hash decides (no full load); a wrong hash or size is refused."""
    import hashlib
    sha = hashlib.sha256(demo_bytes).hexdigest()
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    good = WeightSource(DEMO_ID, "crossformer-demo.safetensors", size=len(demo_bytes), sha256=sha)
    monkeypatch.setitem(fetch_cache.OFFICIAL_WEIGHTS, "crossformer_demo", good)
    import crossformer.checkpoint as ck
    loads: list[object] = []
    real = ck.load_checkpoint
    monkeypatch.setattr(ck, "load_checkpoint", lambda *a, **k: loads.append(a) or real(*a, **k))
    path = fetch_official("crossformer_demo", cache_dir=tmp_path / "a", url=base(server) + "/demo", progress=False)
    assert path.read_bytes() == demo_bytes and loads == []
    assert fetch_cache.cache_report(tmp_path / "a", checksum=True)["crossformer_demo"].ok

    monkeypatch.setitem(fetch_cache.OFFICIAL_WEIGHTS, "crossformer_demo",
                        WeightSource(DEMO_ID, good.filename, sha256="0" * 64))
    with pytest.raises(FetchError, match="SHA-256 of the downloaded .* the download was corrupted"):
        fetch_official("crossformer_demo", cache_dir=tmp_path / "b", url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path / "b")
    problem = fetch_cache.cache_report(tmp_path / "a", checksum=True)["crossformer_demo"].problem   # the cached copy
    assert problem is not None and "SHA-256" in problem

    monkeypatch.setitem(fetch_cache.OFFICIAL_WEIGHTS, "crossformer_demo",
                        WeightSource(DEMO_ID, good.filename, size=123))
    with pytest.raises(FetchError, match=r"announces [\d,]+ bytes .* official file has 123"):
        fetch_official("crossformer_demo", cache_dir=tmp_path / "c", url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path / "c")
    assert "official file has 123" in fetch_cache.cache_report(tmp_path / "a")["crossformer_demo"].problem


def test_cli_list_reports_a_bad_file(tmp_path: Path, tiny_t_bytes: bytes) -> None:
    (tmp_path / "crossformer-t.pth").write_bytes(b"<html><body>Virus scan warning</body></html>")
    (tmp_path / "crossformer-s.pth").write_bytes(tiny_t_bytes)      # a complete zip: cheap check passes
    res = run_cli("list", "--cache-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.startswith("crossformer_")}
    assert "BAD" in lines["crossformer_t"] and "HTML page" in lines["crossformer_t"]
    assert "python -m crossformer fetch crossformer_t" in lines["crossformer_t"]
    assert "cached" in lines["crossformer_s"] and "BAD" not in lines["crossformer_s"]
    assert "not cached" in lines["crossformer_b"]


# ---- every failure a FetchError, nothing partial left ----------------------------------------------
def test_cache_folder_under_a_file(server: _Server, tmp_path: Path) -> None:
    """Unwritable cache (works as root, where chmod does not stop writes): a file is in the folder's way."""
    (tmp_path / "afile").write_bytes(b"x")
    server.routes["/t.pth"] = lambda h: send(h, b"never fetched")
    with pytest.raises(FetchError, match=r"cannot use the cache folder .*afile/cache .*--cache-dir DIR"):
        fetch_official("crossformer_t", cache_dir=tmp_path / "afile" / "cache", url=base(server) + "/t.pth",
                       progress=False)
    assert server.requests == []


@pytest.mark.parametrize("code, phrase", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only"),
                                          (errno.ENOSPC, "is full")])
def test_temporary_file_refused(server: _Server, demo_bytes: bytes, demo_entry: WeightSource, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, code: int, phrase: str) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)

    def refuse(*a: object, **k: object) -> None:
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(fetch_cache.tempfile, "mkstemp", refuse)
    with pytest.raises(FetchError, match=f"cache folder {re.escape(str(tmp_path))}.*{phrase}"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)


def test_disk_full_while_writing(server: _Server, demo_bytes: bytes, demo_entry: WeightSource, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    real = fetch_cache.new_temp

    class Full(io.BufferedWriter):
        def write(self, b: object) -> int:     # the disk fills after the first MB
            if self.tell() > 1_000_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    def new_temp(root: Path, src: WeightSource) -> tuple[Path, object]:
        path, out = real(root, src)
        return path, Full(out.detach())
    monkeypatch.setattr(fetch, "new_temp", new_temp)   # looked up in fetch
    with pytest.raises(FetchError, match=r"disk holding the cache folder .* is full \(writing the download after "
                                         r"1\.\d MB\); free some space"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)


def test_not_enough_free_space_is_refused_before_downloading(server: _Server, demo_bytes: bytes,
                                                              demo_entry: WeightSource, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: shutil_usage(free=1000))
    with pytest.raises(FetchError, match=r"has 0 MB free, but crossformer-demo.safetensors needs 5 MB"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)


def shutil_usage(free: int) -> object:
    import shutil
    return shutil._ntuple_diskusage(10**12, 10**12 - free, free)  # type: ignore[attr-defined]


def test_publish_refused(server: _Server, demo_bytes: bytes, demo_entry: WeightSource, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)

    def refuse(a: object, b: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(fetch_cache.os, "replace", refuse)
    with pytest.raises(FetchError, match="moving the verified download to crossformer-demo.safetensors: "
                                         "permission denied"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)


def _malformed_safetensors() -> bytes:
    """A header whose tensor shape does not fit its bytes (the loader's reshape fails)."""
    import json
    header = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\x00" * 4


def test_malformed_file_from_a_mirror(server: _Server, demo_entry: WeightSource, tmp_path: Path) -> None:
    server.routes["/bad"] = lambda h: send(h, _malformed_safetensors())
    with pytest.raises(FetchError, match="the downloaded file is not a usable checkpoint"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/bad", progress=False)
    assert_empty(tmp_path)


def test_any_loader_failure_becomes_a_fetch_error(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crossformer.checkpoint as ck

    def broken(*a: object, **k: object) -> None:
        raise IndexError("list index out of range")
    monkeypatch.setattr(ck, "load_checkpoint", broken)
    server.routes["/demo"] = lambda h: send(h, demo_bytes)
    with pytest.raises(FetchError, match=r"loader failed with IndexError: list index out of range\); download"):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=False)
    assert_empty(tmp_path)


def test_interrupt_leaves_no_temporary_file(server: _Server, demo_bytes: bytes, demo_entry: WeightSource,
                                            tmp_path: Path) -> None:
    server.routes["/demo"] = lambda h: send(h, demo_bytes)

    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fetch_official("crossformer_demo", cache_dir=tmp_path, url=base(server) + "/demo", progress=interrupt)
    no_temp_files(tmp_path)
    assert_empty(tmp_path)
