"""Heavy actions (pages/common/heavy.py): the cost model's estimates, the confirmation above the threshold,
the progress bar reaching its total, a cancelled run leaving nothing stored and saying where it stopped; the
batched / bf16 attribution paths against the plain ones; the size slider applying only on "Apply"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import app_samples as S
from app_samples import no_errors
from crossformer import attribution, precision
from crossformer import variants as cfgs
from pages.common import calibrate, estimates, heavy

TARGET = 3


@pytest.fixture(scope="module")
def demo():
    import crossformer
    torch.manual_seed(0)
    model = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(1, 3, 64, 96)
    return model, x


def _bundle(model):
    """What :func:`pages.common.calibrate.measure` reads from a model bundle: the model, its config, device, lock."""
    import threading
    from types import SimpleNamespace
    return SimpleNamespace(model=model, cfg=model.cfg, device=torch.device("cpu"), lock=threading.Lock())


# ---- the cost model ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["crossformer_demo", "crossformer_t", "crossformer_pp_s"])
def test_forward_flops_grow_with_the_input_and_the_model(variant):
    cfg = cfgs.VARIANTS[variant]
    sizes = [(64, 64), (128, 128), (224, 224), (224, 336), (480, 720)]
    flops = [estimates.forward_flops(cfg, hw) for hw in sizes]
    assert all(a < b for a, b in zip(flops, flops[1:]))
    # tokens dominate: 4× the pixels → between 3× and 5× the work (attention in fixed-size groups is linear)
    assert 3.0 < estimates.forward_flops(cfg, (448, 448)) / estimates.forward_flops(cfg, (224, 224)) < 5.0


def test_forward_flops_order_the_variants():
    get = cfgs.VARIANTS.__getitem__
    f = [estimates.forward_flops(get(n), (224, 224)) for n in ("crossformer_demo", "crossformer_t", "crossformer_b")]
    assert f[0] < f[1] < f[2]
    # CrossFormer-T is about 2.9 GFLOPs at 224 (paper): the count is in the right range
    assert 2.0e9 < f[1] < 3.5e9


def test_the_estimate_is_monotone_in_size_and_method():
    cal = estimates.Calibration(overhead_s=0.01, per_flop_s=1e-10)
    cfg = cfgs.VARIANTS["crossformer_pp_s"]

    def ig(hw, steps):
        return estimates.estimate(estimates.ig_cost(steps, attribution.batch_for(hw)), estimates.forward_flops(cfg, hw),
                              cal).seconds

    def occ(hw, window):
        return estimates.estimate(estimates.occlusion_cost(attribution.occlusion_total(hw, window, window),
                                                   attribution.batch_for(hw)),
                              estimates.forward_flops(cfg, hw), cal).seconds

    sizes = [(64, 64), (224, 224), (320, 480), (480, 720)]
    assert all(a < b for a, b in zip([ig(s, 16) for s in sizes], [ig(s, 16) for s in sizes][1:]))
    assert all(a < b for a, b in zip([ig((224, 224), n) for n in (4, 8, 16, 32, 64)],
                                     [ig((224, 224), n) for n in (8, 16, 32, 64)]))
    assert all(a < b for a, b in zip([occ(s, 16) for s in sizes], [occ(s, 16) for s in sizes][1:]))
    assert occ((224, 224), 16) > occ((224, 224), 32) > occ((224, 224), 56)          # smaller squares: more passes
    gradcam = estimates.estimate(estimates.gradcam_cost(), estimates.forward_flops(cfg, (224, 224)), cal).seconds
    assert gradcam < ig((224, 224), 4) < occ((224, 224), 16)


def test_calibration_recovers_overhead_and_rate():
    cal = estimates.fit_calibration(0.02 + 1e9 * 2e-10, 0.02 + 4e9 * 2e-10, 1e9, 4e9)
    assert cal.overhead_s == pytest.approx(0.02) and cal.per_flop_s == pytest.approx(2e-10)
    noisy = estimates.fit_calibration(0.5, 0.4, 1e9, 4e9)                 # a slower small pass (noise): still > 0
    assert noisy.per_flop_s > 0 and noisy.overhead_s >= 0


def test_timings_interpolate_between_rungs_and_level_off_above():
    """A pass is priced by a line through the smallest pass and the time interpolated at its size; above the
    largest rung, seconds per FLOP stay those of the largest (a 512×768 action is not priced at 64² rates)."""
    t = estimates.Timings(((4e7, 0.01), (1.6e8, 0.03), (5e8, 0.04), (1e9, 0.06)))   # seconds per FLOP fall with size
    one = estimates.Cost(1.0, 1, 1)
    for f, secs in t.points:
        assert t.seconds(one, f) == pytest.approx(secs)                          # every rung reproduced
    assert t.seconds(one, 7.5e8) == pytest.approx(0.05)                           # halfway between 5e8 and 1e9
    slope = (0.06 - 0.01) / (1e9 - 4e7)
    assert t.seconds(one, 8e9) == pytest.approx(0.01 + (8e9 - 4e7) * slope)      # levelled off above 1e9
    at = t.at(8e9)
    assert t.seconds(estimates.Cost(10.0, 3, 10), 8e9) == pytest.approx(3 * at.overhead_s + 10 * 8e9 * at.per_flop_s)
    # a line through the two smallest rungs would price the large pass three times higher (what this replaced)
    assert estimates.fit_calibration(0.01, 0.03, 4e7, 1.6e8).seconds(one, 8e9) > 2 * t.seconds(one, 8e9)


def test_measure_times_the_whole_ladder_once(demo):
    """One measurement per model and engine prices every input size: the ladder's passes, in ascending FLOPs,
    with times that never fall as the pass grows (a disturbed small pass is capped by the next one)."""
    model, _ = demo

    Bundle = _bundle(model)
    for engine in ("fp32", "numpy"):
        t = calibrate.measure(Bundle, engine)
        ladder = calibrate.NUMPY_SIZES if engine == "numpy" else calibrate.CALIBRATION_SIZES
        assert len(t.points) == len(ladder) and t.label == "this CPU"
        flops, secs = zip(*t.points)
        assert list(flops) == sorted(flops) and list(secs) == sorted(secs) and secs[0] > 0
        assert not Bundle.lock.locked()


def test_measure_does_not_time_waiting_for_the_shared_model(demo):
    """In a class other sessions hold the model's lock most of the time: the calibration waits for it before the
    clock starts (timing the wait once measured 6 s for a 35 ms pass and asked "continue?" everywhere)."""
    import threading
    import time

    model, _ = demo

    Bundle = _bundle(model)
    stop = threading.Event()

    def other_sessions() -> None:          # passes of 0.3 s with short gaps, as a busy server has
        while not stop.is_set():
            with Bundle.lock:
                time.sleep(0.3)
            time.sleep(0.002)

    hog = threading.Thread(target=other_sessions, daemon=True)
    hog.start()
    try:
        t = calibrate.measure(Bundle, "fp32")
    finally:
        stop.set()
        hog.join(5)
    assert max(sec for _, sec in t.points) < 0.25, t.points   # the demo model's 256×384 pass takes ~20 ms


def test_calibrations_never_wait_and_measure_each_key_once():
    """get() answers at once while the background thread measures; a key is measured once, a failed one is not
    retried; one thread measures keys one after the other."""
    import threading
    import time

    started, release, calls = threading.Event(), threading.Event(), []
    ready = estimates.Timings(((1e8, 0.01), (1e9, 0.05)))

    def slow():
        calls.append("slow")
        started.set()
        assert release.wait(60)
        return ready

    def broken():
        calls.append("broken")
        raise RuntimeError("no model")

    cals = calibrate.Calibrations()
    assert cals.get("k", slow) is None                    # returns while the measurement is blocked
    assert started.wait(60)
    assert cals.get("k", slow) is None and cals.get("bad", broken) is None
    assert calls == ["slow"]                              # one thread: "bad" waits for "k"; "k" not queued twice
    release.set()
    done = calibrate.Calibrations()
    deadline = time.monotonic() + 60
    while cals.get("then", lambda: ready) is None and time.monotonic() < deadline:
        time.sleep(0.05)                                  # "then" was queued after "bad": both are done now
    assert cals.get("k", slow) is ready and cals.get("bad", broken) is None
    assert calls == ["slow", "broken"]                    # the failure was not retried
    assert done.get("k", lambda: ready) is None           # another server's registry starts empty


def test_stale_timings_are_measured_again_and_keep_the_fastest_pass():
    """Timings taken while a class arrives are too slow: after ``refresh_s`` they are measured again (the old ones
    answer meanwhile), pass by pass the faster time is kept, and a slower or failed re-measurement loses nothing."""
    import time

    answers = iter([((1e8, 0.50), (1e9, 2.00)),          # measured in the rush
                    ((1e8, 0.01), (1e9, 3.00)),          # quieter for the small pass only
                    None,                                # a failed re-measurement
                    ((1e8, 0.02), (1e9, 0.05))])         # quiet

    def measure():
        points = next(answers)
        if points is None:
            raise RuntimeError("model gone")
        return estimates.Timings(points)

    def settled(cals, want):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = cals.get("k", measure)
            if got is not None and got.points == want:
                return got
            time.sleep(0.02)
        raise AssertionError(f"timings never became {want}: {cals.get('k', measure)}")

    fresh = calibrate.Calibrations(refresh_s=3600)
    assert fresh.get("k", lambda: estimates.Timings(((1e8, 0.5), (1e9, 2.0)))) is None
    settled(fresh, ((1e8, 0.5), (1e9, 2.0)))
    assert fresh.get("k", measure).points == ((1e8, 0.5), (1e9, 2.0))   # not stale: never measured again
    cals = calibrate.Calibrations(refresh_s=0.0)                       # every call finds the timings stale
    settled(cals, ((1e8, 0.50), (1e9, 2.00)))
    settled(cals, ((1e8, 0.01), (1e9, 2.00)))
    settled(cals, ((1e8, 0.01), (1e9, 0.05)))                         # after the failure: nothing lost
    with pytest.raises(StopIteration):
        next(answers)


def test_before_the_timings_an_estimate_is_rough_and_says_so():
    cost = estimates.scan_cost(60, 16)
    rough = estimates.estimate(cost, 5e8, None)
    assert rough.rough and "rough figure while this machine is being timed" in rough.text
    measured = estimates.estimate(cost, 5e8, estimates.Timings(((4e7, 0.002), (5e8, 0.01))))
    assert not measured.rough and measured.text.endswith("on this CPU")
    assert rough.seconds > measured.seconds                # cautious: errs towards asking first


def test_measured_calibration_predicts_a_larger_pass(demo):
    """The timings predict a pass between two rungs within a factor of 5 (the 2-core CPU is shared: single
    timings swing by 2–3×)."""
    import time

    model, _ = demo

    Bundle = _bundle(model)
    with torch.no_grad():                      # in the app the trace has run before: torch is warm
        model(torch.zeros(1, 3, 64, 64))
    cal = calibrate.measure(Bundle, "fp32")
    x = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        model(x)
        took = time.perf_counter() - t0
    predicted = cal.seconds(estimates.Cost(1, 1, 1), estimates.forward_flops(model.cfg, (256, 256)))
    assert took / 5 < predicted < took * 5, (predicted, took, cal)


def test_describe_reads_like_a_person():
    assert estimates.describe(0.3) == "under a second"
    assert estimates.describe(7.4) == "about 7 s"
    assert estimates.describe(44) == "about 40 s"
    assert estimates.describe(125) == "about 2 min"


# ---- the batched / bf16 paths --------------------------------------------------------------------------
def test_ig_batched_equals_the_plain_path_and_bf16_is_close(demo):
    model, x = demo
    plain, d_plain = attribution.integrated_gradients(model, x, TARGET, steps=16, internal_batch_size=1)
    batched, d_batched = attribution.integrated_gradients(model, x, TARGET, steps=16, internal_batch_size=16)
    np.testing.assert_allclose(batched, plain, rtol=1e-4, atol=1e-5 * np.abs(plain).max())
    assert d_batched == pytest.approx(d_plain, rel=1e-3, abs=1e-5)
    low, _ = attribution.integrated_gradients(model, x, TARGET, steps=16, internal_batch_size=16,
                                              precision="bf16")
    # stated tolerance: bf16 keeps 8 mantissa bits; the map's relative L2 error stays under 10 %, correlation > 0.99
    rel = np.linalg.norm(low - plain) / np.linalg.norm(plain)
    corr = np.corrcoef(low.ravel(), plain.ravel())[0, 1]
    assert rel < 0.10 and corr > 0.99, (rel, corr)


def test_occlusion_batched_equals_unbatched_in_fp32(demo):
    model, x = demo
    one = attribution.occlusion(model, x, TARGET, window=16, stride=16, perturbations_per_eval=1)
    many = attribution.occlusion(model, x, TARGET, window=16, stride=16, perturbations_per_eval=24)
    np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-5 * np.abs(one).max())
    assert np.abs(one).max() > 0


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_progress_reaches_its_total_in_order(demo, method):
    model, x = demo
    seen: list[tuple[int, int]] = []
    if method == "ig":
        attribution.integrated_gradients(model, x, TARGET, steps=12, internal_batch_size=5,
                                         progress=lambda d, t: seen.append((d, t)))
        total = attribution.ig_total(12)
    else:
        attribution.occlusion(model, x, TARGET, window=32, stride=32, perturbations_per_eval=2,
                              progress=lambda d, t: seen.append((d, t)))
        total = attribution.occlusion_total((64, 96), 32, 32)
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 2


def test_numpy_reference_reports_every_block(demo):
    from crossformer import reference
    model, x = demo
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    seen: list[tuple[int, int]] = []
    reference.forward(weights, x.numpy()[:, :, :64, :64], model.cfg, trace=False,
                      progress=lambda d, t: seen.append((d, t)))
    n = sum(model.cfg.depths)
    assert seen == [(i, n) for i in range(1, n + 1)]


def test_bf16_is_used_only_where_native():
    used = precision.resolve("auto", "cpu")
    assert used == ("bf16" if precision.cpu_has_native_bf16() else "fp32")


# ---- the action in a Streamlit script (AppTest) ----------------------------------------------------------
def _job_script():
    import streamlit as st
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from pages.common import estimates, heavy
    est = estimates.Estimate(st.session_state.get("est_s", 1.0), estimates.Cost(32.0, 4, 32, "steps"))
    store = st.session_state.setdefault("store", {})
    stop_at = st.session_state.get("stop_at")

    def compute(progress):
        for i in range(1, 33):
            if i == stop_at:
                raise StopException()
            if i == 5 and st.session_state.get("fail"):
                raise ValueError("boom")     # what Streamlit raises at the next st call after a Cancel click
            progress(i)
        st.session_state["last_marker"] = dict(progress.marker)
        return "result"

    res, _ = heavy.action("job", "Run the job", "req", est, compute, store)
    st.markdown(f"result: {res}")


def _app(**state):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(_job_script, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def _texts(at) -> str:
    return " ".join(m.value for m in [*at.markdown, *at.warning, *at.caption])


def test_below_the_threshold_the_button_just_runs_and_progress_reaches_the_total():
    at = _app(est_s=heavy.THRESHOLD_S / 2)
    assert "result: None" in _texts(at) and "about 5 s" in _texts(at)
    at.button(key="job").click().run()
    no_errors(at)
    assert not at.warning and "result: result" in _texts(at)
    assert at.session_state["last_marker"]["done"] == at.session_state["last_marker"]["total"] == 32
    assert at.session_state["store"] == {"req": "result"}


def test_above_the_threshold_it_asks_first():
    at = _app(est_s=125.0)
    at.button(key="job").click().run()
    assert "about 2 min on this CPU (32 steps) — continue?" in _texts(at)
    assert "result: None" in _texts(at) and not at.session_state["store"]
    at.button(key="job_confirm").click().run()
    no_errors(at)
    assert "result: result" in _texts(at) and not at.warning


def test_declining_runs_nothing():
    at = _app(est_s=125.0)
    at.button(key="job").click().run()
    at.button(key="job_decline").click().run()
    assert "result: None" in _texts(at) and not at.session_state["store"] and not at.warning


def test_a_cancelled_run_keeps_nothing_and_says_where_it_stopped():
    at = _app(est_s=1.0, stop_at=13)
    at.button(key="job").click().run()
    assert not at.session_state["store"]                             # nothing half-computed kept
    at.session_state["stop_at"] = None
    at.run()                                                          # the rerun a Cancel click asks for
    no_errors(at)
    assert "Cancelled at 12 / 32 steps; nothing was kept." in _texts(at)
    assert "result: None" in _texts(at) and not at.session_state["store"]
    at.run()
    assert "Cancelled" not in _texts(at)                              # said once


def test_a_failing_job_is_shown_and_the_app_goes_on():
    at = _app(est_s=1.0, fail=True)
    at.button(key="job").click().run()
    assert not at.exception and any("Run the job failed: ValueError: boom" in e.value for e in at.error)
    at.run()
    assert "Cancelled" not in _texts(at) and not at.session_state["store"]


# ---- the app's pages -----------------------------------------------------------------------------------
def _wait_for_timings(timeout_s: float = 120) -> None:
    """Wait until the background thread has measured every queued calibration."""
    import time

    cals, deadline = calibrate.calibrations(), time.monotonic() + timeout_s
    while (cals._queued or not cals._ready) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cals._ready and not cals._queued, "the calibration did not finish"



def test_attributions_confirm_above_the_threshold_not_below(monkeypatch):
    from pages.common import heavy_runs
    heavy_runs.heavy_store().clear()            # results are shared server-wide: an earlier test may have this one
    monkeypatch.setattr(heavy, "THRESHOLD_S", 1e9)                   # "below": whatever this loaded CPU estimates
    at = S.new_app(64).run()
    at.switch_page("pages/attributions.py").run()
    no_errors(at)
    _wait_for_timings()                                               # measured in the background meanwhile
    at.run()
    assert any("Estimated" in c.value and "on this CPU" in c.value for c in at.caption)
    at.button(key="attr_run").click().run()
    assert len(at.get("plotly_chart")) == 1
    assert not any("continue?" in w.value for w in at.warning)
    assert any("convergence delta" in c.value for c in at.caption)
    monkeypatch.setattr(heavy, "THRESHOLD_S", 0.0)
    S.widget(at.slider, "attr_steps").set_value(12).run()             # a new request, now "above" the threshold
    at.button(key="attr_run").click().run()
    assert any("continue?" in w.value for w in at.warning)
    assert not at.get("plotly_chart")
    at.button(key="attr_run_confirm").click().run()
    no_errors(at)
    assert len(at.get("plotly_chart")) == 1


def test_size_control_applies_only_on_apply():
    at = S.new_app(96).run()
    no_errors(at)
    draft = S.widget(at.slider, "sb_size_draft")
    assert draft.value == 96
    draft.set_value(160).run()
    no_errors(at)
    assert at.session_state["sb_size"] == 96                          # moving the slider runs nothing
    assert at.button(key="sb_size_apply").label == "Apply 160 px"
    at.button(key="sb_size_apply").click().run()
    no_errors(at)
    assert at.session_state["sb_size"] == 160
    assert at.button(key="sb_size_apply").disabled


def test_calibration_size_is_the_input_up_to_a_bounded_area():
    """Large inputs are calibrated at a bounded area with their aspect ratio (a detector's 800×1344 pass would
    cost seconds on the first visit), sides a multiple of 32."""
    assert calibrate.calibration_size((224, 224)) == (224, 224)
    assert calibrate.calibration_size((256, 384)) == (256, 384)
    h, w = calibrate.calibration_size((800, 1344))
    assert h % 32 == 0 and w % 32 == 0 and h * w <= calibrate.MAX_CALIBRATION_PIXELS
    assert abs(w / h - 1344 / 800) < 0.15


def test_a_first_visit_never_waits_for_the_timings(monkeypatch):
    """The Interventions page renders while the model's timings are still being measured (their measurement is
    blocked here), with a rough estimate that says so; once they are in, the estimate is this CPU's."""
    import threading

    from pages.common import heavy_runs
    release, real = threading.Event(), calibrate.measure

    def blocked(*args, **kw):
        assert release.wait(120)
        return real(*args, **kw)

    calibrate.calibrations.clear()
    heavy_runs.heavy_store().clear()
    monkeypatch.setattr(calibrate, "measure", blocked)
    try:
        at = S.new_app(64).run()
        at.switch_page("pages/interventions.py").run()
        no_errors(at)
        assert any("rough figure while this machine is being timed" in c.value for c in at.caption)
    finally:
        release.set()
    _wait_for_timings()
    at.run()
    no_errors(at)
    captions = " ".join(c.value for c in at.caption)
    assert "Estimated" in captions and "on this CPU" in captions and "rough" not in captions
    calibrate.calibrations.clear()
