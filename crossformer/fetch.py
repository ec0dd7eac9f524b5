"""Download the official ImageNet-1k CrossFormer checkpoints in one call (network use is opt-in).

    path = crossformer.fetch_official("crossformer_s")      # ~/.cache/crossformer/crossformer-s.pth
    model, info = crossformer.load_checkpoint(path)

or from a shell: ``python -m crossformer fetch crossformer_s`` (``python -m crossformer list`` shows what
is cached). Nothing here touches the network at import time or without an explicit call.

The CrossFormer (ICLR 2022) files are on Google Drive (SPEC §10). Drive answers large files with an HTML
"virus scan warning" page instead of the file; the confirmation form (or, on older pages, a ``confirm=``
token in a link or a ``download_warning`` cookie) is parsed and followed. A file is written to
``<file>.partial`` in the cache folder, checked (byte count against ``Content-Length``, then opened with
:func:`crossformer.load_checkpoint` and its inferred variant compared with the name asked for) and only
then renamed to its final name; on any failure the partial file is removed, so the cache only ever holds
complete, verified files. A cached file is returned without touching the network.

CrossFormer++ weights are published on Baidu Netdisk only, which cannot be downloaded by a script:
:func:`fetch_official` explains where to get them and how to open a downloaded file.

Standard library only (``urllib.request``); torch is imported only to verify a finished download.
"""

from __future__ import annotations

import html.parser
import http.client
import http.cookiejar
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any, Callable, Optional

from .variants import VARIANT_RECORDS, WeightSource

log = logging.getLogger(__name__)

#: Google Drive's direct-download endpoint (a module constant so tests can point it at a local server).
DRIVE_URL = "https://drive.google.com/uc"
#: Environment variable naming the cache folder (default ``~/.cache/crossformer``).
CACHE_ENV = "CROSSFORMER_CACHE"
USER_AGENT = "crossformer-explorer-fetch/1.0 (python urllib)"
TIMEOUT_S = 60.0
CHUNK = 1 << 20
_MAX_PAGE = 2 << 20          # an HTML page larger than this is not a Drive warning page


class FetchError(RuntimeError):
    """A download that did not produce a verified checkpoint; the message says what to do instead."""


#: The official ImageNet-1k classification checkpoints a script can download (Google Drive; SPEC §10),
#: a view of :data:`crossformer.variants.VARIANT_RECORDS`.
OFFICIAL_WEIGHTS: dict[str, WeightSource] = {n: v.weights for n, v in VARIANT_RECORDS.items() if v.weights}

#: Variants whose official weights are on Baidu Netdisk only (CrossFormer++, TPAMI 2023): ``{name: link}``.
BAIDU_ONLY: dict[str, str] = {n: v.baidu for n, v in VARIANT_RECORDS.items() if v.baidu and not v.weights}


# ---- cache ----------------------------------------------------------------------------------------
#: ``progress(bytes_done, bytes_total_or_None)``: a download progress callback.
ProgressFn = Callable[[int, Optional[int]], None]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$CROSSFORMER_CACHE``, else ``~/.cache/crossformer``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "crossformer"


def cached_official(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """The official checkpoints already complete in the cache: ``{name: path}`` (no network)."""
    root = cache_root(cache_dir)
    out: dict[str, Path] = {}
    for name, src in OFFICIAL_WEIGHTS.items():
        path = root / src.filename
        if path.is_file() and path.stat().st_size > 0:
            out[name] = path
    return out


def _source(name: str) -> WeightSource:
    if name in OFFICIAL_WEIGHTS:
        return OFFICIAL_WEIGHTS[name]
    if name in BAIDU_ONLY:
        raise FetchError(
            f"{name} (CrossFormer++) is published on Baidu Netdisk only, which cannot be downloaded by a "
            f"script: download it by hand from {BAIDU_ONLY[name]}, then open the file with "
            f"crossformer.load_checkpoint(path) or start the app with `streamlit run app.py -- --checkpoint PATH`")
    raise FetchError(f"no official weights named {name!r}; choose one of {', '.join(OFFICIAL_WEIGHTS)} "
                     f"(CrossFormer++ {', '.join(BAIDU_ONLY)} are Baidu-only)")


def _manual_hint(name: str, src: WeightSource) -> str:
    rec = VARIANT_RECORDS.get(name)
    alt = f" or {rec.baidu}" if rec is not None and rec.baidu else ""
    return (f"download {src.filename} by hand from {src.drive_link}{alt} and open it with "
            f"--checkpoint PATH (or crossformer.load_checkpoint(path))")


# ---- HTTP -----------------------------------------------------------------------------------------
def _opener() -> urllib.request.OpenerDirector:
    """An opener that keeps cookies across the Drive confirmation round trip."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    opener.cookiejar = jar  # type: ignore[attr-defined]
    return opener


def _open(opener: urllib.request.OpenerDirector, url: str) -> Any:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"refusing to fetch {url!r}: only http(s) URLs are supported")
    try:
        return opener.open(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"could not reach {url}: {reason}") from None


def _looks_like_html(head: bytes, content_type: str = "") -> bool:
    """A web page rather than a checkpoint: ``text/html`` or a body starting like HTML."""
    if "text/html" in content_type.lower():
        return True
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--"))


class _DrivePage(html.parser.HTMLParser):
    """Collects the forms (action + hidden inputs) and link targets of a Drive warning page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.links: list[str] = []
        self._form: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = (a.get("action", ""), {})
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type", "text").lower() in ("hidden", "submit", "text"):
                self._form[1][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _confirm_url(page: bytes, page_url: str, drive_id: str, cookies: http.cookiejar.CookieJar) -> str | None:
    """The URL that Drive's "can't scan this file for viruses" page would submit to, or None."""
    text = page.decode("utf-8", "replace")
    parser = _DrivePage()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # noqa: BLE001 — a malformed page just yields no form
        log.debug("could not parse the Drive page", exc_info=True)
    # Current pages: <form id="download-form" action="https://drive.usercontent.google.com/download">
    # with hidden id / export / confirm / uuid inputs.
    for action, fields in parser.forms:
        if "confirm" in fields or ("id" in fields and "download" in action):
            fields.setdefault("id", drive_id)
            target = urllib.parse.urljoin(page_url, action or page_url)
            return f"{target.split('?')[0]}?{urllib.parse.urlencode(fields)}"
    # Older pages: a link carrying ?confirm=TOKEN (its href may keep &amp; entities in raw text).
    for href in parser.links + re.findall(r"""href=["']([^"']*confirm=[^"']*)["']""", text):
        href = href.replace("&amp;", "&")
        if "confirm=" in href:
            return urllib.parse.urljoin(page_url, href)
    m = re.search(r"confirm=([0-9A-Za-z_\-]+)", text)
    token = m.group(1) if m else None
    # Oldest: a download_warning_* cookie holds the token.
    for c in cookies:
        if c.name.startswith("download_warning") and c.value:
            token = c.value
    if token:
        return f"{DRIVE_URL}?{urllib.parse.urlencode({'export': 'download', 'confirm': token, 'id': drive_id})}"
    return None


# ---- download -------------------------------------------------------------------------------------
class _Progress:
    """One stderr line: ``name: done / total MB (pct) speed MB/s``, redrawn at most 10× a second."""

    def __init__(self, label: str, total: int | None, enabled: "bool | ProgressFn",
                 stream: IO[str] | None = None) -> None:
        self.callback = enabled if callable(enabled) else None
        self.label, self.total, self.enabled = label, total, bool(enabled)
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.drawn = False

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        if self.callback is not None:     # e.g. the app's st.progress
            self.callback(done, self.total)
            return
        rate = done / max(now - self.t0, 1e-6) / 1e6
        if self.total:
            text = f"{self.label}: {done / 1e6:.1f} / {self.total / 1e6:.1f} MB ({100 * done / self.total:.0f}%)"
        else:
            text = f"{self.label}: {done / 1e6:.1f} MB"
        self.stream.write(f"\r{text}  {rate:.1f} MB/s ")
        self.stream.flush()
        self.drawn = True

    def close(self, done: int) -> None:
        if self.callback is not None:
            self.callback(done, self.total)
        elif self.enabled:
            self.update(done, final=True)
            self.stream.write("\n")
            self.stream.flush()


def _stream_to(resp: Any, first: bytes, out: IO[bytes], label: str, progress: "bool | ProgressFn"
               ) -> tuple[int, int | None]:
    """Copy the body (``first`` already read) into ``out`` → (bytes written, Content-Length or None)."""
    length = resp.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    bar = _Progress(label, total, progress)
    done = 0
    chunk = first
    try:
        while chunk:
            out.write(chunk)
            done += len(chunk)
            bar.update(done)
            chunk = resp.read(CHUNK)
    except http.client.IncompleteRead as err:
        out.write(err.partial)
        done += len(err.partial)
    except (OSError, http.client.HTTPException) as err:
        bar.close(done)
        raise FetchError(f"the download broke off after {done / 1e6:.1f} MB ({err})") from None
    bar.close(done)
    return done, total


def _open_checkpoint_response(opener: urllib.request.OpenerDirector, name: str, src: WeightSource,
                              url: str | None) -> tuple[Any, bytes]:
    """Open the response that carries the file itself → (response, its first bytes)."""
    hint = _manual_hint(name, src)
    if url is not None:
        resp = _open(opener, url)
        first = resp.read(CHUNK)
        if _looks_like_html(first, resp.headers.get("Content-Type", "")):
            resp.close()
            raise FetchError(f"{url} returned a web page instead of the checkpoint; {hint}")
        return resp, first
    start = f"{DRIVE_URL}?{urllib.parse.urlencode({'export': 'download', 'id': src.drive_id})}"
    resp = _open(opener, start)
    first = resp.read(CHUNK)
    if not _looks_like_html(first, resp.headers.get("Content-Type", "")):
        return resp, first
    page = first + resp.read(_MAX_PAGE - len(first))
    page_url = resp.geturl()
    resp.close()
    target = _confirm_url(page, page_url, src.drive_id, opener.cookiejar)  # type: ignore[attr-defined]
    if target is not None:
        log.info("Google Drive asked to confirm the download of %s (no virus scan); following it", src.filename)
        resp = _open(opener, target)
        first = resp.read(CHUNK)
        if not _looks_like_html(first, resp.headers.get("Content-Type", "")):
            return resp, first
        resp.close()
    raise FetchError("Google Drive returned a web page instead of the checkpoint (quota exceeded or the link "
                     f"changed); {hint}")


def _verify(partial: Path, name: str, src: WeightSource) -> None:
    """Open the finished file with :func:`load_checkpoint`; its inferred variant must be ``name``."""
    from .checkpoint import CheckpointError, load_checkpoint   # torch only once a file is here

    try:
        _, info = load_checkpoint(partial)
    except CheckpointError as err:
        raise FetchError(f"the downloaded file is not a usable checkpoint ({err}); {_manual_hint(name, src)}") \
            from None
    if info.variant != name:
        raise FetchError(f"the downloaded file holds {info.variant} weights, not {name} "
                         f"({info.summary()}); check the source URL")
    log.info("verified %s: %s", src.filename, info.summary())


def fetch_official(name: str, cache_dir: str | Path | None = None, url: str | None = None,
                   progress: "bool | ProgressFn" = True) -> Path:
    """Download (once) the official ImageNet-1k checkpoint ``name`` and return its path in the cache.

    ``name`` is one of :data:`OFFICIAL_WEIGHTS` (``crossformer_t/s/b/l``). The file goes to ``cache_dir``,
    else ``$CROSSFORMER_CACHE``, else ``~/.cache/crossformer``; a complete cached file is returned at once
    without touching the network. ``url`` replaces the Google Drive source (a mirror, a test server); it is
    fetched directly. ``progress``: ``True`` draws a one-line progress bar on stderr; a callable
    ``progress(bytes_done, bytes_total_or_None)`` is called instead (the app's ``st.progress``).

    The file is verified before it is kept: its byte count must match ``Content-Length`` and
    :func:`crossformer.load_checkpoint` must infer the variant ``name`` from it. Raises
    :class:`FetchError` (with what to do instead) on any failure — CrossFormer++ names (Baidu-only),
    unknown names, network errors, Drive answering a web page, truncated or wrong files — and then leaves
    nothing in the cache.
    """
    src = _source(name)
    root = cache_root(cache_dir)
    final = root / src.filename
    if final.is_file() and final.stat().st_size > 0:
        log.info("using the cached %s", final)
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"cannot create the cache folder {root}: {err}") from None
    partial = root / f"{src.filename}.partial"
    opener = _opener()
    log.info("downloading %s (%s) into %s", name, src.filename, root)
    try:
        resp, first = _open_checkpoint_response(opener, name, src, url)
        try:
            with open(partial, "wb") as out:
                done, total = _stream_to(resp, first, out, src.filename, progress)
        finally:
            resp.close()
        if total is not None and done != total:
            raise FetchError(f"the download of {src.filename} is truncated: got {done:,} of {total:,} bytes; "
                             "try again, or " + _manual_hint(name, src))
        if done == 0:
            raise FetchError(f"the server sent an empty file for {src.filename}; {_manual_hint(name, src)}")
        _verify(partial, name, src)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("saved %s (%.1f MB)", final, final.stat().st_size / 1e6)
    return final
