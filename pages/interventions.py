"""Interventions: ablate heads, drop the position bias or swap SDA↔LDA for one forward pass, and see what
the prediction (a backbone: its feature pyramid) and a later block's attention do."""

import io
import logging

import numpy as np
import streamlit as st
import torch

from crossformer import precision
from crossformer.analysis import interventions as effect
from crossformer.analysis.attention import attention_scale_max
from crossformer.analysis.predictions import top_k
from crossformer.edits import Edit
from crossformer.interventions import head_importance, head_pyramid_importance, pyramid_change
from pages.common import estimates, figure_cache, heavy, heavy_runs, startup, state, traces, widgets
from viz.attention_figures import query_attention_figure
from viz.intervention_figures import head_importance_figure, with_click_targets

log = logging.getLogger(__name__)
KINDS = {"zero": "Zero the head's output", "uniform": "Uniform attention"}
VERB = {"zero": "zeroing", "uniform": "making uniform"}

ctx = startup.page_context()
trace, bundle = ctx.trace, ctx.bundle
intro = widgets.page_header("int")
backbone = bundle.is_backbone
MEASURE = ("the **relative L2 change** of each stage map, ‖edited − base‖ / ‖base‖ over all its channels and "
           "tokens (0 %: untouched; 100 %: a change as large as the map itself)")
intro.markdown("An **intervention** changes one thing inside the model for one forward pass — a head's output, "
               "the dynamic position bias, the block's grouping — and measures what the "
               + (f"output does. This model is a backbone (no classes): its output is the feature pyramid, so an "
                  f"edit is measured by {MEASURE}. " if backbone else "prediction does. ")
               + "Attention maps show where a head looks; interventions show whether that matters.")
widgets.prediction_caveat(ctx)
x = traces.model_input(bundle, ctx.pixels, ctx.prepared.padding)
names = bundle.class_names
base_logits = np.asarray(trace.logits[0], dtype=np.float64)
top = top_k(base_logits, names, k=5) if not backbone else []
probs = {i: p for i, _, p in top}


def class_name(i: int) -> str:
    return names[i] if i < len(names) else f"class {i}"


# ---- (a) head-importance scan ------------------------------------------------------------------------------
st.subheader("Which heads matter? Scan every head")
c1, c2 = st.columns(2)
with c1:
    if backbone:
        target = -1
        st.caption("Followed: the whole feature pyramid — each head is ranked by the mean over the four stages of "
                   "the relative L2 change of the stage maps when it alone is ablated.")
    else:
        target = state.choice("Class to follow", [i for i, _, _ in top], "int_target",
                              format_func=lambda i: f"{class_name(i)} ({probs[i]:.1%})")
with c2:
    kind = state.choice("Ablation", list(KINDS), "int_kind", default="zero", format_func=KINDS.get, widget="radio",
                        horizontal=True)
request = (ctx.model_id, ctx.image_key, ctx.prep_key, int(target), kind)
scans: dict = st.session_state.setdefault("int_scans", {})
n_heads = sum(b.heads for b in trace.all_blocks())
scan_est = estimates.estimate(estimates.scan_cost(n_heads, 16),
                              estimates.forward_flops(bundle.cfg, ctx.pixels.shape[:2]),
                              heavy_runs.calibration(ctx.model_id, precision.resolve("auto", bundle.device),
                                                     _bundle=bundle))


def scan(progress: heavy.Progress) -> dict:
    with bundle.lock:
        if backbone:
            return head_pyramid_importance(bundle.model, x, kind=kind, progress=progress)
        return head_importance(bundle.model, x, int(target), kind=kind, progress=progress)


def show_scan(fig, filename: str, caption: str) -> None:
    """The scan's heat map, its caption and downloads; a click on a cell selects that (block, head) edit in
    section (b) below, once per new click."""
    event = st.plotly_chart(figure_cache.display_figure(fig), key="int_scan_fig", theme=None,
                            config=widgets.PLOTLY_CONFIG, on_select="rerun", selection_mode="points")
    st.caption(caption)
    widgets.download_buttons(fig, "int_scan_fig", filename)
    points = [p for p in ((event or {}).get("selection") or {}).get("points", []) if "customdata" in p]
    if points:
        row, head_clicked = int(points[0]["customdata"][0]), int(points[0]["customdata"][1])
        clicked = (request, row, head_clicked)
        prev = st.session_state.get("int_clicked")
        st.session_state["int_clicked"] = clicked
        # apply a new click only: not the same selection on a rerun, nor a stale one carried over to a new scan
        if prev is None or prev[1:] != clicked[1:]:
            stage_c, index_c = (int(v) for v in res["where"][row])
            for key_, value in (("int_stage", stage_c), ("int_block", index_c), ("int_zero", head_clicked),
                                ("int_headkind", kind)):
                state.set_choice(key_, value)
            st.toast(f"Applied: {VERB[kind]} head {head_clicked} of {res['blocks'][row]}", icon=":material/touch_app:")
    else:
        st.session_state.pop("int_clicked", None)     # deselected: the same cell may be clicked again


res, _ = heavy.action("int_scan", "Scan every head", request, scan_est, scan, scans,
                      progress_label="Ablating heads",
                      help=f"{n_heads} edited forward passes, batched; each ablates one head alone.")
if res is None:
    st.info(f"Press the button to ablate each of the {n_heads} heads in turn (a few seconds on a CPU for the demo "
            "model); the result is kept for this session.", icon=":material/hourglass_empty:")
elif backbone:
    mc = 100.0 * np.asarray(res["mean_change"], dtype=np.float64)
    fig = with_click_targets(head_importance_figure(
        mc, res["blocks"], res["heads"], title=f"Head importance for the feature pyramid ({VERB[kind]} one head at a "
        "time)", value_label="change %", subtitle="each cell: the mean over the four stages of ‖Δ map‖ / ‖map‖ when "
        "that one head alone is ablated · empty: the block has fewer heads"), mc, res["blocks"], res["heads"],
        value_label="change %")
    show_scan(fig, f"head_importance_{kind}_{ctx.image_key[:8]}_pyramid",
              f"Mean relative L2 change of the four stage maps, in per cent (stages before the head's block are "
              f"unchanged: 0); computed in {res['precision']}. Click a cell to apply that edit in “Edit one block” "
              "below.")
    peak = effect.pyramid_scan_peak(mc)
    per_stage = ", ".join(f"{100 * float(v):.2f} %" for v in res["change"][peak.row, peak.head])
    st.info(f"{VERB[kind].capitalize()} head {peak.head} of {res['blocks'][peak.row]} changes the pyramid most: by "
            f"{peak.value:.2f} % on average (stages 0–3: {per_stage}). "
            f"{peak.count} of {n_heads} heads change it by more than {effect.PYRAMID_CHANGE_PCT:g} % when removed "
            "alone.", icon=":material/lightbulb:")
else:
    dl = np.asarray(res["delta_logit"], dtype=np.float64)
    dp = np.asarray(res["delta_prob"], dtype=np.float64)
    name = class_name(int(target))
    fig = with_click_targets(head_importance_figure(
        dl, res["blocks"], res["heads"], title=f"Head importance for “{name}” ({VERB[kind]} one head at a time)"),
        dl, res["blocks"], res["heads"])
    show_scan(fig, f"head_importance_{kind}_{ctx.image_key[:8]}_class{target}",
              f"Δ logit of “{name}” (base logit {res['base_logit']:.2f}, probability {res['base_prob']:.1%}); "
              f"computed in {res['precision']} — the measured deviation of bf16 from fp32 is given in "
              "docs/performance.md. Click a cell to apply that edit in “Edit one block” below.")
    rows = [{"block": b, "stage": int(w[0]), "kind": kind, "head": h,
             "delta_logit": float(dl[i, h]), "delta_prob": float(dp[i, h])}
            for i, (b, w, nh) in enumerate(zip(res["blocks"], res["where"], res["heads"])) for h in range(nh)]
    import pandas as pd
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    st.download_button("Scan (CSV)", buf.getvalue().encode(), f"head_importance_{kind}_class{target}.csv",
                       "text/csv", key="int_csv", on_click="ignore", icon=":material/download:")
    peak = effect.class_scan_peak(dl)
    d = peak.value
    st.info(f"{VERB[kind].capitalize()} head {peak.head} of {res['blocks'][peak.row]} "
            f"{'lowers' if d < 0 else 'raises'} “{name}” by {abs(d):.2f} logits (probability "
            f"{res['base_prob']:.1%} → {res['base_prob'] + float(dp[peak.row, peak.head]):.1%}): the most important "
            f"head of this image. {peak.count} of {n_heads} heads lower the logit by more than "
            f"{effect.HURT_LOGIT:g} when removed alone; the rest are redundant for this class (another head or the "
            "residual stream carries the same information).",
            icon=":material/lightbulb:")

# ---- (b) toggles on one block --------------------------------------------------------------------------------
st.subheader("Edit one block")
block = widgets.block_picker(trace, "int", default_block=0)
c1, c2, c3 = st.columns(3)
with c1:
    no_dpb = state.choice("Position bias (DPB)", ["none", "all"], "int_nodpb", default="none", widget="radio",
                          format_func={"none": "keep", "all": "drop on all heads"}.get)
with c2:
    swap = state.choice("Swap SDA↔LDA", ["off", "on"], "int_swap", default="off", widget="radio",
                        format_func={"off": "off", "on": f"run as {'SDA' if block.kind == 'lda' else 'LDA'}"}.get)
with c3:
    zero = state.choice("Ablate one head", [None, *range(block.heads)], "int_zero",
                        format_func=lambda h: "none" if h is None else f"head {h}")
    head_kind = state.choice("How", list(KINDS), "int_headkind", default="zero", widget="radio", horizontal=True,
                             format_func={"zero": "zeroed", "uniform": "uniform"}.get)
edits: list[Edit] = []
if no_dpb == "all":
    edits.append(Edit(block.stage, block.index, "no_dpb"))
if swap == "on":
    edits.append(Edit(block.stage, block.index, "swap"))
if zero is not None:
    edits.append(Edit(block.stage, block.index, head_kind, head=int(zero)))
edits_key = (ctx.model_id, ctx.image_key, ctx.prep_key, tuple(edits))

order = list(trace.all_blocks())
pos = next(k for k, b in enumerate(order) if b.stage == block.stage and b.index == block.index)
later_before = order[min(pos + 1, len(order) - 1)]

if edits:
    kept = st.session_state.get("int_edited")
    if kept is None or kept[0] != edits_key:
        with st.spinner("Running the edited model…"), bundle.lock, torch.no_grad():
            edited = bundle.model.forward_trace(x, edits=edits)     # one pass: its logits are the edited ones
        after_logits = np.asarray(edited.logits[0], dtype=np.float64)
        kept = (edits_key, after_logits, edited)
        st.session_state["int_edited"] = kept   # one edited trace per session: the latest
    after_logits, edited_trace = kept[1], kept[2]
else:
    after_logits, edited_trace = base_logits, trace
after_logits = np.asarray(after_logits, dtype=np.float64)
n_stages = len(trace.stage_hw)
if backbone:
    change = pyramid_change([torch.from_numpy(np.array(trace.stage_map(i)[0])) for i in range(n_stages)],
                            [torch.from_numpy(np.array(edited_trace.stage_map(i)[0])) for i in range(n_stages)])
    st.dataframe({"stage": list(range(n_stages)),
                  "map (C × H × W)": [f"{trace.stage_map(i).shape[1]}×{trace.stage_hw[i][0]}×{trace.stage_hw[i][1]}"
                                      for i in range(n_stages)],
                  "relative change ‖Δ‖/‖base‖": [float(c) for c in change]},
                 hide_index=True, key="int_pyramid_change",
                 column_config={"relative change ‖Δ‖/‖base‖": st.column_config.NumberColumn(format="percent")})
else:
    pred = effect.prediction_change(base_logits, after_logits)
    top_after = top_k(after_logits, names, k=5)
    classes = [i for i, _, _ in top] + [i for i, _, _ in top_after if i not in probs]
    table = {"class": [class_name(i) for i in classes],
             "before prob": [float(pred.before[i]) for i in classes],
             "after prob": [float(pred.after[i]) for i in classes],
             "Δ logit": [float(pred.delta_logit[i]) for i in classes]}
    st.dataframe(table, hide_index=True,
                 column_config={"before prob": st.column_config.NumberColumn(format="percent"),
                                "after prob": st.column_config.NumberColumn(format="percent"),
                                "Δ logit": st.column_config.NumberColumn(format="%+.3f")})

later_after = edited_trace.block(later_before.stage, later_before.index)
token = ctx.query_token(later_before.stage)
scale_max, scale_note = widgets.shared_scale("int", {"before": attention_scale_max(later_before, token),
                                                     "after": attention_scale_max(later_after, token)})
left, right = st.columns(2)
with left:
    fig = figure_cache.built_figure(query_attention_figure, ctx.pixels, later_before, token, None,
                                    title=f"{later_before.name} before the edit", wrap_px=420, scale_max=scale_max)
    widgets.show_figure(fig, key="int_before", filename=f"attention_{later_before.name}_before")
with right:
    fig = figure_cache.built_figure(query_attention_figure, ctx.pixels, later_after, token, None,
                                    title=f"{later_after.name} after the edit", wrap_px=420, scale_max=scale_max)
    widgets.show_figure(fig, key="int_after", filename=f"attention_{later_after.name}_after")
st.caption(f"Mean over heads of the attention of the shared query token {token} (pick it on the Attention page) "
           f"in {later_before.name}, "
           + ("the block after the edited one. " if later_before is not block else
              "the edited block itself (the last one). ") + scale_note)

# ---- (c) what the numbers say --------------------------------------------------------------------------------
if not edits:
    st.info("No edit is on: the two columns are the same forward pass. Drop the position bias, swap the layout or "
            "zero a head above and watch the table and the right-hand map.", icon=":material/lightbulb:")
else:
    what = " + ".join({"no_dpb": "no DPB", "swap": "SDA↔LDA swap", "zero": f"head {zero} zeroed", "uniform": f"head {zero} made uniform"}[e.kind]
                      for e in edits)
    try:
        shift = effect.attention_shift(later_before, later_after, token)
    except Exception:  # noqa: BLE001 — a note only
        shift = None
    tv = (f"; the query's attention in {later_before.name} moves by a total variation of {shift:.3f}"
          if shift is not None else "")
    if backbone:
        stages = ", ".join(f"stage {i} {100 * float(c):.2f} %" for i, c in enumerate(change))
        outcome = f"the stage maps change by {stages} (relative L2){tv}"
    else:
        t0, new_top = top[0][0], pred.new_top
        verdict = (f"the prediction stays “{class_name(t0)}”" if new_top == t0
                   else f"the prediction flips to “{class_name(new_top)}” ({pred.after[new_top]:.1%})")
        outcome = (f"“{class_name(t0)}” goes from {pred.before[t0]:.1%} to {pred.after[t0]:.1%} "
                   f"({pred.delta_logit[t0]:+.2f} logits) and {verdict}{tv}")
    st.info(f"With {what} in {block.name}, {outcome}. Blocks before {block.name} are "
            "untouched; everything after it sees the changed output.", icon=":material/lightbulb:")
