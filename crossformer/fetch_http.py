"""Talking to the server for :mod:`crossformer.fetch`: the opener, Google Drive's confirmation page, stall-aware reads.

Google Drive answers large files with an HTML "virus scan warning" page instead of the file; the confirmation
form (or, on older pages, a ``confirm=`` token in a link or a ``download_warning`` cookie) is parsed and followed
(:func:`open_checkpoint_response`). A read that waits longer than the stall timeout is a :class:`FetchError`.

:class:`FetchError` is defined here, the lowest of the three fetch modules, so that each can raise it; import it
from ``crossformer`` or ``crossformer.fetch``. Standard library only (``urllib.request``, ``html.parser``).
"""

from __future__ import annotations

import html.parser
import http.client
import http.cookiejar
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .variants import WeightSource

log = logging.getLogger(__name__)

#: Google Drive's direct-download endpoint (a module constant so tests can point it at a local server).
DRIVE_URL = "https://drive.google.com/uc"
USER_AGENT = "crossformer-explorer-fetch/1.0 (python urllib)"
#: Seconds to wait for a connection and for the response headers (or ``stall_s``, if shorter).
TIMEOUT_S = 60.0
#: A body that delivers fewer than this many bytes in the stall timeout (:data:`crossformer.fetch.STALL_S`) has
#: stalled.
STALL_MIN_BYTES = 1024
CHUNK = 64 << 10             # bytes per read: progress moves from the first 64 KiB on
_MAX_PAGE = 2 << 20          # an HTML page larger than this is not a Drive warning page


class FetchError(RuntimeError):
    """A download that did not produce a verified checkpoint; the message says what to do instead."""


def make_opener() -> urllib.request.OpenerDirector:
    """An opener that keeps cookies across the Drive confirmation round trip."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT), ("Accept-Encoding", "identity")]
    opener.cookiejar = jar  # type: ignore[attr-defined]
    return opener


def _open(opener: urllib.request.OpenerDirector, url: str, stall_s: float) -> Any:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"refusing to fetch {url!r}: only http(s) URLs are supported")
    try:
        return opener.open(url, timeout=min(TIMEOUT_S, stall_s))
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url} answered HTTP {err.code} {err.reason}; check the URL or try again later") \
            from None
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {min(TIMEOUT_S, stall_s):g} s; try again later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"could not reach {url}: {reason}; check the network connection and try again") \
            from None


def looks_like_html(head: bytes, content_type: str = "") -> bool:
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


def read_some(resp: Any, n: int, stall_s: float, done: int) -> bytes:
    """Whatever the body has ready, up to ``n`` bytes (``b""`` at its end); a silent socket is a stall."""
    try:
        return resp.read1(n)
    except TimeoutError:
        raise FetchError(stalled_message(stall_s, done)) from None
    except (OSError, http.client.HTTPException) as err:
        raise FetchError(f"the download broke off after {done / 1e6:.1f} MB ({err}); try again") from None


def stalled_message(stall_s: float, done: int) -> str:
    return (f"the download stalled: fewer than {STALL_MIN_BYTES} bytes arrived in {stall_s:g} s "
            f"(after {done / 1e6:.1f} MB); the server or the network is stuck — try again later")


def open_checkpoint_response(opener: urllib.request.OpenerDirector, src: WeightSource, url: str | None,
                             stall_s: float, hint: str) -> tuple[Any, bytes]:
    """Open the response that carries the file itself → (response, its first bytes).

    ``url`` is fetched directly; without it the Drive link of ``src`` is, following a confirmation page.
    ``hint`` (where to download by hand) ends the :class:`FetchError` for a web page instead of the file.
    """
    if url is not None:
        resp = _open(opener, url, stall_s)
        first = read_some(resp, CHUNK, stall_s, 0)
        if looks_like_html(first, resp.headers.get("Content-Type", "")):
            resp.close()
            raise FetchError(f"{url} returned a web page instead of the checkpoint; {hint}")
        return resp, first
    start = f"{DRIVE_URL}?{urllib.parse.urlencode({'export': 'download', 'id': src.drive_id})}"
    resp = _open(opener, start, stall_s)
    first = read_some(resp, CHUNK, stall_s, 0)
    if not looks_like_html(first, resp.headers.get("Content-Type", "")):
        return resp, first
    try:
        page = first + resp.read(_MAX_PAGE - len(first))
    except (OSError, http.client.HTTPException):
        page = first
    page_url = resp.geturl()
    resp.close()
    target = _confirm_url(page, page_url, src.drive_id, opener.cookiejar)  # type: ignore[attr-defined]
    if target is not None:
        log.info("Google Drive asked to confirm the download of %s (no virus scan); following it", src.filename)
        resp = _open(opener, target, stall_s)
        first = read_some(resp, CHUNK, stall_s, 0)
        if not looks_like_html(first, resp.headers.get("Content-Type", "")):
            return resp, first
        resp.close()
    raise FetchError("Google Drive returned a web page instead of the checkpoint (quota exceeded or the link "
                     f"changed); {hint}")

