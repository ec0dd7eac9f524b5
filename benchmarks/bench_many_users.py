"""Many users on one server: 8 concurrent browser sessions with different images and pages.

One ``streamlit run app.py`` server, one headless chromium (Debian's, driven by playwright), 8 browser
contexts (separate sessions) working at the same time. Each user brings a different image — four upload
photos of different sizes, four draw different Navon figures — opens a different page, interacts, and comes
back to the Overview. The script checks that no session shows an exception, that every session still sees
its own image (its file name and model-input size, or its Navon class, in the sidebar/overview) and never
another user's, and reports the server's peak memory (RSS of the server process tree, sampled every
0.1 s) and how long the sessions took.

    .venv/bin/python benchmarks/bench_many_users.py [--users 8]
    .venv/bin/python benchmarks/bench_many_users.py --heavy      # CrossFormer-B, random weights, shorter side 512

``--classroom`` (with ``--sessions 30``): a class on one server. The server starts with a random-weight
CrossFormer-S (``--variant``) and logs each script run's server-side seconds (``CROSSFORMER_RUN_TIMES=1``). Four
in five sessions (24 of 30) keep the default sample and tour every page in lesson order; the others upload their
own photo (one of 3000×2000) and visit the Overview, the groups and the attention pages. Arrivals are spread
over ``--arrival-s`` seconds (seeded). Each session checks its own identity: an uploader sees its own file name
and nobody else's, a sample session sees the sample and no upload (sessions sharing the sample are not a leak).
Reports 0 exception boxes, every session finishing, the server's peak RSS against 4 GB and the p95 of the
server-side time per script run against 2 s, measured on the server (the browsers share the CPU here), and the
client's share of the CPU. The browsers run at nice 19 (``--client-nice``): in a class they run on the students'
laptops, and the server-side times should measure the server, not its wait for a CPU the browsers hold.

    .venv/bin/python benchmarks/bench_many_users.py --classroom --sessions 30

``--heavy``: the server starts with a random-weight CrossFormer-B checkpoint (``--variant``) as its start-up
model (``CROSSFORMER_CHECKPOINT``), and every session, once it has its image, switches the preprocessing to
*Keep aspect ratio* at the slider's maximum, 512 px; the NumPy-reference user only opens that page (the reference of a B model
at 512 px takes minutes on a CPU). Reports the server's peak RSS against the 4 GB goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_tools import CHROMIUM, FLAGS, free_port, start_server  # noqa: E402

from pages.common.navigation import PAGES as APP_PAGES  # noqa: E402

#: Page titles the sessions visit, from the app's own page list (the first page last: sessions start there).
PAGES = [p.title for p in APP_PAGES[1:]] + [APP_PAGES[0].title]
TIMEOUT_MS = 150_000
HEAVY_TIMEOUT_MS = 900_000      # 8 CrossFormer-B traces at 512 px share the model's lock on 2 cores
HEAVY_RSS_GOAL_MB = 4096
SHAPES = [("triangle", "square"), ("circle", "cross"), ("square", "ring"), ("cross", "triangle")]


# ---- memory of the server process tree (Linux /proc) ----------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_rss_mb(pid: int) -> float:
    kids, todo, total = _children(), [pid], 0
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads, plus its reaped children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int, exclude: int | None = None) -> float:
    """CPU seconds of a process tree (live processes), leaving out the subtree of ``exclude``."""
    kids, todo, total = _children(), [pid], 0.0
    while todo:
        p = todo.pop()
        if p == exclude:
            continue
        todo.extend(kids.get(p, []))
        try:
            total += cpu_seconds(p)
        except (OSError, IndexError, ValueError):
            pass
    return total


class PeakMemory(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self._stop_flag = pid, 0.0, [], threading.Event()

    def run(self) -> None:
        while not self._stop_flag.is_set():
            rss = tree_rss_mb(self.pid)
            self.peak = max(self.peak, rss)
            self.samples.append(rss)
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join()


# ---- one user -----------------------------------------------------------------------------------------
async def settle(page) -> None:
    await page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=TIMEOUT_MS)
    await page.wait_for_timeout(250)
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=TIMEOUT_MS)


def nav_link(page, title: str):
    """The navigation link whose text ends with ``title`` ("Attention", not "Why cross-scale attention?":
    ``has_text`` alone is a case-insensitive substring match)."""
    return page.locator("[data-testid='stSidebarNavLink']").filter(
        has_text=re.compile(rf"{re.escape(title)}\s*$")).first


async def large_input(page) -> None:
    """Preprocessing → keep the aspect ratio, shorter side at the slider's maximum (512 px), applied."""
    await page.get_by_text("Keep aspect ratio", exact=True).click()
    await settle(page)
    slider = page.get_by_role("slider", name="Shorter side (px)")
    await slider.focus()
    await page.keyboard.press("End")
    await page.wait_for_function("() => [...document.querySelectorAll(\"input[type='range']\")].some(e => "
                                 "e.getAttribute('aria-label') === 'Shorter side (px)' && e.value === '512')",
                                 timeout=TIMEOUT_MS)
    await settle(page)       # the slider only drafts the size: the model runs at 512 when Apply is pressed
    await page.locator("[data-testid='stSidebar']").get_by_role("button", name="Apply 512 px").click()
    await page.get_by_role("button", name="Applied: 512 px").first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)


async def user(browser, url: str, i: int, tmp: Path, heavy: bool = False) -> dict:
    """One session (:func:`_user_flow`); a failure names the step it was at and leaves a screenshot."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 2000})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = await ctx.new_page()
    step = ["start"]
    try:
        return await _user_flow(ctx, page, url, i, tmp, heavy, step)
    except Exception as err:
        raise await failure(page, f"user_{i}", step[0], err) from err


async def failure(page, who: str, step: str, err: Exception) -> RuntimeError:
    """The error to raise for a session that failed at ``step``: names the step, keeps a screenshot."""
    shot = ROOT / "out" / "screenshots" / f"{who}_failed.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    try:
        await page.screenshot(path=str(shot))
    except Exception:       # noqa: BLE001 — the page may be gone; the step is what matters
        pass
    return RuntimeError(f"at step '{step}' ({type(err).__name__}; screenshot {shot.name}): "
                        f"{str(err).splitlines()[0][:120]}")


async def _user_flow(ctx, page, url: str, i: int, tmp: Path, heavy: bool, step: list[str]) -> dict:
    """Its own image, one page visited with an interaction, back to the Overview; returns what it saw.
    ``heavy``: once the image is chosen, shorter side 512; no NumPy-reference run. ``step[0]`` names the
    step under way."""
    t0 = time.perf_counter()
    step[0] = "open the app"
    await page.goto(url, timeout=TIMEOUT_MS)
    await settle(page)
    step[0] = "choose its image"
    if i % 2 == 0:                                            # photo upload, each of another size
        import app_samples as S
        h, w = 200 + 8 * i, 300 + 16 * i
        path = tmp / f"user_{i}.png"
        path.write_bytes(S.png(S.gradient(h, w)))
        await page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
        expect = f"upload: user_{i}.png"
        await page.get_by_text(expect, exact=False).first.wait_for(timeout=TIMEOUT_MS)
    else:                                                     # a Navon figure with its own shapes
        g, l = SHAPES[(i // 2) % len(SHAPES)]
        await page.get_by_text("Navon generator", exact=True).click()
        await settle(page)
        for label, value in (("Global shape", g), ("Local shape", l)):
            await page.get_by_label(label).first.click()
            await page.get_by_role("option", name=value, exact=True).click()
            await settle(page)
        from crossformer.navon import CLASS_NAMES, label_of
        expect = f"Navon figure: {CLASS_NAMES[label_of(g, l)]}"
        await page.get_by_text(expect, exact=False).first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    if heavy:                                                 # its own image first (cheap 224 px traces), then 512
        step[0] = "shorter side 512 and Apply"
        await large_input(page)
    ready = time.perf_counter() - t0
    target = PAGES[i % len(PAGES)]
    step[0] = f"open {target}"
    await nav_link(page, target).click()
    await page.get_by_role("heading", name=target, exact=True).first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    step[0] = f"interact on {target}"
    sliders = page.locator("input[type='range'][aria-label='Query row (token)']")
    if await sliders.count():
        await sliders.first.focus()
        await page.keyboard.press("End")
        await settle(page)
    elif target == "NumPy reference" and not heavy:
        await page.get_by_role("button", name="Run the NumPy reference on this image").click()
        await page.get_by_text("PASS", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    step[0] = "back to the Overview"
    errors = await page.locator("[data-testid='stException']").count()
    await nav_link(page, "Overview").click()
    await page.get_by_role("heading", name="Overview", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    errors += await page.locator("[data-testid='stException']").count()
    sidebar = await page.locator("[data-testid='stSidebar']").inner_text()
    caption = next((line for line in sidebar.splitlines() if "model input" in line), "")
    main = await page.locator("[data-testid='stMain']").inner_text()
    shot = ROOT / "out" / "screenshots" / f"user_{i}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(shot))
    await ctx.close()
    print(f"  … user {i} done after {time.perf_counter() - t0:.0f} s ({target})", file=sys.stderr, flush=True)
    return {"user": i, "page": target, "expect": expect, "caption": caption, "sidebar": sidebar, "main": main,
            "errors": errors, "ready_s": ready, "total_s": time.perf_counter() - t0}


async def run_users(url: str, n: int, tmp: Path, server_pid: int, browser_cpu: list[float],
                    heavy: bool = False) -> list[dict]:
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            return await asyncio.gather(*(user(browser, url, i, tmp, heavy) for i in range(n)),
                                        return_exceptions=True)
        finally:   # CPU used by the browser side (playwright driver + chromium), measured before it exits
            browser_cpu.append(tree_cpu_seconds(os.getpid(), exclude=server_pid) - cpu_seconds(os.getpid()))
            await browser.close()


# ---- a class of students --------------------------------------------------------------------------------
CLASS_RSS_GOAL_MB = 4096
CLASS_P95_GOAL_S = 2.0
UPLOAD_PAGES = ("Overview", "SDA & LDA groups", "Attention")


async def student(browser, url: str, i: int, upload: tuple[int, int] | None, delay_s: float, tmp: Path,
                  uploads: list[str]) -> dict:
    """One student: arrives after ``delay_s``; ``upload (H, W)``: uploads a photo of that size and visits
    :data:`UPLOAD_PAGES`, else keeps the default sample and tours every page in lesson order. Checks its own
    identity on every page; a failure names its step and leaves a screenshot."""
    await asyncio.sleep(delay_s)
    ctx = await browser.new_context(viewport={"width": 1280, "height": 1600})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = await ctx.new_page()
    step, t0, errors, leaks, seen_own = "open the app", time.perf_counter(), 0, set(), 0
    try:
        await page.goto(url, timeout=TIMEOUT_MS)
        await settle(page)
        if upload is not None:
            step = "upload its photo"
            import app_samples as S
            name = f"student_{i}.png"
            (tmp / name).write_bytes(S.png(S.gradient(*upload)))
            await page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(tmp / name))
            own = f"upload: {name}"
            await page.get_by_text(own, exact=False).first.wait_for(timeout=TIMEOUT_MS)
            await settle(page)
            tour = list(UPLOAD_PAGES)
        else:
            own = "sample: "
            tour = [p.title for p in APP_PAGES]
        for title in tour:
            step = f"open {title}"
            if title != "Overview" or upload is None:
                await nav_link(page, title).click()
                await page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=TIMEOUT_MS)
            await settle(page)
            errors += await page.locator("[data-testid='stException']").count()
            sidebar = await page.locator("[data-testid='stSidebar']").inner_text()
            seen_own += own in sidebar
            leaks |= {u for u in uploads if u != own and u in sidebar}
        await ctx.close()
        print(f"  … student {i} done after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return {"i": i, "upload": upload, "pages": len(tour), "own_seen": seen_own, "errors": errors,
                "leaks": sorted(leaks), "total_s": time.perf_counter() - t0}
    except Exception as err:
        raise await failure(page, f"student_{i}", step, err) from err


def class_plan(n: int, arrival_s: float, seed: int = 0) -> list[tuple[tuple[int, int] | None, float]]:
    """``(upload size or None, arrival delay)`` per student: one in five uploads (the first a 3000×2000
    photo, the rest 300–700 px), the others keep the sample; arrivals uniform over ``arrival_s`` (seeded)."""
    import random

    rng = random.Random(seed)
    n_up = max(1, n // 5)
    ups = {round(k * n / n_up): (2000, 3000) if k == 0 else (300 + 80 * k, 420 + 60 * k) for k in range(n_up)}
    return [(ups.get(i), rng.uniform(0, arrival_s)) for i in range(n)]


def server_runs(log: Path) -> list[tuple[str, str, float, str]]:
    """``(session, page, seconds, outcome)`` of every script run the server logged (``CROSSFORMER_RUN_TIMES``)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r"run session=(\S+) page=(\S+) seconds=([\d.]+) outcome=(\w+)", line)
        if m:
            out.append((m.group(1), m.group(2), float(m.group(3)), m.group(4)))
    return out


def classroom(args: argparse.Namespace) -> int:
    """The ``--classroom`` run (see the module docstring); returns the exit code."""
    import statistics
    import tempfile

    import torch

    import crossformer
    plan = class_plan(args.sessions, args.arrival_s)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        ckpt = tmp / f"{args.variant}_random.pth"
        torch.save({"model": crossformer.create_model(args.variant).state_dict()}, ckpt)
        log = tmp / "server.log"
        port = free_port()
        proc = start_server(port, env={"CROSSFORMER_CHECKPOINT": str(ckpt), "CROSSFORMER_RUN_TIMES": "1"}, log=log)
        idle = tree_rss_mb(proc.pid)
        if args.client_nice:
            # from here on this process and what it starts (playwright's driver, chromium and its renderers) run
            # at a lower priority than the server: in a class the browsers run on the students' laptops
            os.nice(args.client_nice)
        mem = PeakMemory(proc.pid)
        mem.start()
        cpu0, t0, browser_cpu = cpu_seconds(proc.pid), time.perf_counter(), []
        uploads = [f"upload: student_{i}.png" for i, (up, _) in enumerate(plan) if up is not None]

        async def everyone() -> list:
            from playwright.async_api import async_playwright
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                try:
                    return await asyncio.gather(*(student(browser, f"http://127.0.0.1:{port}", i, up, d, tmp, uploads)
                                                  for i, (up, d) in enumerate(plan)), return_exceptions=True)
                finally:
                    browser_cpu.append(tree_cpu_seconds(os.getpid(), exclude=proc.pid) - cpu_seconds(os.getpid()))
                    await browser.close()
        try:
            results = asyncio.run(everyone())
        finally:
            wall = time.perf_counter() - t0
            mem.stop()
            server_cpu = cpu_seconds(proc.pid) - cpu0
            load1 = os.getloadavg()
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("  (the server did not stop within 60 s of SIGTERM: killed)", flush=True)
                proc.kill()
                proc.wait(timeout=20)
        runs = server_runs(log)
        if args.keep_log:
            Path(args.keep_log).write_bytes(log.read_bytes())
    ok = True
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            ok = False
            print(f"  student {i}: FAILED {str(r)[:200]}")
            continue
        good = r["errors"] == 0 and not r["leaks"] and r["own_seen"] == r["pages"]
        ok &= good
        if not good:
            print(f"  student {i}: BAD exceptions {r['errors']} · own image on {r['own_seen']}/{r['pages']} pages"
                  f" · sees others: {r['leaks']}")
    done = [r for r in results if not isinstance(r, BaseException)]
    secs = sorted(s for _, _, s, _ in runs)
    p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))] if secs else float("nan")
    slowest = sorted(runs, key=lambda r: -r[2])[:5]
    bcpu = browser_cpu[0] if browser_cpu else float("nan")
    print(f"classroom: {args.sessions} sessions ({sum(up is not None for up, _ in plan)} uploading, one 3000×2000), "
          f"start-up model {args.variant} (random weights), arrivals over {args.arrival_s:.0f} s; {os.cpu_count()} "
          f"CPU cores, load average before {load0[0]:.2f} (1 min) / {load0[1]:.2f} (5 min), after {load1[0]:.2f}; "
          f"client (chromium) at nice {args.client_nice}, server at nice 0")
    print(f"  sessions finished {len(done)}/{args.sessions} · exception boxes {sum(r['errors'] for r in done)} · "
          f"sessions seeing another's image {sum(bool(r['leaks']) for r in done)} · "
          f"session time median {statistics.median([r['total_s'] for r in done]) if done else float('nan'):.0f} s, "
          f"max {max((r['total_s'] for r in done), default=float('nan')):.0f} s")
    print(f"  server RSS: idle {idle:.0f} MB · peak {mem.peak:.0f} MB ({mem.peak / CLASS_RSS_GOAL_MB:.2f} × the "
          f"{CLASS_RSS_GOAL_MB} MB goal)")
    print(f"  server-side time per script run ({len(runs)} runs, measured in the server): median "
          f"{statistics.median(secs) if secs else float('nan'):.2f} s · p95 {p95:.2f} s ({p95 / CLASS_P95_GOAL_S:.2f} × "
          f"the {CLASS_P95_GOAL_S:.0f} s goal) · max {secs[-1] if secs else float('nan'):.2f} s")
    print("  slowest runs: " + "; ".join(f"{pg} {s:.2f} s ({o})" for _, pg, s, o in slowest))
    by_page: dict[str, list[float]] = {}
    for _, pg, s, _ in runs:
        by_page.setdefault(pg, []).append(s)
    print("  per page (runs, median, p95 s): " + "; ".join(
        f"{pg.replace('_', ' ')} {len(v)}, {statistics.median(v):.2f}, {sorted(v)[min(len(v) - 1, int(0.95 * len(v)))]:.2f}"
        for pg, v in sorted(by_page.items())))
    print(f"  wall {wall:.0f} s · CPU: server {server_cpu:.0f} s, browser side {bcpu:.0f} s → the client used "
          f"{bcpu / max(bcpu + server_cpu, 1e-9):.0%} of the CPU time")
    ok &= len(done) == args.sessions and mem.peak <= CLASS_RSS_GOAL_MB and p95 <= CLASS_P95_GOAL_S
    print("classroom goals met" if ok else "classroom: FAILURES or goals missed above")
    return 0 if ok else 1


def main() -> int:
    global TIMEOUT_MS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", "--sessions", dest="users", type=int, default=8)
    ap.add_argument("--classroom", action="store_true", help="a class: see the module docstring")
    ap.add_argument("--arrival-s", type=float, default=30.0, help="--classroom: arrivals spread over this long")
    ap.add_argument("--keep-log", default=None, help="--classroom: copy the server's log here")
    ap.add_argument("--client-nice", type=int, default=19,
                    help="--classroom: run the browsers at this nice value (0: same priority as the server), so the "
                         "server-side times measure the server rather than the browsers sharing its CPU")
    ap.add_argument("--heavy", action="store_true", help="random-weight --variant at shorter side 512")
    ap.add_argument("--variant", default="crossformer_b", help="--heavy: crossformer_b; --classroom: crossformer_s")
    ap.add_argument("--timeout-s", type=float, default=None,
                    help=f"per-step wait (default {TIMEOUT_MS // 1000} s, --heavy {HEAVY_TIMEOUT_MS // 1000} s)")
    args = ap.parse_args()
    args.sessions = args.users
    if args.heavy:
        TIMEOUT_MS = HEAVY_TIMEOUT_MS
    if args.timeout_s:
        TIMEOUT_MS = int(args.timeout_s * 1000)
    if not os.path.exists(CHROMIUM):
        sys.exit(f"needs {CHROMIUM} (apt-get install chromium)")
    if args.classroom:
        if args.variant == "crossformer_b":
            args.variant = "crossformer_s"
        TIMEOUT_MS = max(TIMEOUT_MS, 600_000)
        return classroom(args)
    import tempfile
    load0 = os.getloadavg()
    port = free_port()
    ckpt_dir = tempfile.TemporaryDirectory()
    env = None
    if args.heavy:                      # the variant with random weights as the server's start-up checkpoint
        import torch

        import crossformer
        torch.manual_seed(0)
        path = Path(ckpt_dir.name) / f"{args.variant}_random.pth"
        torch.save({"model": crossformer.create_model(args.variant).state_dict()}, path)
        env = {"CROSSFORMER_CHECKPOINT": str(path)}
    proc = start_server(port, env=env)
    idle = tree_rss_mb(proc.pid)
    mem = PeakMemory(proc.pid)
    mem.start()
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    browser_cpu: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(run_users(f"http://127.0.0.1:{port}", args.users, Path(tmp), proc.pid,
                                            browser_cpu, args.heavy))
    finally:
        wall = time.perf_counter() - t0
        mem.stop()
        after = tree_rss_mb(proc.pid)
        cpu = cpu_seconds(proc.pid) - cpu0
        load1 = os.getloadavg()
        proc.terminate()
        proc.wait(timeout=20)
        ckpt_dir.cleanup()
    ok = True
    failed = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    results = [r for r in results if not isinstance(r, BaseException)]
    for i, err in failed:
        ok = False
        print(f"  user {i}: FAILED {type(err).__name__}: {str(err).splitlines()[0][:160]}")
    print(("HEAVY: " if args.heavy else "") + f"{args.users} concurrent sessions on one server · {os.cpu_count()} CPU cores · load average before "
          f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}")
    for r in results:
        own = r["expect"] in r["sidebar"] or r["expect"] in r["main"]
        others = [o["expect"] for o in results if o["user"] != r["user"] and o["expect"] in r["sidebar"]]
        at_512 = not args.heavy or "512" in r["caption"]       # heavy: the model input's shorter side is 512
        good = own and not others and r["errors"] == 0 and at_512
        ok &= good
        print(f"  user {r['user']}: {'OK ' if good else 'BAD'} page {r['page']:22s} image ready {r['ready_s']:5.1f} s · "
              f"session {r['total_s']:5.1f} s · exceptions {r['errors']} · sees: {r['caption'][:70]}"
              + (f" · LEAK: {others}" if others else "") + ("" if own else " · OWN IMAGE MISSING")
              + ("" if at_512 else " · NOT AT 512 px"))
    print(f"server RSS: idle {idle:.0f} MB · peak {mem.peak:.0f} MB · after {after:.0f} MB"
          + (f" · heavy case ({args.variant} random weights, shorter side 512): peak {mem.peak / HEAVY_RSS_GOAL_MB:.2f}"
             f" × the {HEAVY_RSS_GOAL_MB} MB goal" if args.heavy else ""))
    bcpu = browser_cpu[0] if browser_cpu else float("nan")
    print(f"wall {wall:.1f} s on {os.cpu_count()} cores · CPU used: server {cpu:.1f} s, browser side "
          f"(chromium + playwright, same machine) {bcpu:.1f} s · load average after {load1[0]:.2f}")
    print("no errors, no cross-session leakage" if ok else "FAILURES above")
    return 0 if ok else 1


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
