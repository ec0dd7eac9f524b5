"""The byte-bounded shared stores behind the app's trace and figure caches (pages/common/bytecache.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

import crossformer
from pages.common.bytecache import ByteLRU, budget_bytes, nbytes


def test_evicts_least_recently_used_past_the_byte_budget():
    store = ByteLRU(3_000)
    for k in "abc":
        store.put(k, np.zeros(1_000, np.uint8))
    assert store.bytes == 3_000 and len(store) == 3
    store.get("a")                                           # a is now the most recent
    store.put("d", np.zeros(1_000, np.uint8))
    assert "b" not in store and {"a", "c", "d"} == {k for k in "abcd" if k in store}
    assert store.bytes == 3_000
    big = np.zeros(5_000, np.uint8)
    assert store.put("huge", big) is big and "huge" not in store and store.bytes == 3_000


def test_builds_once_for_concurrent_callers():
    store, calls = ByteLRU(10_000), []

    def build():
        calls.append(1)
        time.sleep(0.2)
        return np.ones(10)
    out = []
    threads = [threading.Thread(target=lambda: out.append(store.get_or_build("k", build))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 4 and all(o is out[0] for o in out)


def test_trace_size_counts_its_arrays():
    model = crossformer.create_model("crossformer_demo").eval()
    with torch.no_grad():
        trace = model.forward_trace(torch.randn(1, 3, 64, 96))
    flat = sum(v.nbytes for v in trace.flat().values())
    assert flat <= nbytes(trace) <= flat * 1.5 + 10_000


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("X_CACHE_MB", "2")
    assert budget_bytes("X_CACHE_MB", 7) == 2 * 2**20
    monkeypatch.setenv("X_CACHE_MB", "lots")
    assert budget_bytes("X_CACHE_MB", 7) == 7 * 2**20


def test_clear_forgets_everything():
    from pages.common.bytecache import ByteLRU
    c = ByteLRU(1 << 20)
    c.put("a", b"x" * 100)
    assert "a" in c and c.bytes > 0
    c.clear()
    assert "a" not in c and c.bytes == 0 and len(c) == 0


def test_evicted_bytes_count_what_left():
    c = ByteLRU(250)
    for k in "abc":
        c.put(k, np.zeros(100, np.uint8))
    assert c.evicted_bytes == 100 and "a" not in c            # 300 > 250: the oldest (100 B) left
    c.put("d", np.zeros(200, np.uint8))
    assert c.evicted_bytes == 300 and len(c) == 1             # b and c left to make room for d
    c.clear()
    assert c.evicted_bytes == 300                             # clear() is not an eviction count reset


def test_malloc_calls_are_safe_and_report_glibc():
    import sys

    from pages.common import malloc
    glibc = sys.platform.startswith("linux") and malloc._glibc() is not None
    assert malloc.limit_arenas(2) is glibc                   # accepted exactly where glibc is the C library
    big = [np.ones(2**18) for _ in range(64)]                 # 128 MiB in 2 MiB arrays (heap, not mmap)
    del big[::2]
    assert isinstance(malloc.trim(), bool) and (glibc or malloc.trim() is False)


def test_an_oversize_entry_is_kept_alone_when_asked():
    """A detector backbone's trace can exceed the whole trace budget: kept alone, it is reused by the next run
    instead of rebuilt on every one (the plain store does not keep it)."""
    builds = []

    def build(n):
        def make():
            builds.append(n)
            return np.zeros(n, np.uint8)
        return make
    plain, keeping = ByteLRU(1000), ByteLRU(1000, keep_oversize=True)
    for store in (plain, keeping):
        store.get_or_build("small", build(400))
        store.get_or_build("big", build(5000))
        store.get_or_build("big", build(5000))
    assert builds == [400, 5000, 5000, 400, 5000]          # the plain store rebuilt it; the keeping one did not
    assert "big" not in plain and "small" in plain
    assert "big" in keeping and "small" not in keeping and keeping.bytes == 5000 and keeping.evicted_bytes == 400
    keeping.get_or_build("small", build(400))               # a normal entry again: the oversize one leaves
    assert "small" in keeping and "big" not in keeping and keeping.bytes == 400
